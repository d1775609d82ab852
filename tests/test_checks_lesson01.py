"""Every lesson-01 check accepts the reference answer and rejects typical mistakes with a hint, a
constant among them. The checks draw new inputs every call, so the accepting test runs several times."""

import math

import pytest
import torch

from minigpt import checks as check
from minigpt.checks import CheckFailed
from minigpt.ngram import NGramModel, stoi


# ----- reference answers (the same as solutions/01_ngrams.ipynb) ------------------------------------
def counts_ref(words):
    N = torch.zeros((27, 27), dtype=torch.int64)
    for w in words:
        chs = ["."] + list(w) + ["."]
        for a, b in zip(chs, chs[1:]):
            N[stoi[a], stoi[b]] += 1
    return N


def add_k_ref(counts, k):
    return (counts + k).double() / (counts + k).double().sum(1, keepdim=True)


def nll_ref(P, words):
    logp = [torch.log(torch.as_tensor(P[stoi[a], stoi[b]], dtype=torch.float64)).item()
            for w in words for a, b in zip("." + w, w + ".")]
    return -sum(logp) / len(logp)


def choose_k_ref(train, dev, ks, order):
    return min(ks, key=lambda k: NGramModel(order, "add-k", k=k).fit(train).nll(dev))


def trigram_ref(words, k):
    N = torch.zeros((27, 27, 27), dtype=torch.float64)
    for w in words:
        chs = [".", "."] + list(w) + ["."]
        for a, b, c in zip(chs, chs[1:], chs[2:]):
            N[stoi[a], stoi[b], stoi[c]] += 1
    return (N + k) / (N + k).sum(-1, keepdim=True)


def best_order_ref(train, dev, orders):
    dev_nll = {n: NGramModel(n, "kneser-ney").fit(train).nll(dev) for n in orders}
    return min(dev_nll, key=dev_nll.get)


def test_checks_are_exported_from_minigpt_checks():
    for name in ("bigram_counts", "add_k_probs", "mean_nll", "choose_k", "trigram_probs", "best_order"):
        assert callable(getattr(check, name))


@pytest.mark.parametrize("name,fn", [("bigram_counts", counts_ref), ("add_k_probs", add_k_ref),
                                     ("mean_nll", nll_ref), ("choose_k", choose_k_ref),
                                     ("trigram_probs", trigram_ref), ("best_order", best_order_ref)])
@pytest.mark.parametrize("attempt", range(3))
def test_each_check_accepts_the_reference(capsys, name, fn, attempt):
    getattr(check, name)(fn)
    out = capsys.readouterr().out
    assert out.startswith(f"✓ {name}: all ") and "checks passed" in out


def rejects(check_fn, answer, hint):
    with pytest.raises(CheckFailed, match=hint):
        check_fn(answer)


def test_bigram_counts_rejects_missing_markers_and_transposes():
    def no_markers(words):
        N = torch.zeros((27, 27), dtype=torch.int64)
        for w in words:
            for a, b in zip(w, w[1:]):
                N[stoi[a], stoi[b]] += 1
        return N
    rejects(check.bigram_counts, no_markers, "L \\+ 1 bigrams")
    rejects(check.bigram_counts, lambda words: counts_ref(words).T, "rows are the previous character")
    rejects(check.bigram_counts, lambda words: counts_ref(words)[:26], "shape")
    rejects(check.bigram_counts, lambda words: counts_ref(["emma", "ava"]), "bigrams")  # a constant


def test_add_k_probs_rejects_wrong_axis_and_late_smoothing():
    rejects(check.add_k_probs, lambda N, k: (N + k).double() / (N + k).double().sum(0, keepdim=True), "sums to")
    late = lambda N, k: N.double() / N.double().sum(1, keepdim=True).clamp_min(1) + k
    rejects(check.add_k_probs, late, "sums to")
    renorm_late = lambda N, k: (lambda P: P / P.sum(1, keepdim=True))(N.double() / N.sum(1, keepdim=True).clamp_min(1) + k)
    rejects(check.add_k_probs, renorm_late, "differs from the reference")
    rejects(check.add_k_probs, lambda N, k: N.double() / N.double().sum(1, keepdim=True).clamp_min(1), "sums to|are 0")
    rejects(check.add_k_probs, lambda N, k: torch.full((27, 27), 1 / 27, dtype=torch.float64), "differs")  # constant
    rejects(check.add_k_probs, lambda N, k: add_k_ref(N, 1.0), "differs")  # ignores k


