"""Count-based n-gram language models: P(next token | the previous n-1 tokens), from counts.

A model of any order over any token sequences: the characters of names (a name is a string, one
token per character) or the words of Shakespeare (a line is a list of words). Every sequence is
padded with ``n-1`` start markers on the left and one end marker on the right, so the model also
learns how sequences begin and end; the NLL counts the end marker, as makemore does.

Smoothing, all of them proper distributions (they sum to 1 over the vocabulary for every context,
including contexts never seen in training):

- ``"none"``: maximum likelihood, count(h, w) / count(h). Unseen events get probability 0 (so a
  test set with one of them has infinite perplexity); an unseen context gets the uniform distribution.
- ``"add-k"``: (count(h, w) + k) / (count(h) + k V).
- ``"interpolation"``: a mixture of the uniform, unigram, ..., n-gram maximum-likelihood estimates,
  with weights chosen by EM to maximise the likelihood of held-out (dev) data.
- ``"kneser-ney"``: interpolated Kneser-Ney (Chen & Goodman 1998): absolute discounting with
  continuation counts for the lower orders, one discount per order estimated from the counts.

    m = NGramModel(order=2, smoothing="add-k", k=1.0).fit(names["train"])
    m.nll(names["dev"]), m.perplexity(names["dev"]), m.sample(seed=0)
"""

from __future__ import annotations

import math
import random
import re
import string
from collections import Counter

import numpy as np
import torch

from .config import SMOOTHINGS  # kept torch-free for the command line's --help
from .data import names_split, shakespeare_split

# The 27 symbols of the names data: '.' marks both the start and the end of a name (makemore).
CHARS = ["."] + list(string.ascii_lowercase)
stoi = {c: i for i, c in enumerate(CHARS)}
itos = dict(enumerate(CHARS))


def bigram_counts(words: list[str]) -> torch.Tensor:
    """The (27, 27) int64 matrix N[i, j] = how often character j follows character i, '.' = start/end."""
    N = torch.zeros((len(CHARS), len(CHARS)), dtype=torch.int64)
    for w in words:
        chs = ["."] + list(w) + ["."]
        for a, b in zip(chs, chs[1:]):
            N[stoi[a], stoi[b]] += 1
    return N


