"""Each lesson-14 check accepts the reference answer and rejects typical mistakes, a constant among them.

The checks draw new inputs every call, so each test runs the check several times."""

import pytest
import torch
import torch.nn.functional as F

from minigpt import checks as check
from minigpt.checks import CheckFailed

REPEATS = range(3)


# --------------------------------------------------------------------------- rope

def rope_ref(x, theta):
    T, hs = x.size(-2), x.size(-1)
    inv_freq = theta ** (-torch.arange(0, hs, 2).float() / hs)  # (hs/2,)
    angles = torch.outer(torch.arange(T).float(), inv_freq)  # (T, hs/2)
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x[..., : hs // 2], x[..., hs // 2:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def rope_with(x, theta, base=None, pairs="half", exponent=2, offset=0):
    T, hs = x.size(-2), x.size(-1)
    inv_freq = (base or theta) ** (-exponent * torch.arange(hs // 2).float() / hs)
    angles = torch.outer(torch.arange(offset, offset + T).float(), inv_freq)
    cos, sin = angles.cos(), angles.sin()
    if pairs == "half":
        x1, x2 = x[..., : hs // 2], x[..., hs // 2:]
        return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)


@pytest.mark.parametrize("attempt", REPEATS)
def test_rope_accepts_reference(attempt, capsys):
    check.rope(rope_ref)
    assert "✓ rope" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda x, theta: torch.zeros_like(x), "lengths change|position 0"),  # a constant
    (lambda x, theta: x, "equals the input"),
    (lambda x, theta: rope_with(x, theta, pairs="interleaved"), "pair dimension 2i"),
    (lambda x, theta: rope_with(x, theta, base=10000.0), "base 10000"),
    (lambda x, theta: rope_with(x, theta, exponent=1), "frequencies|differs"),
    (lambda x, theta: rope_with(x, theta, offset=1), "first position"),
    (lambda x, theta: rope_with(x, theta) * 1.5, "lengths change"),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_rope_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.rope(wrong)


# --------------------------------------------------------------------------- rope_attention

def attention_ref(q, k, v, theta):
    return F.scaled_dot_product_attention(rope_ref(q, theta), rope_ref(k, theta), v, is_causal=True)


@pytest.mark.parametrize("attempt", REPEATS)
def test_rope_attention_accepts_reference(attempt, capsys):
    check.rope_attention(attention_ref)
    assert "✓ rope_attention" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda q, k, v, theta: torch.zeros_like(v), "differs"),  # a constant
    (lambda q, k, v, theta: F.scaled_dot_product_attention(rope_ref(q, theta), rope_ref(k, theta),
                                                           rope_ref(v, theta), is_causal=True), "values are turned"),
    (lambda q, k, v, theta: F.scaled_dot_product_attention(q, k, v, is_causal=True), "without RoPE"),
    (lambda q, k, v, theta: F.scaled_dot_product_attention(rope_ref(q, theta), k, v, is_causal=True), "only one"),
    (lambda q, k, v, theta: F.scaled_dot_product_attention(rope_ref(q, theta), rope_ref(k, theta), v), "future"),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_rope_attention_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.rope_attention(wrong)


# --------------------------------------------------------------------------- rms_norm

def rms_ref(x, weight, eps):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


@pytest.mark.parametrize("attempt", REPEATS)
def test_rms_norm_accepts_reference(attempt, capsys):
    check.rms_norm(rms_ref)
    assert "✓ rms_norm" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda x, w, eps: torch.ones_like(x), "differs"),  # a constant
    (lambda x, w, eps: F.layer_norm(x, x.shape[-1:], w, None, eps), "subtract the mean"),
    (lambda x, w, eps: x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps), "gain"),
    (lambda x, w, eps: x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * w, "after the square root"),
    (lambda x, w, eps: x / torch.sqrt(x.pow(2).mean(0, keepdim=True) + eps) * w, "wrong dimension"),
    (lambda x, w, eps: x / torch.sqrt(x.pow(2).sum(-1, keepdim=True) + eps) * w, "sum of squares"),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_rms_norm_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.rms_norm(wrong)


# --------------------------------------------------------------------------- ablation_verdict

def verdict_ref(base, variant):
    diff = sum(variant) / len(variant) - sum(base) / len(base)
    spread = max(max(base) - min(base), max(variant) - min(variant))
    if abs(diff) <= spread:
        return "noise"
    return "better" if diff < 0 else "worse"


@pytest.mark.parametrize("attempt", REPEATS)
def test_ablation_verdict_accepts_reference(attempt, capsys):
    check.ablation_verdict(verdict_ref)
    assert "✓ ablation_verdict" in capsys.readouterr().out


def first_seeds(base, variant):
    d = variant[0] - base[0]
    return "noise" if abs(d) <= max(base) - min(base) else ("better" if d < 0 else "worse")


def no_spread(base, variant):
    return "better" if sum(variant) < sum(base) else "worse"


def base_spread_only(base, variant):
    d = sum(variant) / len(variant) - sum(base) / len(base)
    return "noise" if abs(d) <= max(base) - min(base) else ("better" if d < 0 else "worse")


def flipped(base, variant):
    v = verdict_ref(base, variant)
    return {"better": "worse", "worse": "better"}.get(v, v)


@pytest.mark.parametrize("wrong, hint", [
    (lambda base, variant: "noise", "change counts"),  # a constant
    (first_seeds, "noise|counts|first seeds"),
    (no_spread, "noise"),
    (base_spread_only, "noise"),
    (flipped, "lower val loss is better"),
    (lambda base, variant: 1, "return 'better'"),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_ablation_verdict_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.ablation_verdict(wrong)
