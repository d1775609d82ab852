"""Checks for lesson 01 (counting n-grams): bigram counts, add-k, NLL, choosing k, trigrams, and
the experiment: which order is best for a given amount of training data.

Every check draws fresh inputs each call (words, k, subsets of the names), including inputs where
a shortcut gives a different answer from the right one, so a hard-coded answer cannot pass.
"""

from __future__ import annotations

import math

import torch

from ..data import names_split
from ..i18n import _
from ..ngram import CHARS, NGramModel, stoi
from ..ngram import bigram_counts as _reference_counts
from ._core import Check, fresh_generator

__all__ = ["bigram_counts", "add_k_probs", "mean_nll", "choose_k", "trigram_probs", "best_order"]

_SMALL = ["emma", "ava", "x", "olivia", "zoe", "anna"]


def _names():
    s = names_split()
    return s["train"], s["dev"]


def _draw(g, words, n):
    """``n`` words of ``words`` picked at random."""
    return [words[int(i)] for i in torch.randperm(len(words), generator=g)[:n]]


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
    g = fresh_generator()
    train = _names()[0]
    for words in (["ab"], _SMALL, _draw(g, train, int(torch.randint(5, 40, (1,), generator=g))), _draw(g, train, 2000)):
        got = c.call(fn, list(words))
        ref = _reference_counts(words)
        c.shape(got, (27, 27), _("the count matrix"))
        got = torch.as_tensor(got)
        total, expected_total = int(got.sum()), sum(len(w) + 1 for w in words)
        c.that(total == expected_total,
               _("for {n_words} words your matrix holds {total} bigrams, expected {expected_total} (a "
                 "word of length L gives L + 1 bigrams once it is wrapped in '.' markers)").format(n_words=len(words), total=total, expected_total=expected_total))
        c.that(bool((got == got.round()).all()), _("counts should be whole numbers"))
        if not torch.equal(got.long(), ref):
            bad = (got.long() != ref).nonzero()[0].tolist()
            hint = (_("rows are the previous character and columns the next one; ")
                    if torch.equal(got.long().T, ref) else "")
            c.fail(_("{hint}the count of {CHARS!r} followed by {CHARS2!r} is {got}, which is not right; check "
                     "the start/end markers and the index order N[previous, next]").format(hint=hint, CHARS=CHARS[bad[0]], CHARS2=CHARS[bad[1]], got=int(got[bad[0], bad[1]])))
        c.count += 1
    c.done()


def add_k_probs(fn):
    """``fn(counts, k)`` returns the (27, 27) add-k smoothed probabilities, each row summing to 1."""
    c = Check("add_k_probs")
    g = fresh_generator()
    N = _reference_counts(_draw(g, _names()[0], int(torch.randint(20, 200, (1,), generator=g))))
    for k in (1.0, 0.01, round(float(10 ** torch.empty(1).uniform_(-2, 1, generator=g)), 4)):
        got = c.call(fn, N.clone(), k)
        c.shape(got, (27, 27), _("the probabilities for k={k}").format(k=k))
        got = torch.as_tensor(got).double()
        sums = got.sum(1)
        bad_row = int((sums - 1).abs().argmax())
        c.that(torch.allclose(sums, torch.ones(27, dtype=torch.float64), atol=1e-5),
               _("with k={k}, row {bad_row} ({CHARS!r}) sums to {sums:.4f}; each row (one previous "
                 "character) must be a probability distribution").format(k=k, bad_row=bad_row, CHARS=CHARS[bad_row], sums=sums[bad_row].item()))
        c.that(bool((got > 0).all()), _("with k={k} some probabilities are 0; add-k should leave none at 0").format(k=k))
        ref = (N + k).double() / (N + k).double().sum(1, keepdim=True)
        c.close(got, ref, _("the add-{k:g} probabilities").format(k=k), atol=1e-6, rtol=1e-5)
    c.done()


