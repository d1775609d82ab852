"""Checks for lesson 02 (the neural bigram): one-hot logits, a stable NLL, the softmax cross-entropy
gradient by hand, weights from counts, and gradient descent written out by hand.

Every check draws fresh inputs each call (sizes, logits, words), and the exercises that say "by
hand" are run with autograd switched off, so neither a hard-coded answer nor autograd can pass.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from ..i18n import _
from ..mlp import bigram_pairs
from ..ngram import bigram_counts
from ._core import Check, fresh_generator

__all__ = ["one_hot_logits", "nll_from_logits", "softmax_ce_grad", "weights_from_counts", "train_by_hand"]

_WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "charlotte", "mia", "amelia", "harper", "evelyn"]


@contextlib.contextmanager
def _no_autograd(c: Check):
    """Run the learner's code with gradients off and backward()/autograd.grad refusing to run."""
    def refuse(*args, **kwargs):
        c.fail(_("your function uses autograd (backward() or torch.autograd.grad); this exercise computes "
               "the gradient by hand, from the formula"))

    saved = torch.Tensor.backward, torch.autograd.backward, torch.autograd.grad
    torch.Tensor.backward, torch.autograd.backward, torch.autograd.grad = refuse, refuse, refuse
    try:
        with torch.no_grad():
            yield
    finally:
        torch.Tensor.backward, torch.autograd.backward, torch.autograd.grad = saved


