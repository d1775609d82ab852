"""Checks for lesson 11 (evaluation and applications): precision and recall by hand, a threshold
chosen on dev, the expected calibration error, recall@k, and freezing a GPT's body for a
head-only fine-tune.

Every check draws fresh inputs (a new seed each call), including cases where a shortcut gives
another answer than the right one: a class that is never predicted, skewed labels, empty bins.
"""

from __future__ import annotations

import math

import torch

from ..apps import GPTClassifier, fine_tune_classifier, pad_batch
from ..i18n import _
from ..model import GPT, GPTConfig
from ._core import Check, fresh_generator

__all__ = ["precision_recall", "choose_threshold", "calibration_error", "recall_at_k", "freeze_body"]


def _pair(c: Check, value, what: str) -> tuple[float, float]:
    try:
        a, b = value
        return float(a), float(b)
    except (TypeError, ValueError):
        c.fail(_("{what} should be a pair of numbers (precision, recall), got {type}").format(what=what, type=type(value).__name__))


def _ref_pr(y, p, cls):
    tp = int(((p == cls) & (y == cls)).sum())
    pred, true = int((p == cls).sum()), int((y == cls).sum())
    return (tp / pred if pred else 0.0), (tp / true if true else 0.0)


def precision_recall(fn):
    """``fn(y_true, y_pred, cls)`` -> (precision, recall) of class ``cls``; 0 when a denominator is 0."""
    c = Check("precision_recall")
    g = fresh_generator()
    K = int(torch.randint(3, 6, (1,), generator=g))
    n = int(torch.randint(30, 80, (1,), generator=g))
    y = torch.randint(0, K, (n,), generator=g)
    noise = torch.randint(0, K, (n,), generator=g)
    p = torch.where(torch.rand(n, generator=g) < 0.6, y, noise)
    p[p == K - 1] = 0  # class K-1 is never predicted: its precision has a zero denominator
    skew = torch.where(torch.rand(n, generator=g) < 0.8, torch.zeros_like(y), y)  # mostly class 0
    cases = [(y, p, 0, _("a class predicted too often")), (y, p, 1, _("another class")),
             (y, p, K - 1, _("a class that is never predicted (precision has nothing to divide by)")),
             (skew, p, 0, _("a common class")), (skew, p, 1, _("a rare class"))]
    for yt, yp, cls, what in cases:
        got = _pair(c, c.call(fn, yt.clone(), yp.clone(), cls), _("the result"))
        ref = _ref_pr(yt, yp, cls)
        if any(math.isnan(v) for v in got):
            c.fail(_("for {what} you return NaN; when nothing is predicted (or present) the value is 0, as in "
                     "scikit-learn").format(what=what))
        if not (math.isclose(got[0], ref[0], abs_tol=1e-6) and math.isclose(got[1], ref[1], abs_tol=1e-6)):
            if math.isclose(got[0], ref[1], abs_tol=1e-6) and math.isclose(got[1], ref[0], abs_tol=1e-6):
                c.fail(_("for {what} precision and recall are swapped: precision divides by how often the class "
                         "is predicted, recall by how often it is true").format(what=what))
            tp = int(((yp == cls) & (yt == cls)).sum())
            if math.isclose(got[0], tp / n, abs_tol=1e-6) or math.isclose(got[1], tp / n, abs_tol=1e-6):
                c.fail(_("for {what} you divide by the number of examples; divide by the predicted (precision) or "
                         "true (recall) count of the class").format(what=what))
            c.number(got[0], ref[0], _("precision for {what}").format(what=what), tol=1e-6)
            c.number(got[1], ref[1], _("recall for {what}").format(what=what), tol=1e-6)
        c.count += 1
    c.done()


def _accuracy_at(scores, labels, t):
    return float(((scores >= t).long() == labels).float().mean())


