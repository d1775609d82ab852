"""Evaluation beyond the loss: classification metrics, calibration and retrieval (lesson 11).

Labels are integers 0..K-1; inputs may be lists, NumPy arrays or tensors. Every function follows
scikit-learn's conventions where it has one (the tests compare them), written out so a lesson can
show the arithmetic:

    confusion_matrix(y, p)[i, j]   how often true class i was predicted as class j
    precision_c = TP_c / (TP_c + FP_c)    of everything predicted c, the share that is c
    recall_c    = TP_c / (TP_c + FN_c)    of everything that is c, the share found
    F1_c        = 2 P R / (P + R);  macro-F1 = the plain mean of F1_c over the classes

A precision or recall whose denominator is 0 (a class never predicted, or absent) is 0, as in
scikit-learn's ``zero_division=0``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["accuracy", "confusion_matrix", "precision_recall_f1", "macro_f1", "classification_report",
           "topk_accuracy", "reliability", "expected_calibration_error", "precision_recall_curve",
           "average_precision", "best_threshold", "recall_at_k", "retrieval_at_k"]


def _labels(y) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("labels must be whole numbers 0..K-1 (class ids), not scores; threshold them first")
        y = y.astype(np.int64)
    return y


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t, p = _labels(y_true), _labels(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels but y_pred has {p.size}; they must pair up one to one")
    if t.size == 0:
        raise ValueError("there are no labels to score")
    return t, p


def accuracy(y_true, y_pred) -> float:
    """The share of predictions equal to the true label."""
    t, p = _pair(y_true, y_pred)
    return float((t == p).mean())


def confusion_matrix(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """(K, K) counts: row = the true class, column = the predicted class (scikit-learn's layout)."""
    t, p = _pair(y_true, y_pred)
    if min(t.min(), p.min()) < 0:
        raise ValueError("labels must be class ids >= 0")
    K = int(max(t.max(), p.max()) + 1) if n_classes is None else int(n_classes)
    if max(t.max(), p.max()) >= K:
        raise ValueError(f"a label is >= n_classes={K}")
    m = np.zeros((K, K), dtype=np.int64)
    np.add.at(m, (t, p), 1)
    return m


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=float), where=b > 0)


def precision_recall_f1(y_true, y_pred, n_classes: int | None = None) -> dict[str, np.ndarray]:
    """Per class: ``precision``, ``recall``, ``f1`` and ``support`` (true examples), each of shape (K,)."""
    m = confusion_matrix(y_true, y_pred, n_classes).astype(float)
    tp = np.diag(m)
    precision = _safe_div(tp, m.sum(axis=0))  # column sums: everything predicted as c
    recall = _safe_div(tp, m.sum(axis=1))  # row sums: everything that is c
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": m.sum(axis=1).astype(np.int64)}


def macro_f1(y_true, y_pred, n_classes: int | None = None) -> float:
    """The unweighted mean of the per-class F1: every class counts the same, however rare."""
    return float(precision_recall_f1(y_true, y_pred, n_classes)["f1"].mean())


def classification_report(y_true, y_pred, names: list[str]) -> str:
    """A small text table: precision, recall, F1 and support per class, then accuracy and macro-F1."""
    r = precision_recall_f1(y_true, y_pred, len(names))
    width = max(10, *(len(n) for n in names))
    lines = [f"{'':<{width}}  precision  recall     F1  support"]
    for i, n in enumerate(names):
        lines.append(f"{n:<{width}}  {r['precision'][i]:9.3f}  {r['recall'][i]:6.3f}  {r['f1'][i]:5.3f}  "
                     f"{r['support'][i]:7d}")
    lines.append(f"{'accuracy':<{width}}  {accuracy(y_true, y_pred):9.3f}   macro-F1 {r['f1'].mean():.3f}")
    return "\n".join(lines)


def topk_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int = 1) -> float:
    """The share of positions whose target is among the ``k`` highest logits; targets of -1 are skipped.

    ``logits`` (..., V) and ``targets`` (...). Ties at the k-th logit count as hits only up to k tokens
    (``torch.topk``'s choice), so k=1 is plain next-token accuracy.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    logits = logits.reshape(-1, logits.size(-1))
    targets = targets.reshape(-1)
    keep = targets != -1
    if not bool(keep.any()):
        raise ValueError("there are no targets to score (every target is -1)")
    top = logits[keep].topk(min(k, logits.size(-1)), dim=-1).indices  # (N, k)
    return float((top == targets[keep, None]).any(dim=-1).float().mean())


def reliability(confidence, correct, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Bin predictions by confidence into ``n_bins`` equal-width bins of [0, 1].

    Returns per bin: ``count``, mean ``confidence`` and ``accuracy`` (NaN for empty bins), and the
    bin ``edges`` (n_bins + 1). A calibrated model has accuracy = confidence in every bin.
    """
    conf = np.asarray(confidence.detach().cpu() if isinstance(confidence, torch.Tensor) else confidence, dtype=float)
    ok = np.asarray(correct.detach().cpu() if isinstance(correct, torch.Tensor) else correct, dtype=float)
    if conf.shape != ok.shape or conf.ndim != 1:
        raise ValueError(f"confidence and correct must be 1-D and the same length, got {conf.shape} and {ok.shape}")
    if conf.size == 0:
        raise ValueError("there are no predictions to bin")
    if conf.min() < 0 or conf.max() > 1:
        raise ValueError("confidences must be probabilities in [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin b holds (edges[b], edges[b+1]]; a confidence of exactly 0 goes to the first bin
    b = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(b, weights=conf, minlength=n_bins) / count
        acc = np.bincount(b, weights=ok, minlength=n_bins) / count
    return {"edges": edges, "count": count, "confidence": mean_conf, "accuracy": acc}


def expected_calibration_error(confidence, correct, n_bins: int = 15) -> float:
    """ECE (Guo et al. 2017): sum over bins of (share of predictions in the bin) * |accuracy - confidence|."""
    r = reliability(confidence, correct, n_bins)
    full = r["count"] > 0
    return float((r["count"][full] / r["count"].sum() * np.abs(r["accuracy"][full] - r["confidence"][full])).sum())


def _scores_labels(scores, labels):
    s = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, dtype=float)
    y = _labels(labels)
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores but {y.size} labels")
    if not set(np.unique(y)) <= {0, 1}:
        raise ValueError("labels must be 0 (negative) or 1 (positive)")
    if not (y == 1).any():
        raise ValueError("there is no positive example: precision and recall are undefined")
    return s, y


