"""The code the grader runs in the student's kernel, in place of each check cell: it asks the
kernel for data only.

This file is never imported by the grader: `verdict.harness_cell` pastes its text into the
check cell, followed by one call `_mbh_main(SPEC, BLOB)`. BLOB is a safetensors file (base64)
of the inputs the grader drew for this check; SPEC (JSON) says which of the student's names to
call, how (a runner below) and with which arguments. The outputs go back as one safetensors
file in a display message of type MIME; per case its metadata holds `ok` or the name of the
exception the call raised (a reason for the feedback, never a score). Nothing here decides
pass or fail: the grading process compares the arrays with its own oracles.
"""
import base64
import json

import torch

MIME = "application/x-minbert-result"


def _mbh_value(a, given):
    """A JSON argument as the object the student's function gets."""
    if not isinstance(a, dict):
        return a
    if "t" in a:
        return given[a["t"]].clone()
    if "dtype" in a:
        return getattr(torch, a["dtype"])
    if "tuple" in a:
        return tuple(a["tuple"])
    if "gen" in a:
        return torch.Generator().manual_seed(a["gen"])
    if "tdict" in a:
        return {k[len(a["tdict"]):]: v.clone() for k, v in given.items()
                if k.startswith(a["tdict"])}
    if "linear" in a or "layernorm" in a:
        p = a.get("linear", a.get("layernorm"))
        w = given[p + "weight"]
        m = torch.nn.Linear(w.shape[1], w.shape[0]) if "linear" in a else \
            torch.nn.LayerNorm(w.shape[0], eps=a["eps"])
        m.load_state_dict({"weight": w, "bias": given[p + "bias"]})
        return m
    if "bertconfig" in a:
        import transformers
        return transformers.BertConfig(**a["bertconfig"])
    if "bert" in a:
        from minbert.pretrained import load_pretrained  # the hand-out's copy, in the kernel
        return load_pretrained(a["bert"])[0].eval()
    return {k: _mbh_value(v, given) for k, v in a.items()}


def _mbh_keep(out, prefix, res):
    """The returned tensors (or numbers) as prefix.out0, prefix.out1, ..."""
    for j, r in enumerate(res if isinstance(res, (tuple, list)) else [res]):
        if isinstance(r, torch.Tensor):
            out[f"{prefix}.out{j}"] = r.detach().clone().contiguous()
        elif isinstance(r, (int, float)) and not isinstance(r, bool):
            out[f"{prefix}.out{j}"] = torch.tensor(float(r), dtype=torch.float64)


def _mbh_call(ns, given, out, i, case):
    """fn(*args, **kwargs); `after`: the arguments as the call left them; `grad`: those
    arguments' gradients of the first output."""
    args = [_mbh_value(a, given) for a in case.get("args", [])]
    kwargs = {k: _mbh_value(v, given) for k, v in case.get("kwargs", {}).items()}
    for j in case.get("grad", []):
        args[j] = args[j].requires_grad_()
    if "seed" in case:
        torch.manual_seed(case["seed"])
    with torch.set_grad_enabled(bool(case.get("grad"))):
        res = ns[case["fn"]](*args, **kwargs)
    _mbh_keep(out, f"c{i}", res)
    for j in case.get("after", []):
        out[f"c{i}.in{j}"] = args[j].detach().clone()
    first = res[0] if isinstance(res, (tuple, list)) else res
    if case.get("grad") and isinstance(first, torch.Tensor) and first.requires_grad:
        first.backward()
        for j in case["grad"]:
            if args[j].grad is not None:
                out[f"c{i}.grad{j}"] = args[j].grad.detach().clone()


def _mbh_module(ns, given, out, i, case):
    """cls(*init), the grader's weights loaded (strict), eval mode (training mode with
    `train`, its dropout seeded), then module(*args)."""
    m = ns[case["fn"]](*[_mbh_value(a, given) for a in case["init"]])
    m.load_state_dict(_mbh_value({"tdict": case["weights"]}, given), strict=True)
    m.train(bool(case.get("train")))
    torch.manual_seed(0)
    with torch.no_grad():
        _mbh_keep(out, f"c{i}", m(*[_mbh_value(a, given) for a in case["args"]]))


