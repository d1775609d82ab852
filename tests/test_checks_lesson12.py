"""Each lesson-12 check accepts the reference answer and rejects typical mistakes, a constant among them.

The checks draw new inputs every call, so each test runs the check several times."""

import math

import numpy as np
import pytest
import regex
import torch

from minigpt import checks as check
from minigpt.checks import CheckFailed
from minigpt.probes import word_logprob

REPEATS = range(3)


# --------------------------------------------------------------------------- memory_parts

def memory_ref(n, mixed):
    return {"weights": (2 if mixed else 4) * n, "gradients": (2 if mixed else 4) * n, "optimizer": (12 if mixed else 8) * n}


@pytest.mark.parametrize("attempt", REPEATS)
def test_memory_parts_accepts_reference(attempt, capsys):
    check.memory_parts(memory_ref)
    assert "✓ memory_parts" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda n, mixed: {"weights": 4e8, "gradients": 4e8, "optimizer": 8e8}, "too"),  # a constant
    (lambda n, mixed: {k: 8 * v for k, v in memory_ref(n, mixed).items()}, "bits"),
    (lambda n, mixed: {**memory_ref(n, mixed), "optimizer": 8 * n}, "master copy"),
    (lambda n, mixed: {**memory_ref(n, mixed), "optimizer": 4 * n}, "two moments"),
    (lambda n, mixed: memory_ref(n, False), "16-bit"),  # mixed precision ignored
    (lambda n, mixed: 16 * n, "return a dict"),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_memory_parts_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.memory_parts(wrong)


# --------------------------------------------------------------------------- power_law_fit

def fit_ref(n, loss):
    slope, intercept = np.polyfit(np.log(n), np.log(loss), 1)
    return math.exp(intercept), -slope


def fit_two_points(n, loss):
    """Through the first and the last point only: right on exact data, wrong with noise."""
    alpha = -math.log(loss[-1] / loss[0]) / math.log(n[-1] / n[0])
    return loss[0] * n[0] ** alpha, alpha


@pytest.mark.parametrize("attempt", REPEATS)
def test_power_law_fit_accepts_reference(attempt, capsys):
    check.power_law_fit(fit_ref)
    assert "✓ power_law_fit" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda n, loss: (3.0, 0.1), "alpha|a for"),  # a constant
    (lambda n, loss: (fit_ref(n, loss)[0], -fit_ref(n, loss)[1]), "wrong sign"),
    (lambda n, loss: (math.log(fit_ref(n, loss)[0]), fit_ref(n, loss)[1]), "log scale"),
    (lambda n, loss: tuple(np.polyfit(n, loss, 1)[::-1] * [1, -1]), "alpha|a for"),  # a straight line, not logs
    (lambda n, loss: (1.0, -np.polyfit(np.log(n), loss, 1)[0]), "alpha|a for"),  # only one axis logged
    (fit_two_points, "alpha|a for"),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_power_law_fit_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.power_law_fit(wrong)


# --------------------------------------------------------------------------- word_prob

def word_prob_ref(model, tok, context, word):
    return float(word_logprob(model, tok, [context], [word])[0].exp())


def word_prob_by_hand(model, tok, context, word):
    with torch.no_grad():
        p, text = 1.0, context
        for ch in word:
            probs = torch.softmax(model(torch.tensor([tok.encode(text)]))[0][0, -1], -1)
            p *= float(probs[tok.stoi[ch]])
            text += ch
        probs = torch.softmax(model(torch.tensor([tok.encode(text)]))[0][0, -1], -1)
        return p * sum(float(probs[i]) for c, i in tok.stoi.items() if not c.isalpha())


def chars_only(model, tok, context, word):
    with torch.no_grad():
        p, text = 1.0, context
        for ch in word:
            p *= float(torch.softmax(model(torch.tensor([tok.encode(text)]))[0][0, -1], -1)[tok.stoi[ch]])
            text += ch
        return p


def first_char_only(model, tok, context, word):
    with torch.no_grad():
        return float(torch.softmax(model(torch.tensor([tok.encode(context)]))[0][0, -1], -1)[tok.stoi[word[0]]])


def all_from_context(model, tok, context, word):
    """Every character's probability read from the context's last position, not after the ones before it."""
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([tok.encode(context)]))[0][0, -1], -1)
        return math.prod(float(probs[tok.stoi[ch]]) for ch in word)


