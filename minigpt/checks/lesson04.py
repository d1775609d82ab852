"""Checks for lesson 04 (tokenization): pair counts, one merge step, encoding with merges, training,
and tokens per character.

Every check draws fresh inputs each call (ids, texts, merges), so an answer that only fits the
fixed examples, or a hard-coded result, cannot pass.
"""

from __future__ import annotations

import torch

from ..bpe import BPETokenizer
from ..bpe import get_stats as _ref_stats
from ..bpe import merge as _ref_merge
from ..bpe import train as _ref_train
from ..i18n import _
from ._core import Check, fresh_generator

_WORDS = ["the", "cat", "sat", "on", "mat", "hat", "that", "was", "flat", "token", "pair", "merge", "aa", "ab"]


def _text(g, n_words: int) -> str:
    """A random text of common short words (so that pairs repeat), new on every call."""
    return " ".join(_WORDS[int(i)] for i in torch.randint(0, len(_WORDS), (n_words,), generator=g))


def _ids(g, n: int, vocab: int) -> list[int]:
    return torch.randint(0, vocab, (n,), generator=g).tolist()


__all__ = ["bpe_pair_counts", "bpe_merge", "bpe_encode", "bpe_train", "tokens_per_char"]


def bpe_pair_counts(fn) -> None:
    """``fn(ids) -> {(a, b): count}``: how often each adjacent pair occurs."""
    c = Check("bpe_pair_counts")
    cases = [
        [1, 2, 3, 1, 2],
        list(b"aaabdaaabac"),
        [7],
        [],
        [5, 5, 5, 5],
        list(b"hello world, hello tokens"),
    ]
    g = fresh_generator()
    cases += [_ids(g, int(torch.randint(5, 40, (1,), generator=g)), 4), list(_text(g, 12).encode())]
    for ids in cases:
        got = c.call(fn, list(ids))
        c.that(isinstance(got, dict), _("return a dict mapping (a, b) tuples to counts, got {type}").format(type=type(got).__name__))
        got = {tuple(k): int(v) for k, v in got.items()}
        ref = _ref_stats(ids)
        if len(ids) < 2:
            c.that(got == {}, _("a list of {n_ids} id(s) has no pairs, but you returned {n_got} entries").format(n_ids=len(ids), n_got=len(got)))
            continue
        extra = sorted(set(got) - set(ref))
        if extra:
            c.fail(_("for ids {ids}... you count pair {extra} that is not adjacent anywhere").format(ids=ids[:12], extra=extra[0]))
        missing = set(ref) - set(got)
        if missing:
            c.fail(_("for ids {ids}... you miss {n_missing} adjacent pair(s); is the last pair counted?").format(ids=ids[:12], n_missing=len(missing)))
        wrong = [p for p in ref if got[p] != ref[p]]
        if wrong:
            c.fail(_("for ids {ids}... pair {wrong} has count {got}; every position i with (ids[i], ids[i+1]) "
                     "== pair counts once, the last pair and overlaps included").format(ids=ids[:12], wrong=wrong[0], got=got[wrong[0]]))
        c.count += 1
    c.done()


def bpe_merge(fn) -> None:
    """``fn(ids, pair, idx) -> new list``: every occurrence of ``pair`` (left to right) becomes ``idx``."""
    c = Check("bpe_merge")
    cases = [
        ([1, 2, 3, 1, 2], (1, 2), 99),
        (list(b"aaabdaaabac"), (97, 97), 256),
        ([5, 5, 5], (5, 5), 7),
        ([5, 5, 5, 5], (5, 5), 7),
        ([1, 2], (2, 1), 9),
        ([3, 1, 2], (1, 2), 4),
        ([], (1, 2), 3),
    ]
    g = fresh_generator()
    for _i in range(3):  # random ids over a small alphabet: pairs, repeats and overlaps at unknown places
        ids = _ids(g, int(torch.randint(6, 30, (1,), generator=g)), 3)
        cases.append((ids, (ids[1], ids[2]), int(torch.randint(256, 300, (1,), generator=g))))
    for ids, pair, idx in cases:
        before = list(ids)
        got = c.call(fn, ids, pair, idx)
        c.that(ids == before, _("your function changed the input list; build and return a new list instead"))
        c.that(isinstance(got, list), _("return a list of ints, got {type}").format(type=type(got).__name__))
        ref = _ref_merge(before, pair, idx)
        if got != ref:
            first = next((i for i, (a, b) in enumerate(zip(got, ref)) if a != b), min(len(got), len(ref)))
            hint = (_("merging {pair} into {idx} in {before}: your result has length {n_got}, expected "
                      "{n_ref}; first difference at position {first}").format(pair=pair, idx=idx, before=before, n_got=len(got), n_ref=len(ref), first=first))
            if pair[0] == pair[1]:
                hint += _(" (a pair like (5, 5) must not overlap: after a match, skip both elements)")
            c.fail(hint)
        c.count += 1
    c.done()


