"""A Llama-style minigpt is transformers' Llama (and, with QK-norm, Qwen3): the same weights give the
same logits (fp32, 1e-5) and the same greedy text; folders round-trip through transformers; settings
minigpt cannot represent are refused by name."""

import re

import pytest
import torch

from minigpt.checkpoint import load_checkpoint, save_checkpoint
from minigpt.generate import generate
from minigpt.llama import (
    check_llama_config,
    export_llama,
    from_llama,
    import_llama,
    llama_config,
    load_llama,
    to_llama,
)
from minigpt.model import GPT, LLAMA_BLOCK, GPTConfig, count_params
from minigpt.tokenizer import CharTokenizer

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")

HAS_QWEN3 = hasattr(transformers, "Qwen3ForCausalLM")
# fp32 on any CPU: the two implementations add in different orders, logits are O(1)
ATOL = RTOL = 1e-5
LLAMA = LLAMA_BLOCK
SHAPES = {  # several shapes: multi-head, grouped, multi-query, wide heads, biases, tied head, other theta and eps
    "mha": dict(n_layer=2, n_head=4, n_embd=32),
    "gqa": dict(n_layer=2, n_head=4, n_embd=32, n_kv_head=2),
    "mqa": dict(n_layer=3, n_head=6, n_embd=48, n_kv_head=1, rope_theta=500_000.0),
    "wide_heads": dict(n_layer=1, n_head=2, n_embd=64, n_kv_head=1, norm_eps=1e-5, mlp_hidden=100),
    "bias_tied": dict(n_layer=2, n_head=4, n_embd=32, n_kv_head=2, bias=True, tie_embeddings=True),
}