def test_mean_nll_rejects_forgotten_end_marker_sums_log10_and_nan():
    def no_end(P, words):
        logp = [math.log(P[stoi[a], stoi[b]]) for w in words for a, b in zip("." + w, w)]
        return -sum(logp) / len(logp)
    rejects(check.mean_nll, no_end, "the NLL of")
    # averaging over len(w) instead of len(w) + 1 terms
    short = lambda P, words: nll_ref(P, words) * sum(len(w) + 1 for w in words) / sum(len(w) for w in words)
    rejects(check.mean_nll, short, "end marker")
    total = lambda P, words: nll_ref(P, words) * sum(len(w) + 1 for w in words)
    rejects(check.mean_nll, total, "mean")
    rejects(check.mean_nll, lambda P, words: nll_ref(P, words) / math.log(10), "log10")

    def crashes_on_zero(P, words):
        logp = [math.log(P[stoi[a], stoi[b]]) for w in words for a, b in zip("." + w, w + ".")]
        return -sum(logp) / len(logp)
    rejects(check.mean_nll, crashes_on_zero, "raised ValueError")
    rejects(check.mean_nll, lambda P, words: 2.45, "NLL of")  # a constant


@pytest.mark.parametrize("wrong, hint", [
    (lambda train, dev, ks, order: min(ks, key=lambda k: NGramModel(order, "add-k", k=k).fit(train).nll(train)),
     "train"),
    (lambda train, dev, ks, order: choose_k_ref(train, dev, ks, 3), "order you are given|every data set|train"),
    (lambda train, dev, ks, order: 0.3, "every data set"),  # a fixed candidate
    (lambda train, dev, ks, order: 1.0, "every data set"),
    (lambda train, dev, ks, order: 0.5, "one of the candidates"),
    (lambda train, dev, ks, order: ks[0], "lowest dev NLL|train|every data set"),  # the first candidate
    (lambda train, dev, ks, order: max(ks, key=lambda k: NGramModel(order, "add-k", k=k).fit(train).nll(dev)),
     "every data set|lowest dev NLL|train"),
])
def test_choose_k_rejects_mistakes(wrong, hint):
    rejects(check.choose_k, wrong, hint)


def test_trigram_probs_rejects_missing_padding_and_wrong_axis():
    def one_dot(words, k):
        N = torch.zeros((27, 27, 27), dtype=torch.float64)
        for w in words:
            chs = ["."] + list(w) + ["."]
            for a, b, c in zip(chs, chs[1:], chs[2:]):
                N[stoi[a], stoi[b], stoi[c]] += 1
        return (N + k) / (N + k).sum(-1, keepdim=True)
    rejects(check.trigram_probs, one_dot, "pad every word")
    rejects(check.trigram_probs, lambda words, k: trigram_ref(words, k).transpose(0, 2), "sum to 1")
    wrong_norm = lambda words, k: (lambda P: P / P.sum(0, keepdim=True))(trigram_ref(words, k))
    rejects(check.trigram_probs, wrong_norm, "sum to 1")
    rejects(check.trigram_probs, lambda words, k: torch.full((27, 27, 27), 1 / 27), "uniform")  # a constant
    rejects(check.trigram_probs, lambda words, k: trigram_ref(["emma", "olivia", "ava"], k), "pad every word|differs")


@pytest.mark.parametrize("wrong, hint", [
    (lambda train, dev, orders: best_order_ref(train, train, orders), "best on \\*train\\*"),
    (lambda train, dev, orders: 5, "every sample"),  # a constant: the best order on all the names
    (lambda train, dev, orders: 3, "every sample"),
    (lambda train, dev, orders: min(orders, key=lambda n: NGramModel(n, "add-k", k=1.0).fit(train).nll(dev)),
     "another order"),  # add-one smoothing instead of Kneser-Ney
    (lambda train, dev, orders: float(best_order_ref(train, dev, orders)), "an int"),
    (lambda train, dev, orders: {n: NGramModel(n, "kneser-ney").fit(train).nll(dev) for n in orders}, "an int"),
])
def test_best_order_rejects_mistakes(wrong, hint):
    rejects(check.best_order, wrong, hint)
