"""Checks for lesson 05 (self-attention): averaging the past, causal attention against PyTorch's
fused kernel, splitting into heads, attention entropy, and the scaling experiment.

Every check draws fresh inputs each call (shapes, values, seeds, head sizes), so an answer that only
fits fixed examples, or a table of numbers, cannot pass.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..i18n import _
from ..viz import RandomAttention
from ._core import Check, fresh_generator

__all__ = ["average_past", "causal_attention", "split_heads", "attention_entropy", "scaling_experiment"]


def _same(a, b, atol=1e-5) -> bool:
    a = torch.as_tensor(a)
    return tuple(a.shape) == tuple(b.shape) and bool(torch.allclose(a.double(), b.double(), atol=atol))


def average_past(fn):
    """``fn(x)`` for x (B, T, C) -> (B, T, C): position t is the mean of positions 0..t."""
    c = Check("average_past")
    g = fresh_generator()
    drawn = tuple(int(v) for v in torch.randint(2, 12, (3,), generator=g))
    for shape in [(2, 5, 3), (1, 1, 4), drawn]:
        x = torch.randn(*shape, generator=g)
        got = c.call(fn, x.clone())
        ref = x.cumsum(dim=1) / torch.arange(1, shape[1] + 1).view(1, -1, 1)
        c.shape(got, shape, _("average_past(x)"))
        if _same(got, x.mean(dim=1, keepdim=True).expand_as(x)) and shape[1] > 1:
            c.fail(_("every position gets the mean of the whole sequence; position t may only see 0..t"))
        if _same(got, x.cumsum(dim=1)) and shape[1] > 1:
            c.fail(_("the rows are sums of the past, not averages: each row of the weights must sum to 1"))
        if _same(got, x.flip(1).cumsum(1).flip(1) / torch.arange(shape[1], 0, -1).view(1, -1, 1)) and shape[1] > 1:
            c.fail(_("position t averages positions t..T-1, the future; use the lower triangle (torch.tril)"))
        c.close(got, ref, _("average_past(x)"), atol=1e-5)
    c.done()


def causal_attention(fn):
    """``fn(q, k, v)`` for (B, nh, T, d_k) tensors: masked, scaled softmax attention."""
    c = Check("causal_attention")
    g = fresh_generator()
    drawn = (1, int(torch.randint(1, 4, (1,), generator=g)), int(torch.randint(2, 12, (1,), generator=g)),
             int(torch.randint(2, 33, (1,), generator=g)))
    for B, nh, T, d in [(2, 3, 6, 8), (1, 1, 1, 4), drawn]:
        q, k, v = (torch.randn(B, nh, T, d, generator=g) for _i in range(3))
        got = c.call(fn, q.clone(), k.clone(), v.clone())
        ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        c.shape(got, tuple(ref.shape), _("causal_attention(q, k, v)"))
        got = torch.as_tensor(got).detach()
        c.that(bool(torch.isfinite(got).all()),
               _("the output has NaN or inf: mask with -inf *before* the softmax, and only the future positions"))
        if not _same(got, ref, atol=1e-4) and T > 1:
            if _same(got, F.scaled_dot_product_attention(q, k, v, is_causal=False), atol=1e-4):
                c.fail(_("position 0 is influenced by later positions: mask the future (j > i) before the softmax"))
            if _same(got, F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0), atol=1e-4):
                c.fail(_("the weights are too sharp: divide the scores by sqrt(d_k), the size of the last dimension"))
            unmasked = q @ k.transpose(-2, -1) / math.sqrt(d)
            mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
            wrong_dim = F.softmax(unmasked.masked_fill(~mask, float("-inf")), dim=-2).nan_to_num() @ v
            if _same(got, wrong_dim, atol=1e-4):
                c.fail(_("each query's weights must sum to 1 over the keys: take the softmax over the last dimension"))
        c.close(got, ref, _("causal_attention(q, k, v)"), atol=1e-4)
    c.done()


def split_heads(fn):
    """``fn(x, n_head)``: (B, T, C) -> (B, nh, T, C // nh), head h holding channels h*hs..(h+1)*hs."""
    c = Check("split_heads")
    g = fresh_generator()
    n_drawn, hs = (int(v) for v in torch.randint(2, 6, (2,), generator=g))
    for B, T, C, nh in [(2, 5, 12, 3), (3, 2, 6, 6), (2, int(torch.randint(2, 7, (1,), generator=g)), n_drawn * hs, n_drawn)]:
        x = torch.randn(B, T, C, generator=g)
        got = c.call(fn, x.clone(), nh)
        c.shape(got, (B, nh, T, C // nh), _("split_heads(x, {nh}) for x of shape {value}").format(nh=nh, value=(B, T, C)))
        ref = x.view(B, T, nh, C // nh).transpose(1, 2)
        if not torch.equal(torch.as_tensor(got), ref):
            got_t = torch.as_tensor(got)
            if torch.equal(got_t, x.view(B, nh, T, C // nh)):
                c.fail(_("the shape is right but the values are shuffled: a plain view mixes positions into "
                       "heads; split the channels first, (B, T, nh, hs), then swap the T and nh dimensions"))
            c.fail(_("head 0, position 0 should hold channels 0..{value} of position 0; check the order of "
                     "your reshape and transpose").format(value=C // nh - 1))
        c.count += 1
    c.done()


def attention_entropy(fn):
    """``fn(w)`` for weights (..., T, T): mean over rows of -sum w log w, in nats, with 0 log 0 = 0."""
    c = Check("attention_entropy")
    g = fresh_generator()
    T = int(torch.randint(3, 10, (1,), generator=g))
    uniform_causal = torch.tril(torch.ones(T, T))
    uniform_causal = uniform_causal / uniform_causal.sum(-1, keepdim=True)
    cases = [
        (torch.eye(T), 0.0, _("one-hot rows")),
        (torch.full((T, T), 1.0 / T), math.log(T), _("uniform rows")),
        (uniform_causal, sum(math.log(t) for t in range(1, T + 1)) / T, _("causal uniform rows (zeros above the diagonal)")),
    ]
    w = torch.softmax(2 * torch.randn(2, 3, T, T, generator=g).masked_fill(uniform_causal == 0, float("-inf")), -1)
    cases.append((w, float(-(w * torch.where(w > 0, w.log(), torch.zeros_like(w))).sum(-1).mean()),
                  _("random causal weights of shape (2, 3, {T}, {T})").format(T=T)))
    for weights, ref, what in cases:
        got = c.call(fn, weights.clone())
        try:
            got = float(got)
        except (TypeError, ValueError):
            c.fail(_("return one number (the mean over every row), got {type} of shape {getattr}").format(type=type(got).__name__, getattr=tuple(getattr(got, 'shape', ()))))
        if math.isnan(got):
            c.fail(_("NaN for {what}: 0 * log(0) is NaN in floating point; count those entries as 0").format(what=what))
        if ref > 0 and math.isclose(got, ref / math.log(2), rel_tol=1e-4):
            c.fail(_("for {what} your value is in bits; use the natural log (nats)").format(what=what))
        if ref > 0 and math.isclose(got, -ref, rel_tol=1e-4):
            c.fail(_("for {what} the sign is flipped: entropy is -sum w log w, never negative").format(what=what))
        c.number(got, ref, _("the entropy of {what}").format(what=what), tol=1e-4)
    c.done()


def scaling_experiment(fn):
    """``fn(head_size, scaled, seed)``: the mean row entropy of the causal weights of
    ``RandomAttention(n_head=4, head_size=head_size, n_embd=32, seed=seed)`` on the sentence.
    The check re-runs it for head sizes and seeds drawn now and compares with its own measurement."""
    c = Check("scaling_experiment")
    g = fresh_generator()
    tokens = "the quick brown fox jumps over the lazy dog and runs far away from the farm".split()

    def reference(hs, scaled, seed, causal=True):
        w = RandomAttention(n_head=4, head_size=hs, n_embd=32, seed=seed)(tokens, causal=causal, scaled=scaled)
        return float(-(w * torch.where(w > 0, w.log(), torch.zeros_like(w))).sum(-1).mean())

    seed = int(torch.randint(0, 10_000, (1,), generator=g))
    small, large = 2 ** int(torch.randint(1, 4, (1,), generator=g)), 2 ** int(torch.randint(6, 8, (1,), generator=g))
    got = {}
    for hs in (small, large):
        for scaled in (True, False):
            value = c.call(fn, hs, scaled, seed)
            c.that(isinstance(value, (int, float)) or getattr(value, "ndim", None) == 0,
                   _("return one number, got {type}").format(type=type(value).__name__))
            got[hs, scaled] = float(value)
            ref = reference(hs, scaled, seed)
            other = reference(hs, not scaled, seed)
            if math.isclose(got[hs, scaled], other, rel_tol=1e-4) and not math.isclose(ref, other, rel_tol=1e-4):
                c.fail(_("head_size={hs}: scaled={scaled} gives the other setting's number; pass `scaled` on").format(hs=hs, scaled=scaled))
            if not math.isclose(got[hs, scaled], ref, rel_tol=1e-3, abs_tol=1e-3):
                if math.isclose(got[hs, scaled], reference(hs, scaled, 0), rel_tol=1e-4):
                    c.fail(_("with seed={seed} you measured the attention of seed 0: pass `seed` on").format(seed=seed))
                if math.isclose(got[hs, scaled], reference(hs, scaled, seed, causal=False), rel_tol=1e-4):
                    c.fail(_("head_size={hs}: that is the entropy without the causal mask; switch it on").format(hs=hs))
            c.number(got[hs, scaled], ref, _("mean_entropy({hs}, scaled={scaled}, seed={seed})").format(hs=hs, scaled=scaled, seed=seed), tol=1e-3)
    c.that(got[large, False] < got[large, True],
           _("at head size {large} the unscaled rows should be sharper (lower entropy)").format(large=large))
    c.done()
