"""Lesson 02's checks accept the reference answers and reject the typical mistakes."""

import math

import pytest
import torch
import torch.nn.functional as F

from minigpt import checks as check
from minigpt.checks import CheckFailed


def one_hot_logits(xs, W):
    return F.one_hot(xs, 27).float() @ W


def test_one_hot_logits_accepts_the_reference(capsys):
    check.one_hot_logits(one_hot_logits)
    assert "✓ one_hot_logits" in capsys.readouterr().out


def test_one_hot_logits_rejects_a_transposed_product():
    with pytest.raises(CheckFailed, match="columns of W"):
        check.one_hot_logits(lambda xs, W: F.one_hot(xs, 27).float() @ W.T)


def test_one_hot_logits_rejects_a_constant_and_a_fixed_size():
    with pytest.raises(CheckFailed, match="shape|differs"):
        check.one_hot_logits(lambda xs, W: torch.zeros(40, 27))
    with pytest.raises(CheckFailed, match="shape|differs"):
        check.one_hot_logits(lambda xs, W: W[xs[:1]].expand(len(xs), 27))


def test_one_hot_logits_rejects_integer_one_hots():
    with pytest.raises(CheckFailed, match="raised"):
        check.one_hot_logits(lambda xs, W: F.one_hot(xs, 27) @ W)


def stable_nll(logits, ys):
    z = logits - logits.max(1, keepdim=True).values
    return -(z - z.exp().sum(1, keepdim=True).log())[torch.arange(len(ys)), ys].mean()


def test_nll_from_logits_accepts_the_reference_and_cross_entropy(capsys):
    check.nll_from_logits(stable_nll)
    check.nll_from_logits(F.cross_entropy)
    assert capsys.readouterr().out.count("✓ nll_from_logits") == 2


def test_nll_from_logits_rejects_an_overflowing_softmax():
    def naive(logits, ys):
        counts = logits.exp()
        return -(counts / counts.sum(1, keepdim=True))[torch.arange(len(ys)), ys].log().mean()

    with pytest.raises(CheckFailed, match="overflows"):
        check.nll_from_logits(naive)


def test_nll_from_logits_rejects_the_log_of_an_underflowed_softmax():
    def log_of_softmax(logits, ys):  # softmax is stable, but its tiny probabilities round to 0
        return -torch.softmax(logits, dim=1)[torch.arange(len(ys)), ys].log().mean()

    with pytest.raises(CheckFailed, match="underflows to exactly 0"):
        check.nll_from_logits(log_of_softmax)


def test_nll_from_logits_rejects_a_constant():
    with pytest.raises(CheckFailed, match="the loss for"):
        check.nll_from_logits(lambda logits, ys: math.log(27))


def test_nll_from_logits_rejects_a_sum_and_a_missing_minus():
    with pytest.raises(CheckFailed, match="mean over the examples"):
        check.nll_from_logits(lambda logits, ys: stable_nll(logits, ys) * len(ys))
    with pytest.raises(CheckFailed, match="negative"):
        check.nll_from_logits(lambda logits, ys: -stable_nll(logits, ys))


def grad(logits, ys):
    g = torch.softmax(logits, 1)
    g[torch.arange(len(ys)), ys] -= 1
    return g / len(ys)


def test_softmax_ce_grad_accepts_the_reference(capsys):
    check.softmax_ce_grad(grad)
    assert "✓ softmax_ce_grad" in capsys.readouterr().out


def test_softmax_ce_grad_rejects_forgetting_to_divide_by_n():
    with pytest.raises(CheckFailed, match="divide by N"):
        check.softmax_ce_grad(lambda logits, ys: grad(logits, ys) * len(ys))


def test_softmax_ce_grad_rejects_the_wrong_sign():
    with pytest.raises(CheckFailed, match="wrong sign"):
        check.softmax_ce_grad(lambda logits, ys: -grad(logits, ys))


