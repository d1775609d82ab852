"""The modern block's options of GPTConfig: each keeps the model causal, RoPE's scores depend only on
the offset, grouped-query attention is multi-head attention with shared key/value heads, parameter
counts follow the formula, the KV cache works with RoPE and GQA and shrinks by n_head / n_kv_head,
and checkpoints record the options."""

import contextlib
import json
import math

import pytest
import torch
import torch.nn.functional as F

from minigpt.checkpoint import load_checkpoint, load_weights, save_checkpoint
from minigpt.generate import generate
from minigpt.model import GPT, GPTConfig, RMSNorm, apply_rope, count_params, rope_tables
from minigpt.tokenizer import CharTokenizer
from minigpt.viz import gpt_attention

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(block_size=16, vocab_size=29, n_layer=2, n_head=4, n_embd=32)
LLAMA = dict(positions="rope", norm="rmsnorm", activation="swiglu", n_kv_head=2, bias=False, tie_embeddings=False)
# each option alone, and all of them together (Llama's block with Qwen3's QK-norm)
OPTIONS = {
    "gpt2": {},
    "rope": dict(positions="rope"),
    "rmsnorm": dict(norm="rmsnorm", norm_eps=1e-6),
    "swiglu": dict(activation="swiglu"),
    "relu2": dict(activation="relu2"),
    "gqa": dict(n_kv_head=2),
    "mqa": dict(n_kv_head=1),
    "qk_norm": dict(qk_norm=True),
    "no_bias": dict(bias=False),
    "untied": dict(tie_embeddings=False),
    "all": dict(LLAMA, qk_norm=True, n_kv_head=1),
}


