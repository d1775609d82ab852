"""minigpt.metrics: hand-worked cases, and the same numbers as scikit-learn on random data."""

import math

import numpy as np
import pytest
import torch

from minigpt import metrics as M

sk = pytest.importorskip("sklearn.metrics")


# --------------------------------------------------------------------------- hand-worked

def test_a_hand_worked_three_class_example():
    # true:  0 0 0 1 1 2      pred: 0 1 0 1 2 2
    y, p = [0, 0, 0, 1, 1, 2], [0, 1, 0, 1, 2, 2]
    assert M.accuracy(y, p) == pytest.approx(4 / 6)
    assert M.confusion_matrix(y, p).tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    r = M.precision_recall_f1(y, p)
    # class 0: predicted twice, both right -> P = 1; 3 true, 2 found -> R = 2/3
    # class 1: predicted twice, one right -> P = 1/2; 2 true, one found -> R = 1/2
    # class 2: predicted twice, one right -> P = 1/2; 1 true, found -> R = 1
    assert r["precision"].tolist() == pytest.approx([1, 0.5, 0.5])
    assert r["recall"].tolist() == pytest.approx([2 / 3, 0.5, 1])
    f1 = [2 * 1 * (2 / 3) / (1 + 2 / 3), 0.5, 2 * 0.5 / 1.5]
    assert r["f1"].tolist() == pytest.approx(f1)
    assert r["support"].tolist() == [3, 2, 1]
    assert M.macro_f1(y, p) == pytest.approx(sum(f1) / 3)


def test_a_class_never_predicted_has_precision_zero_not_nan():
    r = M.precision_recall_f1([0, 1, 1], [0, 0, 0], n_classes=3)
    assert r["precision"].tolist() == [pytest.approx(1 / 3), 0.0, 0.0]
    assert r["recall"].tolist() == [1.0, 0.0, 0.0]
    assert not np.isnan(r["f1"]).any()


def test_the_majority_class_gets_the_base_rate_but_a_low_macro_f1():
    y = [0] * 90 + [1] * 10
    p = [0] * 100
    assert M.accuracy(y, p) == pytest.approx(0.9)
    assert M.macro_f1(y, p) == pytest.approx((2 * 0.9 / 1.9) / 2)


def test_bad_labels_are_one_clear_error():
    with pytest.raises(ValueError, match="pair up"):
        M.accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="not scores"):
        M.confusion_matrix([0, 1], [0.3, 0.7])
    with pytest.raises(ValueError, match="no labels"):
        M.accuracy([], [])


def test_topk_accuracy_by_hand_and_ignoring_minus_one():
    logits = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    targets = torch.tensor([2, 0, 0, -1])
    assert M.topk_accuracy(logits, targets, 1) == pytest.approx(1 / 3)  # only row 1 is right
    assert M.topk_accuracy(logits, targets, 2) == pytest.approx(2 / 3)  # row 0's 2 is second
    assert M.topk_accuracy(logits, targets, 3) == 1.0
    assert M.topk_accuracy(logits[None], targets[None], 2) == pytest.approx(2 / 3)  # any leading shape


def test_reliability_and_ece_by_hand():
    conf = [0.95, 0.95, 0.95, 0.95, 0.55, 0.55]
    correct = [1, 1, 1, 0, 1, 0]
    r = M.reliability(conf, correct, n_bins=10)
    assert r["count"][9] == 4 and r["count"][5] == 2 and r["count"].sum() == 6
    assert r["accuracy"][9] == pytest.approx(0.75) and r["accuracy"][5] == pytest.approx(0.5)
    assert math.isnan(r["accuracy"][0])  # empty bins have no accuracy
    # ECE = 4/6 |0.75 - 0.95| + 2/6 |0.5 - 0.55|
    assert M.expected_calibration_error(conf, correct, 10) == pytest.approx(4 / 6 * 0.2 + 2 / 6 * 0.05)


def test_a_perfectly_calibrated_sample_has_a_small_ece():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, 200_000)
    correct = rng.uniform(0, 1, conf.size) < conf  # right with exactly the stated probability
    assert M.expected_calibration_error(conf, correct) < 0.01
    assert M.expected_calibration_error(conf, ~correct) > 0.3  # the opposite is badly calibrated


def test_confidence_edges_go_to_the_end_bins():
    r = M.reliability([0.0, 1.0, 0.5], [0, 1, 1], n_bins=2)
    assert r["count"].tolist() == [2, 1]  # 0.5 belongs to (0, 0.5]


def test_recall_at_k_by_hand():
    # items 0, 1, 2 are "a", item 3 is "b", item 4 is "c" (no other c: not a query)
    labels = [0, 0, 0, 1, 2]
    sim = torch.tensor([
        [9, 5, 1, 4, 0],   # 0: ranks 1, 3, 2, 4 -> top-1 {1}: 1/2 found; top-2 {1, 3}: 1/2
        [5, 9, 0, 3, 4],   # 1: ranks 0, 4, 3, 2 -> top-1 {0}: 1/2; top-2 {0, 4}: 1/2
        [1, 0, 9, 2, 3],   # 2: ranks 4, 3, 0, 1 -> top-1: 0; top-2: 0
        [4, 3, 2, 9, 1],   # 3: no other "b": left out
        [0, 4, 3, 1, 9],
    ], dtype=torch.float)
    assert M.recall_at_k(sim, labels, 1) == pytest.approx((0.5 + 0.5 + 0) / 3)
    assert M.recall_at_k(sim, labels, 2) == pytest.approx((0.5 + 0.5 + 0) / 3)
    assert M.recall_at_k(sim, labels, 4) == pytest.approx(1.0)  # everything is retrieved
    with pytest.raises(ValueError, match="k must be between"):
        M.recall_at_k(sim, labels, 5)