class NGramModel:
    """An n-gram language model of order ``order`` (2 = bigram) fitted from counts.

    ``bos``/``eos`` are the start and end markers ('.' for both, like makemore; use ``"<s>"`` and
    ``"</s>"`` for words). With ``unk`` set (e.g. ``"<unk>"``), training tokens seen fewer than
    ``min_count`` times, and test tokens not in the vocabulary, become ``unk``; without it an unknown
    test token has probability 0. ``vocab`` adds tokens the model predicts though training never saw them
    (e.g. every character of a data set, so held-out text has no unknown token and smoothing gives each a share).
    """

    def __init__(self, order: int = 2, smoothing: str = "add-k", k: float = 1.0, *,
                 discount: float | None = None, lambdas: list[float] | None = None,
                 bos: str = ".", eos: str = ".", unk: str | None = None, min_count: int = 1, vocab=None):
        if not isinstance(order, int) or isinstance(order, bool) or order < 1:
            raise ValueError(f"order must be an integer >= 1 (1 = unigram, 2 = bigram), got {order!r}")
        if smoothing not in SMOOTHINGS:
            raise ValueError(f"unknown smoothing {smoothing!r}; choose one of: {', '.join(SMOOTHINGS)}")
        k = float(k)
        if not k >= 0 or math.isinf(k):
            raise ValueError(f"k must be a finite number >= 0 (add-k adds k to every count), got {k}")
        if discount is not None and not 0 < discount <= 1:
            raise ValueError(f"the Kneser-Ney discount must be in (0, 1], got {discount}")
        if lambdas is not None and len(lambdas) != order + 1:
            raise ValueError(f"lambdas needs {order + 1} weights (uniform, then orders 1..{order}), got {len(lambdas)}")
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if min_count > 1 and unk is None:
            raise ValueError("min_count > 1 maps rare words to an unknown token; pass unk='<unk>' too")
        self.order, self.smoothing, self.k = order, smoothing, k
        self.discount, self.lambdas = discount, None if lambdas is None else [float(x) for x in lambdas]
        self.bos, self.eos, self.unk, self.min_count = bos, eos, unk, min_count
        self.extra_vocab = None if vocab is None else sorted(set(vocab))
        if self.extra_vocab is not None and bos in self.extra_vocab:
            raise ValueError(f"vocab contains the start marker {bos!r}; pass other markers, e.g. bos='<s>', eos='</s>'")
        self.fitted = False

    def __repr__(self) -> str:
        extra = {"add-k": f", k={self.k:g}", "kneser-ney": "", "interpolation": "", "none": ""}[self.smoothing]
        return f"NGramModel(order={self.order}, smoothing={self.smoothing!r}{extra})"

    # ----- fitting -------------------------------------------------------------------------------
    def fit(self, train_seqs, dev_seqs=None) -> NGramModel:
        """Count every n-gram of ``train_seqs``; ``dev_seqs`` choose the interpolation weights.

        Without ``dev_seqs``, interpolation holds out the last 10% of ``train_seqs`` to choose them.
        Returns ``self``.
        """
        train_seqs = list(train_seqs)
        if not train_seqs:
            raise ValueError("fit: there are no training sequences")
        self._str_input = isinstance(train_seqs[0], str)
        freq = Counter(t for s in train_seqs for t in s)
        for marker in {self.bos, self.eos}:
            if marker in freq:
                raise ValueError(f"the marker {marker!r} occurs in the training data; "
                                 "pass other markers, e.g. bos='<s>', eos='</s>'")
        if self.unk is not None and self.unk in freq:
            raise ValueError(f"the unknown token {self.unk!r} occurs in the training data; pick another unk")
        kept = sorted(t for t, c in freq.items() if c >= self.min_count)
        if self.extra_vocab is not None:
            kept = sorted(set(kept) | set(self.extra_vocab) - {self.eos})
        # The tokens the model predicts: end marker, unknown token, then the rest in sorted order.
        self.vocab = [self.eos] + ([self.unk] if self.unk is not None else []) + kept
        self._vocab_set = set(self.vocab)
        self.V = len(self.vocab)

        if self.smoothing == "interpolation" and self.lambdas is None and not dev_seqs:
            cut = max(1, int(0.9 * len(train_seqs)))
            if cut < len(train_seqs):
                self._count(train_seqs[:cut])
                self.lambdas = self._choose_lambdas(train_seqs[cut:])
        self._count(train_seqs)
        if self.smoothing == "interpolation" and self.lambdas is None:
            self.lambdas = self._choose_lambdas(dev_seqs) if dev_seqs else [1.0 / (self.order + 1)] * (self.order + 1)
        self.fitted = True
        return self

    def _map(self, tok):
        if tok in self._vocab_set or tok == self.bos:
            return tok
        return self.unk  # None when there is no unknown token: such an event has probability 0

    def events(self, seq):
        """The (context, token) events of one sequence that the model scores: contexts padded with
        the start marker, unknown tokens mapped to unk, the end marker last."""
        n1 = self.order - 1
        toks = [self.bos] * n1 + [self._map(t) for t in seq] + [self.eos]
        for i in range(n1, len(toks)):
            yield tuple(toks[i - n1:i]), toks[i]

    def _count(self, seqs):
        n = self.order
        top = Counter()
        for s in seqs:
            for h, w in self.events(s):
                top[h + (w,)] += 1
        # raw[j][g]: count of the j-gram g (context of j-1 tokens + token) as the end of an n-gram.
        raw = [None] * (n + 1)
        raw[n] = top
        for j in range(n - 1, 0, -1):
            c = Counter()
            for g, v in raw[j + 1].items():
                c[g[1:]] += v
            raw[j] = c
        self._raw = raw
        self._raw_ctx = [self._context_totals(raw[j]) if j else None for j in range(n + 1)]
        if self.smoothing == "kneser-ney":
            self._fit_kneser_ney()

    @staticmethod
    def _context_totals(grams):
        total, types = Counter(), Counter()
        for g, v in grams.items():
            total[g[:-1]] += v
            types[g[:-1]] += 1
        return total, types

    def _fit_kneser_ney(self):
        n = self.order
        # Lower orders use continuation counts: in how many distinct contexts a j-gram follows
        # something. A j-gram that starts with the start marker has nothing before it: raw count.
        kn = [None] * (n + 1)
        kn[n] = self._raw[n]
        for j in range(n - 1, 0, -1):
            cont = Counter()
            for g in self._raw[j + 1]:
                cont[g[1:]] += 1
            if j >= 2:
                for g, v in self._raw[j].items():
                    if g[0] == self.bos:
                        cont[g] = v
            kn[j] = cont
        self._kn = kn
        self._kn_ctx = [self._context_totals(kn[j]) if j else None for j in range(n + 1)]
        self.discounts = [None] * (n + 1)
        for j in range(1, n + 1):
            if self.discount is not None:
                self.discounts[j] = self.discount
                continue
            cc = Counter(v for v in kn[j].values() if v <= 2)
            n1, n2 = cc[1], cc[2]
            d = n1 / (n1 + 2 * n2) if n1 and n2 else 0.75  # Ney et al.'s estimate of the discount
            self.discounts[j] = min(max(d, 0.05), 0.95)

    def _choose_lambdas(self, dev_seqs, iters: int = 500):
        """EM for the mixture weights of the uniform and 1..n-gram estimates on held-out data."""
        # Events with probability 0 under every component (unknown tokens, no unk) carry no information.
        rows = [c for s in dev_seqs for h, w in self.events(s) if (c := self._components(h, w))[0] > 0]
        if not rows:
            return [1.0 / (self.order + 1)] * (self.order + 1)
        P = np.asarray(rows, dtype=np.float64)  # (events, order + 1)
        lam = np.full(self.order + 1, 1.0 / (self.order + 1))
        for _ in range(iters):
            r = P * lam  # (events, order + 1): responsibility of each component for each event
            r /= r.sum(1, keepdims=True)
            new = np.maximum(r.mean(0), 1e-6)
            new /= new.sum()
            done = np.abs(new - lam).max() < 1e-7
            lam = new
            if done:
                break
        return lam.tolist()

    # ----- probabilities -------------------------------------------------------------------------
    def _check_fitted(self):
        if not self.fitted:
            raise RuntimeError("this NGramModel is not fitted yet; call .fit(train_seqs) first")

    def _components(self, h, w):
        """[uniform, unigram, ..., n-gram] maximum-likelihood probabilities of w; an unseen context
        repeats the order below it."""
        if w is None:
            return [0.0] * (self.order + 1)
        comps = [1.0 / self.V]
        for j in range(1, self.order + 1):
            ctx = h[len(h) - (j - 1):] if j > 1 else ()
            total = self._raw_ctx[j][0].get(ctx, 0)
            comps.append(self._raw[j].get(ctx + (w,), 0) / total if total else comps[-1])
        return comps

    def _kn_prob(self, h, w, j):
        if j == 0:
            return 1.0 / self.V
        ctx = h[len(h) - (j - 1):] if j > 1 else ()
        lower = self._kn_prob(h, w, j - 1)
        total = self._kn_ctx[j][0].get(ctx, 0)
        if not total:
            return lower
        d = self.discounts[j]
        c = self._kn[j].get(ctx + (w,), 0)
        return max(c - d, 0.0) / total + d * self._kn_ctx[j][1][ctx] / total * lower

    def _prob(self, h, w):
        if w is None:
            return 0.0
        if self.smoothing == "kneser-ney":
            return self._kn_prob(h, w, self.order)
        if self.smoothing == "interpolation":
            return sum(lam * p for lam, p in zip(self.lambdas, self._components(h, w)))
        total = self._raw_ctx[self.order][0].get(h, 0)
        c = self._raw[self.order].get(h + (w,), 0)
        k = self.k if self.smoothing == "add-k" else 0.0
        if total + k * self.V == 0:
            return 1.0 / self.V  # a context never seen, no smoothing: nothing to go on but uniform
        return (c + k) / (total + k * self.V)

    def _context(self, context):
        context = tuple(context)
        n1 = self.order - 1
        context = (self.bos,) * max(0, n1 - len(context)) + context
        return tuple(self._map(t) for t in context[len(context) - n1:]) if n1 else ()

    def prob(self, context, token) -> float:
        """P(token | context). The context is padded with start markers, or cut to its last n-1 tokens."""
        self._check_fitted()
        tok = token if token in self._vocab_set else self.unk  # the start marker is never predicted
        return self._prob(self._context(context), tok)

    def distribution(self, context) -> dict:
        """{token: P(token | context)} over the whole vocabulary (sums to 1)."""
        self._check_fitted()
        h = self._context(context)
        return {w: self._prob(h, w) for w in self.vocab}

    def log_probs(self, seqs) -> list[float]:
        """Natural-log probability of every event (each token and each end marker), -inf when 0."""
        self._check_fitted()
        out = []
        for s in seqs:
            for h, w in self.events(s):
                p = self._prob(h, w)
                out.append(math.log(p) if p > 0 else -math.inf)
        return out

    def nll(self, seqs) -> float:
        """Mean negative log-likelihood per token in nats, end markers included; inf if any event has P = 0."""
        lp = self.log_probs(seqs)
        if not lp:
            raise ValueError("nll: the sequences contain no tokens to score")
        if any(x == -math.inf for x in lp):
            return math.inf
        return -math.fsum(lp) / len(lp)

    def perplexity(self, seqs) -> float:
        """exp(NLL): the effective number of equally likely choices per token (inf when NLL is inf)."""
        nll = self.nll(seqs)
        return math.inf if nll > 700 else math.exp(nll)

    def sample(self, rng=None, max_len: int = 100, *, seed: int | None = None):
        """One sequence sampled token by token until the end marker (or ``max_len`` tokens).

        ``rng`` is a seed, a ``random.Random``, or a ``torch.Generator``. Returns a string when the
        model was trained on strings (names), else a list of tokens.
        """
        self._check_fitted()
        if seed is not None:
            rng = seed
        if rng is None or isinstance(rng, int):
            rng = random.Random(rng)
        if isinstance(rng, torch.Generator):
            draw = lambda: torch.rand(1, generator=rng, dtype=torch.float64).item()
        else:
            draw = rng.random
        out = []
        while len(out) < max_len:
            dist = self.distribution(out)
            u, acc, tok = draw() * sum(dist.values()), 0.0, self.eos
            for w, p in dist.items():
                acc += p
                if u < acc and p > 0:
                    tok = w
                    break
            if tok == self.eos:
                break
            out.append(tok)
        return "".join(out) if self._str_input else out


