"""Checks for lesson 01 (counting n-grams): bigram counts, add-k, NLL, choosing k, trigrams."""

from __future__ import annotations

import math

import torch

from ..ngram import CHARS, NGramModel, stoi
from ..ngram import bigram_counts as _reference_counts
from ._core import Check

__all__ = ["bigram_counts", "add_k_probs", "mean_nll", "choose_k", "trigram_probs", "dev_nll_by_order"]

_SMALL = ["emma", "ava", "x", "olivia", "zoe", "anna"]


def _names():
    from ..data import names_split

    s = names_split()
    return s["train"], s["dev"]


def _reference_nll(P, words):
    logp = [math.log(P[stoi[a], stoi[b]]) if P[stoi[a], stoi[b]] > 0 else -math.inf
            for w in words for a, b in zip("." + w, w + ".")]
    return -sum(logp) / len(logp)


def _trigram_events(w):
    chs = [".", "."] + list(w) + ["."]
    return [((a, b), c) for a, b, c in zip(chs, chs[1:], chs[2:])]


def bigram_counts(fn):
    """``fn(words)`` returns the (27, 27) matrix of bigram counts with '.' as start and end marker."""
    c = Check("bigram_counts")
    for words in (["ab"], _SMALL, _names()[0][:2000]):
        got = c.call(fn, list(words))
        ref = _reference_counts(words)
        c.shape(got, (27, 27), "the count matrix")
        got = torch.as_tensor(got)
        total, expected_total = int(got.sum()), sum(len(w) + 1 for w in words)
        c.that(total == expected_total,
               f"for {len(words)} words your matrix holds {total} bigrams, expected {expected_total} "
               "(a word of length L gives L + 1 bigrams once it is wrapped in '.' markers)")
        c.that(bool((got == got.round()).all()), "counts should be whole numbers")
        if not torch.equal(got.long(), ref):
            bad = (got.long() != ref).nonzero()[0].tolist()
            hint = ("rows are the previous character and columns the next one; "
                    if torch.equal(got.long().T, ref) else "")
            c.fail(f"{hint}the count of {CHARS[bad[0]]!r} followed by {CHARS[bad[1]]!r} is {int(got[bad[0], bad[1]])}, "
                   "which is not right; check the start/end markers and the index order N[previous, next]")
        c.count += 1
    c.done()


def add_k_probs(fn):
    """``fn(counts, k)`` returns the (27, 27) add-k smoothed probabilities, each row summing to 1."""
    c = Check("add_k_probs")
    N = _reference_counts(_SMALL + ["bob", "quinn", "jack"])
    for k in (1.0, 0.5, 0.01):
        got = c.call(fn, N.clone(), k)
        c.shape(got, (27, 27), f"the probabilities for k={k}")
        got = torch.as_tensor(got).double()
        sums = got.sum(1)
        bad_row = int((sums - 1).abs().argmax())
        c.that(torch.allclose(sums, torch.ones(27, dtype=torch.float64), atol=1e-5),
               f"with k={k}, row {bad_row} ({CHARS[bad_row]!r}) sums to {sums[bad_row].item():.4f}; "
               "each row (one previous character) must be a probability distribution")
        c.that(bool((got > 0).all()), f"with k={k} some probabilities are 0; add-k should leave none at 0")
        ref = (N + k).double() / (N + k).double().sum(1, keepdim=True)
        c.close(got, ref, f"the add-{k:g} probabilities", atol=1e-6, rtol=1e-5)
    c.done()


def mean_nll(fn):
    """``fn(P, words)`` returns the mean NLL per character (end marker included) in nats."""
    c = Check("mean_nll")
    N = _reference_counts(_SMALL)
    P = (N + 1).double() / (N + 1).double().sum(1, keepdim=True)
    for words in (["emma"], _SMALL, ["x", "ava"]):
        ref = _reference_nll(P, words)
        got = c.call(fn, P, words)
        try:
            got_f = float(got)
        except (TypeError, ValueError):
            c.fail(f"the result should be a number, got {type(got).__name__}")
        n = sum(len(w) + 1 for w in words)
        if abs(got_f * n / sum(len(w) for w in words) - ref) < 1e-6 or abs(got_f - ref * n / (n - len(words))) < 1e-6:
            c.fail("close, but the count of predicted characters is off: the end marker '.' is predicted too, "
                   "so a word of length L contributes L + 1 terms")
        if abs(got_f - ref * n) < 1e-6:
            c.fail("that looks like the total; the NLL is the mean over predicted characters")
        if abs(got_f - ref / math.log(10)) < 1e-6:
            c.fail("use the natural logarithm (nats), not log10")
        c.number(got_f, ref, f"the NLL of {words}", tol=1e-5)
    uniform = torch.full((27, 27), 1 / 27, dtype=torch.float64)
    got = c.call(fn, uniform, ["emma", "bob"])
    c.number(got, math.log(27), "the NLL of a uniform model", tol=1e-4)
    P0 = N.double() / N.double().sum(1, keepdim=True).clamp_min(1)
    got = c.call(fn, P0, ["emmaq"])
    c.that(isinstance(got, (int, float)) or hasattr(got, "item"), "the result should be a number")
    got = float(got)
    c.that(not math.isnan(got), "a zero-probability bigram gave nan; the NLL should be inf (use torch.log or check p == 0)")
    c.that(got == math.inf, f"a name containing a bigram with probability 0 has NLL {got}; it should be inf")
    c.done()