def make(seed=0, **overrides) -> GPT:
    """A small GPT with weights and gains spread wider than the init, so every part matters."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**{**SMALL, **overrides})).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * (0.2 if p.dim() == 1 else 0.05))
    return model


@pytest.mark.parametrize("attn_impl", ["sdpa", "math"])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_future_tokens_never_change_past_logits(option, attn_impl):
    model = make(attn_impl=attn_impl, **OPTIONS[option])
    idx = torch.randint(0, 29, (2, 16), generator=torch.Generator().manual_seed(1))
    changed = idx.clone()
    changed[:, 9:] = (changed[:, 9:] + 1) % 29  # every token from position 9 on
    a, b = model(idx)[0], model(changed)[0]
    torch.testing.assert_close(a[:, :9], b[:, :9], atol=1e-5, rtol=1e-5)
    assert (a[:, 9:] - b[:, 9:]).abs().max() > 1e-3  # and the future did change


@pytest.mark.parametrize("option", list(OPTIONS))
def test_the_two_attention_paths_agree_for_every_option(option):
    sdpa, math_ = make(**OPTIONS[option]), make(attn_impl="math", **OPTIONS[option])
    idx = torch.randint(0, 29, (3, 16), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(sdpa(idx)[0], math_(idx)[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("option", list(OPTIONS))
def test_parameter_count_matches_the_formula(option):
    cfg = GPTConfig(**SMALL, **OPTIONS[option])
    assert GPT(cfg).num_params() == count_params(cfg)


def test_parameter_formula_by_hand_for_a_llama_block():
    # C=32, 4 query heads of 8, 2 key/value heads, SwiGLU hidden 88, no biases, untied, RoPE (no table)
    cfg = GPTConfig(**SMALL, **LLAMA)
    C, H, kv = 32, 88, 2 * 8
    per_block = C * (C + 2 * kv) + C * C + 3 * C * H + 2 * C
    assert count_params(cfg) == 2 * 29 * C + 2 * per_block + C == 25_056


def test_swiglu_hidden_size_keeps_gpt2s_mlp_parameter_count():
    for C in (384, 768, 48):  # 8/3 C is a multiple of 8 here: exactly GPT-2's 8 C^2 weights
        swiglu = GPTConfig(n_embd=C, n_head=6, activation="swiglu")
        assert 3 * C * swiglu.hidden_size == 2 * C * 4 * C
    assert GPTConfig(**SMALL, activation="swiglu").hidden_size == 88  # 85.3 rounded up to a multiple of 8
    assert GPTConfig(**SMALL, activation="swiglu", mlp_hidden=64).hidden_size == 64
    assert GPTConfig(**SMALL, activation="relu2").hidden_size == 128


def test_rope_scores_depend_only_on_the_offset():
    g = torch.Generator().manual_seed(3)
    q, k = torch.randn(1, 1, 1, 16, generator=g), torch.randn(1, 1, 1, 16, generator=g)
    cos, sin = rope_tables(64, 16, 10000.0)

    def score(m, n):  # query at position m, key at position n
        return (apply_rope(q, cos[m:m + 1], sin[m:m + 1]) * apply_rope(k, cos[n:n + 1], sin[n:n + 1])).sum()

    for m, n in [(5, 2), (9, 9), (30, 1)]:
        for shift in (1, 7, 20):
            torch.testing.assert_close(score(m + shift, n + shift), score(m, n), atol=1e-5, rtol=1e-5)
    assert abs(score(5, 2) - score(5, 4)) > 1e-3  # a different offset gives a different score
    # a rotation: lengths stay, and position 0 is the identity
    torch.testing.assert_close(apply_rope(q, cos[7:8], sin[7:8]).norm(), q.norm())
    torch.testing.assert_close(apply_rope(q, cos[:1], sin[:1]), q)


def test_in_a_rope_model_a_repeated_token_gets_scores_that_depend_only_on_distance():
    model = make(**OPTIONS["rope"])
    idx = torch.full((1, 16), 5)  # the same token everywhere: only the positions differ
    block = model.transformer.h[0]
    q, k, _ = block.attn.qkv(block.ln_1(model.embed(idx)), model.rope(16))
    scores = (q @ k.transpose(-2, -1))[0]  # (nh, T, T)
    for d in range(4):  # each diagonal (a fixed offset i - j) holds one value
        diag = scores.diagonal(offset=-d, dim1=-2, dim2=-1)
        torch.testing.assert_close(diag, diag[:, :1].expand_as(diag), atol=1e-4, rtol=1e-4)


def test_learned_positions_do_not_have_that_property():
    model = make()
    idx = torch.full((1, 16), 5)
    block = model.transformer.h[0]
    q, k, _ = block.attn.qkv(block.ln_1(model.embed(idx)))
    diag = (q @ k.transpose(-2, -1))[0].diagonal(offset=-1, dim1=-2, dim2=-1)
    assert (diag - diag[:, :1]).abs().max() > 1e-3


def test_gqa_with_as_many_kv_heads_as_heads_is_multi_head_attention():
    mha, gqa = make(), make(n_kv_head=4)
    assert mha.state_dict().keys() == gqa.state_dict().keys()
    gqa.load_state_dict(mha.state_dict())
    idx = torch.randint(0, 29, (2, 16), generator=torch.Generator().manual_seed(4))
    assert torch.equal(mha(idx)[0], gqa(idx)[0])


@pytest.mark.parametrize("n_kv_head", [1, 2])
def test_gqa_equals_multi_head_attention_whose_key_value_heads_repeat_in_groups(n_kv_head):
    gqa = make(n_kv_head=n_kv_head)
    mha = make()
    group, hs, C = 4 // n_kv_head, 8, 32
    state = gqa.state_dict()
    for i in range(2):
        name = f"transformer.h.{i}.attn.c_attn."
        for kind in ("weight", "bias"):
            q, k, v = state[name + kind].split([C, n_kv_head * hs, n_kv_head * hs])
            # key/value head j serves query heads j*group .. (j+1)*group - 1
            k, v = (t.unflatten(0, (n_kv_head, hs)).repeat_interleave(group, 0).flatten(0, 1) for t in (k, v))
            state[name + kind] = torch.cat([q, k, v])
    mha.load_state_dict(state)
    idx = torch.randint(0, 29, (2, 16), generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(gqa(idx)[0], mha(idx)[0], atol=1e-5, rtol=1e-5)


def test_rmsnorm_is_the_formula_and_drops_the_mean():
    norm = RMSNorm(6, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0, 3.0, 1.5]))
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(6)) + 3.0  # a large mean
    ref = x / torch.sqrt((x ** 2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    torch.testing.assert_close(norm(x), ref)
    assert norm(x).mean(-1).abs().min() > 0.1  # unlike LayerNorm, the mean is not removed
    torch.testing.assert_close(norm(x * 7.0), norm(x), atol=1e-5, rtol=1e-5)  # but the scale is


def test_qk_norm_gives_each_heads_queries_and_keys_the_gains_rms():
    model = make(qk_norm=True)
    attn = model.transformer.h[0].attn
    with torch.no_grad():
        attn.q_norm.weight.fill_(2.0)
        attn.k_norm.weight.fill_(0.5)
    x = torch.randn(2, 16, 32, generator=torch.Generator().manual_seed(7)) * 40  # large activations
    q, k, _ = attn.qkv(x)
    rms = lambda t: t.pow(2).mean(-1).sqrt()  # noqa: E731
    torch.testing.assert_close(rms(q), torch.full_like(rms(q), 2.0), atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(rms(k), torch.full_like(rms(k), 0.5), atol=1e-3, rtol=1e-3)


def test_relu2_and_swiglu_compute_their_formulas():
    for activation in ("relu2", "swiglu"):
        mlp = make(activation=activation).transformer.h[0].mlp
        x = torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(8))
        h = x @ mlp.c_fc.weight.t() + mlp.c_fc.bias
        if activation == "relu2":
            h = torch.where(h > 0, h * h, torch.zeros_like(h))
        else:
            H = mlp.c_proj.weight.size(1)
            h = h[..., :H] * torch.sigmoid(h[..., :H]) * h[..., H:]
        torch.testing.assert_close(mlp(x), h @ mlp.c_proj.weight.t() + mlp.c_proj.bias, atol=1e-5, rtol=1e-5)


def test_untied_head_is_its_own_parameter():
    model = make(tie_embeddings=False)
    assert model.lm_head.weight is not model.transformer.wte.weight
    assert not torch.equal(model.lm_head.weight, model.transformer.wte.weight)
    assert "wpe" not in make(positions="rope").transformer  # RoPE has no position table


@pytest.mark.parametrize("option", ["rope", "gqa", "all"])
def test_kv_cache_generation_equals_no_cache_generation_even_past_block_size(option):
    model = make(**OPTIONS[option])
    idx = torch.randint(0, 29, (3, 4), generator=torch.Generator().manual_seed(9))
    cached = generate(model, idx, 30, temperature=0, use_cache=True)  # 34 tokens: the window slides
    recomputed = generate(model, idx, 30, temperature=0, use_cache=False)
    assert torch.equal(cached, recomputed)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(generate(model, idx, 20, generator=g1, use_cache=True),
                       generate(model, idx, 20, generator=g2, use_cache=False))


@pytest.mark.parametrize("option", ["rope", "gqa", "all"])
def test_kv_cache_in_chunks_equals_one_forward(option):
    model = make(**OPTIONS[option])
    x = torch.randint(0, 29, (2, 16), generator=torch.Generator().manual_seed(10))
    cache = model.new_kv_cache(2)
    parts = [model(x[:, a:b], cache=cache)[0] for a, b in [(0, 3), (3, 4), (4, 11), (11, 16)]]
    torch.testing.assert_close(torch.cat(parts, 1), model(x)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
def test_kv_cache_bytes_per_token_shrink_by_n_head_over_n_kv_head(n_kv_head):
    model = make(positions="rope", n_kv_head=n_kv_head)
    cache = model.new_kv_cache(3)
    model(torch.zeros(3, 5, dtype=torch.long), cache=cache)
    assert cache.k.shape == (2, 3, n_kv_head, 16, 8)  # (n_layer, B, n_kv_head, block_size, hs)
    measured = (cache.k.nbytes + cache.v.nbytes) / (3 * 16)
    # keys and values, every layer, kv heads of 8 floats: 2 * 2 * n_kv_head * 8 * 4 bytes
    assert measured == cache.bytes_per_token() == 2 * 2 * n_kv_head * 8 * 4
    assert cache.bytes_per_token() * (4 // n_kv_head) == 2 * 2 * 4 * 8 * 4  # the multi-head cache


@pytest.mark.parametrize("option", list(OPTIONS))
def test_attention_weights_are_causal_distributions_for_every_option(option):
    model = make(**OPTIONS[option])
    idx = torch.randint(0, 29, (2, 12), generator=torch.Generator().manual_seed(11))
    weights = model.attention_weights(idx)
    assert len(weights) == 2 and weights[0].shape == (2, 4, 12, 12)
    for w in weights:
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 12))
        assert torch.triu(w, diagonal=1).abs().max() == 0


def test_attention_weights_are_the_ones_the_model_uses():
    """Attention output recomputed from the returned weights and the values is the layer's output."""
    model = make(**OPTIONS["all"])
    idx = torch.randint(0, 29, (2, 10), generator=torch.Generator().manual_seed(12))
    w = model.attention_weights(idx)[0]  # (B, nh, T, T)
    attn = model.transformer.h[0].attn
    x = model.transformer.h[0].ln_1(model.embed(idx))
    _, _, v = attn.qkv(x, model.rope(10))
    y = (w @ attn.expand_kv(v)).transpose(1, 2).reshape(2, 10, 32)
    torch.testing.assert_close(attn.c_proj(y), attn(x, rope=model.rope(10)), atol=1e-5, rtol=1e-5)


