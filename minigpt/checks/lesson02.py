"""Checks for lesson 02 (the neural bigram): one-hot logits, a stable NLL, the softmax cross-entropy
gradient by hand, weights from counts, and gradient descent written out by hand."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._core import Check

__all__ = ["one_hot_logits", "nll_from_logits", "softmax_ce_grad", "weights_from_counts", "train_by_hand"]

_WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "charlotte", "mia", "amelia", "harper", "evelyn"]


def _case(seed: int, n: int = 40, v: int = 27, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(v, v, generator=g) * scale
    xs = torch.randint(0, v, (n,), generator=g)
    ys = torch.randint(0, v, (n,), generator=g)
    return W, xs, ys


def _tensor(c: Check, value, what: str) -> torch.Tensor:
    c.that(isinstance(value, torch.Tensor), f"{what} should be a torch.Tensor, got {type(value).__name__}")
    return value.detach()


def one_hot_logits(fn):
    """``fn(xs, W) -> logits``: one-hot encode ``xs`` (N,) and multiply by ``W`` (27, 27) -> (N, 27)."""
    c = Check("one_hot_logits")
    for seed in (0, 1):
        W, xs, _ = _case(seed)
        got = _tensor(c, c.call(fn, xs.clone(), W.clone()), "the logits")
        c.shape(got, (len(xs), 27), "the logits")
        c.that(got.is_floating_point(), "the logits should be floats; convert the one-hot vectors with .float()")
        if not torch.allclose(got, W[xs], atol=1e-5) and torch.allclose(got, W.T[xs], atol=1e-5):
            c.fail("your logits are columns of W; one_hot(x) @ W selects row x of W (check the order of the product)")
        c.close(got, W[xs], "the logits", atol=1e-5)
    c.done()


def nll_from_logits(fn):
    """``fn(logits, ys) -> loss``: mean negative log-likelihood of targets ``ys`` under softmax(logits)."""
    c = Check("nll_from_logits")
    for seed, scale in [(0, 1.0), (1, 3.0), (2, 200.0)]:
        W, xs, ys = _case(seed, scale=scale)
        logits = W[xs]
        ref = F.cross_entropy(logits.double(), ys).item()
        got = c.call(fn, logits.clone(), ys.clone())
        got = float(got.detach()) if isinstance(got, torch.Tensor) else got
        c.that(isinstance(got, (int, float)), f"return one number (a scalar tensor or a float), got {type(got).__name__}")
        if not math.isfinite(got):
            c.fail(f"with logits as large as {logits.abs().max():.0f} your loss is {got}: exp overflows; "
                   "subtract each row's maximum logit before exponentiating (it does not change the softmax)")
        n = len(ys)
        if math.isclose(got, -ref, rel_tol=1e-4):
            c.fail("your loss is negative: the NLL is minus the mean log-probability")
        if math.isclose(got, n * ref, rel_tol=1e-4):
            c.fail(f"your loss is {n} times too large: take the mean over the examples, not the sum")
        c.number(got, ref, "the loss", tol=1e-4 * max(1.0, abs(ref)))
    c.done()


def softmax_ce_grad(fn):
    """``fn(logits, ys) -> dlogits``: the gradient of the mean cross-entropy with respect to the logits."""
    c = Check("softmax_ce_grad")
    for seed in (0, 1):
        W, xs, ys = _case(seed)
        logits = W[xs].double().requires_grad_()
        F.cross_entropy(logits, ys).backward()
        ref = logits.grad
        got = _tensor(c, c.call(fn, logits.detach().clone(), ys.clone()), "the gradient")
        c.shape(got, tuple(ref.shape), "the gradient")
        got = got.double()
        n = len(ys)
        if torch.allclose(got, n * ref, atol=1e-6):
            c.fail(f"your gradient is {n} times too large: the loss is a mean over N examples, so divide by N")
        if torch.allclose(got, -ref, atol=1e-6):
            c.fail("your gradient has the wrong sign: it is softmax minus the one-hot target, not the other way")
        c.close(got, ref, "the gradient", atol=1e-6)
    c.done()


def weights_from_counts(fn):
    """``fn(counts, k) -> W``: weights whose softmax rows equal the add-k bigram probabilities."""
    from minigpt.ngram import bigram_counts

    c = Check("weights_from_counts")
    counts = bigram_counts(_WORDS)
    for k in (1.0, 0.1):
        ref = (counts.double() + k) / (counts.double() + k).sum(1, keepdim=True)
        W = _tensor(c, c.call(fn, counts.clone(), k), "W")
        c.shape(W, (27, 27), "W")
        W = W.double()
        c.that(bool(torch.isfinite(W).all()), "W has inf or nan entries: did you take the log of a zero count? add k first")
        P = torch.softmax(W, dim=1)
        if not torch.allclose(P, ref, atol=1e-6) and torch.allclose(W, ref, atol=1e-6):
            c.fail("your W holds probabilities; softmax exponentiates its input, so W must be log-counts")
        c.close(P, ref, f"softmax(W) with k={k}", atol=1e-6)
    c.done()


def _reference_train(xs, ys, steps, lr):
    W = torch.zeros(27, 27, dtype=torch.float64)
    losses = []
    n = len(xs)
    for _ in range(steps):
        P = torch.softmax(W[xs], dim=1)
        losses.append(-P[torch.arange(n), ys].log().mean().item())
        P[torch.arange(n), ys] -= 1
        W -= lr * F.one_hot(xs, 27).double().T @ (P / n)
    return W, losses


def train_by_hand(fn):
    """``fn(xs, ys, steps, lr) -> (W, losses)``: full-batch gradient descent from W = 0, gradient by hand."""
    from minigpt.mlp import bigram_pairs

    c = Check("train_by_hand")
    xs, ys = bigram_pairs(_WORDS)
    steps, lr = 30, 10.0
    ref_W, ref_losses = _reference_train(xs, ys, steps, lr)
    out = c.call(fn, xs.clone(), ys.clone(), steps, lr)
    c.that(isinstance(out, tuple) and len(out) == 2, "return a pair (W, losses)")
    W, losses = out
    W = _tensor(c, W, "W")
    c.shape(W, (27, 27), "W")
    losses = [float(v) for v in losses]
    c.that(len(losses) == steps, f"losses should have one entry per step ({steps}), got {len(losses)}")
    c.number(losses[0], math.log(27), "the loss before the first step (W = 0 means uniform predictions)", tol=1e-4)
    if losses[-1] > losses[0]:
        c.fail("your loss goes up: step against the gradient (W -= lr * dW), not along it")
    worse = [i for i in range(1, steps) if losses[i] > losses[i - 1] + 1e-9]
    c.that(not worse, f"the loss rose at step {worse[0] if worse else 0}; with lr={lr} it should fall at every step")
    c.number(losses[-1], ref_losses[-1], f"the loss before step {steps}", tol=1e-3)
    c.close(W.double(), ref_W, "W after training", atol=1e-3, rtol=1e-3)
    c.done()