def test_recall_at_k_of_random_similarities_is_about_k_over_n_minus_one():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (400,), generator=g)
    sim = torch.rand(400, 400, generator=g)
    assert M.recall_at_k(sim, labels, 40) == pytest.approx(40 / 399, abs=0.01)


def test_best_threshold_by_hand():
    scores = [0.1, 0.4, 0.35, 0.8]
    labels = [0, 0, 1, 1]
    t, acc = M.best_threshold(scores, labels, "accuracy")
    assert acc == 0.75 and t in (0.35, 0.8)  # 0.35: 3 of 4 right; 0.8: 3 of 4 right; the first is kept
    t, f1 = M.best_threshold(scores, labels, "f1")
    assert t == 0.35 and f1 == pytest.approx(0.8)  # P = 2/3, R = 1


# --------------------------------------------------------------------------- against scikit-learn

@pytest.mark.parametrize("seed", range(5))
def test_classification_metrics_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    K = int(rng.integers(2, 7))
    y = rng.integers(0, K, 300)
    p = np.where(rng.uniform(size=300) < 0.5, y, rng.integers(0, K, 300))
    labels = list(range(K))
    assert M.accuracy(y, p) == pytest.approx(sk.accuracy_score(y, p))
    assert (M.confusion_matrix(y, p, K) == sk.confusion_matrix(y, p, labels=labels)).all()
    P, R, F, S = sk.precision_recall_fscore_support(y, p, labels=labels, zero_division=0)
    r = M.precision_recall_f1(y, p, K)
    np.testing.assert_allclose(r["precision"], P)
    np.testing.assert_allclose(r["recall"], R)
    np.testing.assert_allclose(r["f1"], F)
    np.testing.assert_array_equal(r["support"], S)
    assert M.macro_f1(y, p, K) == pytest.approx(sk.f1_score(y, p, labels=labels, average="macro", zero_division=0))


@pytest.mark.parametrize("seed", range(5))
def test_precision_recall_curve_and_average_precision_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    y[0] = 1
    scores = np.round(y * 0.5 + rng.normal(size=200), 1)  # rounded: many ties
    P, R, T = M.precision_recall_curve(scores, y)
    sP, sR, sT = sk.precision_recall_curve(y, scores)
    np.testing.assert_allclose(P, sP)
    np.testing.assert_allclose(R, sR)
    np.testing.assert_allclose(T, sT)
    assert M.average_precision(scores, y) == pytest.approx(sk.average_precision_score(y, scores))


def test_metrics_take_tensors_as_well_as_lists():
    y, p = torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0])
    assert M.accuracy(y, p) == 0.75
    assert M.confusion_matrix(y, p).tolist() == [[2, 0], [1, 1]]


def test_retrieval_at_k_by_hand_and_its_ceilings():
    # 5 items, labels 0 0 0 1 1; item 0's neighbours in order: 3, 1, 4, 2
    labels = [0, 0, 0, 1, 1]
    sim = torch.eye(5) * 10 + torch.tensor([[0, 3, 1, 4, 2]] + [[0] * 5] * 4).float()
    sim = sim + torch.arange(5).flip(0).float() * 0.01  # ties broken the same way for the other rows
    r = M.retrieval_at_k(sim, labels, 2)
    assert r["recall"]["value"] == pytest.approx(M.recall_at_k(sim, labels, 2))
    # ceilings: recall k / |relevant| capped at 1 (2/2, 2/2, 2/2, 1, 1), precision |relevant| / k capped at 1
    assert r["recall"]["ceiling"] == pytest.approx(1.0)
    assert r["precision"]["ceiling"] == pytest.approx((1 + 1 + 1 + 0.5 + 0.5) / 5)
    assert r["recall"]["random"] == pytest.approx(2 / 4)
    assert r["precision"]["random"] == pytest.approx((2 + 2 + 2 + 1 + 1) / 4 / 5)
    # hit rate at random: 1 - C(4 - r, 2) / C(4, 2) for r relevant among 4 others
    assert r["hit_rate"]["random"] == pytest.approx((3 * (1 - 1 / 6) + 2 * (1 - 3 / 6)) / 5)
    assert r["hit_rate"]["ceiling"] == 1.0


def test_retrieval_at_k_random_rankings_meet_their_random_baselines():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 6, (300,), generator=g)
    sim = torch.rand(300, 300, generator=g)
    r = M.retrieval_at_k(sim, labels, 10)
    for key in ("recall", "precision", "hit_rate"):
        assert r[key]["value"] == pytest.approx(r[key]["random"], abs=0.03), key
        assert r[key]["value"] <= r[key]["ceiling"] + 1e-12


def test_recall_ceiling_is_small_when_a_query_has_many_relevant_items():
    labels = [0] * 50 + [1] * 50
    sim = (torch.tensor(labels)[:, None] == torch.tensor(labels)[None, :]).float()  # a perfect ranking
    r = M.retrieval_at_k(sim, labels, 5)
    assert r["recall"]["value"] == pytest.approx(5 / 49) == pytest.approx(r["recall"]["ceiling"])
    assert r["precision"]["value"] == pytest.approx(1.0) and r["hit_rate"]["value"] == pytest.approx(1.0)
