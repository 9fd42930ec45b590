"""minbert.mlm: the masking rule against hand counts, the MLM head against transformers'
BertForPreTraining / BertForMaskedLM, accumulation against one big batch, the saved
encoder against transformers' BertModel, and a short run that learns."""
import json
from pathlib import Path

import pytest
import torch
import transformers

import minbert
from minbert import mlm
from minbert.pretrained import CheckpointError, bundled_path, save_pretrained

PAD, UNK, CLS, SEP, MASK = 0, 2, 3, 4, 5
SPECIAL = (PAD, UNK, CLS, SEP, MASK)
VOCAB = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(93)]


def tiny_hf_config(vocab_size=len(VOCAB), dropout=0.1):
    return transformers.BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=4, intermediate_size=37,
                                   max_position_embeddings=64, hidden_dropout_prob=dropout,
                                   attention_probs_dropout_prob=dropout)


def tiny_tokenizer(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return transformers.BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))


def randomise(model, seed):
    """Every parameter random (LayerNorm and biases too), so a swapped or skipped tensor shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if name.endswith("LayerNorm.weight") else 0.0))
    return model


@pytest.fixture(scope="module")
def pretraining_folder(tmp_path_factory):
    """A transformers BertForPreTraining (MLM + NSP heads), saved as safetensors."""
    folder = tmp_path_factory.mktemp("hf_pretraining")
    torch.manual_seed(0)
    hf = randomise(transformers.BertForPreTraining(tiny_hf_config()), 0)
    hf.save_pretrained(str(folder))
    tiny_tokenizer(folder).save_pretrained(str(folder))
    return folder


def batch_with_padding(gen, batch=3, seq=11):
    lengths = [seq, 7, 4][:batch]
    ids = torch.full((batch, seq), PAD)
    attn = torch.zeros(batch, seq, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(6, len(VOCAB), (n,), generator=gen)
        ids[i, 0], ids[i, n - 1] = CLS, SEP
        attn[i, :n] = 1
    return ids, attn


# ------------------------------------------------------------------------ masking
def synthetic_ids(n_rows=400, seq=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 30000, (n_rows, seq), generator=g)
    lengths = torch.randint(seq // 4, seq + 1, (n_rows,), generator=g)
    attn = (torch.arange(seq)[None, :] < lengths[:, None]).long()
    ids[:, 0] = 101  # [CLS]
    ids[torch.arange(n_rows), lengths - 1] = 102  # [SEP]
    ids[attn == 0] = 0  # [PAD]
    ids[5, 3] = 100  # an [UNK]: special too, as in DataCollatorForLanguageModeling
    return ids, attn


def test_masking_statistics_by_hand():
    ids, attn = synthetic_ids()
    masked, labels = mlm.mask_tokens(ids, attn, [0, 100, 101, 102, 103], 30522, 103,
                                     torch.Generator().manual_seed(1))
    eligible = (attn == 1) & ~torch.isin(ids, torch.tensor([0, 100, 101, 102, 103]))
    n_eligible = int(eligible.sum())
    assert n_eligible >= 100_000
    chosen = labels != -100
    n_chosen = int(chosen.sum())
    became_mask = int((chosen & (masked == 103)).sum())
    unchanged = int((chosen & (masked == ids)).sum())
    other = n_chosen - became_mask - unchanged  # random replacements
    assert abs(n_chosen / n_eligible - 0.15) < 0.01, n_chosen / n_eligible
    assert abs(became_mask / n_chosen - 0.80) < 0.01
    assert abs(unchanged / n_chosen - 0.10) < 0.01
    assert abs(other / n_chosen - 0.10) < 0.01
    assert torch.equal(labels[chosen], ids[chosen])
    # special and padding tokens never chosen, never changed; nothing outside `chosen` changes
    assert not chosen[~eligible].any()
    assert torch.equal(masked[~chosen], ids[~chosen])
    # random replacements are spread over the vocabulary, not one id
    replaced = masked[chosen & (masked != 103) & (masked != ids)]
    assert replaced.unique().numel() > 0.9 * replaced.numel()
    # padding is left alone because of attention_mask, even when [PAD] is not listed as special
    _, lab = mlm.mask_tokens(ids, attn, [101, 102], 30522, 103, torch.Generator().manual_seed(2),
                             mlm_probability=0.9)
    assert not (lab[attn == 0] != -100).any()
    assert (lab[(attn == 1) & (ids == 100)] != -100).any()  # [UNK] now maskable: the list is used


def test_masking_deterministic_and_tokenizer_form():
    ids, attn = synthetic_ids(20, 64)
    _, tok = minbert.load_pretrained("minilm-l6")
    a = mlm.mask_tokens(ids, attn, tok, generator=torch.Generator().manual_seed(3))
    b = mlm.mask_tokens(ids, attn, [0, 100, 101, 102, 103], 30522, 103, torch.Generator().manual_seed(3))
    c = mlm.mask_tokens(ids, attn, tok, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    _, lab = mlm.mask_tokens(ids, attn, tok, generator=torch.Generator().manual_seed(3), mlm_probability=0.5)
    frac = (lab != -100).sum() / ((attn == 1) & (ids > 103)).sum()
    assert abs(frac - 0.5) < 0.05


# ------------------------------------------------------------------------ the head
def test_head_matches_transformers(pretraining_folder):
    bert, tok, heads = minbert.load_pretrained(pretraining_folder, with_heads=True)
    assert "cls.predictions.transform.dense.weight" in heads
    model = mlm.BertForMLM(bert, heads).eval()
    assert model.head_loaded
    # tied: one Parameter, two names
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    hf_pre = transformers.BertForPreTraining.from_pretrained(str(pretraining_folder)).eval()
    hf_mlm = transformers.BertForMaskedLM.from_pretrained(str(pretraining_folder)).eval()
    ids, attn = batch_with_padding(torch.Generator().manual_seed(0))
    masked, labels = mlm.mask_tokens(ids, attn, SPECIAL, len(VOCAB), MASK,
                                     torch.Generator().manual_seed(0), mlm_probability=0.4)
    with torch.no_grad():
        ours = model(masked, attn, labels)
        ref = hf_mlm(input_ids=masked, attention_mask=attn, labels=labels)
        pre = hf_pre(input_ids=masked, attention_mask=attn).prediction_logits
        loss_masked, logits_masked = model.masked_loss(masked, attn, labels)
    real = attn.bool()
    assert (ours.logits - ref.logits)[real].abs().max() < 1e-5
    assert (ours.logits - pre)[real].abs().max() < 1e-5
    assert abs(ours.loss.item() - ref.loss.item()) < 1e-5
    assert abs(loss_masked.item() - ref.loss.item()) < 1e-5
    assert (logits_masked - ref.logits[labels != -100]).abs().max() < 1e-5
    # the tie holds after loading: changing the embedding changes the decoder
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight[7] += 1.0
    assert torch.equal(model.cls.predictions.decoder.weight[7], model.bert.embeddings.word_embeddings.weight[7])


def test_head_from_masked_lm_state_dict(pretraining_folder):
    """BertForMaskedLM's in-memory state dict lists the tied decoder.weight / decoder.bias too."""
    hf_mlm = transformers.BertForMaskedLM.from_pretrained(str(pretraining_folder))
    heads = {k: v for k, v in hf_mlm.state_dict().items() if k.startswith("cls.")}
    assert "cls.predictions.decoder.weight" in heads
    bert, _ = minbert.load_pretrained(pretraining_folder)
    model = mlm.BertForMLM(bert, heads)
    assert torch.equal(model.cls.predictions.bias, hf_mlm.cls.predictions.bias.detach())
    bad = dict(heads)
    bad["cls.predictions.decoder.weight"] = bad["cls.predictions.decoder.weight"] + 1
    with pytest.raises(CheckpointError, match="tied"):
        mlm.BertForMLM(bert, bad)