# ----- data helpers ------------------------------------------------------------------------------
WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)*|[^\sa-z]")


def words_of(line: str) -> list[str]:
    """Lower-cased words and punctuation marks of one line: "Nay, I'll go!" -> nay , i'll go !"""
    return WORD_RE.findall(line.lower())


def shakespeare_sequences(level: str = "word", text: str | None = None) -> dict[str, list]:
    """Tiny Shakespeare as sequences, one per non-empty line: ``{"train", "val"}``.

    The course's two Shakespeare splits (``minigpt.data.shakespeare_split``): the first 90% is
    ``train``, the last 10% ``val``. ``level="word"`` gives lists of words, ``"char"`` gives strings.
    """
    if level not in ("word", "char"):
        raise ValueError(f"level must be 'word' or 'char', got {level!r}")
    split = shakespeare_split(text)
    conv = words_of if level == "word" else (lambda line: line)
    return {k: [conv(x) for x in part.splitlines() if x.strip()] for k, part in split.items()}


def load_sequences(data: str, level: str = "char") -> dict[str, list]:
    """The course's splits as sequences: ``names`` train/dev/test (characters), ``tinyshakespeare``
    train/val (``level`` word|char)."""
    if data == "names":
        if level != "char":
            raise ValueError("the names data set is character level only; drop --level or use --level char")
        return names_split()
    if data == "tinyshakespeare":
        return shakespeare_sequences(level)
    raise ValueError(f"unknown data set {data!r} for ngram; choose names or tinyshakespeare")


