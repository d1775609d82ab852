"""Each lesson-11 check accepts the reference answer and rejects typical mistakes, a constant among them.

The checks draw new inputs every call, so each test runs the check several times."""

import pytest
import torch

from minigpt import checks as check
from minigpt.checks import CheckFailed

REPEATS = range(3)


# --------------------------------------------------------------------------- precision and recall

def pr_ref(y, p, cls):
    tp = ((p == cls) & (y == cls)).sum().item()
    pred, true = (p == cls).sum().item(), (y == cls).sum().item()
    return (tp / pred if pred else 0.0, tp / true if true else 0.0)


def pr_swapped(y, p, cls):
    a, b = pr_ref(y, p, cls)
    return b, a


def pr_over_n(y, p, cls):
    tp = ((p == cls) & (y == cls)).sum().item()
    return tp / len(y), tp / len(y)


def pr_nan(y, p, cls):
    tp = ((p == cls) & (y == cls)).sum().item()
    return tp / max((p == cls).sum().item(), 0) if (p == cls).any() else float("nan"), tp / (y == cls).sum().item()


@pytest.mark.parametrize("attempt", REPEATS)
def test_precision_recall_accepts_reference(attempt, capsys):
    check.precision_recall(pr_ref)
    assert "✓ precision_recall" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda y, p, cls: (0.5, 0.5), "precision for|recall for|swapped"),  # a constant
    (pr_swapped, "swapped"),
    (pr_over_n, "number of examples"),
    (pr_nan, "NaN"),
    (lambda y, p, cls: ((p == y).float().mean().item(),) * 2, "precision for|recall for"),  # accuracy
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_precision_recall_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.precision_recall(wrong)


# --------------------------------------------------------------------------- threshold on dev

def threshold_ref(scores, labels):
    best_t, best = None, -1.0
    for t in scores.unique():
        acc = ((scores >= t).long() == labels).float().mean().item()
        if acc > best:
            best_t, best = t.item(), acc
    return best_t


def threshold_flipped(scores, labels):
    best_t, best = None, -1.0
    for t in scores.unique():
        acc = ((scores < t).long() == labels).float().mean().item()
        if acc > best:
            best_t, best = t.item(), acc
    return best_t


@pytest.mark.parametrize("attempt", REPEATS)
def test_choose_threshold_accepts_reference(attempt, capsys):
    check.choose_threshold(threshold_ref)
    assert "✓ choose_threshold" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda s, y: 0.5, "better one exists|wrong way"),  # a constant
    (lambda s, y: s.median().item(), "better one exists|wrong way"),  # the median ignores the labels
    (lambda s, y: s.mean().item(), "better one exists|wrong way"),
    (threshold_flipped, "wrong way round"),
    (lambda s, y: (s[y == 1].mean() + s[y == 0].mean()).item() / 2 + 10, "better one exists|wrong way"),
    (lambda s, y: (s[y == 1].mean() + s[y == 0].mean()).item() / 2, "better one exists|wrong way"),  # the midpoint
    (lambda s, y: (s[y == 1].median() + s[y == 0].median()).item() / 2, "better one exists|wrong way"),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_choose_threshold_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.choose_threshold(wrong)


def test_choose_threshold_never_passes_a_midpoint():
    """Every draw holds a case where the midpoint of the class means is worse than the best threshold
    (before, about 1 draw in 100 let it pass): 300 repeatable draws."""
    from minigpt.checks import _core
    midpoint = lambda s, y: (s[y == 1].mean() + s[y == 0].mean()).item() / 2
    try:
        _core.repeatable_draws("choose_threshold midpoint")
        for _ in range(300):
            with pytest.raises(CheckFailed):
                check.choose_threshold(midpoint)
    finally:
        _core.repeatable_draws(None)


# --------------------------------------------------------------------------- ECE

def bins_of(conf, n_bins):
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    return (torch.searchsorted(edges, conf.double()) - 1).clamp(0, n_bins - 1)


def ece_ref(conf, correct, n_bins):
    b = bins_of(conf, n_bins)
    total = 0.0
    for i in range(n_bins):
        m = b == i
        if m.any():
            total += m.double().mean() * (correct[m].double().mean() - conf[m].double().mean()).abs()
    return float(total)