def _shortcuts(scores, labels):
    """Thresholds a learner might return without trying candidates: midpoints of the class means and
    medians, the mean and the median of all scores."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    return [float(pos.mean() + neg.mean()) / 2, float(pos.median() + neg.median()) / 2,
            float(scores.mean()), float(scores.median())]


def _shortcut_passes(scores, labels):
    best = max(_accuracy_at(scores, labels, float(s)) for s in torch.cat([scores, scores.max()[None] + 1]))
    return any(_accuracy_at(scores, labels, t) >= best - 1e-9 for t in _shortcuts(scores, labels))


def choose_threshold(fn):
    """``fn(dev_scores, dev_labels)`` -> t such that "positive when score >= t" has the best dev accuracy."""
    c = Check("choose_threshold")
    g = fresh_generator()
    for case in range(3):
        n = int(torch.randint(60, 200, (1,), generator=g))
        share = [0.5, 0.2, 0.8][case]  # balanced, then few and many positives: a fixed cut-off is wrong
        for _i in range(100):  # redraw until no shortcut (a midpoint, a mean, a median) is as good as the best
            labels = (torch.rand(n, generator=g) < share).long()
            shift = float(torch.rand(1, generator=g)) * 3 + 1.5
            offset = float(torch.randn(1, generator=g)) * 4  # the scores are not centred on 0 or 0.5
            scores = torch.randn(n, generator=g) + labels * shift + offset
            if labels.min() < labels.max() and not _shortcut_passes(scores, labels):
                break
        got = c.call(fn, scores.clone(), labels.clone())
        try:
            t = float(got)
        except (TypeError, ValueError):
            c.fail(_("return one number, the threshold; got {type}").format(type=type(got).__name__))
        best = max(_accuracy_at(scores, labels, float(s)) for s in torch.cat([scores, scores.max()[None] + 1]))
        acc = _accuracy_at(scores, labels, t)
        if acc < best - 1e-9:
            flipped = [float(((scores < s).long() == labels).float().mean()) for s in scores]
            flipped_best = {float(s) for s, a in zip(scores, flipped) if a >= max(flipped) - 1e-9}
            if any(math.isclose(t, s, abs_tol=1e-7) for s in flipped_best):
                c.fail(_("your threshold works the wrong way round: positives have the higher scores "
                       "(predict positive when score >= t)"))
            c.fail(_("on {n} dev examples ({labels_sum} positive) your threshold gets accuracy {acc:.3f}, but "
                     "a better one exists; try every distinct score as a candidate").format(n=n, labels_sum=int(labels.sum()), acc=acc))
        c.count += 1
    c.done()


def _ref_ece(conf, correct, n_bins):
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    b = (torch.searchsorted(edges, conf.double(), right=False) - 1).clamp(0, n_bins - 1)
    total = 0.0
    for i in range(n_bins):
        m = b == i
        if m.any():
            total += float(m.double().mean()) * abs(float(correct[m].double().mean()) - float(conf[m].double().mean()))
    return total


def calibration_error(fn):
    """``fn(confidence, correct, n_bins)`` -> ECE with equal-width bins of [0, 1], each bin weighted by its size."""
    c = Check("calibration_error")
    g = fresh_generator()
    for case in range(3):
        n = int(torch.randint(200, 600, (1,), generator=g))
        n_bins = int(torch.randint(5, 16, (1,), generator=g))
        # confidences crowd the top bins (as a model's do), so weighting by bin size matters
        conf = 1 - torch.rand(n, generator=g) ** 2 * (0.6 if case else 1.0)
        bias = [0.0, -0.15, 0.1][case]
        correct = (torch.rand(n, generator=g) < (conf + bias).clamp(0, 1)).long()
        got = c.call(fn, conf.clone(), correct.clone(), n_bins)
        try:
            got = float(got)
        except (TypeError, ValueError):
            c.fail(_("return one number, the ECE; got {type}").format(type=type(got).__name__))
        ref = _ref_ece(conf, correct, n_bins)
        if not math.isclose(got, ref, abs_tol=1e-6):
            edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
            b = (torch.searchsorted(edges, conf.double()) - 1).clamp(0, n_bins - 1)
            gaps, signed = [], 0.0
            for i in range(n_bins):
                m = b == i
                if m.any():
                    d = float(correct[m].double().mean()) - float(conf[m].double().mean())
                    gaps.append(abs(d))
                    signed += float(m.double().mean()) * d
            if gaps and math.isclose(got, sum(gaps) / len(gaps), abs_tol=1e-6):
                c.fail(_("you average the bins equally; weight each bin's gap by the share of predictions in it"))
            if gaps and math.isclose(got, max(gaps), abs_tol=1e-6):
                c.fail(_("you return the largest gap (the maximum calibration error); ECE is the weighted mean gap"))
            if math.isclose(abs(got), abs(signed), abs_tol=1e-6):
                c.fail(_("over- and under-confident bins cancel in your sum; take each bin's absolute gap"))
            c.number(got, ref, _("the ECE with {n_bins} bins").format(n_bins=n_bins), tol=1e-6)
        c.count += 1
    c.done()


def _ref_recall(sim, labels, k):
    sim = sim.clone().double()
    sim.fill_diagonal_(float("-inf"))
    top = sim.topk(k, dim=1).indices
    same = labels[:, None] == labels[None, :]
    same.fill_diagonal_(False)
    n_rel = same.sum(1)
    hits = same.gather(1, top).sum(1)
    has = n_rel > 0
    return float((hits[has].double() / n_rel[has]).mean())


def _recall_draw(g):
    """Similarities of 20-49 items in 5 classes, plus one item alone in its class (not a query)."""
    n = int(torch.randint(20, 50, (1,), generator=g))
    labels = torch.randint(0, 5, (n,), generator=g)
    labels[-1] = 5  # one item alone in its class: not a query
    emb = torch.randn(6, 4, generator=g)[labels] + torch.randn(n, 4, generator=g)
    return emb @ emb.T, labels  # each item is its own nearest neighbour: it must be left out


def _recall_shortcuts(sim, labels, k):
    """recall@k and what each typical mistake gives on these similarities."""
    same = labels[:, None] == labels[None, :]
    with_self = same.gather(1, sim.topk(k, dim=1).indices).sum(1).double()
    n_rel = same.sum(1).double() - 1
    has = n_rel > 0
    s = sim.clone().double()
    s.fill_diagonal_(float("-inf"))
    same_no_self = same.clone()
    same_no_self.fill_diagonal_(False)
    hits = same_no_self.gather(1, s.topk(k, dim=1).indices).sum(1).double()
    return {"ref": _ref_recall(sim, labels, k),
            "self": float(((with_self[has] - 1) / n_rel[has]).mean()),
            "self_share": float((with_self[has] / (n_rel[has] + 1)).mean()),
            "precision": float((hits[has] / k).mean()), "precision_all": float((hits / k).mean()),
            "hit": float((hits[has] > 0).double().mean())}


def recall_at_k(fn):
    """``fn(similarity, labels, k)``: mean over queries with a relevant item of |same label in the top k
    of the other items| / |same label among the other items|."""
    c = Check("recall_at_k")
    g = fresh_generator()
    ks = (torch.randperm(4, generator=g)[:3] + 2).tolist()  # three different k: a fixed k cannot pass
    for k in ks:
        while True:  # redraw until the right answer and each typical mistake give different values
            sim, labels = _recall_draw(g)
            v = _recall_shortcuts(sim, labels, k)
            vals = [v["ref"], v["self"], v["self_share"], v["precision"], v["precision_all"], v["hit"]] + \
                [_ref_recall(sim, labels, other) for other in range(1, 7) if other != k]  # a fixed k
            if all(abs(a - b) > 1e-4 for i, a in enumerate(vals) for b in vals[i + 1:]):
                break
        n = len(labels)
        got = c.call(fn, sim.clone(), labels.clone(), k)
        try:
            got = float(got)
        except (TypeError, ValueError):
            c.fail(_("return one number, the mean recall@k; got {type}").format(type=type(got).__name__))
        if not math.isclose(got, v["ref"], abs_tol=1e-6):
            if math.isclose(got, v["self"], abs_tol=1e-6) or math.isclose(got, v["self_share"], abs_tol=1e-6):
                c.fail(_("an item is its own nearest neighbour; leave it out of its own ranking"))
            if math.isclose(got, v["precision"], abs_tol=1e-6) or math.isclose(got, v["precision_all"], abs_tol=1e-6):
                c.fail(_("you divide by k (that is precision@k); recall divides by how many relevant items there are"))
            if math.isclose(got, v["hit"], abs_tol=1e-6):
                c.fail(_("you count a query as 1 when any relevant item is found; count the share of them found"))
            c.number(got, v["ref"], _("recall@{k} on {n} items").format(k=k, n=n), tol=1e-6)
        c.count += 1
    c.done()


def freeze_body(fn):
    """``fn(clf)`` for a :class:`minigpt.apps.GPTClassifier`: only the head trains afterwards."""
    c = Check("freeze_body")
    g = fresh_generator()
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
    V = int(torch.randint(8, 20, (1,), generator=g))
    K = int(torch.randint(2, 5, (1,), generator=g))
    clf = GPTClassifier(GPT(GPTConfig(block_size=12, vocab_size=V, n_layer=2, n_head=2, n_embd=16)), K)
    ret = c.call(fn, clf)
    c.that(ret is None or ret is clf, _("change the classifier you are given (and return nothing, or it)"))
    body = [n for n, p in clf.gpt.named_parameters() if p.requires_grad]
    c.that(not body, _("{n_body} body parameters still train, e.g. {value}; every parameter of clf.gpt must "
                       "stop training").format(n_body=len(body), value=body[0] if body else ''))
    c.that(all(p.requires_grad for p in clf.head.parameters()), _("the head must still train: only the body is frozen"))
    before_body = {k: v.clone() for k, v in clf.gpt.state_dict().items()}
    before_head = {k: v.clone() for k, v in clf.head.state_dict().items()}
    seqs = [torch.randint(0, V, (int(torch.randint(3, 12, (1,), generator=g)),), generator=g).tolist() for _i in range(16)]
    idx, mask = pad_batch(seqs)
    y = torch.randint(0, K, (16,), generator=g)
    fine_tune_classifier(clf, (idx, mask, y), steps=3, batch_size=8, progress=False)
    c.that(all(torch.equal(before_body[k], v) for k, v in clf.gpt.state_dict().items()),
           _("after a fine-tune the body's weights changed: eval() or no_grad in your function do not freeze "
           "parameters; requires_grad does"))
    c.that(any(not torch.equal(before_head[k], v) for k, v in clf.head.state_dict().items()),
           _("after a fine-tune the head did not change: leave the head trainable"))
    c.done()