def test_head_names_are_checked(pretraining_folder):
    bert, _, heads = minbert.load_pretrained(pretraining_folder, with_heads=True)
    missing = {k: v for k, v in heads.items() if k != "cls.predictions.transform.LayerNorm.bias"}
    with pytest.raises(CheckpointError, match=r"missing \(1\).*transform.LayerNorm.bias"):
        mlm.BertForMLM(bert, missing)
    extra = dict(heads, **{"cls.predictions.transform.extra": torch.zeros(3)})
    with pytest.raises(CheckpointError, match=r"unexpected \(1\).*transform.extra"):
        mlm.BertForMLM(bert, extra)
    wrong = dict(heads, **{"cls.predictions.bias": torch.zeros(5)})
    with pytest.raises(CheckpointError, match="shape"):
        mlm.BertForMLM(bert, wrong)


def test_fresh_head_when_checkpoint_has_none():
    bert, _, heads = minbert.load_pretrained("minilm-l6", with_heads=True)
    assert heads == {}
    torch.manual_seed(0)
    model = mlm.BertForMLM(bert, heads)
    assert not model.head_loaded
    t = model.cls.predictions.transform
    assert abs(t.dense.weight.std().item() - 0.02) < 0.001  # 384 x 384 draws of N(0, 0.02)
    assert abs(t.dense.weight.mean().item()) < 0.001
    assert torch.equal(t.dense.bias, torch.zeros(384))
    assert torch.equal(t.LayerNorm.weight, torch.ones(384))
    assert torch.equal(t.LayerNorm.bias, torch.zeros(384))
    assert torch.equal(model.cls.predictions.bias, torch.zeros(30522))
    assert model.cls.predictions.decoder.weight is bert.embeddings.word_embeddings.weight
    names = {n for n, _ in model.named_parameters()}  # named_parameters lists a tied one once
    assert "cls.predictions.decoder.weight" not in names and "bert.embeddings.word_embeddings.weight" in names