def test_viz_shows_the_models_own_weights_and_can_drop_the_mask():
    model = make(**OPTIONS["all"])
    compute = gpt_attention(model, lambda toks: [ord(t) % 29 for t in toks])
    shown = compute(list("hello"))
    ref = torch.stack([w[0] for w in model.attention_weights(torch.tensor([[ord(t) % 29 for t in "hello"]]))])
    torch.testing.assert_close(shown, ref)
    unmasked = compute(list("hello"), causal=False)
    future = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)
    assert (unmasked[..., future] > 0).all()  # every future position gets some weight
    torch.testing.assert_close(unmasked.sum(-1), torch.ones(2, 4, 5))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(n_kv_head=3), r"n_head \(4\) must be a multiple of n_kv_head \(3\)"),
        (dict(n_kv_head=0), "n_kv_head must be a positive integer or None"),
        (dict(positions="alibi"), "positions must be one of 'learned', 'rope'"),
        (dict(norm="batchnorm"), "norm must be one of 'layernorm', 'rmsnorm'"),
        (dict(activation="tanh"), "activation must be one of 'gelu_tanh', 'gelu', 'relu2', 'swiglu'"),
        (dict(n_embd=36, n_head=12, positions="rope"), "head size n_embd / n_head must be even, got 3"),
        (dict(rope_theta=0), "rope_theta must be a positive number"),
        (dict(mlp_hidden=-4), "mlp_hidden must be a positive integer or None"),
    ],
)
def test_bad_options_are_one_clear_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{**SMALL, **overrides})


