"""Text classification baselines: multinomial naive Bayes over characters.

    log P(class | text) = log P(class) + sum over the text's characters c of log P(c | class) + const,
    P(c | class) = (count(c, class) + alpha) / (total(class) + alpha V)     (add-alpha, V = training vocabulary)

Characters never seen in training carry no evidence and are skipped. With ``keep`` (a predicate on a
character, e.g. :func:`is_han`), only the characters it accepts count: punctuation is the same in every poem.

    nb = NaiveBayes(keep=is_han).fit(train_texts, train_labels)
    nb.predict(val_texts)   # class names; nb.classes lists them, nb.log_posteriors(...) scores them
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np


def is_han(ch: str) -> bool:
    """True for a character of the basic CJK Unified Ideographs block (U+4E00-U+9FFF)."""
    return "\u4e00" <= ch <= "\u9fff"


class NaiveBayes:
    """Multinomial naive Bayes over the characters of a text, with add-``alpha`` smoothing (1 = add-one)."""

    def __init__(self, alpha: float = 1.0, keep: Callable[[str], bool] | None = None):
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0 (add-alpha smoothing), got {alpha}")
        self.alpha, self.keep = float(alpha), keep
        self.classes: list = []

    def _chars(self, text: str) -> list[str]:
        return [c for c in text if self.keep is None or self.keep(c)]

    def fit(self, texts: list[str], labels: list) -> NaiveBayes:
        """Count each class's characters and the class frequencies; returns ``self``."""
        if len(texts) != len(labels) or not texts:
            raise ValueError(f"fit needs as many labels as texts, and at least one: got {len(texts)} texts, "
                             f"{len(labels)} labels")
        self.classes = sorted(set(labels))
        counts = {c: Counter() for c in self.classes}
        for text, label in zip(texts, labels):
            counts[label].update(self._chars(text))
        self.vocab = sorted(set().union(*counts.values()))
        self.index = {ch: i for i, ch in enumerate(self.vocab)}
        n = np.array([[counts[c][ch] for ch in self.vocab] for c in self.classes], dtype=np.float64)  # (K, V)
        self.log_likelihood = np.log(n + self.alpha) - np.log(n.sum(1, keepdims=True) + self.alpha * len(self.vocab))
        prior = Counter(labels)
        self.log_prior = np.log(np.array([prior[c] for c in self.classes], dtype=np.float64) / len(labels))
        return self

    def log_posteriors(self, texts: list[str]) -> np.ndarray:
        """(N, K) unnormalised log P(class | text), columns in the order of ``self.classes``."""
        if not self.classes:
            raise ValueError("call fit(texts, labels) before scoring")
        out = np.tile(self.log_prior, (len(texts), 1))
        for i, text in enumerate(texts):
            ids = [self.index[c] for c in self._chars(text) if c in self.index]
            out[i] += self.log_likelihood[:, ids].sum(1)
        return out

    def predict(self, texts: list[str]) -> list:
        """The most probable class of each text."""
        return [self.classes[k] for k in self.log_posteriors(texts).argmax(1)]

    def __repr__(self) -> str:
        return f"NaiveBayes(alpha={self.alpha:g}, classes={len(self.classes)})"