def mean_nll(fn):
    """``fn(P, words)`` returns the mean NLL per character (end marker included) in nats."""
    c = Check("mean_nll")
    g = fresh_generator()
    train, dev = _names()
    N = _reference_counts(_draw(g, train, 300))
    k = float(torch.empty(1).uniform_(0.1, 2.0, generator=g))
    P = (N + k).double() / (N + k).double().sum(1, keepdim=True)
    for words in (["emma"], ["x", "ava"], _draw(g, dev, int(torch.randint(3, 30, (1,), generator=g)))):
        ref = _reference_nll(P, words)
        got = c.call(fn, P, words)
        try:
            got_f = float(got)
        except (TypeError, ValueError):
            c.fail(_("the result should be a number, got {type}").format(type=type(got).__name__))
        n = sum(len(w) + 1 for w in words)
        if abs(got_f * n / sum(len(w) for w in words) - ref) < 1e-6 or abs(got_f - ref * n / (n - len(words))) < 1e-6:
            c.fail(_("close, but the count of predicted characters is off: the end marker '.' is predicted too, "
                   "so a word of length L contributes L + 1 terms"))
        if abs(got_f - ref * n) < 1e-6:
            c.fail(_("that looks like the total; the NLL is the mean over predicted characters"))
        if abs(got_f - ref / math.log(10)) < 1e-6:
            c.fail(_("use the natural logarithm (nats), not log10"))
        c.number(got_f, ref, (_("the NLL of {words}").format(words=words) if len(words) < 5
                                else _("the NLL of {n} dev names").format(n=len(words))), tol=1e-5)
    uniform = torch.full((27, 27), 1 / 27, dtype=torch.float64)
    got = c.call(fn, uniform, ["emma", "bob"])
    c.number(got, math.log(27), _("the NLL of a uniform model"), tol=1e-4)
    N0 = _reference_counts(_SMALL)  # 'a' is never followed by 'q' here
    P0 = N0.double() / N0.double().sum(1, keepdim=True).clamp_min(1)
    got = c.call(fn, P0, ["emmaq"])
    c.that(isinstance(got, (int, float)) or hasattr(got, "item"), _("the result should be a number"))
    got = float(got)
    c.that(not math.isnan(got), _("a zero-probability bigram gave nan; the NLL should be inf (use torch.log or check p == 0)"))
    c.that(got == math.inf, _("a name containing a bigram with probability 0 has NLL {got}; it should be inf").format(got=got))
    c.done()


def choose_k(fn):
    """``fn(train, dev, ks, order)`` returns the k whose add-k model has the lowest dev NLL."""
    c = Check("choose_k")
    g = fresh_generator()
    train, dev = _names()
    answers = []
    # the best k moves with the order and the amount of data (about 1, 0.3 and 0.1 here); an order-5
    # model on a few hundred names wants a smaller k than order 3 on the same data, every time we tried
    def best_k(order, tr, dv, ks):
        dev_nll = {k: NGramModel(order, "add-k", k=k).fit(tr).nll(dv) for k in ks}
        return min(ks, key=dev_nll.get)

    cases = [(3, int(torch.randint(250, 400, (1,), generator=g))),
             (1, int(torch.randint(150, 300, (1,), generator=g))),
             (4, int(torch.randint(1500, 3000, (1,), generator=g))),
             (5, int(torch.randint(200, 400, (1,), generator=g)))]
    order_matters = False  # a case where an answer that ignores the order (always 3) is wrong
    for i in range(len(cases) + 40):
        if i >= len(cases):
            if order_matters and len({a[3] for a in answers}) > 1:
                break
            # draw until the order matters and the best k differs between the cases (else a constant k passes)
            cases.append((5, int(torch.randint(200, 400, (1,), generator=g))) if i % 2 else
                         (1, int(torch.randint(150, 300, (1,), generator=g))))
        order, n_train = cases[i]
        tr, dv = _draw(g, train, n_train), _draw(g, dev, 500)
        ks = [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]
        ks = [ks[int(j)] for j in torch.randperm(len(ks), generator=g)]  # the best is not at a fixed place
        best = best_k(order, tr, dv, ks)
        if order != 3 and best != best_k(3, tr, dv, ks):
            order_matters = True
        elif i >= 4 and best in {a[3] for a in answers}:
            continue  # an extra draw that neither shows the order nor a new best k: not asked
        got = c.call(fn, tr, dv, list(ks), order)
        c.that(got in ks, _("choose_k should return one of the candidates {ks}, got {got!r}").format(ks=sorted(ks), got=got))
        answers.append((order, n_train, got, best, min(ks)))
    for _order, _n, got, best, smallest in answers:
        if got != best and got == smallest:  # the smallest k always fits train best
            c.fail(_("k={got:g} has the lowest *train* NLL; choose k on the dev split").format(got=got))
    if len({a[2] for a in answers}) == 1 and len({a[3] for a in answers}) > 1:
        c.fail(_("your function returns k={answers:g} for every data set and order it is given, but the "
                 "best k changes with them: score every candidate on the data you are given").format(answers=answers[0][2]))
    for order, n_train, got, best, _smallest in answers:
        c.that(got == best, _("for an order-{order} model fitted on {n_train} names, k={got:g} does not give the "
                              "lowest dev NLL of the candidates; fit one model per candidate, with the order you are "
                              "given, and score each on dev").format(order=order, n_train=n_train, got=got))
    c.done()


