"""Checks for lesson 13 (a GPT on Tang poems): the rhyme of a final, macro F1 by hand, bits per byte, and the
share of couplets copied from training.

Every check draws fresh inputs (a new seed each call), including cases where a shortcut gives another answer than
the right one: one-letter finals, a class never predicted, text that mixes 1-, 3- and 4-byte characters, poems
that repeat a copied couplet or end with a blank line.
"""

from __future__ import annotations

import math

import torch

from ..i18n import _
from ..poetry import rhyme_of as _rhyme_ref
from ._core import Check, fresh_generator

__all__ = ["rhyme_of", "macro_f1", "bits_per_byte", "copied_couplets"]

# pypinyin's strict finals (Style.FINALS, strict=True), grouped by what the rule does to them
_KEEP = ["a", "o", "e", "i", "u", "v", "er", "ai", "ei", "ao", "ou", "an", "en", "ang", "eng", "ong"]
_MEDIAL_VOWEL = ["ia", "ie", "iao", "iou", "ian", "iang", "iong", "ua", "uo", "uai", "uei", "uan", "uang", "ve", "van"]
_MEDIAL_N = ["in", "ing", "uen", "ueng", "vn"]


def _pick(g, items, k):
    order = torch.randperm(len(items), generator=g).tolist()
    return [items[i] for i in order[:k]]


def rhyme_of(fn):
    """``fn(final)`` -> its rhyme: the medial i/u/v dropped when a vowel or n follows it; a bare n becomes en."""
    c = Check("rhyme_of")
    g = fresh_generator()
    finals = _pick(g, _KEEP, 6) + _pick(g, _MEDIAL_VOWEL, 6) + _pick(g, _MEDIAL_N, 3) + ["i", "u", "v", "in"]
    finals = [finals[i] for i in torch.randperm(len(finals), generator=g).tolist()]
    got = {}
    for f in finals:
        got[f] = c.call(fn, f)
        if not isinstance(got[f], str):
            c.fail(_("for the final {final!r} you return {type}; return the rhyme as a string, e.g. 'ang'").format(
                final=f, type=type(got[f]).__name__))
    wrong = [f for f in finals if got[f] != _rhyme_ref(f)]
    for f in wrong:  # the most telling mistake first: a final that has no medial was changed
        if f in _KEEP:
            c.fail(_("the final {final!r} has no medial: a one-letter final, or one whose first letter is not "
                     "i, u or v followed by a vowel or n, is its own rhyme").format(final=f))
    for f in wrong:
        if got[f] == f:
            c.fail(_("the final {final!r} keeps its medial; drop the i, u or v before the main vowel (iang and "
                     "uang rhyme with ang)").format(final=f))
    for f in wrong:
        if f in _MEDIAL_N and got[f] == f[1:]:
            c.fail(_("the final {final!r} becomes {got!r}, a bare n or ng; in, ing, uen, vn rhyme with en and eng, "
                     "so put back the e").format(final=f, got=got[f]))
    if wrong:
        c.fail(_("the rhyme of the final {final!r} is not {got!r}; drop only the medial before a vowel or n").format(
            final=wrong[0], got=got[wrong[0]]))
    c.count += len(finals)
    c.done()


def _f1s(y, p, K):
    f1s = []
    for k in range(K):
        tp = int(((p == k) & (y == k)).sum())
        pred, true = int((p == k).sum()), int((y == k).sum())
        prec = tp / pred if pred else 0.0
        rec = tp / true if true else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return f1s


