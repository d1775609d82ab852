"""Checks for lesson 14 (today's block): rotary position embeddings, attention with them, RMSNorm,
and the verdict of an ablation against the spread of seeds.

Every check draws fresh inputs (a new seed each call) where the usual shortcuts differ from the right
answer: a drawn RoPE base (so a hard-coded 10000 fails), inputs with a mean far from zero (so
LayerNorm's centring shows), tiny inputs (so where eps goes shows), differences just inside the spread.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..i18n import _
from ..model import apply_rope, rope_tables
from ._core import Check, fresh_generator

__all__ = ["rope", "rope_attention", "rms_norm", "ablation_verdict"]


def _randint(g, lo, hi) -> int:
    return int(torch.randint(lo, hi, (1,), generator=g))


def _rope_ref(x, theta, offset=0):
    return apply_rope(x, *rope_tables(x.size(-2), x.size(-1), theta, offset))


def _rope_interleaved(x, theta):
    """The other layout: dimension 2i pairs with 2i + 1 (the RoPE paper's, Meta's original Llama code)."""
    T, hs = x.size(-2), x.size(-1)
    inv = 1.0 / theta ** (torch.arange(0, hs, 2).float() / hs)
    ang = torch.outer(torch.arange(T).float(), inv)  # (T, hs/2)
    cos, sin = ang.cos(), ang.sin()
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)


def _same(a, b, atol=1e-4) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), atol=atol, rtol=1e-4))


def _tensor(c: Check, value, shape, what: str) -> torch.Tensor:
    c.that(isinstance(value, torch.Tensor), _("{what} should be a tensor, got {type}").format(what=what, type=type(value).__name__))
    c.that(tuple(value.shape) == tuple(shape), _("{what} has shape {shape}, expected {expected}").format(
        what=what, shape=tuple(value.shape), expected=tuple(shape)))
    return value.detach().float()


def rope(fn):
    """``fn(x, theta)``: x (B, nh, T, hs) with position t turned by t * theta^(-2i/hs) in the pair (i, i + hs/2)."""
    c = Check("rope")
    g = fresh_generator()
    for case in range(3):
        B, nh, T, hs = _randint(g, 1, 3), _randint(g, 1, 4), _randint(g, 5, 12), 2 * _randint(g, 2, 9)
        theta = float(10 ** (1 + 3 * torch.rand(1, generator=g))) if case else 10000.0
        x = torch.randn(B, nh, T, hs, generator=g)
        got = _tensor(c, c.call(fn, x.clone(), theta), x.shape, _("rope(x, theta) for x of shape {shape}").format(shape=tuple(x.shape)))
        ref = _rope_ref(x, theta)
        if _same(got, ref):
            c.count += 1
            continue
        what = _("for x of shape {shape} and theta={theta:g}").format(shape=tuple(x.shape), theta=theta)
        if _same(got, x):
            c.fail(_("{what}, the output equals the input: position 0 stays as it is, every later position "
                     "must turn by its own angle").format(what=what))
        if not _same(got.norm(dim=-1), x.norm(dim=-1)):
            c.fail(_("{what}, the vectors' lengths change: a rotation turns each pair of dimensions and "
                     "keeps its length (cos and sin of the same angle)").format(what=what))
        if _same(got, _rope_interleaved(x, theta)):
            c.fail(_("{what}, you pair dimension 2i with 2i+1; minigpt (and transformers' Llama) pair "
                     "dimension i with i + hs/2, the first half with the second").format(what=what))
        if theta != 10000.0 and _same(got, _rope_ref(x, 10000.0)):
            c.fail(_("{what}, your angles use the base 10000 whatever theta is: the frequencies are "
                     "theta ** (-2i / hs), with the theta you are given").format(what=what))
        if _same(got, _rope_ref(x, theta * theta)) or _same(got, _rope_ref(x, math.sqrt(theta))):
            c.fail(_("{what}, the frequencies fall too fast or too slowly: pair i turns by theta ** (-2i / hs) "
                     "per position (i counts pairs, hs is the head size)").format(what=what))
        if _same(got, _rope_ref(x, theta, offset=1)):
            c.fail(_("{what}, the first position is turned: positions count from 0, so the first token stays").format(what=what))
        if not _same(got[..., 0, :], x[..., 0, :]):
            c.fail(_("{what}, position 0 changed: its angle is 0, so the first token must stay as it is").format(what=what))
        c.fail(_("{what}, the output differs from the rotation (first mismatch at position {position}); check the "
                 "angles and the pairing").format(what=what, position=int((~torch.isclose(got, ref, atol=1e-4)).nonzero()[0, 2])))
    # the property RoPE buys: a query and a key shifted together keep their score
    hs, theta = 2 * _randint(g, 2, 8), float(10 ** (2 + 2 * torch.rand(1, generator=g)))
    q, k = torch.randn(hs, generator=g), torch.randn(hs, generator=g)
    T = 16
    xs = torch.stack([q, k]).view(2, 1, 1, hs).expand(2, 1, T, hs).contiguous()  # the same q and k at every position
    out = _tensor(c, c.call(fn, xs.clone(), theta), xs.shape, _("rope(x, theta)"))
    s1 = out[0, 0, 9] @ out[1, 0, 4]
    s2 = out[0, 0, 12] @ out[1, 0, 7]
    c.that(abs(float(s1 - s2)) < 1e-3 * (1 + abs(float(s1))),
           _("a query at position 9 and a key at 4 should score as at positions 12 and 7 (the same offset); yours "
             "do not, so the angle is not proportional to the position"))
    c.done()


def _attend(q, k, v, theta, rope_q=True, rope_k=True, rope_v=False, causal=True):
    cs = rope_tables(q.size(-2), q.size(-1), theta)
    if rope_q:
        q = apply_rope(q, *cs)
    if rope_k:
        k = apply_rope(k, *cs)
    if rope_v:
        v = apply_rope(v, *cs)
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def rope_attention(fn):
    """``fn(q, k, v, theta)``: causal attention softmax(q k^T / sqrt(hs)) v, RoPE on q and k (B, nh, T, hs)."""
    c = Check("rope_attention")
    g = fresh_generator()
    for _i in range(3):
        B, nh, T, hs = _randint(g, 1, 3), _randint(g, 1, 4), _randint(g, 5, 12), 2 * _randint(g, 2, 9)
        theta = float(10 ** (1 + 3 * torch.rand(1, generator=g)))
        q, k, v = (torch.randn(B, nh, T, hs, generator=g) for _i in range(3))
        got = _tensor(c, c.call(fn, q.clone(), k.clone(), v.clone(), theta), q.shape,
                      _("the attention output for q of shape {shape}").format(shape=tuple(q.shape)))
        ref = _attend(q, k, v, theta)
        if _same(got, ref):
            c.count += 1
            continue
        what = _("for q, k, v of shape {shape}").format(shape=tuple(q.shape))
        if _same(got, _attend(q, k, v, theta, rope_v=True)):
            c.fail(_("{what}, the values are turned too: RoPE turns queries and keys, whose dot product gives "
                     "the scores; values carry content to the output and stay as they are").format(what=what))
        if _same(got, _attend(q, k, v, theta, rope_q=False, rope_k=False)):
            c.fail(_("{what}, the output is attention without RoPE: turn the queries and the keys").format(what=what))
        if _same(got, _attend(q, k, v, theta, rope_k=False)) or _same(got, _attend(q, k, v, theta, rope_q=False)):
            c.fail(_("{what}, only one of queries and keys is turned: the score depends on the offset only when both "
                     "are").format(what=what))
        if _same(got, _attend(q, k, v, theta, causal=False)):
            c.fail(_("{what}, a position sees the future: mask the scores of later positions").format(what=what))
        c.fail(_("{what}, the output differs from causal attention with RoPE on queries and keys").format(what=what))
    c.done()


def rms_norm(fn):
    """``fn(x, weight, eps)``: x / sqrt(mean(x^2 over the last dimension) + eps) * weight."""
    c = Check("rms_norm")
    g = fresh_generator()
    for case in range(3):
        shape = (_randint(g, 2, 5), _randint(g, 3, 9), _randint(g, 4, 17))
        eps = float(10 ** (-6 + 4 * torch.rand(1, generator=g)))
        scale = 1e-3 if case == 2 else 1.0  # tiny inputs: where eps sits shows
        x = (torch.randn(shape, generator=g) + 2.0 * torch.rand(shape[:-1] + (1,), generator=g) + 0.5) * scale
        weight = 0.5 + torch.rand(shape[-1], generator=g)
        got = _tensor(c, c.call(fn, x.clone(), weight.clone(), eps), x.shape, _("rms_norm for x of shape {shape}").format(shape=shape))
        ref = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight
        if _same(got, ref, atol=1e-4):
            c.count += 1
            continue
        what = _("for x of shape {shape} and eps={eps:.2g}").format(shape=shape, eps=eps)
        centred = x - x.mean(-1, keepdim=True)
        if _same(got, F.layer_norm(x, shape[-1:], weight, None, eps)) or _same(
                got, centred * torch.rsqrt(centred.pow(2).mean(-1, keepdim=True) + eps) * weight):
            c.fail(_("{what}, you subtract the mean: that is LayerNorm; RMSNorm divides by the root mean square "
                     "of x itself and keeps the mean").format(what=what))
        if _same(got, x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)):
            c.fail(_("{what}, the gain `weight` is not applied: multiply the normalised x by it").format(what=what))
        if _same(got, x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * weight):
            c.fail(_("{what}, eps is added after the square root; it goes under it, with the mean of squares").format(what=what))
        if _same(got, x * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + eps) * weight) or _same(
                got, x * torch.rsqrt(x.pow(2).mean(-2, keepdim=True) + eps) * weight):
            c.fail(_("{what}, the mean is taken over the wrong dimension: each vector (the last dimension) "
                     "is normalised on its own").format(what=what))
        if _same(got, x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + eps) * weight):
            c.fail(_("{what}, you divide by the root of the sum of squares: take their mean").format(what=what))
        c.fail(_("{what}, the output differs from x / sqrt(mean(x^2) + eps) * weight").format(what=what))
    c.done()


def _verdict_ref(base, variant):
    diff = sum(variant) / len(variant) - sum(base) / len(base)
    spread = max(max(base) - min(base), max(variant) - min(variant))
    if abs(diff) <= spread:
        return "noise"
    return "better" if diff < 0 else "worse"


def ablation_verdict(fn):
    """``fn(base_losses, variant_losses)`` -> "better", "worse" or "noise": the variant's mean val loss
    against the baseline's, a difference inside the larger spread (max - min over seeds) being noise."""
    c = Check("ablation_verdict")
    g = fresh_generator()
    cases = []
    for kind in ("better", "worse", "noise", "noise_first_seed", "noise_variant_spread", "better_first_seed"):
        n = _randint(g, 3, 6)
        centre = 1.4 + float(torch.rand(1, generator=g))
        spread = 0.005 + 0.03 * float(torch.rand(1, generator=g))
        base = (centre + spread * (torch.rand(n, generator=g) - 0.5)).tolist()
        base[0], base[1] = centre - spread / 2, centre + spread / 2  # the spread is exactly `spread`
        if kind in ("better", "worse"):
            shift = (2 + float(torch.rand(1, generator=g))) * spread * (-1 if kind == "better" else 1)
            variant = [b + shift + 0.2 * spread * float(torch.rand(1, generator=g) - 0.5) for b in base]
        elif kind == "noise":
            variant = [b + 0.6 * spread * (-1 if i % 2 else 1) for i, b in enumerate(base)]
            variant = [v - 0.3 * spread for v in variant]
        elif kind == "noise_first_seed":  # the first seeds differ by more than the spread, the means do not
            variant = list(base)
            variant[0] -= 2 * spread
            variant[1] += 2 * spread
        elif kind == "noise_variant_spread":  # small baseline spread, a wide variant spread covers the difference
            variant = [b - 1.5 * spread for b in base]
            variant[0] -= 2.5 * spread
            variant[1] += 2.5 * spread
            variant[2] -= 0.0
        else:  # the first seeds agree, the means differ by more than the spread
            variant = [b - 3 * spread for b in base]
            variant[0] = base[0]
            variant[1] = base[1] - 6 * spread
        cases.append((base, variant))
    for base, variant in cases:
        want = _verdict_ref(base, variant)
        got = c.call(fn, list(base), list(variant))
        c.that(got in ("better", "worse", "noise"), _("return 'better', 'worse' or 'noise', got {got!r:.40}").format(got=got))
        if got == want:
            continue
        mb, mv = sum(base) / len(base), sum(variant) / len(variant)
        what = _("for a baseline with mean {mb:.4f} over {n} seeds and a variant with mean {mv:.4f}, "
                 "you answered {got!r}").format(mb=mb, n=len(base), mv=mv, got=got)
        if want == "noise":
            c.fail(_("{what}: the difference of the means is inside the spread of the seeds (max - min of "
                     "either run), so it is noise").format(what=what))
        if got == "noise":
            c.fail(_("{what}: the means differ by more than either run's spread over its seeds, so the change "
                     "counts").format(what=what))
        c.fail(_("{what}: lower val loss is better; compare the means, not the first seeds").format(what=what))
    c.done()
