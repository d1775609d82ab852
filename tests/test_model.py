"""The GPT: causality, the two attention paths, initial loss, overfitting, size, and GPT-2 equivalence.

The device comes from MINIGPT_DEVICE (``make gpu-check`` runs these tests on CUDA).
"""

import math

import pytest
import torch
import torch.nn.functional as F

from minigpt.model import GPT, GPTConfig, count_params
from minigpt.utils import get_device

DEVICE = get_device()
SMALL = dict(block_size=16, vocab_size=37, n_layer=2, n_head=4, n_embd=32)


def make(seed=0, **overrides):
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**SMALL, **overrides})).to(DEVICE).eval()


@pytest.mark.parametrize("attn_impl", ["sdpa", "math"])
def test_future_tokens_never_change_past_logits(attn_impl):
    model = make(attn_impl=attn_impl)
    idx = torch.randint(0, 37, (2, 16), device=DEVICE)
    changed = idx.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 37  # change every token from position 10 on
    a, _ = model(idx)
    b, _ = model(changed)
    torch.testing.assert_close(a[:, :10], b[:, :10], atol=1e-5, rtol=1e-5)
    assert (a[:, 10:] - b[:, 10:]).abs().max() > 1e-3  # and the future did change


def test_explicit_attention_equals_sdpa():
    sdpa = make(attn_impl="sdpa")
    math_ = make(attn_impl="math")
    math_.load_state_dict(sdpa.state_dict())
    idx = torch.randint(0, 37, (3, 16), device=DEVICE)
    torch.testing.assert_close(sdpa(idx)[0], math_(idx)[0], atol=1e-5, rtol=1e-4)


def test_attention_weights_are_causal_distributions():
    model = make()
    weights = model.attention_weights(torch.randint(0, 37, (2, 12), device=DEVICE))
    assert len(weights) == 2 and weights[0].shape == (2, 4, 12, 12)
    for w in weights:
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 12, device=DEVICE))
        assert torch.triu(w, diagonal=1).abs().max() == 0  # nothing attends to the future


def test_explicit_attention_matches_functional_sdpa_per_layer():
    # One attention layer, the formula against PyTorch's reference with the same q, k, v.
    model = make(attn_impl="math")
    attn = model.transformer.h[0].attn
    x = torch.randn(2, 16, 32, device=DEVICE)
    q, k, v = attn.c_attn(x).split(32, dim=2)
    q, k, v = (t.view(2, 16, 4, 8).transpose(1, 2) for t in (q, k, v))
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(2, 16, 32)
    torch.testing.assert_close(attn(x), attn.c_proj(ref), atol=1e-5, rtol=1e-4)


def test_loss_at_init_is_close_to_ln_vocab():
    model = make(vocab_size=65, block_size=32)
    idx = torch.randint(0, 65, (8, 32), device=DEVICE)
    _, loss = model(idx, torch.randint(0, 65, (8, 32), device=DEVICE))
    assert abs(loss.item() - math.log(65)) < 0.1


def test_model_overfits_one_batch():
    model = make().train()
    idx = torch.randint(0, 37, (4, 16), device=DEVICE, generator=None)
    targets = torch.roll(idx, -1, dims=1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        _, loss = model(idx, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


@pytest.mark.parametrize("bias", [True, False])
def test_parameter_count_matches_formula(bias):
    cfg = GPTConfig(**SMALL, bias=bias)
    assert GPT(cfg).num_params() == count_params(cfg)
    # GPT-2 small: 124M parameters with tied embeddings.
    gpt2 = GPTConfig(block_size=1024, vocab_size=50257, n_layer=12, n_head=12, n_embd=768)
    assert count_params(gpt2) == 124_439_808


def test_embeddings_are_tied():
    model = make()
    assert model.lm_head.weight is model.transformer.wte.weight


def test_residual_projections_use_scaled_init():
    model = GPT(GPTConfig(**{**SMALL, "n_layer": 8, "n_embd": 256, "n_head": 4}))
    std = model.transformer.h[0].mlp.c_proj.weight.std().item()
    assert abs(std - 0.02 / math.sqrt(16)) < 0.001
    assert abs(model.transformer.h[0].mlp.c_fc.weight.std().item() - 0.02) < 0.001


def test_targets_minus_one_are_ignored():
    model = make()
    idx = torch.randint(0, 37, (2, 8), device=DEVICE)
    targets = torch.randint(0, 37, (2, 8), device=DEVICE)
    masked = targets.clone()
    masked[:, 4:] = -1
    logits, loss = model(idx, masked)
    ref = F.cross_entropy(logits[:, :4].reshape(-1, 37), targets[:, :4].reshape(-1))
    torch.testing.assert_close(loss, ref)


def test_generate_appends_tokens_and_greedy_is_deterministic():
    model = make()
    start = torch.zeros(2, 1, dtype=torch.long, device=DEVICE)
    out = model.generate(start, 20, temperature=0)  # longer than block_size: the context is cropped
    assert out.shape == (2, 21)
    torch.testing.assert_close(out, model.generate(start, 20, temperature=0))
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    s1 = model.generate(start, 10, top_k=5, generator=g1)
    torch.testing.assert_close(s1, model.generate(start, 10, top_k=5, generator=g2))


def test_too_long_input_is_a_clear_error():
    with pytest.raises(ValueError, match="longer than block_size 16"):
        make()(torch.zeros(1, 17, dtype=torch.long, device=DEVICE))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(n_embd=30, n_head=4), r"n_embd \(30\) must be divisible by n_head \(4\); e.g. n_embd=28 or n_embd=32"),
        (dict(n_layer=0), "n_layer must be a positive integer"),
        (dict(vocab_size=-1), "vocab_size must be a positive integer"),
        (dict(dropout=1.0), "dropout must be in"),
        (dict(attn_impl="flash"), "attn_impl must be 'sdpa' or 'math'"),
    ],
)
def test_config_validates_itself(overrides, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{**SMALL, **overrides})


def test_config_round_trips_through_a_dict():
    cfg = GPTConfig(**SMALL, dropout=0.1, bias=False)
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown fields"):
        GPTConfig.from_dict({**cfg.to_dict(), "n_embed": 3})


def test_the_activation_is_part_of_the_config_and_changes_the_model():
    """Exact and tanh GELU differ slightly; an unknown activation is refused by name."""
    torch.manual_seed(0)
    tanh = GPT(GPTConfig(block_size=8, vocab_size=20, n_layer=1, n_head=2, n_embd=16)).eval()
    exact = GPT(GPTConfig(block_size=8, vocab_size=20, n_layer=1, n_head=2, n_embd=16, activation="gelu")).eval()
    exact.load_state_dict(tanh.state_dict())
    for p in tanh.transformer.h[0].mlp.c_fc.parameters():  # make pre-activations large enough to matter
        p.data.mul_(50)
    exact.load_state_dict(tanh.state_dict())
    idx = torch.randint(0, 20, (2, 8))
    with torch.no_grad():
        a, b = tanh(idx)[0], exact(idx)[0]
    assert not torch.allclose(a, b, atol=1e-6) and torch.allclose(a, b, atol=1e-1)
    assert GPTConfig().activation == "gelu_tanh"  # GPT-2's, and what older checkpoints were trained with
    assert GPTConfig.from_dict({k: v for k, v in GPTConfig().to_dict().items() if k != "activation"}).activation == "gelu_tanh"
    with pytest.raises(ValueError, match="activation"):
        GPTConfig(activation="relu")
