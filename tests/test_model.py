"""minbert.model and minbert.pretrained against transformers' BertModel (the oracle)."""
import csv
import os
import shutil

import pytest
import torch
import transformers

import minbert
from minbert.pretrained import CheckpointError, bundled_path


def real_sentences(data_root, n=8):
    with open(data_root / "ids-sst-dev.csv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    # a mix of short and long sentences, so the batch has real padding
    rows.sort(key=lambda r: len(r["sentence"]))
    return [rows[i]["sentence"] for i in range(0, len(rows), len(rows) // n)][:n]


def hf_model(folder):
    return transformers.BertModel.from_pretrained(str(folder), attn_implementation="eager").eval()


def max_diff(a, b):
    return (a - b).abs().max().item()


@pytest.mark.parametrize("impl", ["sdpa", "manual"])
def test_bundled_minilm_matches_transformers(data_root, impl, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tok = minbert.load_pretrained("minilm-l6")
    model.set_attn_implementation(impl)
    assert isinstance(tok, transformers.BertTokenizerFast)
    oracle = hf_model(bundled_path())
    batch = tok(real_sentences(data_root), padding=True, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any(), "the batch should contain padding"
    with torch.no_grad():
        ours, ref = model(**batch), oracle(**batch)
    real = batch["attention_mask"].bool()
    assert max_diff(ours.last_hidden_state[real], ref.last_hidden_state[real]) < 1e-5
    assert max_diff(ours.pooler_output, ref.pooler_output) < 1e-5
    # Rows at *padded* positions are never used downstream; in float32 both libraries are
    # ~3e-5 away from the float64 result there (each as far as the other), so compare
    # every position, padding included, in float64 where rounding is out of the way
    # (without packing: packed runs leave padded positions at exactly 0, tested below).
    model.config.unpad = False
    with torch.no_grad():
        ours64, ref64 = model.double()(**batch), oracle.double()(**batch)
    assert max_diff(ours64.last_hidden_state, ref64.last_hidden_state) < 1e-10
    assert max_diff(ours64.pooler_output, ref64.pooler_output) < 1e-10


def test_sentence_pair_token_types(monkeypatch):
    model, tok = minbert.load_pretrained("minilm-l6")
    oracle = hf_model(bundled_path())
    batch = tok(["how do i learn python ?", "what is bert"],
                ["what is the best way to learn python ?", "is bert a muppet"],
                padding=True, return_tensors="pt")
    assert batch["token_type_ids"].sum() > 0
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        ours, ref = model(**batch).last_hidden_state, oracle(**batch).last_hidden_state
    assert max_diff(ours[real], ref[real]) < 1e-5


@pytest.fixture
def random_hf_folder(tmp_path):
    """A randomly initialised transformers BertModel of a non-default shape, saved like a hub folder."""
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=96, num_hidden_layers=3,
                                  num_attention_heads=4, intermediate_size=200,
                                  max_position_embeddings=128, type_vocab_size=2)
    ref = transformers.BertModel(cfg).eval()
    folder = tmp_path / "tiny-bert"
    ref.save_pretrained(folder, safe_serialization=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(bundled_path() / name, folder / name)
    return folder, ref


def test_random_non_default_shape_roundtrip(random_hf_folder):
    folder, ref = random_hf_folder
    model, tok = minbert.load_pretrained(str(folder))
    assert model.config.hidden_size == 96 and len(model.encoder.layer) == 3
    batch = tok(["a short one", "a somewhat longer sentence with more tokens in it"],
                padding=True, return_tensors="pt")
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        ours, theirs = model(**batch), ref(**batch)
    assert max_diff(ours.last_hidden_state[real], theirs.last_hidden_state[real]) < 1e-5
    assert max_diff(ours.pooler_output, theirs.pooler_output) < 1e-5


def test_pytorch_model_bin_is_read_with_weights_only(random_hf_folder):
    folder, ref = random_hf_folder
    from safetensors.torch import load_file
    state = load_file(str(folder / "model.safetensors"))
    os.remove(folder / "model.safetensors")
    # TF-era names and the task-model prefix, as in bert-base-uncased's pytorch_model.bin
    renamed = {("bert." + k).replace("LayerNorm.weight", "LayerNorm.gamma")
               .replace("LayerNorm.bias", "LayerNorm.beta"): v for k, v in state.items()}
    torch.save(renamed, folder / "pytorch_model.bin")
    model, _ = minbert.load_pretrained(str(folder))
    ids = torch.tensor([[101, 2023, 2003, 102]])
    with torch.no_grad():
        assert max_diff(model(ids).last_hidden_state, ref(ids).last_hidden_state) < 1e-5


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_code_is_refused(random_hf_folder):
    folder, _ = random_hf_folder
    os.remove(folder / "model.safetensors")
    torch.save({"x": Evil()}, folder / "pytorch_model.bin")
    with pytest.raises(Exception, match="(?i)weights.only|unsupported|global"):
        minbert.load_pretrained(str(folder))


def test_missing_and_unexpected_names_are_listed(random_hf_folder):
    folder, _ = random_hf_folder
    from safetensors.torch import load_file, save_file
    state = load_file(str(folder / "model.safetensors"))
    state.pop("pooler.dense.weight")
    state["encoder.layer.0.surprise.weight"] = torch.zeros(3)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError) as e:
        minbert.load_pretrained(str(folder))
    msg = str(e.value)
    assert "pooler.dense.weight" in msg and "encoder.layer.0.surprise.weight" in msg
    assert "missing (1)" in msg and "unexpected (1)" in msg


def test_folder_without_weights(tmp_path):
    shutil.copy(bundled_path() / "config.json", tmp_path / "config.json")
    with pytest.raises(CheckpointError, match="no weights found"):
        minbert.load_pretrained(str(tmp_path))


def test_folder_without_config(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        minbert.load_pretrained(str(tmp_path))


def test_unknown_name_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="not a bundled name.*HF_HUB_OFFLINE"):
        minbert.load_pretrained("no-such-org/no-such-model")


def test_attention_matches_torch_sdpa():
    """The written-out attention against PyTorch's fused kernel, with a padding mask."""
    from minbert.model import attention, extended_attention_mask
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 7, 16, dtype=torch.float64) for _ in range(3))
    mask01 = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    ours, probs = attention(q, k, v, extended_attention_mask(mask01, q.dtype))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask01[:, None, None, :].bool())
    assert max_diff(ours, ref) < 1e-12
    assert probs[1, :, :, 4:].abs().max() == 0  # padded keys get no weight


def test_dropout_active_only_in_training():
    cfg = minbert.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=32, max_position_embeddings=16)
    model = minbert.BertModel(cfg)
    ids = torch.randint(1, 50, (2, 6))
    model.eval()
    with torch.no_grad():
        a, b = model(ids).last_hidden_state, model(ids).last_hidden_state
    assert torch.equal(a, b)
    model.train()
    torch.manual_seed(1)
    with torch.no_grad():
        c = model(ids).last_hidden_state
    assert not torch.allclose(a, c)


def test_bad_head_count():
    with pytest.raises(ValueError, match="not a multiple"):
        minbert.BertModel(minbert.BertConfig(hidden_size=30, num_attention_heads=4))


def test_packing_changes_nothing_on_real_tokens(data_root):
    """unpad=True runs the token-wise layers on real tokens only: same outputs on real
    tokens, zeros at padding, and the same gradients as transformers' padded computation."""
    model, tok = minbert.load_pretrained("minilm-l6")
    oracle = hf_model(bundled_path())
    batch = tok(real_sentences(data_root), padding=True, return_tensors="pt")
    real = batch["attention_mask"].bool()
    assert model.config.unpad
    ours, ref = model(**batch), oracle(**batch)
    assert max_diff(ours.last_hidden_state[real], ref.last_hidden_state[real]) < 1e-5
    assert ours.last_hidden_state[~real].abs().max() == 0
    for out in (ours, ref):
        (out.last_hidden_state[real].pow(2).mean() + out.pooler_output.sum()).backward()
    theirs = dict(oracle.named_parameters())
    for name, p in model.named_parameters():
        assert (p.grad - theirs[name].grad).abs().max() < 1e-4 * max(1.0, theirs[name].grad.abs().max()), name