def make(seed=0, **overrides) -> GPT:
    """A random Llama-shaped minigpt with gains and weights spread wider than the init."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**{"block_size": 24, "vocab_size": 41, **LLAMA, **overrides})).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * (0.3 if p.dim() == 1 else 0.05))
    return model


def ids(B=3, T=24, seed=1):
    return torch.randint(0, 41, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("attn_impl", ["sdpa", "math"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_same_weights_give_the_same_logits_as_llama_for_causal_lm(shape, attn_impl):
    model = make(attn_impl=attn_impl, **SHAPES[shape])
    hf = to_llama(model)
    assert type(hf).__name__ == "LlamaForCausalLM"
    x = ids()
    with torch.no_grad():
        theirs = hf(x).logits
    torch.testing.assert_close(model(x)[0], theirs, atol=ATOL, rtol=RTOL)
    assert theirs.std() > 0.1  # logits that differ, so the comparison means something


@pytest.mark.parametrize("shape", ["gqa", "mqa"])
def test_the_same_greedy_continuation_as_transformers(shape):
    model = make(**SHAPES[shape])
    hf = to_llama(model)
    prompt = ids(B=2, T=4, seed=2)
    ours = generate(model, prompt, 20, temperature=0)
    with torch.no_grad():
        theirs = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=20, do_sample=False,
                             pad_token_id=0)
    assert torch.equal(ours, theirs)


@pytest.mark.skipif(not HAS_QWEN3, reason="this transformers has no Qwen3ForCausalLM")
@pytest.mark.parametrize("shape", ["mha", "gqa", "mqa"])
def test_with_qk_norm_it_is_qwen3(shape):
    model = make(qk_norm=True, **SHAPES[shape])
    hf = to_llama(model)
    assert type(hf).__name__ == "Qwen3ForCausalLM"
    x = ids()
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], hf(x).logits, atol=ATOL, rtol=RTOL)
        theirs = hf.generate(x[:, :4], attention_mask=torch.ones_like(x[:, :4]), max_new_tokens=16, do_sample=False,
                             pad_token_id=0)
    assert torch.equal(generate(model, x[:, :4], 16, temperature=0), theirs)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_from_llama_gives_back_the_same_model_and_config(shape):
    model = make(**SHAPES[shape])
    back = from_llama(to_llama(model))
    assert back.config == model.config
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), model.state_dict().values()))


@pytest.mark.parametrize("shape", list(SHAPES))
def test_parameter_count_formula_equals_transformers_count(shape):
    model = make(**SHAPES[shape])
    assert count_params(model.config) == to_llama(model).num_parameters() == model.num_params()


def test_a_model_made_by_transformers_loads_into_minigpt():
    torch.manual_seed(3)
    cfg = transformers.LlamaConfig(vocab_size=53, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                   num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=32,
                                   rms_norm_eps=1e-6, rope_theta=1000.0)
    hf = transformers.LlamaForCausalLM(cfg).eval()
    model = from_llama(hf)
    c = model.config
    assert (c.n_kv_head, c.hidden_size, c.block_size, c.rope_theta, c.norm_eps) == (2, 96, 32, 1000.0, 1e-6)
    x = torch.randint(0, 53, (2, 32))
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], hf(x).logits, atol=ATOL, rtol=RTOL)


# ---- folders ------------------------------------------------------------------------------------------

TOK = CharTokenizer([chr(ord("a") + i) for i in range(26)] + list(" .,;:!?'\n-ABCDEFGHIJKLMNO")[:15])


@pytest.mark.parametrize("qk_norm", [False, True])
def test_export_then_transformers_then_import_round_trips(tmp_path, qk_norm):
    if qk_norm and not HAS_QWEN3:
        pytest.skip("this transformers has no Qwen3ForCausalLM")
    assert TOK.vocab_size == 41
    model = make(qk_norm=qk_norm, **SHAPES["gqa"])
    save_checkpoint(tmp_path / "run", model, TOK, 7, train_config={})
    out = export_llama(tmp_path / "run", tmp_path / "hf")
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    assert type(hf).__name__ == ("Qwen3ForCausalLM" if qk_norm else "LlamaForCausalLM")
    hf_tok = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
    text = "to be, or not"
    x = torch.tensor([hf_tok(text)["input_ids"]])
    assert x[0].tolist() == TOK.encode(text)
    with torch.no_grad():
        torch.testing.assert_close(hf(x).logits, model(x)[0], atol=ATOL, rtol=RTOL)
    import_llama(out, tmp_path / "back")
    ck = load_checkpoint(tmp_path / "back", load_state=False)
    assert ck.model_config == model.config and ck.tokenizer.chars == TOK.chars
    assert all(torch.equal(a, b) for a, b in zip(ck.model.state_dict().values(), model.state_dict().values()))
    loaded, tok = load_llama(out)
    assert torch.equal(loaded(x)[0], ck.model(x)[0]) and tok.chars == TOK.chars


def test_export_refuses_a_folder_that_is_not_empty(tmp_path):
    save_checkpoint(tmp_path / "run", make(**SHAPES["mha"]), TOK, 1, train_config={})
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not empty"):
        export_llama(tmp_path / "run", tmp_path / "hf")


# ---- what is refused, by name --------------------------------------------------------------------------

@pytest.mark.parametrize(
    "overrides, family, message",
    [
        (dict(positions="learned"), None, r"as Llama: positions='learned'"),
        (dict(norm="layernorm"), None, r"as Llama: norm='layernorm'"),
        (dict(activation="gelu"), None, r"as Llama: activation='gelu'"),
        (dict(qk_norm=True), "llama", r"as Llama: qk_norm=True"),
        (dict(), "qwen3", r"as Qwen3: qk_norm=False"),
        (dict(qk_norm=True, bias=True), None, r"as Qwen3: bias=True"),
        (dict(), "mistral", r"unknown family 'mistral'"),
    ],
)
def test_export_refuses_what_the_family_cannot_hold(overrides, family, message):
    config = GPTConfig(block_size=8, vocab_size=20, n_layer=1, n_head=2, n_embd=16, **{**LLAMA, **overrides})
    with pytest.raises(ValueError, match=message):
        llama_config(config, family)


def _llama(**kw):
    base = dict(vocab_size=20, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                num_key_value_heads=2, max_position_embeddings=8)
    return transformers.LlamaConfig(**{**base, **kw})


@pytest.mark.parametrize(
    "make_config, setting",
    [
        (lambda: _llama(rope_scaling={"rope_type": "linear", "factor": 2.0}), "rope_scaling (rope_type='linear')"),
        (lambda: _llama(rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                      "high_freq_factor": 4.0, "original_max_position_embeddings": 4}),
         "rope_scaling (rope_type='llama3')"),
        (lambda: _llama(attention_bias=True), "attention_bias=True"),
        (lambda: _llama(mlp_bias=True), "mlp_bias=True"),
        (lambda: _llama(head_dim=16), "head_dim=16"),
        (lambda: _llama(hidden_act="gelu"), "hidden_act='gelu'"),
        (lambda: _llama(num_key_value_heads=3, num_attention_heads=4), "num_key_value_heads=3"),
        (lambda: transformers.GPT2Config(), "model_type='gpt2'"),
    ],
)
def test_llama_settings_minigpt_cannot_represent_are_refused_by_name(make_config, setting):
    with pytest.raises(ValueError, match=r"^cannot load this model into minigpt: " + re.escape(setting)):
        check_llama_config(make_config())


@pytest.mark.skipif(not HAS_QWEN3, reason="this transformers has no Qwen3ForCausalLM")
def test_qwen3_sliding_windows_and_attention_biases_are_refused_by_name():
    base = dict(vocab_size=20, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, head_dim=8, max_position_embeddings=8)
    with pytest.raises(ValueError, match=r"sliding_window=4"):
        check_llama_config(transformers.Qwen3Config(**base, use_sliding_window=True, sliding_window=4,
                                                    max_window_layers=1))
    with pytest.raises(ValueError, match=r"attention_bias=True"):
        check_llama_config(transformers.Qwen3Config(**base, attention_bias=True))
    check_llama_config(transformers.Qwen3Config(**base))  # the plain one is fine


@pytest.mark.parametrize("qk_norm", [False, True])
def test_the_command_line_exports_and_imports_llama_and_qwen3(tmp_path, qk_norm, capsys):
    from minigpt.cli import main

    if qk_norm and not HAS_QWEN3:
        pytest.skip("this transformers has no Qwen3ForCausalLM")
    model = make(qk_norm=qk_norm, **SHAPES["gqa"])
    save_checkpoint(tmp_path / "run", model, TOK, 3, train_config={})
    assert main(["export", "--ckpt", str(tmp_path / "run"), "--out", str(tmp_path / "hf")]) == 0  # auto: the family
    config = (tmp_path / "hf" / "config.json").read_text()
    assert f'"model_type": "{"qwen3" if qk_norm else "llama"}"' in config
    assert main(["import-hf", "--model", str(tmp_path / "hf"), "--out", str(tmp_path / "back")]) == 0
    ck = load_checkpoint(tmp_path / "back", load_state=False)
    assert ck.model_config == model.config
    assert all(torch.equal(a, b) for a, b in zip(ck.model.state_dict().values(), model.state_dict().values()))
    # a format the model cannot be is one line that names the option
    capsys.readouterr()
    assert main(["export", "--ckpt", str(tmp_path / "run"), "--out", str(tmp_path / "x"), "--format", "gpt2"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    wrong = "llama" if qk_norm else "qwen3"
    assert main(["export", "--ckpt", str(tmp_path / "run"), "--out", str(tmp_path / "y"), "--format", wrong]) == 2
    assert "qk_norm" in capsys.readouterr().err