def model_for(data: str, level: str, order: int, smoothing: str, k: float = 1.0,
              discount: float | None = None, min_count: int | None = None) -> NGramModel:
    """An NGramModel with the course's markers for ``data``: '.' for names, <s> </s> <unk> otherwise."""
    if data == "names":
        if min_count not in (None, 1):
            raise ValueError("--min-count applies to tinyshakespeare only (names have a closed 27-symbol alphabet)")
        return NGramModel(order, smoothing, k, discount=discount)
    if min_count is None:
        min_count = 2 if level == "word" else 1
    return NGramModel(order, smoothing, k, discount=discount, bos="<s>", eos="</s>", unk="<unk>",
                      min_count=min_count)


def evaluate(data: str = "names", level: str = "char", order: int = 2, smoothing: str = "add-k",
             k: float = 1.0, discount: float | None = None, min_count: int | None = None) -> dict:
    """Fit on train; NLL and perplexity of every split (names: train, dev, test; tinyshakespeare:
    train, val). Interpolation weights are chosen on names' dev split, or on the last 10% of
    Shakespeare's train lines (val is what is reported, so it is not used to fit anything)."""
    model = model_for(data, level, order, smoothing, k, discount, min_count)
    seqs = load_sequences(data, level)
    model.fit(seqs["train"], seqs.get("dev"))
    result = {"data": data, "level": level, "order": order, "smoothing": smoothing, "vocab_size": model.V}
    if smoothing == "add-k":
        result["k"] = k
    for split in seqs:
        nll = model.nll(seqs[split])
        result[f"{split}_nll"] = nll
        result[f"{split}_perplexity"] = model.perplexity(seqs[split])
    result["model"] = model
    return result