# ------------------------------------------------------------------------ accumulation
def make_tiny(folder):
    """A random tiny encoder (no dropout) with a fresh head."""
    torch.manual_seed(1)
    bert = minbert.BertModel(minbert.BertConfig(**{k: v for k, v in tiny_hf_config(dropout=0.0).to_dict().items()
                                                    if k in minbert.BertConfig.__dataclass_fields__}))
    torch.manual_seed(2)
    return mlm.BertForMLM(bert)


@pytest.mark.parametrize("opt", ["sgd", "adamw"])
def test_accumulation_equals_one_big_batch(tmp_path, opt):
    tok = tiny_tokenizer(tmp_path / "tok")
    g = torch.Generator().manual_seed(5)
    seqs = []
    for n in torch.randint(4, 20, (16,), generator=g).tolist():  # varied lengths: real padding
        seqs.append(torch.cat([torch.tensor([CLS]), torch.randint(6, len(VOCAB), (n,), generator=g),
                               torch.tensor([SEP])]))
    finals = []
    for batch_size, acc in [(8, 1), (4, 2), (2, 4)]:
        model = make_tiny(tmp_path)
        params = [p for p in model.parameters()]
        o = (torch.optim.SGD(params, lr=0.5) if opt == "sgd" else minbert.AdamW(params, lr=1e-3))
        h = mlm.train_mlm(model, mlm.MaskedTexts(seqs, tok, batch_size, acc, seed=0), o, epochs=1)
        assert len(h) == 2  # 16 sequences, 8 per optimizer step
        finals.append(({k: v.clone() for k, v in model.state_dict().items()}, [x["loss"] for x in h]))
    start = make_tiny(tmp_path).state_dict()
    ref, ref_loss = finals[0]
    assert max((ref[k] - start[k]).abs().max().item() for k in ref) > 1e-3  # it did train
    for got, loss in finals[1:]:
        assert max((got[k] - ref[k]).abs().max().item() for k in ref) < 1e-6
        assert loss == pytest.approx(ref_loss, abs=1e-6)


