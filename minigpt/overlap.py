"""Memorisation vs generalisation: how much of a generated text already exists in the training text.

A word n-gram of the generated text is *copied* when the same n words occur somewhere in the training
text. The share of copied n-grams means little alone: real, new text by the same author also repeats
phrases ("my good lord"). The baseline is the held-out text: the share of *its* n-grams that occur in
the training text. A model that copies more than held-out text does is reciting; one that copies about
as much writes new text from old pieces.

    index = NgramIndex(words(train_text))
    index.share(words(generated), n=6)       # copied share of the 6-grams
    index.longest_span(words(generated))     # the longest run of words found verbatim in training

Copied n-grams measure novelty: how much of what the model writes is new. Memorisation is the other
direction, measured by extraction (Carlini et al. 2021): prompt the model with the start of a training
passage and count how often greedy decoding gives back the exact continuation. :func:`extraction_rate`
does it; the same on held-out passages, never trained on, is its baseline.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from .generate import generate

__all__ = ["words", "ngrams", "NgramIndex", "ngram_share", "extraction_rate"]

_WORD = re.compile(r"[a-z']+")


def words(text: str) -> list[str]:
    """The words of ``text``, lower-cased, punctuation and line breaks dropped ("I' the" -> ["i'", "the"])."""
    return _WORD.findall(text.lower())


def ngrams(seq: Sequence, n: int) -> list[tuple]:
    """Every run of ``n`` consecutive items, overlapping: ``len(seq) - n + 1`` tuples (none if shorter)."""
    if n <= 0:
        raise ValueError(f"n must be a positive integer, got {n}")
    return [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]


class NgramIndex:
    """The n-grams of a reference word list, for every n, built the first time an n is asked for.

    Each n-gram is stored as its 64-bit hash, so a few hundred thousand words stay small for every n;
    two different n-grams share a hash with a probability of about 1e-9 here.
    """

    def __init__(self, reference: Sequence[str]):
        self.words = list(reference)
        self._sets: dict[int, set[int]] = {}

    def _set(self, n: int) -> set[int]:
        if n not in self._sets:
            w = self.words
            self._sets[n] = {hash(tuple(w[i:i + n])) for i in range(len(w) - n + 1)}
        return self._sets[n]

    def __contains__(self, gram) -> bool:
        gram = tuple(gram)
        return len(gram) > 0 and hash(gram) in self._set(len(gram))

    def counts(self, seq: Sequence[str], n: int) -> tuple[int, int]:
        """(n-grams of ``seq`` found in the reference, n-grams of ``seq``), every occurrence counted."""
        grams = ngrams(seq, n)
        found = self._set(n)
        return sum(hash(g) in found for g in grams), len(grams)

    def share(self, seqs: Sequence[str] | Sequence[Sequence[str]], n: int) -> float:
        """The share of the n-grams of ``seqs`` (every occurrence counted) found in the reference; NaN if
        none. ``seqs`` is one word list, or several (n-grams never cross from one into the next)."""
        if seqs and not isinstance(seqs[0], str):
            found, total = map(sum, zip(*(self.counts(s, n) for s in seqs))) if len(seqs) else (0, 0)
        else:
            found, total = self.counts(seqs, n)
        return found / total if total else float("nan")

    def longest_span(self, seq: Sequence[str]) -> list[str]:
        """The longest run of consecutive words of ``seq`` that occurs verbatim in the reference
        (the first one, if several are as long)."""
        seq = list(seq)
        best, where = 0, 0
        for i in range(len(seq)):
            # a run of length best + 1 at i would be a new record; keep growing while it is found
            while i + best + 1 <= len(seq) and tuple(seq[i:i + best + 1]) in self:
                best, where = best + 1, i
        return seq[where:where + best]


def ngram_share(generated: Sequence[str], reference: Sequence[str], n: int) -> float:
    """The share of the word n-grams of ``generated`` that also occur in ``reference`` (see :class:`NgramIndex`)."""
    return NgramIndex(reference).share(generated, n)


@torch.no_grad()
def extraction_rate(model, tokenizer, text: str, n: int = 200, prefix: int = 32, length: int = 32,
                    seed: int = 0) -> dict[str, float]:
    """Prompt ``model`` with ``n`` passages of ``text`` (random starts), ``prefix`` tokens each, decode
    ``length`` tokens greedily and compare with the text's own continuation. Returns ``exact``, the share
    of passages continued exactly, and ``matched``, the mean number of tokens right before the first miss."""
    if prefix < 1 or length < 1 or prefix + length > model.config.block_size:
        raise ValueError(f"prefix {prefix} + length {length} must be positive and fit the model's window of "
                         f"{model.config.block_size} tokens")
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    if len(ids) <= prefix + length:
        raise ValueError(f"the text has {len(ids)} tokens: too short for a passage of {prefix} + {length}")
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(ids) - prefix - length + 1, (n,), generator=g)
    passages = ids[starts[:, None] + torch.arange(prefix + length)]  # (n, prefix + length)
    device = next(model.parameters()).device
    out = generate(model, passages[:, :prefix].to(device), length, temperature=0)[:, prefix:].cpu()
    right = out == passages[:, prefix:]
    return {"exact": float(right.all(1).double().mean()), "matched": float(right.cumprod(1).sum(1).double().mean())}