def choose_k(fn):
    """``fn(train, dev, ks, order)`` returns the k whose add-k model has the lowest dev NLL."""
    c = Check("choose_k")
    train, dev = _names()
    ks = [0.001, 0.1, 10.0]
    dev_nll = {k: NGramModel(3, "add-k", k=k).fit(train).nll(dev) for k in ks}
    got = c.call(fn, train, dev, list(ks), 3)
    c.that(got in ks, f"choose_k should return one of the candidates {ks}, got {got!r}")
    best = min(ks, key=dev_nll.get)
    train_best = ks[0]  # the smallest k always fits train best
    if got != best and got == train_best:
        c.fail(f"k={got:g} has the lowest *train* NLL; choose k on the dev split")
    c.that(got == best, f"k={got:g} does not give the lowest dev NLL of the candidates for a trigram")
    # a second, tiny case where the answer depends on the order argument
    toy_train, toy_dev = ["abab", "ba", "aab"], ["abba", "bab"]
    ks2 = [0.01, 0.3, 3.0]
    for order in (1, 2):
        ref = min(ks2, key=lambda k: NGramModel(order, "add-k", k=k).fit(toy_train).nll(toy_dev))
        got = c.call(fn, toy_train, toy_dev, list(ks2), order)
        c.that(got == ref, f"on a toy data set with order={order}, k={got!r} is not the best on dev; "
                           "does your function use its `order` argument?")
    c.done()


def trigram_probs(fn):
    """``fn(words, k)`` returns P[a, b, c] = P(c | a b), add-k smoothed, contexts padded with '..'."""
    c = Check("trigram_probs")
    for words, k in ((_SMALL, 1.0), (_SMALL + ["bob", "quinn"], 0.1)):
        got = c.call(fn, list(words), k)
        c.shape(got, (27, 27, 27), "the trigram probabilities")
        got = torch.as_tensor(got).double()
        sums = got.sum(-1)
        c.that(torch.allclose(sums, torch.ones_like(sums), atol=1e-5),
               "P[a, b, :] must sum to 1 for every context (a, b): normalise over the last dimension")
        N = torch.zeros((27, 27, 27), dtype=torch.float64)
        for w in words:
            for h, x in _trigram_events(w):
                N[stoi[h[0]], stoi[h[1]], stoi[x]] += 1
        ref = (N + k) / (N + k).sum(-1, keepdim=True)
        if not torch.allclose(got[0, 0], ref[0, 0], atol=1e-6):
            c.fail("P[0, 0, :] (the context '..', the start of a name) is off: pad every word with two '.' "
                   "in front so its first character is predicted from the context ('.', '.')")
        c.close(got, ref, f"the add-{k:g} trigram probabilities", atol=1e-6, rtol=1e-5)
    c.done()


def dev_nll_by_order(fn):
    """``fn(train, dev, orders)`` returns {order: dev NLL of a Kneser-Ney model of that order fitted on train}."""
    c = Check("dev_nll_by_order")
    train, dev = _names()
    train, dev = train[:4000], dev[:400]
    orders = [1, 2, 3, 4]
    got = c.call(fn, train, dev, list(orders))
    c.that(isinstance(got, dict), f"return a dict {{order: dev NLL}}, got {type(got).__name__}")
    c.that(sorted(got) == orders, f"the dict should have one entry per order {orders}, it has keys {sorted(got)}")
    ref = {n: NGramModel(n, "kneser-ney").fit(train).nll(dev) for n in orders}
    on_train = {n: NGramModel(n, "kneser-ney").fit(train).nll(train) for n in orders}
    if all(abs(float(got[n]) - on_train[n]) < 1e-6 for n in orders):
        c.fail("these are the NLLs on train; score each model on the dev split")
    for n in orders:
        c.number(got[n], ref[n], f"the dev NLL of the order-{n} Kneser-Ney model (fitted on train)", tol=1e-6)
    c.done()
