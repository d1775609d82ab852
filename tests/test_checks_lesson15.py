"""Each lesson-15 check accepts the reference answer and rejects typical mistakes, a constant among them.

The checks draw new inputs every call, so each test runs the check several times."""

import pytest
import torch
import torch.nn.functional as F

from minigpt import checks as check
from minigpt.checks import CheckFailed
from minigpt.dpo import dpo_loss as dpo_reference
from minigpt.tools import calculate

REPEATS = range(3)


# --------------------------------------------------------------------------- sft_targets

def targets_ref(ids, mask):
    return [ids[i + 1] if mask[i + 1] else -1 for i in range(len(ids) - 1)]


@pytest.mark.parametrize("attempt", REPEATS)
def test_sft_targets_accepts_reference_lists_and_tensors(attempt, capsys):
    check.sft_targets(targets_ref)
    check.sft_targets(lambda ids, mask: torch.tensor(targets_ref(ids, mask)))
    assert capsys.readouterr().out.count("✓ sft_targets") == 2


@pytest.mark.parametrize("wrong, hint", [
    (lambda ids, mask: [-1] * (len(ids) - 1), "every target is -1"),  # a constant
    (lambda ids, mask: [ids[i + 1] if mask[i] else -1 for i in range(len(ids) - 1)], "off by one"),
    (lambda ids, mask: [ids[i] if mask[i] else -1 for i in range(len(ids) - 1)], "not shifted"),
    (lambda ids, mask: ids[1:], "every token is a target"),
    (lambda ids, mask: targets_ref(ids, mask) + [-1], "one target per input position"),
    (lambda ids, mask: [ids[i + 1] if mask[i + 1] or ids[i + 1] == 102 else -1 for i in range(len(ids) - 1)],
     "target"),  # the user's end-of-turn trained too
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_sft_targets_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.sft_targets(wrong)


# --------------------------------------------------------------------------- safe_calc

@pytest.mark.parametrize("attempt", REPEATS)
def test_safe_calc_accepts_the_package_calculator(attempt, capsys):
    check.safe_calc(calculate)
    assert "✓ safe_calc" in capsys.readouterr().out


def _eval_calc(expression):
    return eval(expression, {"__builtins__": __builtins__}, {})  # the mistake the exercise is about


def _no_power_limit(expression):
    if "**" in expression and "(" not in expression:
        a, b = expression.split("**")
        return int(a) ** int(b)
    return calculate(expression)


def _only_digits_ops(expression):  # a character filter lets a comparison or a list through
    if any(ch.isalpha() or ch in "_'." for ch in expression):
        raise ValueError("letters are not allowed")
    return eval(expression)


@pytest.mark.parametrize("wrong, hint", [
    (lambda e: 0, "should be a number equal"),  # a constant
    (_eval_calc, "reach eval|was computed"),
    (_no_power_limit, "huge power"),
    (_only_digits_ops, "was computed"),
    (lambda e: float(calculate(e.replace("//", "/"))), "should be a number equal"),  # floor division as division
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_safe_calc_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.safe_calc(wrong)


# --------------------------------------------------------------------------- dpo_loss

def dpo_ref(pc, pr, rc, rr, beta):
    return dpo_reference(pc, pr, rc, rr, beta)["loss"]


@pytest.mark.parametrize("attempt", REPEATS)
def test_dpo_loss_accepts_the_package_loss(attempt, capsys):
    check.dpo_loss(dpo_ref)
    assert "✓ dpo_loss" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda pc, pr, rc, rr, beta: torch.tensor(0.6931), "too"),  # a constant: log 2
    (lambda pc, pr, rc, rr, beta: -F.logsigmoid((pc - rc) - (pr - rr)).mean(), "beta is missing"),
    (lambda pc, pr, rc, rr, beta: -F.logsigmoid(beta * ((pr - rr) - (pc - rc))).mean(), "sign is flipped"),
    (lambda pc, pr, rc, rr, beta: -F.logsigmoid(beta * (pc - pr)).mean(), "reference model is missing"),
    (lambda pc, pr, rc, rr, beta: -F.logsigmoid(beta * ((pc - rc) - (pr - rr))).sum(), "mean over the batch"),
    (lambda pc, pr, rc, rr, beta: -F.logsigmoid(beta * ((pc - rc) - (pr - rr))), "one tensor number"),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_dpo_loss_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.dpo_loss(wrong)


# --------------------------------------------------------------------------- seed_verdict

def verdict_ref(a, b):
    diff = sum(a) / len(a) - sum(b) / len(b)
    if abs(diff) > max(max(a) - min(a), max(b) - min(b)):
        return "a" if diff > 0 else "b"
    return "noise"


def _std(x):
    m = sum(x) / len(x)
    return (sum((v - m) ** 2 for v in x) / (len(x) - 1)) ** 0.5


@pytest.mark.parametrize("attempt", REPEATS)
def test_seed_verdict_accepts_the_reference(attempt, capsys):
    check.seed_verdict(verdict_ref)
    assert "✓ seed_verdict" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda a, b: "noise", "you called noise"),  # a constant
    (lambda a, b: "a" if sum(a) > sum(b) else "b", "you called a winner"),  # the means alone (sums: same n)
    (lambda a, b: verdict_ref(b, a), "HIGHER mean"),  # flipped
    (lambda a, b: ("a" if sum(a) / len(a) > sum(b) / len(b) else "b")
        if abs(sum(a) / len(a) - sum(b) / len(b)) > max(a) - min(a) else "noise", "LARGER of the two ranges"),
    (lambda a, b: ("a" if sum(a) / len(a) > sum(b) / len(b) else "b")
        if abs(sum(a) / len(a) - sum(b) / len(b)) > max(_std(a), _std(b)) else "noise", "you called a winner"),
    (lambda a, b: 1, 'return "a", "b" or "noise"'),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_seed_verdict_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.seed_verdict(wrong)