def _case(g: torch.Generator, n: int = 40, v: int = 27, scale: float = 1.0):
    n = int(torch.randint(n // 2, n * 2, (1,), generator=g))
    W = torch.randn(v, v, generator=g) * scale
    xs = torch.randint(0, v, (n,), generator=g)
    ys = torch.randint(0, v, (n,), generator=g)
    return W, xs, ys


def _tensor(c: Check, value, what: str) -> torch.Tensor:
    c.that(isinstance(value, torch.Tensor), _("{what} should be a torch.Tensor, got {type}").format(what=what, type=type(value).__name__))
    return value.detach()


def one_hot_logits(fn):
    """``fn(xs, W) -> logits``: one-hot encode ``xs`` (N,) and multiply by ``W`` (27, 27) -> (N, 27)."""
    c = Check("one_hot_logits")
    g = fresh_generator()
    for _i in range(2):
        W, xs, _unused = _case(g)
        got = _tensor(c, c.call(fn, xs.clone(), W.clone()), _("the logits"))
        c.shape(got, (len(xs), 27), _("the logits"))
        c.that(got.is_floating_point(), _("the logits should be floats; convert the one-hot vectors with .float()"))
        if not torch.allclose(got, W[xs], atol=1e-5) and torch.allclose(got, W.T[xs], atol=1e-5):
            c.fail(_("your logits are columns of W; one_hot(x) @ W selects row x of W (check the order of the product)"))
        c.close(got, W[xs], _("the logits"), atol=1e-5)
    c.done()


def nll_from_logits(fn):
    """``fn(logits, ys) -> loss``: mean negative log-likelihood of targets ``ys`` under softmax(logits)."""
    c = Check("nll_from_logits")
    g = fresh_generator()
    for scale in (1.0, 3.0, 200.0):
        W, xs, ys = _case(g, scale=scale)
        logits = W[xs]
        ref = F.cross_entropy(logits.double(), ys).item()
        got = c.call(fn, logits.clone(), ys.clone())
        got = float(got.detach()) if isinstance(got, torch.Tensor) and got.numel() == 1 else got
        c.that(isinstance(got, (int, float)), _("return one number (a scalar tensor or a float), got {type}").format(type=type(got).__name__))
        big = _("with logits as large as {abs_max:.0f}").format(abs_max=logits.abs().max())
        if math.isnan(got):
            c.fail(_("{big} your loss is nan: exp of a large logit overflows to inf, and inf / inf is nan").format(big=big))
        if math.isinf(got):
            c.fail(_("{big} your loss is inf: the softmax probability of some target underflows to exactly 0, "
                     "and log(0) = -inf. The log has to be taken before anything is rounded to 0: compute the "
                     "log-probabilities from the logits, not the log of the probabilities").format(big=big))
        n = len(ys)
        if math.isclose(got, -ref, rel_tol=1e-4):
            c.fail(_("your loss is negative: the NLL is minus the mean log-probability"))
        if math.isclose(got, n * ref, rel_tol=1e-4):
            c.fail(_("your loss is {n} times too large: take the mean over the examples, not the sum").format(n=n))
        c.number(got, ref, _("the loss for {n} examples with logits of scale {scale:g}").format(n=n, scale=scale), tol=1e-4 * max(1.0, abs(ref)))
    c.done()


def softmax_ce_grad(fn):
    """``fn(logits, ys) -> dlogits``: the gradient of the mean cross-entropy with respect to the logits."""
    c = Check("softmax_ce_grad")
    g = fresh_generator()
    for scale in (1.0, 3.0):
        W, xs, ys = _case(g, scale=scale)
        logits = W[xs].double().requires_grad_()
        F.cross_entropy(logits, ys).backward()
        ref = logits.grad
        with _no_autograd(c):
            got = _tensor(c, c.call(fn, logits.detach().clone(), ys.clone()), _("the gradient"))
        c.shape(got, tuple(ref.shape), _("the gradient"))
        got = got.double()
        n = len(ys)
        if torch.allclose(got, n * ref, atol=1e-6):
            c.fail(_("your gradient is {n} times too large: the loss is a mean over N examples, so divide by N").format(n=n))
        if torch.allclose(got, -ref, atol=1e-6):
            c.fail(_("your gradient has the wrong sign: it is softmax minus the one-hot target, not the other way"))
        c.close(got, ref, _("the gradient"), atol=1e-6)
    c.done()


def weights_from_counts(fn):
    """``fn(counts, k) -> W``: weights whose softmax rows equal the add-k bigram probabilities."""
    c = Check("weights_from_counts")
    g = fresh_generator()
    counts = bigram_counts([_WORDS[int(i)] for i in torch.randint(0, len(_WORDS), (20,), generator=g)])
    for k in (1.0, round(float(10 ** torch.empty(1).uniform_(-2, 0.5, generator=g)), 4)):
        ref = (counts.double() + k) / (counts.double() + k).sum(1, keepdim=True)
        W = _tensor(c, c.call(fn, counts.clone(), k), _("W"))
        c.shape(W, (27, 27), _("W"))
        W = W.double()
        c.that(bool(torch.isfinite(W).all()), _("W has inf or nan entries: did you take the log of a zero count? add k first"))
        P = torch.softmax(W, dim=1)
        if not torch.allclose(P, ref, atol=1e-6) and torch.allclose(W, ref, atol=1e-6):
            c.fail(_("your W holds probabilities; softmax exponentiates its input, so W must be log-counts"))
        c.close(P, ref, _("softmax(W) with k={k}").format(k=k), atol=1e-6)
    c.done()


def _reference_train(xs, ys, steps, lr):
    W = torch.zeros(27, 27, dtype=torch.float64)
    losses = []
    n = len(xs)
    for _i in range(steps):
        P = torch.softmax(W[xs], dim=1)
        losses.append(-P[torch.arange(n), ys].log().mean().item())
        P[torch.arange(n), ys] -= 1
        W -= lr * F.one_hot(xs, 27).double().T @ (P / n)
    return W, losses


def train_by_hand(fn):
    """``fn(xs, ys, steps, lr) -> (W, losses)``: full-batch gradient descent from W = 0, gradient by hand."""
    c = Check("train_by_hand")
    g = fresh_generator()
    words = [_WORDS[int(i)] for i in torch.randint(0, len(_WORDS), (int(torch.randint(5, 15, (1,), generator=g)),),
                                                   generator=g)]
    xs, ys = bigram_pairs(words)
    steps, lr = int(torch.randint(15, 35, (1,), generator=g)), float(torch.empty(1).uniform_(5, 15, generator=g))
    ref_W, ref_losses = _reference_train(xs, ys, steps, lr)
    with _no_autograd(c):  # "by hand": the check runs it with autograd switched off
        out = c.call(fn, xs.clone(), ys.clone(), steps, lr)
    c.that(isinstance(out, tuple) and len(out) == 2, _("return a pair (W, losses)"))
    W, losses = out
    c.that(isinstance(W, torch.Tensor) and not W.requires_grad,
           _("your W requires grad: this exercise computes the gradient by hand, without autograd"))
    W = _tensor(c, W, _("W"))
    c.shape(W, (27, 27), _("W"))
    losses = [float(v) for v in losses]
    c.that(len(losses) == steps, _("losses should have one entry per step ({steps}), got {n_losses}").format(steps=steps, n_losses=len(losses)))
    c.number(losses[0], math.log(27), _("the loss before the first step (W = 0 means uniform predictions)"), tol=1e-4)
    if losses[-1] > losses[0]:
        c.fail(_("your loss goes up: step against the gradient (W -= lr * dW), not along it"))
    worse = [i for i in range(1, steps) if losses[i] > losses[i - 1] + 1e-9]
    c.that(not worse, _("the loss rose at step {value}; with lr={lr:.3g} it should fall at every step").format(value=worse[0] if worse else 0, lr=lr))
    c.number(losses[-1], ref_losses[-1], _("the loss before step {steps} (lr={lr:.3g})").format(steps=steps, lr=lr), tol=1e-3)
    c.close(W.double(), ref_W, _("W after training"), atol=1e-3, rtol=1e-3)
    c.done()
