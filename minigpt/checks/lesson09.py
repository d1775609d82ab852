"""Checks for lesson 09 (looking inside): a head's mean attention distance, its previous-token
score, zeroing one head's output, the logit lens, and an experiment measuring a head's importance.

Every check draws fresh inputs (a new seed each call): random shapes, random causal attention,
random small models, so an answer that only fits one input cannot pass.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..i18n import _
from ..interpret import ablate_heads, nll
from ..model import GPT, GPTConfig
from ._core import Check, fresh_generator

__all__ = ["mean_attention_distance", "previous_token_score", "zero_head", "lens_logits", "head_importance"]


def _causal_weights(g, *lead, T):
    scores = torch.randn(*lead, T, T, generator=g) * 2
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    return F.softmax(scores.masked_fill(future, float("-inf")), dim=-1)


def _number(c: Check, value, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        c.fail(_("{what} should be one number, got {type} of shape {getattr}").format(what=what, type=type(value).__name__, getattr=tuple(getattr(value, 'shape', ()))))


def _ref_distance(w):
    T = w.size(-1)
    pos = torch.arange(T, dtype=w.dtype)
    return float((w * (pos[:, None] - pos[None, :])).sum(-1).mean())


def mean_attention_distance(fn):
    """``fn(w)`` for causal weights w (..., T, T): the mean over every query row of sum_j w_ij (i - j)."""
    c = Check("mean_attention_distance")
    g = fresh_generator()
    T = int(torch.randint(5, 12, (1,), generator=g))
    cases = [(torch.eye(T), _("one-hot rows on the diagonal (each token looks at itself)")),
             (torch.diag_embed(torch.ones(T - 1), offset=-1) + torch.diag_embed(torch.tensor([1.0] + [0.0] * (T - 1))),
              _("each token looks one position back")),
             (_causal_weights(g, T=T), _("random causal weights of shape ({T}, {T})").format(T=T)),
             (_causal_weights(g, 2, 3, T=T), _("random causal weights of shape (2, 3, {T}, {T})").format(T=T))]
    for w, what in cases:
        got = _number(c, c.call(fn, w.clone()), _("the mean distance"))
        ref = _ref_distance(w)
        T_ = w.size(-1)
        pos = torch.arange(T_, dtype=w.dtype)
        if not math.isclose(got, ref, abs_tol=1e-4):
            if math.isclose(got, -ref, abs_tol=1e-4) and ref != 0:
                c.fail(_("for {what} the sign is flipped: a head looking back has a positive distance i - j").format(what=what))
            if math.isclose(got, float((w * (pos[:, None] - pos[None, :])).sum(-1).sum()), abs_tol=1e-4):
                c.fail(_("for {what} you return the sum over the rows; take the mean over every query row").format(what=what))
            if math.isclose(got, float((pos - w.argmax(-1).to(w.dtype)).mean()), abs_tol=1e-4):
                c.fail(_("for {what} you use only each row's largest weight; weight every distance by its w_ij").format(what=what))
            c.number(got, ref, _("the mean distance for {what}").format(what=what), tol=1e-4)
        c.count += 1
    c.done()


def previous_token_score(fn):
    """``fn(w)`` for causal weights w (..., T, T): the mean of w[i, i-1] over the queries i >= 1."""
    c = Check("previous_token_score")
    g = fresh_generator()
    T = int(torch.randint(5, 12, (1,), generator=g))
    back = torch.diag_embed(torch.ones(T - 1), offset=-1)
    back[0, 0] = 1.0
    cases = [(back, _("each token looks one position back (the score must be 1)")),
             (torch.eye(T), _("each token looks at itself (the score must be 0)")),
             (_causal_weights(g, T=T), _("random causal weights of shape ({T}, {T})").format(T=T)),
             (_causal_weights(g, 4, T=T), _("random causal weights of shape (4, {T}, {T})").format(T=T))]
    for w, what in cases:
        got = _number(c, c.call(fn, w.clone()), _("the score"))
        sub = torch.diagonal(w, offset=-1, dim1=-2, dim2=-1)
        ref = float(sub.mean())
        if not math.isclose(got, ref, abs_tol=1e-5):
            if math.isclose(got, float(torch.diagonal(w, dim1=-2, dim2=-1).mean()), abs_tol=1e-5):
                c.fail(_("for {what} you read the diagonal w[i, i] (the token itself); the previous token is w[i, "
                         "i-1]").format(what=what))
            if math.isclose(got, float(sub.sum(-1).mean() / w.size(-1)), abs_tol=1e-5):
                c.fail(_("for {what} you divide by T; only the T - 1 queries i >= 1 have a previous token").format(what=what))
            c.number(got, ref, _("the previous-token score for {what}").format(what=what), tol=1e-5)
        c.count += 1
    c.done()


def zero_head(fn):
    """``fn(y, head, n_head)``: a copy of y (B, T, C) whose channels of ``head`` are zero; y unchanged."""
    c = Check("zero_head")
    g = fresh_generator()
    for case in range(3):
        n_head = int(torch.randint(2, 6, (1,), generator=g))
        hs = int(torch.randint(2, 5, (1,), generator=g))
        if case == 0 and hs == n_head:  # where head size and head count differ, mixing them up shows
            hs = n_head + 1
        C = n_head * hs
        # the first head, a middle or last one, then any: an answer that ignores `head` cannot pass
        head = [0, int(torch.randint(1, n_head, (1,), generator=g)), int(torch.randint(0, n_head, (1,), generator=g))][case]
        y = torch.randn(2, 3, C, generator=g)
        original = y.clone()
        got = c.call(fn, y, head, n_head)
        c.that(got is not None, _("return the new tensor (zeroing in place and returning nothing changes the input)"))
        c.that(torch.equal(y, original), _("your function changed its input y; work on a copy (y.clone())"))
        c.shape(got, tuple(y.shape), _("the result"))
        got = torch.as_tensor(got)
        ref = y.clone()
        ref[..., head * hs:(head + 1) * hs] = 0
        if not torch.equal(got, ref):
            zeros = (got == 0).all(dim=(0, 1)).nonzero().flatten().tolist()
            c.fail(_("with C={C} channels and {n_head} heads (head size {hs}) you zeroed channels {zeros} for "
                     "head {head}; head h owns the channels h * head_size up to (h + 1) * head_size").format(C=C, n_head=n_head, hs=hs, zeros=zeros, head=head))
        c.count += 1
    c.done()


def _small_gpt(g, n_layer: int | None = None):
    n_head = int(torch.randint(2, 4, (1,), generator=g))
    n_layer = n_layer or int(torch.randint(1, 3, (1,), generator=g))
    cfg = GPTConfig(block_size=16, vocab_size=int(torch.randint(10, 30, (1,), generator=g)),
                    n_layer=n_layer, n_head=n_head, n_embd=8 * n_head)
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
    model = GPT(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model.eval()


def lens_logits(fn):
    """``fn(model, x)``: logits (B, T, V) read from a residual stream x (B, T, C) through ln_f and lm_head."""
    c = Check("lens_logits")
    g = fresh_generator()
    for _i in range(2):
        model = _small_gpt(g)
        x = torch.randn(2, 5, model.config.n_embd, generator=g) * 3
        with torch.no_grad():
            got = c.call(fn, model, x.clone())
            ref = model.lm_head(model.transformer.ln_f(x))
        c.shape(got, tuple(ref.shape), _("the logits"))
        got = torch.as_tensor(got).detach()
        if not torch.allclose(got, ref, atol=1e-4):
            with torch.no_grad():
                if torch.allclose(got, model.lm_head(x), atol=1e-4):
                    # the symptom: these logits grow with the stream, the model's own reading does not
                    bigger = torch.as_tensor(c.call(fn, model, 2 * x)).detach()
                    c.fail(_("your logits change scale with the residual stream (doubling the stream takes their std "
                             "from {std:.2f} to {std2:.2f}), while the model's own logits do not; look at what "
                             "GPT.forward does to the stream between the last block and lm_head").format(std=got.std(), std2=bigger.std()))
            bad = ~torch.isclose(got, ref, atol=1e-4)
            c.fail(_("your logits differ from the model's own reading of the same residual stream (what "
                     "GPT.forward computes from the stream after its last block) at {bad_sum} of {bad_numel} "
                     "entries").format(bad_sum=int(bad.sum()), bad_numel=bad.numel()))
        c.count += 1
        # and at the last layer it must agree with the model's own logits
        idx = torch.randint(0, model.config.vocab_size, (1, 6), generator=g)
        tr = model.transformer
        with torch.no_grad():
            resid = tr.wte(idx) + tr.wpe(torch.arange(6))
            for block in tr.h:
                resid = block(resid)
            got = torch.as_tensor(c.call(fn, model, resid))
            c.that(torch.allclose(got, model(idx)[0], atol=1e-4),
                   _("after the last block your logits should equal the model's own logits"))
    c.done()


def head_importance(fn):
    """``fn(model, x, y, layer, head)``: how much the held-out NLL of targets y given inputs x rises
    when that head's output is zeroed; the model must be left as it was."""
    c = Check("head_importance")
    g = fresh_generator()
    for case in range(3):
        model = _small_gpt(g, n_layer=2)
        V, L, H = model.config.vocab_size, model.config.n_layer, model.config.n_head
        x = torch.randint(0, V, (6, 12), generator=g)
        y = torch.randint(0, V, (6, 12), generator=g)
        # the last layer and a head after the first, the first layer and such a head, then the first layer
        # and head: an answer that ignores `layer` or `head` (always 0, always the last) measures another head
        later_head = int(torch.randint(1, H, (1,), generator=g))
        layer, head = [(L - 1, later_head), (0, later_head), (0, 0)][case]
        with torch.no_grad():
            before = model(x)[0].clone()
        got = _number(c, c.call(fn, model, x, y, layer, head), _("the rise in NLL"))
        with torch.no_grad():
            c.that(torch.allclose(model(x)[0], before, atol=1e-6),
                   _("after your function the model gives other logits: remove your hooks or restore the weights"))
        base = nll(model, x, y)
        with ablate_heads(model, [(layer, head)]):
            ablated = nll(model, x, y)
        ref = ablated - base  # compared to 2e-5: two heads' effects rarely agree that closely
        if not math.isclose(got, ref, abs_tol=2e-5):
            if math.isclose(got, ablated, abs_tol=2e-5):
                c.fail(_("you return the NLL with the head zeroed; return how much it *rises* over the intact model"))
            others = []
            for lay in range(L):
                for hd in range(H):
                    if (lay, hd) != (layer, head):
                        with ablate_heads(model, [(lay, hd)]):
                            others.append(nll(model, x, y) - base)
            if any(math.isclose(got, o, abs_tol=2e-5) for o in others):
                c.fail(_("your number is the effect of another head, not of layer {layer}, head {head}; check "
                         "which channels and which layer you zero").format(layer=layer, head=head))
            c.number(got, ref, _("the rise in NLL for layer {layer}, head {head}").format(layer=layer, head=head), tol=2e-5)
        c.count += 1
    c.done()