def trigram_probs(fn):
    """``fn(words, k)`` returns P[a, b, c] = P(c | a b), add-k smoothed, contexts padded with '..'."""
    c = Check("trigram_probs")
    g = fresh_generator()
    drawn = _draw(g, _names()[0], int(torch.randint(5, 60, (1,), generator=g)))
    for words, k in ((_SMALL, 1.0), (drawn, round(float(10 ** torch.empty(1).uniform_(-2, 0, generator=g)), 4))):
        got = c.call(fn, list(words), k)
        c.shape(got, (27, 27, 27), _("the trigram probabilities"))
        got = torch.as_tensor(got).double()
        sums = got.sum(-1)
        c.that(torch.allclose(sums, torch.ones_like(sums), atol=1e-5),
               _("P[a, b, :] must sum to 1 for every context (a, b): normalise over the last dimension"))
        N = torch.zeros((27, 27, 27), dtype=torch.float64)
        for w in words:
            for h, x in _trigram_events(w):
                N[stoi[h[0]], stoi[h[1]], stoi[x]] += 1
        ref = (N + k) / (N + k).sum(-1, keepdim=True)
        if torch.allclose(got, torch.full_like(got, 1 / 27), atol=1e-6):
            c.fail(_("every context gets the uniform distribution 1/27: the counts of the words are not in it"))
        if not torch.allclose(got[0, 0], ref[0, 0], atol=1e-6):
            c.fail(_("P[0, 0, :] (the context '..', the start of a name) is off: pad every word with two '.' "
                   "in front so its first character is predicted from the context ('.', '.')"))
        c.close(got, ref, _("the add-{k:g} trigram probabilities").format(k=k), atol=1e-6, rtol=1e-5)
    c.done()


def best_order(fn):
    """``fn(train, dev, orders)`` returns the order whose Kneser-Ney model, fitted on train, has the
    lowest NLL on dev. The check re-runs it on small random samples of the names: the best order
    depends on how much training data there is."""
    c = Check("best_order")
    g = fresh_generator()
    train, dev = _names()

    def sample(n_train):
        tr = _draw(g, train, n_train)
        seen = set("".join(tr))
        dv = [w for w in _draw(g, dev, 400) if set(w) <= seen]  # no letter the small sample never saw
        orders = [1, 2, 3, 4, 5, 6]
        orders = [orders[int(i)] for i in torch.randperm(6, generator=g)]  # in no particular order
        dev_nll = {n: NGramModel(n, "kneser-ney").fit(tr).nll(dv) for n in orders}
        return n_train, tr, dv, orders, dev_nll

    big = sample(int(torch.randint(2500, 4000, (1,), generator=g)))
    best_big = min(big[4], key=big[4].get)
    # a small sample whose best order differs from the big one's, so that no fixed order passes both
    for _i in range(20):
        small = sample(int(torch.randint(100, 500, (1,), generator=g)))
        if min(small[4], key=small[4].get) != best_big:
            break
    answers = []
    for n_train, tr, dv, orders, dev_nll in (small, big):
        got = c.call(fn, tr, dv, list(orders))
        c.that(isinstance(got, int) and not isinstance(got, bool) and got in orders,
               _("return one of the orders {orders} (an int), got {got!r}").format(orders=sorted(orders), got=got))
        answers.append((n_train, tr, got, min(orders, key=dev_nll.get), dev_nll))
    for n_train, tr, got, best, dev_nll in answers:
        on_train = min(dev_nll, key=lambda n: NGramModel(n, "kneser-ney").fit(tr).nll(tr))
        if got != best and got == on_train:
            c.fail(_("with {n_train} training names you chose order {got}, the best on *train*: a longer "
                     "context always fits train better; score every order on dev").format(n_train=n_train, got=got))
    if len({a[2] for a in answers}) == 1 and len({a[3] for a in answers}) > 1:
        c.fail(_("your function returns order {answers} for every sample it is given, but the best order "
                 "depends on how much data there is: fit and score every order on the data you are given").format(answers=answers[0][2]))
    for n_train, _tr, got, best, dev_nll in answers:
        c.that(got == best, _("with {n_train} training names, order {got} has dev NLL {dev_nll:.4f}, and another order "
                              "of the list does better; fit a Kneser-Ney model of each order on train and compare them "
                              "on dev").format(n_train=n_train, got=got, dev_nll=dev_nll[got]))
    c.done()