# ---- checkpoints ----------------------------------------------------------------------------------------

TOK = CharTokenizer([chr(ord("a") + i) for i in range(26)] + [" ", ".", "\n"])


def test_checkpoints_record_the_options_and_load_them_back(tmp_path):
    model = make(**OPTIONS["all"])
    save_checkpoint(tmp_path, model, TOK, 3, train_config={})
    ck = load_checkpoint(tmp_path, load_state=False)
    assert ck.model_config == model.config and ck.model_config.positions == "rope"
    idx = torch.randint(0, 29, (2, 16), generator=torch.Generator().manual_seed(13))
    assert torch.equal(ck.model(idx)[0], model(idx)[0])


def test_a_checkpoint_written_before_the_options_reads_as_gpt2(tmp_path):
    model = make()
    folder = save_checkpoint(tmp_path, model, TOK, 1, train_config={})
    meta = json.loads((folder / "meta.json").read_text())
    new_fields = ("mlp_hidden", "positions", "rope_theta", "norm", "norm_eps", "n_kv_head", "qk_norm", "tie_embeddings")
    meta["model_config"] = {k: v for k, v in meta["model_config"].items() if k not in new_fields}
    (folder / "meta.json").write_text(json.dumps(meta))
    ck = load_checkpoint(tmp_path, load_state=False)
    assert ck.model_config == GPTConfig(**SMALL)
    idx = torch.randint(0, 29, (2, 16), generator=torch.Generator().manual_seed(14))
    assert torch.equal(ck.model(idx)[0], model(idx)[0])