def precision_recall_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall of "positive when score >= t" for every distinct score t, as scikit-learn:
    returns (precision, recall, thresholds), thresholds ascending, with a final (1, 0) point added."""
    s, y = _scores_labels(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]  # the last index of each distinct score
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / y.sum()
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], s[last][::-1]


def average_precision(scores, labels) -> float:
    """The area under the precision-recall curve as a step sum: sum_n (R_n - R_{n-1}) P_n (scikit-learn's)."""
    p, r, _ = precision_recall_curve(scores, labels)
    return float(-np.sum(np.diff(r) * p[:-1]))


def best_threshold(scores, labels, metric: str = "accuracy") -> tuple[float, float]:
    """The threshold t for "positive when score >= t" that maximises ``metric`` ("accuracy" or "f1")
    on these examples (choose it on dev, report it on test). Returns (t, the metric at t)."""
    s, y = _scores_labels(scores, labels)
    if metric not in ("accuracy", "f1"):
        raise ValueError(f"metric must be 'accuracy' or 'f1', got {metric!r}")
    cands = np.unique(s)
    best_t, best = float(cands[0]), -1.0
    for t in cands:
        pred = (s >= t).astype(int)
        value = accuracy(y, pred) if metric == "accuracy" else float(precision_recall_f1(y, pred, 2)["f1"][1])
        if value > best:
            best_t, best = float(t), value
    return best_t, best


def _top_hits(similarity, labels, k: int):
    """For each query: how many of its top k (itself left out) share its label, and how many could."""
    sim = torch.as_tensor(np.asarray(similarity), dtype=torch.float64) if not isinstance(similarity, torch.Tensor) \
        else similarity.detach().double().cpu()
    y = torch.as_tensor(_labels(labels))
    N = len(y)
    if sim.shape != (N, N):
        raise ValueError(f"similarity must be ({N}, {N}) for {N} labels, got {tuple(sim.shape)}")
    if not 1 <= k < N:
        raise ValueError(f"k must be between 1 and N - 1 = {N - 1}, got {k}")
    sim = sim.clone()
    sim.fill_diagonal_(float("-inf"))  # an item is never its own recommendation
    top = sim.topk(k, dim=1).indices  # (N, k)
    same = y[:, None] == y[None, :]
    same.fill_diagonal_(False)
    n_rel = same.sum(1)
    hits = same.gather(1, top).sum(1)
    has = n_rel > 0
    if not bool(has.any()):
        raise ValueError("no item shares its label with another: recall@k is undefined")
    return hits[has].double(), n_rel[has].double(), N


def recall_at_k(similarity, labels, k: int) -> float:
    """Retrieval quality of "more like this": for each item as a query, rank every *other* item by
    ``similarity`` (N, N); recall@k = |relevant among the top k| / |relevant|, relevant = same label.
    The mean over queries that have at least one relevant item."""
    hits, n_rel, _ = _top_hits(similarity, labels, k)
    return float((hits / n_rel).mean())


def retrieval_at_k(similarity, labels, k: int) -> dict[str, dict[str, float]]:
    """recall@k, precision@k and hit-rate@k (a relevant item anywhere in the top k), each with its
    ceiling (a perfect ranking) and its expected value under a random ranking, means over the queries
    that have a relevant item: ``{"recall": {"value", "ceiling", "random"}, "precision": ..., "hit_rate": ...}``.

    recall@k cannot exceed k / |relevant| when a query has more than k relevant items, so it is small
    even for a perfect ranking; precision@k cannot exceed |relevant| / k when it has fewer."""
    hits, n_rel, N = _top_hits(similarity, labels, k)
    others = N - 1
    # a random ranking draws k of the N - 1 others without replacement: hits are hypergeometric
    p_none = torch.tensor([math.comb(others - int(r), k) / math.comb(others, k) for r in n_rel], dtype=torch.float64)
    mean = lambda t: float(t.mean())
    return {"recall": {"value": mean(hits / n_rel), "ceiling": mean((k / n_rel).clamp(max=1)), "random": k / others},
            "precision": {"value": mean(hits / k), "ceiling": mean((n_rel / k).clamp(max=1)), "random": mean(n_rel / others)},
            "hit_rate": {"value": mean((hits > 0).double()), "ceiling": 1.0, "random": mean(1 - p_none)}}
