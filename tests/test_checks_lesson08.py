"""Each lesson-08 check accepts the reference answer and rejects typical mistakes, a constant among them.

The checks draw new inputs every call, so each test runs the check several times."""

import math

import pytest
import torch
import torch.nn.functional as F

from minigpt import checks as check
from minigpt.checks import CheckFailed

REPEATS = range(3)


# --------------------------------------------------------------------------- top-p

def top_p_ref(logits, p):
    probs = F.softmax(logits, dim=-1)
    sorted_probs, order = torch.sort(probs, descending=True, stable=True)
    before = sorted_probs.cumsum(-1) - sorted_probs
    drop = (before >= p).scatter(-1, order, before >= p)
    return logits.masked_fill(drop, float("-inf"))


def top_p_exclusive(logits, p):  # keeps only tokens whose running mass *including* them is <= p
    probs = F.softmax(logits, dim=-1)
    sorted_probs, order = torch.sort(probs, descending=True)
    keep = sorted_probs.cumsum(-1) <= p
    return logits.masked_fill(~keep.scatter(-1, order, keep), float("-inf"))


def top_p_unsorted(logits, p):  # running mass in vocabulary order, not most likely first
    probs = F.softmax(logits, dim=-1)
    before = probs.cumsum(-1) - probs
    return logits.masked_fill(before >= p, float("-inf"))


def top_p_renormalised(logits, p):  # returns log-probabilities instead of the logits
    return F.log_softmax(top_p_ref(logits, p), dim=-1)


def top_p_pooled(logits, p):  # the rows pooled into one distribution
    return top_p_ref(logits.reshape(1, -1), p).reshape(logits.shape)


def top_p_first_row_count(logits, p):  # every row keeps as many tokens as row 0 needs
    k = int((top_p_ref(logits, p)[0] > float("-inf")).sum())
    top = logits.topk(k, dim=-1).indices
    return torch.full_like(logits, float("-inf")).scatter(-1, top, logits.gather(-1, top))


@pytest.mark.parametrize("attempt", REPEATS)
def test_top_p_accepts_reference(attempt, capsys):
    check.top_p_filter(top_p_ref)
    assert "✓ top_p_filter" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda logits, p: logits, "tokens"),  # a constant answer: nothing filtered
    (lambda logits, p: torch.full_like(logits, float("-inf")), "tokens"),
    (top_p_exclusive, "too few"),
    (top_p_unsorted, "tokens"),
    (top_p_renormalised, "kept logits changed"),
    (lambda logits, p: top_k(logits, 3), "tokens"),
    (top_p_pooled, "tokens|reach p"),
    (top_p_first_row_count, "tokens|reach p"),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_top_p_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.top_p_filter(wrong)


def top_k(logits, k):
    kth = torch.topk(logits, min(k, logits.size(-1))).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


# --------------------------------------------------------------------------- repetition penalty

def penalty_ref(logits, context, penalty):
    out = logits.clone()
    for b in range(logits.size(0)):
        for t in set(context[b].tolist()):
            out[b, t] = logits[b, t] / penalty if logits[b, t] > 0 else logits[b, t] * penalty
    return out


def penalty_always_divide(logits, context, penalty):
    out = logits.clone()
    for b in range(logits.size(0)):
        for t in set(context[b].tolist()):
            out[b, t] = logits[b, t] / penalty
    return out


def penalty_per_occurrence(logits, context, penalty):
    out = logits.clone()
    for b in range(logits.size(0)):
        for t in context[b].tolist():
            out[b, t] = out[b, t] / penalty if out[b, t] > 0 else out[b, t] * penalty
    return out


def penalty_everything(logits, context, penalty):
    return torch.where(logits > 0, logits / penalty, logits * penalty)


@pytest.mark.parametrize("attempt", REPEATS)
def test_repetition_penalty_accepts_reference(attempt, capsys):
    check.repetition_penalty(penalty_ref)
    assert "✓ repetition_penalty" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda logits, context, penalty: logits, "seen ones|not penalised"),  # constant: the logits unchanged
    (penalty_always_divide, "multiply negative logits"),
    (penalty_per_occurrence, "penalised twice"),
    (penalty_everything, "never occur"),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_repetition_penalty_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.repetition_penalty(wrong)


# --------------------------------------------------------------------------- one cached attention step

def cached_ref(q, k_new, v_new, k_cache, v_cache):
    k_cache = torch.cat([k_cache, k_new], dim=2)
    v_cache = torch.cat([v_cache, v_new], dim=2)
    att = F.softmax(q @ k_cache.transpose(-2, -1) / math.sqrt(q.size(-1)), dim=-1)
    return att @ v_cache, k_cache, v_cache