def test_loading_a_checkpoint_into_a_model_of_other_options_is_one_clear_error(tmp_path):
    save_checkpoint(tmp_path, make(**OPTIONS["rope"]), TOK, 1, train_config={})
    with pytest.raises(ValueError, match=r"^cannot load .* the checkpoint has positions 'rope' instead of 'learned'; "
                                         r"build the model from the checkpoint") as e:
        load_weights(make(), tmp_path)
    assert "\n" not in str(e.value)
    save_checkpoint(tmp_path / "gqa", make(n_kv_head=4, positions="rope"), TOK, 1, train_config={})
    with pytest.raises(ValueError, match=r"n_kv_head 4 instead of 2"):
        load_weights(make(n_kv_head=2, positions="rope"), tmp_path / "gqa")
    # the same options load, whatever the dropout and the attention path
    target = make(seed=5, positions="rope", attn_impl="math", dropout=0.1).eval()
    load_weights(target, tmp_path)
    idx = torch.randint(0, 29, (1, 16), generator=torch.Generator().manual_seed(15))
    torch.testing.assert_close(target(idx)[0], load_checkpoint(tmp_path, load_state=False).model(idx)[0],
                               atol=1e-5, rtol=1e-5)


def test_loss_at_init_is_close_to_ln_vocab_for_the_llama_block():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**{**SMALL, "vocab_size": 65}, **LLAMA)).eval()
    idx = torch.randint(0, 65, (8, 16))
    _, loss = model(idx, torch.randint(0, 65, (8, 16)))
    assert abs(loss.item() - math.log(65)) < 0.1