# ------------------------------------------------------------------------ saving
def test_save_pretrained_round_trip(tmp_path, pretraining_folder):
    model, tok = mlm.load_mlm(pretraining_folder)
    folder = tmp_path / "run" / "encoder"
    head = {mlm.HEAD_FILE: model.head_state_dict()}
    save_pretrained(model.bert, tok, folder, extra=head)
    save_pretrained(model.bert, tok, folder, extra=head)  # overwriting an existing folder
    assert sorted(p.name for p in folder.parent.iterdir()) == ["encoder"]  # no temp leftovers
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["architectures"] == ["BertModel"] and cfg["model_type"] == "bert"
    assert cfg["hidden_size"] == 32 and "attn_implementation" not in cfg
    bert2, tok2 = minbert.load_pretrained(folder)
    again, _ = mlm.load_mlm(folder)  # head from mlm_head.safetensors
    assert again.head_loaded
    hf = transformers.BertModel.from_pretrained(str(folder)).eval()  # the format oracle
    ids, attn = batch_with_padding(torch.Generator().manual_seed(1))
    assert tok2("w1 w2")["input_ids"] == tok("w1 w2")["input_ids"]
    model.eval()
    with torch.no_grad():
        a = model.bert(ids, attn).last_hidden_state
        assert torch.equal(bert2(ids, attn).last_hidden_state, a)
        assert (hf(input_ids=ids, attention_mask=attn).last_hidden_state - a)[attn.bool()].abs().max() < 1e-5
        assert torch.equal(again(ids, attn).logits, model(ids, attn).logits)


# ------------------------------------------------------------------------ a short run
def test_short_pretraining_lowers_held_out_loss(tmp_path, data_root):
    """A tiny random encoder with MiniLM's tokenizer, 20 steps on CFIMDB through the CLI."""
    start = tmp_path / "tiny"
    torch.manual_seed(0)
    transformers.BertModel(tiny_hf_config(vocab_size=30522)).save_pretrained(str(start))
    transformers.BertTokenizerFast.from_pretrained(str(bundled_path())).save_pretrained(str(start))
    out = tmp_path / "run"
    mlm.main(["--preset", "v1", "--model", str(start), "--out", str(out), "--data", str(data_root),
              "--n-texts", "40", "--n-eval", "16", "--max-length", "32", "--max-steps", "20",
              "--lr", "3e-3", "--head-lr", "3e-3", "--head-warmup-steps", "5"])
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == {"head": 5, "full": 20}
    assert m["n_train_texts"] == 40 and m["n_eval_texts"] == 16
    assert m["before"]["masked_tokens"] == m["after"]["masked_tokens"] > 0  # the same masks
    assert m["after"]["loss"] < m["before"]["loss"] - 0.5, m
    assert m["after"]["accuracy"] > m["before"]["accuracy"]
    assert m["encoder_relative_change"] > 0
    bert, _ = minbert.load_pretrained(out / "encoder")  # the --init-from folder
    assert (out / "encoder" / mlm.HEAD_FILE).is_file()
    assert Path(out / "history.json").is_file()


