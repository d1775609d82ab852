"""Each lesson-13 check accepts the reference answer and rejects typical mistakes, a constant among them.

The checks draw new inputs every call, so each test runs the check several times."""

import math

import pytest

from minigpt import checks as check
from minigpt import poetry
from minigpt.checks import CheckFailed

REPEATS = range(3)


# --------------------------------------------------------------------------- rhyme_of

def rhyme_ref(final):
    if len(final) > 1 and final[0] in "iuv" and final[1] in "aeon":
        final = final[1:]
        if final[0] == "n":
            final = "e" + final
    return final


def test_the_reference_is_the_package_rule():
    for f in ("iang", "uang", "in", "ing", "vn", "uen", "i", "u", "v", "er", "ong", "iong", "uei", "iou", "ve"):
        assert rhyme_ref(f) == poetry.rhyme_of(f)


@pytest.mark.parametrize("attempt", REPEATS)
def test_rhyme_of_accepts_reference(attempt, capsys):
    check.rhyme_of(rhyme_ref)
    assert "✓ rhyme_of" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda f: "ang", "rhyme_of"),  # a constant (whichever hint it meets)
    (lambda f: f, "keeps its medial"),  # nothing dropped
    (lambda f: f[1:] if len(f) > 1 else f, "no medial"),  # the first letter always dropped
    (lambda f: f[1:] if len(f) > 1 and f[0] in "iuv" and f[1] in "aeon" else f, "put back the e"),  # in -> n
    (lambda f: f.lstrip("iuv") or f, "put back the e|no medial"),  # every leading i/u/v stripped
    (lambda f: 3, "as a string"),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_rhyme_of_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.rhyme_of(wrong)


# --------------------------------------------------------------------------- macro_f1

def per_class(y, p, K):
    out = []
    for k in range(K):
        tp = int(((p == k) & (y == k)).sum())
        pred, true = int((p == k).sum()), int((y == k).sum())
        prec, rec = (tp / pred if pred else 0.0), (tp / true if true else 0.0)
        out.append((prec, rec, 2 * prec * rec / (prec + rec) if prec + rec else 0.0))
    return out


def macro_ref(y, p, K):
    return sum(f for _, _, f in per_class(y, p, K)) / K


def accuracy(y, p, K):
    return float((y == p).float().mean())


def weighted(y, p, K):
    counts = [int((y == k).sum()) for k in range(K)]
    return sum(f * c for (_, _, f), c in zip(per_class(y, p, K), counts)) / len(y)


def f1_of_means(y, p, K):
    rows = per_class(y, p, K)
    P, R = sum(r[0] for r in rows) / K, sum(r[1] for r in rows) / K
    return 2 * P * R / (P + R)


def nan_when_undefined(y, p, K):
    out = []
    for k in range(K):
        tp = int(((p == k) & (y == k)).sum())
        pred, true = int((p == k).sum()), int((y == k).sum())
        prec, rec = (tp / pred if pred else math.nan), tp / true
        out.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return sum(out) / K


def present_classes_only(y, p, K):
    rows = per_class(y, p, K)
    seen = set(p.tolist())
    return sum(rows[k][2] for k in seen) / len(seen)


@pytest.mark.parametrize("attempt", REPEATS)
def test_macro_f1_accepts_reference(attempt, capsys):
    check.macro_f1(macro_ref)
    assert "✓ macro_f1" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda y, p, K: 0.5, "macro_f1"),  # a constant (whichever hint it meets)
    (accuracy, "accuracy"),
    (weighted, "weight each class by its size"),
    (f1_of_means, "not the F1 of the mean"),
    (nan_when_undefined, "NaN"),
    (present_classes_only, "is off"),  # averages only over the predicted classes
    (lambda y, p, K: "0.5", "is off"),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_macro_f1_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.macro_f1(wrong)


# --------------------------------------------------------------------------- bits_per_byte

def bpb_ref(nats, text):
    return nats / (math.log(2) * len(text.encode("utf-8")))


@pytest.mark.parametrize("attempt", REPEATS)
def test_bits_per_byte_accepts_reference(attempt, capsys):
    check.bits_per_byte(bpb_ref)
    assert "✓ bits_per_byte" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda nats, text: 1.0, "bits_per_byte"),  # a constant (whichever hint it meets)
    (lambda nats, text: nats / (math.log(2) * len(text)), "divide by the characters"),
    (lambda nats, text: nats / len(text.encode("utf-8")), "nats per byte"),
    (lambda nats, text: nats / (math.log(2) * 3 * len(text)), "not every character is 3 bytes"),
    (lambda nats, text: nats / (math.log(10) * len(text.encode("utf-8"))), "too"),
    (lambda nats, text: None, "one number"),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_bits_per_byte_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.bits_per_byte(wrong)


# --------------------------------------------------------------------------- copied_share

def copied_ref(poems, train):
    seen = {ln for t in train for ln in t.strip().split("\n") if ln.strip()}
    lines = [ln for p in poems for ln in p.strip().split("\n") if ln.strip()]
    return sum(ln in seen for ln in lines) / len(lines)


def blank_lines_counted(poems, train):
    seen = {ln for t in train for ln in t.split("\n")}
    lines = [ln for p in poems for ln in p.split("\n")]
    return sum(ln in seen and ln != "" for ln in lines) / len(lines)


def distinct_couplets(poems, train):
    seen = {ln for t in train for ln in t.strip().split("\n")}
    lines = {ln for p in poems for ln in p.strip().split("\n") if ln}
    return sum(ln in seen for ln in lines) / len(lines)


def per_poem(poems, train):
    seen = {ln for t in train for ln in t.strip().split("\n")}
    return sum(any(ln in seen for ln in p.split("\n")) for p in poems) / len(poems)


def substring(poems, train):
    joined = "".join(train)
    lines = [ln for p in poems for ln in p.strip().split("\n") if ln]
    return sum(ln.split("，")[0] in joined for ln in lines) / len(lines)  # half a couplet found = copied


@pytest.mark.parametrize("attempt", REPEATS)
def test_copied_share_accepts_reference_and_the_package(attempt, capsys):
    check.copied_couplets(copied_ref)
    check.copied_couplets(poetry.copied_share)
    assert capsys.readouterr().out.count("✓ copied_couplets") == 2


@pytest.mark.parametrize("wrong, hint", [
    (lambda poems, train: 0.25, "copied_couplets"),  # a constant (whichever hint it meets)
    (blank_lines_counted, "blank lines"),
    (distinct_couplets, "distinct couplet"),
    (per_poem, "share of poems"),
    (substring, "is off"),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_copied_share_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.copied_couplets(wrong)
