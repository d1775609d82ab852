"""Naive Bayes over characters (minigpt.classify), against scikit-learn's MultinomialNB."""

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.naive_bayes import MultinomialNB

from minigpt import data
from minigpt.classify import NaiveBayes, is_han


@pytest.mark.parametrize("alpha", [1.0, 0.1])
def test_naive_bayes_matches_scikit_learn_on_the_poets(alpha):
    poets = data.load_tang_poets()
    train = [p for p in poets if p["split"] == "train"][:1500]
    val = [p for p in poets if p["split"] == "val"][:200]
    x_train, y_train = [p["text"] for p in train], [p["label"] for p in train]
    x_val = [p["text"] for p in val]
    nb = NaiveBayes(alpha=alpha).fit(x_train, y_train)
    vec = CountVectorizer(analyzer="char", lowercase=False)
    ref = MultinomialNB(alpha=alpha).fit(vec.fit_transform(x_train), y_train)
    assert nb.classes == list(ref.classes_)
    want = ref.predict_joint_log_proba(vec.transform(x_val))
    np.testing.assert_allclose(nb.log_posteriors(x_val), want, rtol=1e-9)
    assert nb.predict(x_val) == list(ref.predict(vec.transform(x_val)))


def test_keep_counts_only_the_characters_it_accepts():
    nb = NaiveBayes(keep=is_han).fit(["甲甲，", "乙乙！", "乙。"], ["a", "b", "b"])
    assert nb.vocab == ["乙", "甲"]
    assert nb.predict(["甲！！！！", "乙，，，，", "，，"]) == ["a", "b", "b"]  # marks carry no evidence: prior
    # Add-one: P(甲 | a) = (2 + 1) / (2 + 2), P(甲 | b) = (0 + 1) / (3 + 2); priors 1/3 and 2/3.
    got = nb.log_posteriors(["甲"])[0]
    np.testing.assert_allclose(got, [np.log(1 / 3) + np.log(3 / 4), np.log(2 / 3) + np.log(1 / 5)])


def test_bad_input_is_one_clear_error():
    with pytest.raises(ValueError, match="as many labels as texts"):
        NaiveBayes().fit(["a", "b"], ["x"])
    with pytest.raises(ValueError, match="alpha must be > 0"):
        NaiveBayes(alpha=0)
    with pytest.raises(ValueError, match="call fit"):
        NaiveBayes().predict(["a"])
