"""minigpt.apps on tiny models: hidden states, embeddings, logistic regression, the classification
head and its fine-tuning, and instruction-tuning data."""

import copy

import numpy as np
import pytest
import torch

from minigpt.apps import (
    GPTClassifier,
    LogisticRegression,
    continuations,
    cosine_similarity,
    embed,
    fine_tune_classifier,
    hidden_states,
    instruction_data,
    pad_batch,
    predict_proba,
)
from minigpt.model import GPT, GPTConfig
from minigpt.tokenizer import CharTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")
TOK = CharTokenizer("abcdefgh :\n")


def tiny_gpt(block_size=12, seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(block_size=block_size, vocab_size=TOK.vocab_size, n_layer=2, n_head=2, n_embd=16)).eval()


def test_lm_head_of_the_hidden_states_gives_the_models_logits():
    model = tiny_gpt()
    idx = torch.randint(0, TOK.vocab_size, (3, 10))
    with torch.no_grad():
        assert torch.allclose(model.lm_head(hidden_states(model, idx)), model(idx)[0], atol=1e-5)


def test_pad_batch_pads_on_the_right_and_marks_real_tokens():
    idx, mask = pad_batch([[1, 2, 3], [4]], pad_id=0)
    assert idx.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert mask.tolist() == [[True, True, True], [True, False, False]]
    with pytest.raises(ValueError, match="no empty"):
        pad_batch([[1], []])


def test_an_embedding_does_not_depend_on_what_it_is_batched_with():
    model = tiny_gpt()
    texts = ["abc", "hhhh gg", "a", "dead beef cafe"]
    together = embed(model, TOK, texts)
    alone = torch.cat([embed(model, TOK, [t]) for t in texts])
    assert together.shape == (4, 16)
    assert torch.allclose(together, alone, atol=1e-5)


def test_a_long_text_is_embedded_as_the_token_mean_over_block_size_pieces():
    model = tiny_gpt(block_size=8)
    text = "abcdefgh abcdefgh ab"  # 20 characters: pieces of 8, 8 and 4
    ids = torch.tensor(TOK.encode(text))
    with torch.no_grad():
        h = torch.cat([hidden_states(model, ids[s:s + 8][None])[0] for s in range(0, 20, 8)])  # (20, C)
    assert torch.allclose(embed(model, TOK, [text])[0], h.mean(0), atol=1e-5)


def test_cosine_similarity_of_a_vector_with_itself_is_one():
    x = torch.randn(5, 7)
    sim = cosine_similarity(x)
    assert torch.allclose(sim.diagonal(), torch.ones(5, dtype=sim.dtype))
    assert torch.allclose(sim, sim.T)


def test_logistic_regression_matches_scikit_learn():
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    y = (X @ rng.normal(size=(5, 3))).argmax(1)
    y = np.where(rng.uniform(size=300) < 0.2, rng.integers(0, 3, 300), y)  # noisy: weights stay finite
    l2 = 1e-2
    ours = LogisticRegression(l2=l2).fit(X, y)
    ref = sklearn.LogisticRegression(C=1 / (l2 * len(X)), tol=1e-10, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X).numpy(), ref.predict_proba(X), atol=2e-4)
    assert (ours.predict(X).numpy() == ref.predict(X)).mean() > 0.99


def test_the_classifier_ignores_padding():
    clf = GPTClassifier(tiny_gpt(), n_classes=3).eval()
    idx, mask = pad_batch([TOK.encode("abc"), TOK.encode("abcdefg")])
    with torch.no_grad():
        batched = clf(idx, mask)
        alone = clf(torch.tensor([TOK.encode("abc")]))
    assert batched.shape == (2, 3)
    assert torch.allclose(batched[0], alone[0], atol=1e-5)


def _parity_task(n, g):
    """Label 1 when the text holds more 'a' than 'b': needs the content, not the length."""
    texts, labels = [], []
    for _ in range(n):
        k = int(torch.randint(3, 10, (1,), generator=g))
        s = "".join("ab"[int(i)] for i in torch.randint(0, 2, (k,), generator=g))
        texts.append(s)
        labels.append(int(s.count("a") > s.count("b")))
    idx, mask = pad_batch([TOK.encode(t) for t in texts])
    return idx, mask, torch.tensor(labels)


def test_fine_tuning_learns_a_task_and_changes_the_body():
    g = torch.Generator().manual_seed(0)
    train, dev = _parity_task(512, g), _parity_task(128, g)
    body = tiny_gpt()
    before = copy.deepcopy(body.state_dict())
    clf = GPTClassifier(body, n_classes=2)
    res = fine_tune_classifier(clf, train, dev, steps=300, batch_size=32, lr=1e-3, head_lr=1e-2, eval_interval=100,
                               progress=False)
    assert len(res.train_loss) == 300 and res.seconds > 0
    assert res.dev_accuracy[-1][0] == 300
    acc = float((predict_proba(clf, dev[0], dev[1]).argmax(-1) == dev[2]).float().mean())
    majority = max(float(dev[2].float().mean()), 1 - float(dev[2].float().mean()))
    assert acc > max(0.85, majority + 0.2)
    assert acc == pytest.approx(res.dev_accuracy[-1][1])
    assert any(not torch.equal(before[k], v) for k, v in body.state_dict().items())
    probs = predict_proba(clf, dev[0], dev[1])
    assert torch.allclose(probs.sum(-1), torch.ones(len(probs)), atol=1e-5)


def test_instruction_data_puts_the_loss_on_the_response_only():
    X, Y = instruction_data(["ab: "], ["cd\n"], TOK, block_size=10)
    ids = TOK.encode("ab: cd\n")
    assert X[0, :6].tolist() == ids[:-1]
    # targets: -1 for the 4 prompt positions except the last, which predicts the first response token
    assert Y[0].tolist() == [-1, -1, -1] + TOK.encode("cd\n") + [-1] * 4
    with pytest.raises(ValueError, match="at most block_size"):
        instruction_data(["abcdefgh"], ["abcdefgh"], TOK, block_size=10)
    with pytest.raises(ValueError, match="non-empty response"):
        instruction_data(["ab"], [""], TOK, block_size=10)


def test_continuations_pair_each_real_passage_with_a_sample_from_the_same_prefix():
    model = tiny_gpt(block_size=12)
    text = "abc defg hab:\n" * 6  # 84 characters: 7 windows of 4 + 8
    real, fake = continuations(model, TOK, text, prefix=4, length=8, temperature=0, seed=0, batch_size=3)
    ids = torch.tensor(TOK.encode(text)).view(7, 12)
    assert real.shape == fake.shape == (7, 8)
    assert torch.equal(real, ids[:, 4:])
    from minigpt.generate import generate
    assert torch.equal(fake, generate(model, ids[:, :4], 8, temperature=0)[:, 4:])  # greedy: the model's own text
    a = continuations(model, TOK, text, prefix=4, length=8, temperature=1.0, seed=5)[1]
    b = continuations(model, TOK, text, prefix=4, length=8, temperature=1.0, seed=5)[1]
    assert torch.equal(a, b)  # seeded
    with pytest.raises(ValueError, match="too short"):
        continuations(model, TOK, "abc", prefix=4, length=8)