def test_softmax_ce_grad_rejects_autograd():
    def by_autograd(logits, ys):
        logits = logits.clone().requires_grad_()
        F.cross_entropy(logits, ys).backward()
        return logits.grad

    with pytest.raises(CheckFailed, match="autograd|raised"):
        check.softmax_ce_grad(by_autograd)


def test_softmax_ce_grad_rejects_a_constant():
    with pytest.raises(CheckFailed, match="shape|differs"):
        check.softmax_ce_grad(lambda logits, ys: torch.zeros(40, 27))


def test_weights_from_counts_accepts_log_counts(capsys):
    check.weights_from_counts(lambda counts, k: torch.log(counts.float() + k))
    assert "✓ weights_from_counts" in capsys.readouterr().out


def test_weights_from_counts_rejects_probabilities_and_log_of_zero():
    with pytest.raises(CheckFailed, match="log-counts"):
        check.weights_from_counts(lambda counts, k: (counts + k) / (counts + k).sum(1, keepdim=True))
    with pytest.raises(CheckFailed, match="log of a zero count"):
        check.weights_from_counts(lambda counts, k: torch.log(counts.float()))
    with pytest.raises(CheckFailed, match="softmax"):  # a constant
        check.weights_from_counts(lambda counts, k: torch.zeros(27, 27))
    with pytest.raises(CheckFailed, match="softmax"):  # ignores k
        check.weights_from_counts(lambda counts, k: torch.log(counts.float() + 1))


def train(xs, ys, steps, lr, sign=1.0, divide=True):
    W = torch.zeros(27, 27)
    xenc = F.one_hot(xs, 27).float()
    losses = []
    for _ in range(steps):
        logits = xenc @ W
        losses.append(F.cross_entropy(logits, ys).item())
        g = grad(logits, ys) * (1 if divide else len(ys))
        W = W - sign * lr * xenc.T @ g
    return W, losses


def test_train_by_hand_accepts_the_reference_in_float32(capsys):
    check.train_by_hand(train)
    assert "✓ train_by_hand" in capsys.readouterr().out


def test_train_by_hand_rejects_stepping_uphill():
    with pytest.raises(CheckFailed, match="goes up"):
        check.train_by_hand(lambda xs, ys, steps, lr: train(xs, ys, steps, lr, sign=-1.0))


def test_train_by_hand_rejects_a_gradient_n_times_too_large():
    with pytest.raises(CheckFailed):
        check.train_by_hand(lambda xs, ys, steps, lr: train(xs, ys, steps, lr, divide=False))


def test_train_by_hand_rejects_a_wrong_start():
    def from_random(xs, ys, steps, lr):
        W, losses = train(xs, ys, steps, lr)
        return W + 1.0, [losses[0] + 1.0] + losses[1:]

    with pytest.raises(CheckFailed, match="uniform predictions"):
        check.train_by_hand(from_random)


def test_train_by_hand_rejects_autograd():
    def by_autograd(xs, ys, steps, lr):
        W = torch.zeros(27, 27, requires_grad=True)
        losses = []
        for _ in range(steps):
            loss = F.cross_entropy(F.one_hot(xs, 27).float() @ W, ys)
            losses.append(loss.item())
            W.grad = None
            loss.backward()
            with torch.no_grad():
                W -= lr * W.grad
        return W, losses

    with pytest.raises(CheckFailed, match="autograd|raised"):
        check.train_by_hand(by_autograd)


def test_train_by_hand_rejects_a_constant():
    with pytest.raises(CheckFailed, match="one entry per step|loss"):
        check.train_by_hand(lambda xs, ys, steps, lr: (torch.zeros(27, 27), [3.2958] * 30))


@pytest.mark.parametrize("attempt", range(3))
def test_every_check_accepts_the_reference_on_fresh_inputs(attempt, capsys):
    """The checks draw new inputs each call: the references pass every draw."""
    check.one_hot_logits(one_hot_logits)
    check.nll_from_logits(stable_nll)
    check.softmax_ce_grad(grad)
    check.weights_from_counts(lambda counts, k: torch.log(counts.float() + k))
    check.train_by_hand(train)
    assert capsys.readouterr().out.count("✓") == 5