def ece_unweighted(conf, correct, n_bins):
    b = bins_of(conf, n_bins)
    gaps = [(correct[b == i].double().mean() - conf[b == i].double().mean()).abs() for i in range(n_bins) if (b == i).any()]
    return float(sum(gaps) / len(gaps))


def ece_max(conf, correct, n_bins):
    b = bins_of(conf, n_bins)
    return float(max((correct[b == i].double().mean() - conf[b == i].double().mean()).abs()
                     for i in range(n_bins) if (b == i).any()))


def ece_signed(conf, correct, n_bins):
    b = bins_of(conf, n_bins)
    return float(sum((b == i).double().mean() * (correct[b == i].double().mean() - conf[b == i].double().mean())
                     for i in range(n_bins) if (b == i).any()))


@pytest.mark.parametrize("attempt", REPEATS)
def test_calibration_error_accepts_reference(attempt, capsys):
    check.calibration_error(ece_ref)
    assert "✓ calibration_error" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda conf, correct, n_bins: 0.05, "the ECE with"),  # a constant
    (ece_unweighted, "equally"),
    (ece_max, "largest gap"),
    (ece_signed, "cancel"),
    (lambda conf, correct, n_bins: float((correct.double() - conf.double()).abs().mean()), "the ECE with"),  # no bins
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_calibration_error_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.calibration_error(wrong)


# --------------------------------------------------------------------------- recall@k

def recall_ref(sim, labels, k):
    sim = sim.clone()
    sim.fill_diagonal_(float("-inf"))
    top = sim.topk(k, dim=1).indices
    same = labels[:, None] == labels[None, :]
    same.fill_diagonal_(False)
    n_rel = same.sum(1)
    hits = same.gather(1, top).sum(1)
    has = n_rel > 0
    return (hits[has].double() / n_rel[has]).mean().item()


def recall_with_self(sim, labels, k):
    top = sim.topk(k, dim=1).indices
    same = labels[:, None] == labels[None, :]
    n_rel = same.sum(1) - 1
    has = n_rel > 0
    return ((same.gather(1, top).sum(1)[has] - 1).double() / n_rel[has]).mean().item()


def precision_at_k(sim, labels, k):
    sim = sim.clone()
    sim.fill_diagonal_(float("-inf"))
    same = labels[:, None] == labels[None, :]
    same.fill_diagonal_(False)
    has = same.sum(1) > 0
    return (same.gather(1, sim.topk(k, dim=1).indices).sum(1)[has].double() / k).mean().item()


def hit_rate(sim, labels, k):
    sim = sim.clone()
    sim.fill_diagonal_(float("-inf"))
    same = labels[:, None] == labels[None, :]
    same.fill_diagonal_(False)
    has = same.sum(1) > 0
    return (same.gather(1, sim.topk(k, dim=1).indices).sum(1)[has] > 0).double().mean().item()


@pytest.mark.parametrize("attempt", REPEATS)
def test_recall_at_k_accepts_reference(attempt, capsys):
    check.recall_at_k(recall_ref)
    assert "✓ recall_at_k" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda sim, labels, k: 0.3, "recall_at_k: "),  # a constant (any hint will do)
    (recall_with_self, "own nearest neighbour"),
    (precision_at_k, "precision@k"),
    (hit_rate, "any relevant item"),
    (lambda sim, labels, k: recall_ref(sim, labels, 3), "recall_at_k: "),  # ignores `k`
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_recall_at_k_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.recall_at_k(wrong)


# --------------------------------------------------------------------------- freezing the body

def freeze_ref(clf):
    for p in clf.gpt.parameters():
        p.requires_grad_(False)


def freeze_everything(clf):
    for p in clf.parameters():
        p.requires_grad_(False)


def freeze_embeddings_only(clf):
    clf.gpt.transformer.wte.weight.requires_grad_(False)
    clf.gpt.transformer.wpe.weight.requires_grad_(False)


def eval_instead(clf):
    clf.gpt.eval()


@pytest.mark.parametrize("attempt", REPEATS)
def test_freeze_body_accepts_reference(attempt, capsys):
    check.freeze_body(freeze_ref)
    assert "✓ freeze_body" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda clf: None, "body parameters still train"),  # does nothing: a constant answer
    (freeze_everything, "head must still train"),
    (freeze_embeddings_only, "body parameters still train"),
    (eval_instead, "body parameters still train"),
])
def test_freeze_body_rejects_mistakes(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check.freeze_body(wrong)