def macro_f1(fn):
    """``fn(y_true, y_pred, n_classes)`` -> the mean over the classes of each class's F1 (0 when undefined)."""
    c = Check("macro_f1")
    g = fresh_generator()
    for case in range(3):
        K = int(torch.randint(4, 8, (1,), generator=g))
        n = int(torch.randint(60, 150, (1,), generator=g))
        weights = torch.tensor([4.0] + [1.0] * (K - 1))  # one big class, as 白居易 among the poets
        y = torch.multinomial(weights, n, replacement=True, generator=g)
        y[:K] = torch.arange(K)  # every class occurs
        noise = torch.randint(0, K, (n,), generator=g)
        keep = torch.rand(n, generator=g) < [0.6, 0.4, 0.75][case]
        p = torch.where(keep, y, noise)
        if case > 0:
            p[p == K - 1] = 0  # the last class is never predicted: precision 0/0 is 0, its F1 is 0
        got = c.call(fn, y.clone(), p.clone(), K)
        try:
            got = float(got)
        except (TypeError, ValueError):
            c.fail(_("return one number, got {type}").format(type=type(got).__name__))
        if math.isnan(got):
            c.fail(_("you return NaN; a precision or recall whose denominator is 0 counts as 0 (a class never predicted)"))
        f1s = _f1s(y, p, K)
        ref = sum(f1s) / K
        if not math.isclose(got, ref, abs_tol=1e-6):
            acc = float((y == p).float().mean())
            if math.isclose(got, acc, abs_tol=1e-6):
                c.fail(_("that is the accuracy (the micro average); macro F1 averages each class's F1"))
            counts = torch.bincount(y, minlength=K).tolist()
            if math.isclose(got, sum(f * m for f, m in zip(f1s, counts)) / n, abs_tol=1e-6):
                c.fail(_("you weight each class by its size (support); macro F1 gives every class the same weight"))
            c.fail(_("macro F1 = {got:.4f} is off; compute precision, recall and F1 for each class, then take the "
                     "plain mean of the F1s (not the F1 of the mean precision and recall)").format(got=got))
        c.count += 1
    c.done()


_ASCII = "abcdefghijklmnopqrstuvwxyz ,.;'"
_HAN = "山河城春草木深花泪鸟心烽火月家书金白头风急天高猿哀"
_CJK_PUNCT = "，。？！"
_WIDE = "😀🌙🌸"  # 4 bytes each in UTF-8


def _text(g, alphabet, n):
    return "".join(alphabet[i] for i in torch.randint(len(alphabet), (n,), generator=g).tolist())


def bits_per_byte(fn):
    """``fn(total_nats, text)`` -> total_nats in bits, per UTF-8 byte of ``text``."""
    c = Check("bits_per_byte")
    g = fresh_generator()
    n = lambda: int(torch.randint(20, 80, (1,), generator=g))  # noqa: E731
    texts = [_text(g, _HAN + _CJK_PUNCT, n()), _text(g, _ASCII, n()),
             _text(g, _ASCII + _HAN, n()) + _text(g, _WIDE, 3), _text(g, _HAN + "\n", n())]
    for text in texts:
        nats = float(torch.rand(1, generator=g)) * 3 * len(text) + 5
        got = c.call(fn, nats, text)
        try:
            got = float(got)
        except (TypeError, ValueError):
            c.fail(_("return one number, got {type}").format(type=type(got).__name__))
        n_bytes = len(text.encode("utf-8"))
        ref = nats / (math.log(2) * n_bytes)
        if not math.isclose(got, ref, rel_tol=1e-6):
            if math.isclose(got, nats / (math.log(2) * len(text)), rel_tol=1e-6):
                c.fail(_("you divide by the characters; a Chinese character is 3 bytes in UTF-8 (len(text.encode()))"))
            if math.isclose(got, nats / n_bytes, rel_tol=1e-6):
                c.fail(_("that is nats per byte; one bit is ln 2 nats"))
            if math.isclose(got, nats / (math.log(2) * 3 * len(text)), rel_tol=1e-6):
                c.fail(_("not every character is 3 bytes: ASCII takes 1, Chinese 3, an emoji 4; count the UTF-8 bytes"))
            c.number(got, ref, _("bits per byte of a text of {n} characters").format(n=len(text)), tol=1e-6 * ref)
        c.count += 1
    c.done()