def _mbh_steps(ns, given, out, i, case):
    """A stateful step function over the whole sequence: (p, m, v) carried from step to step;
    each step's outputs and its inputs as the call left them."""
    p, g = _mbh_value(case["p0"], given), _mbh_value(case["grads"], given)
    hyper = _mbh_value(case["hyper"], given)
    m, v = torch.zeros_like(p), torch.zeros_like(p)
    for t in range(g.shape[0]):
        ins = (p.clone(), g[t].clone(), m.clone(), v.clone())
        res = ns[case["fn"]](*ins, t + 1, **hyper)
        for name, x in zip("pmv", res):
            out[f"c{i}.s{t}.{name}"] = x.detach().clone()
        for name, x in zip(("pin", "gin", "min", "vin"), ins):
            out[f"c{i}.s{t}.{name}"] = x.detach().clone()
        p, m, v = res


def _mbh_optimizer(ns, given, out, i, case):
    """cls(param groups, **kwargs), then step() once per row of each parameter's gradients."""
    params = [torch.nn.Parameter(given[k].clone()) for k in case["params"]]
    groups = [dict(g, params=[params[j]]) for j, g in enumerate(case["groups"])]
    opt = ns[case["fn"]](groups, **_mbh_value(case["kwargs"], given))
    grads = [given[k] for k in case["grads"]]
    for t in range(grads[0].shape[0]):
        for prm, g in zip(params, grads):
            prm.grad = g[t].clone()
        opt.step()
    for j, prm in enumerate(params):
        out[f"c{i}.out{j}"] = prm.detach().clone()


def _mbh_round_robin(ns, given, out, i, case):
    """fn(model, loaders, optimizer, rounds) on a model whose loss is w[task] * x and an
    optimizer that records every parameter's gradient at each step (and changes nothing)."""
    tasks, seen = list(case["batches"]), []
    model = torch.nn.Module()
    model.w = torch.nn.ParameterDict({t: torch.nn.Parameter(torch.ones(())) for t in tasks})
    model.loss = lambda task, batch: model.w[task] * batch["x"]
    opt = type("RecordingOptimizer", (), {
        "zero_grad": lambda self, set_to_none=True: model.zero_grad(set_to_none=set_to_none),
        "step": lambda self: seen.append([0.0 if model.w[t].grad is None
                                          else float(model.w[t].grad) for t in tasks])})()
    loaders = {t: [{"x": torch.tensor(x)} for x in xs] for t, xs in case["batches"].items()}
    losses = ns[case["fn"]](model, loaders, opt, case["rounds"])
    out[f"c{i}.steps"] = torch.tensor(seen, dtype=torch.float64).reshape(-1, len(tasks))
    if isinstance(losses, dict) and list(losses) == tasks and all(
            isinstance(v, list) and all(type(x) is float for x in v) for v in losses.values()):
        for j, t in enumerate(tasks):
            out[f"c{i}.loss{j}"] = torch.tensor(losses[t], dtype=torch.float64)


def _mbh_run(spec_json, blob_b64, ns):
    """Run every case of the spec on the names in ns; the outputs as base64 safetensors."""
    from safetensors.torch import load, save
    runners = {"call": _mbh_call, "module": _mbh_module, "steps": _mbh_steps,
               "optimizer": _mbh_optimizer, "round_robin": _mbh_round_robin}
    spec, given = json.loads(spec_json), load(base64.b64decode(blob_b64))
    out, status = {}, {}
    for i, case in enumerate(spec["cases"]):
        try:
            runners[case.get("runner", "call")](ns, given, out, i, case)
            status[f"c{i}"] = "ok"
        except BaseException as e:  # noqa: BLE001 (its name is a reason; nothing more)
            status[f"c{i}"] = type(e).__name__[:60]
            if isinstance(e, KeyboardInterrupt):
                break
    try:
        blob = save({k: v.contiguous() for k, v in out.items()
                     if v.dtype in (torch.float32, torch.float64, torch.int64)}, metadata=status)
    except Exception:  # noqa: BLE001 (an output safetensors cannot hold: no outputs at all)
        blob = save({}, metadata={k: "unsaveable output" for k in status})
    return base64.b64encode(blob).decode()


def _mbh_main(spec_json, blob_b64):
    """In the kernel: run on the user's names and publish the result (never raises)."""
    from IPython import get_ipython
    from IPython.display import publish_display_data
    publish_display_data({MIME: _mbh_run(spec_json, blob_b64, get_ipython().user_ns)})