def bpe_encode(fn) -> None:
    """``fn(text, merges) -> ids``: UTF-8 bytes, then apply the merge with the lowest rank until none applies."""
    c = Check("bpe_encode")
    # (b, c) is learned before (a, b): "abc" must become [a, bc], not [ab, c].
    cases = [
        ("abc", [(98, 99), (97, 98)]),
        ("aaabdaaabac", [(97, 97), (97, 98), (256, 257)]),
        ("hello", []),
        ("", [(97, 98)]),
        ("the cat sat on the mat", [(116, 104), (256, 101), (97, 116), (32, 258), (32, 257)]),
        ("你好你好", [(228, 189), (256, 160)]),
    ]

    g = fresh_generator()
    learned = _ref_train(_text(g, 40), 256 + int(torch.randint(5, 20, (1,), generator=g)), pattern=None)
    learned_merges = [pair for pair, _rank in sorted(learned.merges.items(), key=lambda kv: kv[1])]
    cases += [(_text(g, 8), learned_merges), (_text(g, 8)[::-1], learned_merges)]
    for text, merge_list in cases:
        merges = {pair: 256 + i for i, pair in enumerate(merge_list)}
        got = c.call(fn, text, dict(merges))
        c.that(isinstance(got, list), _("return a list of ints, got {type}").format(type=type(got).__name__))
        ref = BPETokenizer(merge_list, pattern=None).encode(text)
        if got != ref:
            hint = _("encoding {text!r} with {n_merges} merges gives {n_got} ids, expected {n_ref}").format(text=text, n_merges=len(merges), n_got=len(got), n_ref=len(ref))
            if text == "abc" and got == [257, 99]:
                hint = (_("encoding 'abc' with merges {(98, 99): 256, (97, 98): 257} is wrong: at each step merge the "
                        "pair with the LOWEST merge id (learned first), not the leftmost pair"))
            elif len(got) > len(ref):
                hint += _("; keep merging until no adjacent pair is in merges")
            c.fail(hint)
        c.count += 1
    c.done()


def bpe_train(fn) -> None:
    """``fn(text, vocab_size) -> merges`` (dict (a, b) -> new id, ids 256, 257, ... in order).

    Any tie-break between equally frequent pairs is accepted.
    """
    c = Check("bpe_train")
    g = fresh_generator()
    texts = [("aaabdaaabac", 259), ("the cat sat on the mat with the hat that was flat " * 3, 280),
             (_text(g, 30), 256 + int(torch.randint(5, 25, (1,), generator=g)))]
    for text, vocab_size in texts:
        merges = c.call(fn, text, vocab_size)
        c.that(isinstance(merges, dict), _("return a dict (a, b) -> id, got {type}").format(type=type(merges).__name__))
        c.that(len(merges) == vocab_size - 256,
               _("vocab_size {vocab_size} means {value} merges, you returned {n_merges}").format(vocab_size=vocab_size, value=vocab_size - 256, n_merges=len(merges)))
        ids = list(text.encode("utf-8"))
        for k, (pair, idx) in enumerate(merges.items()):
            c.that(int(idx) == 256 + k, _("merge number {k} should create id {value}, yours creates {idx}").format(k=k, value=256 + k, idx=idx))
            stats = _ref_stats(ids)
            pair = tuple(pair)
            c.that(pair in stats, _("merge {k} {pair} does not occur in the text at that step; did you apply each merge to "
                                    "the ids before counting again?").format(k=k, pair=pair))
            c.that(stats[pair] == max(stats.values()),
                   _("merge {k} {pair} occurs {stats} times, but another pair occurs more often at that step").format(k=k, pair=pair, stats=stats[pair]))
            ids = _ref_merge(ids, pair, 256 + k)
    c.done()


def tokens_per_char(fn) -> None:
    """``fn(tokenizer, text) -> float``: number of tokens divided by number of characters."""
    c = Check("tokens_per_char")
    tok = BPETokenizer([(97, 97), (97, 98), (256, 257)], pattern=None)
    g = fresh_generator()
    for text in ["aaabdaaabac", "你好", "héllo", "a", _text(g, int(torch.randint(2, 10, (1,), generator=g))),
                 "你好" * int(torch.randint(1, 5, (1,), generator=g)) + "ab"]:
        got = c.call(fn, tok, text)
        ref = len(tok.encode(text)) / len(text)
        c.number(got, ref, _("tokens per character of {text!r}").format(text=text), tol=1e-9)
    c.done()