def _couplet(g, n):
    return _text(g, _HAN, n) + "，" + _text(g, _HAN, n) + "。"


def _couplet_draw(g, case):
    """One draw of poems and train poems for :func:`copied_couplets` (``case`` 1 adds blank lines, 2 half-copies)."""
    n = [5, 7][int(torch.randint(2, (1,), generator=g))]
    train_lines = [_couplet(g, n) for _i in range(16)]
    train = ["\n".join(train_lines[i:i + 4]) + "\n\n" for i in range(0, 16, 4)]
    poems = []
    for _i in range(int(torch.randint(3, 6, (1,), generator=g))):
        lines = []
        for _i in range(4):
            r = float(torch.rand(1, generator=g))
            if r < 0.3:
                lines.append(train_lines[int(torch.randint(16, (1,), generator=g))])
            elif r < 0.4 and lines:
                lines.append(lines[-1])  # a repeated couplet counts every time
            else:
                lines.append(_couplet(g, n))
        poems.append("\n".join(lines) + ("\n\n" if case == 1 else ""))
    poems.append("\n".join([train_lines[0], train_lines[0], _couplet(g, n), train_lines[5]]))
    if case == 2:  # half of a train couplet is not a copied couplet
        poems.append("\n".join([train_lines[3].split("，")[0] + "，" + _text(g, _HAN, n) + "。"] * 2))
    return train_lines, train, poems


def _couplet_shortcuts(train_lines, poems):
    """The right share and what each typical mistake gives on these poems."""
    seen = set(train_lines)
    lines = [ln for p in poems for ln in p.strip().split("\n") if ln.strip()]
    all_lines = [ln for p in poems for ln in p.split("\n")]
    uniq = set(lines)
    halves = {ln.split("，")[0] for ln in train_lines}
    return {"ref": sum(ln in seen for ln in lines) / len(lines),
            "half": sum(ln.split("，")[0] in halves for ln in lines) / len(lines),
            "blank": sum(ln in seen for ln in all_lines) / len(all_lines),
            "distinct": sum(ln in seen for ln in uniq) / len(uniq),
            "per_poem": sum(any(ln in seen for ln in p.split("\n")) for p in poems) / len(poems)}


def copied_couplets(fn):
    """``fn(poems, train_poems)`` -> the share of the couplets (lines) of ``poems``, every occurrence counted, that
    occur as a whole couplet of ``train_poems``; blank lines are not couplets."""
    c = Check("copied_couplets")
    g = fresh_generator()
    for case in range(3):
        while True:  # redraw until every mistake gives its own value (blank lines and half-copies only tell where
            # there are some)
            train_lines, train, poems = _couplet_draw(g, case)
            v = _couplet_shortcuts(train_lines, poems)
            names = ["ref", "distinct", "per_poem"] + (["blank"] if case == 1 else []) + (["half"] if case == 2 else [])
            if all(abs(v[a] - v[b]) > 1e-6 for k, a in enumerate(names) for b in names[k + 1:]):
                break
        got = c.call(fn, [p for p in poems], [t for t in train])
        try:
            got = float(got)
        except (TypeError, ValueError):
            c.fail(_("return one number (a share between 0 and 1), got {type}").format(type=type(got).__name__))
        if not math.isclose(got, v["ref"], abs_tol=1e-9):
            if math.isclose(got, v["blank"], abs_tol=1e-9):
                c.fail(_("you count blank lines as couplets; a poem may end with a blank line, skip empty lines"))
            if math.isclose(got, v["distinct"], abs_tol=1e-9):
                c.fail(_("you count each distinct couplet once; a couplet that occurs twice counts twice"))
            if math.isclose(got, v["per_poem"], abs_tol=1e-9):
                c.fail(_("that is the share of poems with a copied couplet; count couplets, not poems"))
            c.fail(_("the share = {got:.4f} is off; divide the couplets found whole in train by all couplets "
                     "(lines) of the poems").format(got=got))
        c.count += 1
    c.done()