def cached_past_only(q, k_new, v_new, k_cache, v_cache):
    y = F.softmax(q @ k_cache.transpose(-2, -1) / math.sqrt(q.size(-1)), dim=-1) @ v_cache
    if k_cache.size(2) == 0:
        y = v_new
    return y, torch.cat([k_cache, k_new], 2), torch.cat([v_cache, v_new], 2)


def cached_square_mask(q, k_new, v_new, k_cache, v_cache):
    k, v = torch.cat([k_cache, k_new], 2), torch.cat([v_cache, v_new], 2)
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, nh, 1, S)
    mask = torch.tril(torch.ones(s.size(-1), s.size(-1), dtype=torch.bool))[:1]  # row 0 of a square mask
    return F.softmax(s.masked_fill(~mask, float("-inf")), -1) @ v, k, v


def cached_unscaled(q, k_new, v_new, k_cache, v_cache):
    k, v = torch.cat([k_cache, k_new], 2), torch.cat([v_cache, v_new], 2)
    return F.softmax(q @ k.transpose(-2, -1), -1) @ v, k, v


def cached_prepend(q, k_new, v_new, k_cache, v_cache):
    y, _, _ = cached_ref(q, k_new, v_new, k_cache, v_cache)
    return y, torch.cat([k_new, k_cache], 2), torch.cat([v_new, v_cache], 2)


@pytest.mark.parametrize("attempt", REPEATS)
def test_cached_attention_step_accepts_reference(attempt, capsys):
    check.cached_attention_step(cached_ref)
    assert "✓ cached_attention_step" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda q, k_new, v_new, k_cache, v_cache: (torch.zeros_like(q), k_cache, v_cache), "k_cache"),  # constant
    (lambda q, k_new, v_new, k_cache, v_cache: (v_new, torch.cat([k_cache, k_new], 2),
                                                torch.cat([v_cache, v_new], 2)), "differs"),  # copies the value
    (cached_past_only, "attend to itself"),
    (cached_square_mask, "only sees position 0"),
    (cached_unscaled, "sqrt"),
    (cached_prepend, "after"),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_cached_attention_step_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.cached_attention_step(wrong)


# --------------------------------------------------------------------------- distinct-n

def distinct_ref(text, n):
    grams = [text[i:i + n] for i in range(len(text) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


@pytest.mark.parametrize("attempt", REPEATS)
def test_distinct_n_accepts_reference(attempt, capsys):
    check.distinct_n(distinct_ref)
    assert "✓ distinct_n" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda text, n: 0.5, "distinct_n"),  # a constant
    (lambda text, n: len({text[i:i + n] for i in range(len(text) - n + 1)}), "number of distinct"),
    (lambda text, n: len({text[i:i + n] for i in range(len(text) - n + 1)}) / len(text), "L - n \\+ 1"),
    (lambda text, n: len(set(text)) / len(text), "distinct_n"),  # characters, whatever n is
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_distinct_n_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.distinct_n(wrong)


# --------------------------------------------------------------------------- best temperature

def best_t_ref(logits, targets, temperatures):
    return min(temperatures, key=lambda t: F.cross_entropy(logits / t, targets).item())


@pytest.mark.parametrize("attempt", REPEATS)
def test_best_temperature_accepts_reference(attempt, capsys):
    check.best_temperature(best_t_ref)
    assert "✓ best_temperature" in capsys.readouterr().out


# A wrong pick may also happen to be the worst temperature of the list: then the hint says "highest".
@pytest.mark.parametrize("wrong, hint", [
    (lambda logits, targets, temperatures: 1.0, "another temperature|temperatures you were given|highest"),  # constant
    (lambda logits, targets, temperatures: max(temperatures, key=lambda t: F.cross_entropy(logits / t, targets).item()),
     "highest"),
    (lambda logits, targets, temperatures: temperatures[0], "another temperature|highest"),
    (lambda logits, targets, temperatures: temperatures[-1], "another temperature|highest"),  # the last one
    # accuracy does not depend on the temperature: the first of the ties is returned
    (lambda logits, targets, temperatures: max(temperatures, key=lambda t: ((logits / t).argmax(-1) == targets).float().mean().item()),
     "another temperature|highest"),
    (lambda logits, targets, temperatures: min(temperatures, key=lambda t: F.cross_entropy(logits * t, targets).item()),
     "another temperature|highest"),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_best_temperature_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.best_temperature(wrong)