# ------------------------------------------------------------------------ notebook 06's checks
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "06_mlm.ipynb"
STRIPPED = "    # YOUR CODE HERE\n    raise NotImplementedError\n"
MASK_BODIES = {
    "masks specials": """
    chosen = (torch.rand(input_ids.shape, generator=generator) < mlm_probability) & attention_mask.bool()
    u = torch.rand(input_ids.shape, generator=generator)
    masked = input_ids.clone()
    masked[chosen & (u < 0.8)] = mask_token_id
    r = chosen & (u >= 0.8) & (u < 0.9)
    masked[r] = torch.randint(vocab_size, input_ids.shape, generator=generator)[r]
    return masked, torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
""",
    "100% [MASK]": """
    special = torch.tensor(list(special_ids))
    chosen = ((torch.rand(input_ids.shape, generator=generator) < mlm_probability)
              & attention_mask.bool() & ~torch.isin(input_ids, special))
    masked = input_ids.clone()
    masked[chosen] = mask_token_id
    return masked, torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
""",
    "labels everywhere": """
    special = torch.tensor(list(special_ids))
    chosen = ((torch.rand(input_ids.shape, generator=generator) < mlm_probability)
              & attention_mask.bool() & ~torch.isin(input_ids, special))
    u = torch.rand(input_ids.shape, generator=generator)
    masked = input_ids.clone()
    masked[chosen & (u < 0.8)] = mask_token_id
    r = chosen & (u >= 0.8) & (u < 0.9)
    masked[r] = torch.randint(vocab_size, input_ids.shape, generator=generator)[r]
    return masked, input_ids.clone()
""",
    "global RNG": """
    special = torch.tensor(list(special_ids))
    chosen = ((torch.rand(input_ids.shape) < mlm_probability)
              & attention_mask.bool() & ~torch.isin(input_ids, special))
    u = torch.rand(input_ids.shape)
    masked = input_ids.clone()
    masked[chosen & (u < 0.8)] = mask_token_id
    r = chosen & (u >= 0.8) & (u < 0.9)
    masked[r] = torch.randint(vocab_size, input_ids.shape)[r]
    return masked, torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
""",
}
HEAD_BODIES = {
    "relu": "    return layer_norm(torch.relu(dense(hidden_states))) @ word_embeddings.T + bias\n",
    "no bias": "    return layer_norm(F.gelu(dense(hidden_states))) @ word_embeddings.T\n",
    "LayerNorm first": "    return F.gelu(layer_norm(dense(hidden_states))) @ word_embeddings.T + bias\n",
}


def notebook_cells():
    nb = json.loads(NOTEBOOK.read_text())
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def run_check(exercise_id, body=None):
    """Exec the setup cells, the exercise (solution block replaced by `body`), and its check."""
    cells = notebook_cells()
    ids = [c["id"] for c in cells]
    i = ids.index(exercise_id)
    check = next(c for c in cells[i + 1:] if "check" in c["metadata"].get("tags", []))
    src = "".join(cells[i]["source"])
    if body is not None:
        a, b = src.index("    ### BEGIN SOLUTION"), src.index("### END SOLUTION") + len("### END SOLUTION")
        src = src[:a] + body.lstrip("\n") + src[b:]
    ns = {}
    for c in cells[:i]:
        if "setup" in c["metadata"].get("tags", []):
            exec(compile("".join(c["source"]), c["id"], "exec"), ns)
    exec(compile(src, exercise_id, "exec"), ns)
    exec(compile("".join(check["source"]), check["id"], "exec"), ns)


def test_notebook_layout():
    cells = notebook_cells()
    tags = {c["id"]: c["metadata"].get("tags", []) for c in cells}
    assert tags["ex-mask-tokens"] == ["exercise"] and tags["check-mask-tokens"] == ["check"]
    assert tags["ex-mlm-head"] == ["exercise"] and tags["check-mlm-head"] == ["check"]
    for c in cells:
        if not "".join(c["source"]).startswith("# NBVAL_CHECK_OUTPUT"):
            assert c["outputs"] == [] and c["execution_count"] is None, c["id"]
        else:  # nbval compares these; it needs a count to treat them as run
            assert c["outputs"] and c["execution_count"] is not None, c["id"]
        assert all(o["output_type"] != "error" for o in c["outputs"]), c["id"]


@pytest.mark.parametrize("exercise", ["ex-mask-tokens", "ex-mlm-head"])
def test_notebook_solution_passes_its_check(exercise):
    run_check(exercise)


@pytest.mark.parametrize("exercise,name,body", [("ex-mask-tokens", "stripped", STRIPPED)]
                         + [("ex-mask-tokens", k, v) for k, v in MASK_BODIES.items()]
                         + [("ex-mlm-head", "stripped", STRIPPED)]
                         + [("ex-mlm-head", k, v) for k, v in HEAD_BODIES.items()])
def test_notebook_check_rejects(exercise, name, body):
    with pytest.raises(AssertionError) as e:
        run_check(exercise, body)
    if name == "stripped":
        assert "not done yet" in str(e.value)