@pytest.mark.parametrize("answer", [word_prob_ref, word_prob_by_hand])
@pytest.mark.parametrize("attempt", REPEATS)
def test_word_prob_accepts_correct_methods(answer, attempt, capsys):
    check.word_prob(answer)
    assert "✓ word_prob" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda model, tok, context, word: 0.01, "P\\("),  # a constant
    (chars_only, "must also end"),
    (first_char_only, "too high"),
    (all_from_context, "P\\(|too high"),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_word_prob_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.word_prob(wrong)


# --------------------------------------------------------------------------- format_allowed

def allowed_ref(prefix, pieces, pattern):
    return [regex.fullmatch(pattern, prefix + p, partial=True) is not None for p in pieces]


@pytest.mark.parametrize("attempt", REPEATS)
def test_format_allowed_accepts_reference(attempt, capsys):
    check.format_allowed(allowed_ref)
    check.format_allowed(lambda prefix, pieces, pattern: torch.tensor(allowed_ref(prefix, pieces, pattern)))
    assert capsys.readouterr().out.count("✓ format_allowed") == 2


@pytest.mark.parametrize("wrong, hint", [
    (lambda prefix, pieces, pattern: [True] * len(pieces), "should be|whole text"),  # a constant
    (lambda prefix, pieces, pattern: [regex.match(pattern, prefix + p) is not None for p in pieces], "whole text|should be"),
    (lambda prefix, pieces, pattern: [regex.fullmatch(pattern, prefix + p) is not None for p in pieces], "partial|should be"),
    (lambda prefix, pieces, pattern: [regex.fullmatch(pattern, p, partial=True) is not None for p in pieces],
     "ignores the prefix|should be"),
    (lambda prefix, pieces, pattern: allowed_ref(prefix, pieces, pattern)[:-1], "one True/False per piece"),
    (lambda prefix, pieces, pattern: [regex.match(pattern, prefix + p, partial=True) is not None for p in pieces],
     "already matches in full|should be"),  # partial matching that lets text run past a full match
    (lambda prefix, pieces, pattern: [regex.search(pattern, prefix + p, partial=True) is not None for p in pieces],
     "already matches in full|should be|whole text"),
    (lambda prefix, pieces, pattern: allowed_ref(prefix, pieces, r"[0-9]{2}:[0-9]{2}"), "should be|whole text|partial|ignores"),  # ignores `pattern`
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_format_allowed_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.format_allowed(wrong)


# --------------------------------------------------------------------------- copied_share

def share_ref(generated, reference, n):
    have = {tuple(reference[i:i + n]) for i in range(len(reference) - n + 1)}
    grams = [tuple(generated[i:i + n]) for i in range(len(generated) - n + 1)]
    return sum(g in have for g in grams) / len(grams)


@pytest.mark.parametrize("attempt", REPEATS)
def test_copied_share_accepts_reference(attempt, capsys):
    from minigpt.overlap import ngram_share

    check.copied_share(share_ref)
    check.copied_share(ngram_share)
    assert capsys.readouterr().out.count("✓ copied_share") == 2


# a wrong number may happen to equal what a specific mistake gives; any of the hints is then fair
ANY_SHARE_HINT = "copied share|every occurrence|last n-gram|whole words"


def share_distinct(generated, reference, n):
    have = {tuple(reference[i:i + n]) for i in range(len(reference) - n + 1)}
    grams = {tuple(generated[i:i + n]) for i in range(len(generated) - n + 1)}
    return sum(g in have for g in grams) / len(grams)


def share_missing_last(generated, reference, n):
    have = {tuple(reference[i:i + n]) for i in range(len(reference) - n + 1)}
    grams = [tuple(generated[i:i + n]) for i in range(len(generated) - n)]
    return sum(g in have for g in grams) / len(grams)


def share_joined_text(generated, reference, n):  # "or not" is found inside "for not"
    text = " ".join(reference)
    grams = [" ".join(generated[i:i + n]) for i in range(len(generated) - n + 1)]
    return sum(g in text for g in grams) / len(grams)


@pytest.mark.parametrize("wrong, hint", [
    (lambda generated, reference, n: 0.5, ANY_SHARE_HINT),  # a constant
    (share_distinct, "every occurrence"),
    (share_missing_last, "last n-gram"),
    (lambda generated, reference, n: share_ref(generated, reference, n - 1), ANY_SHARE_HINT),  # n - 1
    (lambda generated, reference, n: sum(w in reference for w in generated) / len(generated), ANY_SHARE_HINT),  # words
    (share_joined_text, "compare whole words"),
    (lambda generated, reference, n: share_ref(generated, reference, 2), ANY_SHARE_HINT),  # ignores `n`
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_copied_share_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.copied_share(wrong)