def test_the_llama_block_overfits_one_batch():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL, **LLAMA, qk_norm=True)).train()
    idx = torch.randint(0, 29, (4, 16))
    targets = torch.roll(idx, -1, dims=1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = model(idx, targets)[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    assert F.cross_entropy(model.eval()(idx)[0].reshape(-1, 29), targets.reshape(-1)).item() < 0.05


# --------------------------------------------------------------------------- training a modern block

def test_train_config_passes_every_block_option_to_the_model():
    from minigpt.config import BLOCK_OPTIONS, TrainConfig

    opts = dict(LLAMA, qk_norm=True, rope_theta=500.0, norm_eps=1e-6, mlp_hidden=48)
    cfg = TrainConfig(n_layer=2, n_head=4, n_embd=32, block_size=16, **opts).model_config(29)
    assert {k: getattr(cfg, k) for k in opts} == opts
    assert set(BLOCK_OPTIONS) <= set(GPTConfig.__dataclass_fields__)
    # TrainConfig's defaults are GPTConfig's: a preset that sets no option trains GPT-2's block
    default = TrainConfig().model_config(29)
    assert all(getattr(default, k) == GPTConfig.__dataclass_fields__[k].default for k in BLOCK_OPTIONS)


def test_train_configs_torch_free_option_lists_are_the_models():
    from minigpt import config, model

    assert set(config.ACTIVATIONS) == set(model.MLP_ACTIVATIONS)
    assert config.POSITIONS == model.POSITIONS and config.NORMS == model.NORMS


@pytest.mark.parametrize("overrides, message", [
    (dict(positions="alibi"), "positions must be one of"),
    (dict(norm="batchnorm"), "norm must be one of"),
    (dict(activation="tanh"), "activation must be one of"),
    (dict(n_kv_head=3), "multiple of n_kv_head"),
    (dict(n_kv_head=0), "n_kv_head must be a positive integer"),
    (dict(rope_theta=float("nan")), "rope_theta must be a positive number"),
    (dict(mlp_hidden=-1), "mlp_hidden must be a positive integer"),
])
def test_train_config_refuses_bad_block_options_without_torch(overrides, message):
    from minigpt.config import TrainConfig

    with pytest.raises(ValueError, match=message):
        TrainConfig(n_head=4, n_embd=32, **overrides)


def test_the_train_command_trains_a_modern_block_and_its_checkpoint_records_it(tmp_path, capsys):
    from minigpt.cli import main

    out = tmp_path / "run"
    base = ["train", "--preset", "tiny", "--max-iters", "4", "--out", str(out), "--device", "cpu", "--json"]
    argv = [*base, "--positions", "rope", "--norm", "rmsnorm", "--activation", "swiglu", "--n-kv-head", "1", "--qk-norm",
            "--no-bias", "--no-tie-embeddings", "--rope-theta", "500", "--eval-tokens", "256"]
    assert main(argv) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert s["steps"] == 4 and math.isfinite(s["val_loss"])
    mc = load_checkpoint(out).model_config
    assert (mc.positions, mc.norm, mc.activation, mc.n_kv_head, mc.qk_norm, mc.bias, mc.tie_embeddings,
            mc.rope_theta) == ("rope", "rmsnorm", "swiglu", 1, True, False, False, 500.0)
    # resuming with other options is refused with one line
    assert main([*base, "--max-iters", "6", "--resume"]) == 2
    assert "different model" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--n-kv-head", "0"], "--n-kv-head: n_kv_head must be a positive integer"),
    (["--rope-theta", "-1"], "--rope-theta: rope_theta must be"),
    (["--n-kv-head", "3"], "multiple of n_kv_head"),
    (["--positions", "alibi"], "invalid choice"),
])
def test_the_train_commands_block_options_refuse_bad_values_in_one_line(argv, message, capsys):
    from minigpt.cli import main

    with contextlib.suppress(SystemExit):
        assert main(["train", "--preset", "tiny", "--out", "none", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err


def test_the_speedrun_preset_is_the_ablations_all_together_row_and_exports_as_qwen3():
    import importlib.util
    from pathlib import Path

    from minigpt.config import get_preset
    from minigpt.llama import check_llama_exportable

    path = Path(__file__).parents[1] / "notebooks" / "14_ablation.py"
    spec = importlib.util.spec_from_file_location("ablation14", path)
    ablation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ablation)
    record = get_preset("shakespeare-char-cpu-10min-modern")
    row = ablation.config(ablation.ROWS["all together (Qwen3-style)"], record.max_iters, record.seed)
    fields = ("positions", "norm", "activation", "n_kv_head", "qk_norm", "bias", "tie_embeddings", "n_layer", "n_embd",
              "block_size", "batch_size", "optimizer", "learning_rate")
    assert {f: getattr(record, f) for f in fields} == {f: getattr(row, f) for f in fields}
    assert check_llama_exportable(record.model_config(65)) == "qwen3"
