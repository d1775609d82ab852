"""minigpt.mlp: the neural bigram and the MLP language model of lessons 02-03."""

import math

import pytest
import torch
import torch.nn.functional as F

from minigpt.mlp import (
    CHARS,
    BigramNet,
    MLPLanguageModel,
    bigram_pairs,
    build_context_dataset,
    evaluate_nll,
    lr_sweep,
    sample_names,
    softmax_cross_entropy_grad,
    step_decay,
    train_bigram,
    train_mlp,
)

WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "ella", "eva", "anna"]


def test_context_dataset_pads_with_dots_and_ends_with_the_end_marker():
    X, Y = build_context_dataset(["emma"], block_size=3)
    decoded = ["".join(CHARS[i] for i in row) + "->" + CHARS[y] for row, y in zip(X.tolist(), Y.tolist())]
    assert decoded == ["...->e", "..e->m", ".em->m", "emm->a", "mma->."]
    assert X.dtype == Y.dtype == torch.long


def test_context_dataset_has_one_example_per_character_plus_end():
    for block_size in (1, 3, 8):
        X, Y = build_context_dataset(WORDS, block_size)
        assert X.shape == (sum(len(w) + 1 for w in WORDS), block_size)
        assert Y.shape == (X.shape[0],)


def test_context_dataset_rejects_bad_input():
    with pytest.raises(ValueError, match="block_size"):
        build_context_dataset(WORDS, 0)
    with pytest.raises(ValueError, match="a-z"):
        build_context_dataset(["Emma"], 3)


def test_bigram_pairs_equal_block_size_one_context_dataset():
    xs, ys = bigram_pairs(WORDS)
    X, Y = build_context_dataset(WORDS, 1)
    assert torch.equal(xs, X[:, 0]) and torch.equal(ys, Y)


def test_hand_gradient_matches_autograd():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 27, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 27, (50,), generator=g)
    F.cross_entropy(logits, targets).backward()
    assert torch.allclose(softmax_cross_entropy_grad(logits.detach(), targets), logits.grad)


def test_bigram_net_is_one_hot_times_w():
    net = BigramNet(generator=torch.Generator().manual_seed(0))
    x = torch.tensor([0, 5, 26])
    assert torch.allclose(net(x), F.one_hot(x, 27).float() @ net.W)
    assert torch.allclose(net.probs().sum(1), torch.ones(27))


def test_neural_bigram_converges_to_the_count_models_nll():
    xs, ys = bigram_pairs(WORDS)
    counts = torch.zeros(27, 27)
    counts.index_put_((xs, ys), torch.ones(len(xs)), accumulate=True)
    mle = counts / counts.sum(1, keepdim=True).clamp(min=1)
    count_nll = -mle[xs, ys].log().mean().item()
    net = BigramNet(generator=torch.Generator().manual_seed(0))
    history = train_bigram(net, xs, ys, steps=1000, lr=20.0, progress=False)
    # The counts' maximum-likelihood table is the best any bigram can do on its training data,
    # so gradient descent approaches its NLL from above (slowly, for pairs never seen).
    assert history[0] > history[-1] >= count_nll - 1e-4
    assert history[-1] - count_nll < 0.01


def test_l2_penalty_smooths_the_bigram_table():
    xs, ys = bigram_pairs(WORDS)
    plain, reg = (BigramNet(generator=torch.Generator().manual_seed(0)) for _ in range(2))
    train_bigram(plain, xs, ys, steps=500, lr=50.0, progress=False)
    train_bigram(reg, xs, ys, steps=500, lr=50.0, l2=1.0, progress=False)
    # A pair never seen in the data ('a' -> 'q') keeps more probability under the penalty,
    # and the rows are flatter (higher entropy), like add-k smoothing.
    a, q = CHARS.index("a"), CHARS.index("q")
    assert reg.probs()[a, q] > 2 * plain.probs()[a, q]
    entropy = lambda p: -(p * p.log()).sum(1).mean()  # noqa: E731
    assert entropy(reg.probs()) > entropy(plain.probs())


def test_train_bigram_rejects_bad_options():
    xs, ys = bigram_pairs(WORDS)
    with pytest.raises(ValueError):
        train_bigram(BigramNet(), xs, ys, lr=-1.0, progress=False)


def test_mlp_shapes_and_loss():
    model = MLPLanguageModel(block_size=4, n_embd=5, n_hidden=16, generator=torch.Generator().manual_seed(0))
    X, Y = build_context_dataset(WORDS, 4)
    logits, loss = model(X, Y)
    assert logits.shape == (X.shape[0], 27)
    assert loss.item() == pytest.approx(F.cross_entropy(logits, Y).item())
    assert model(X)[1] is None
    with pytest.raises(ValueError, match="shape"):
        model(X[:, :3])


def test_scaled_init_gives_uniform_loss_and_naive_init_does_not():
    X, Y = build_context_dataset(WORDS * 10, 3)
    g = torch.Generator().manual_seed(0)
    scaled = evaluate_nll(MLPLanguageModel(init="scaled", generator=g), X, Y)
    naive = evaluate_nll(MLPLanguageModel(init="naive", generator=g), X, Y)
    assert scaled == pytest.approx(math.log(27), abs=0.05)
    assert naive > 5.0
    with pytest.raises(ValueError, match="init"):
        MLPLanguageModel(init="xavier")


def test_scaled_init_keeps_tanh_out_of_saturation():
    X, _ = build_context_dataset(WORDS * 10, 3)
    g = torch.Generator().manual_seed(0)
    sat = lambda m: (torch.tanh(m.hidden_preact(X)).abs() > 0.99).float().mean().item()  # noqa: E731
    assert sat(MLPLanguageModel(init="naive", generator=g)) > 0.5
    assert sat(MLPLanguageModel(init="scaled", generator=g)) < 0.2


def test_train_mlp_overfits_a_small_set_and_is_deterministic():
    X, Y = build_context_dataset(WORDS, 3)
    runs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(1)
        model = MLPLanguageModel(n_hidden=64, generator=g)
        history = train_mlp(model, X, Y, steps=300, batch_size=32, lr=0.3, generator=g, progress=False)
        runs.append(history)
    assert runs[0] == runs[1]
    assert len(runs[0]) == 300
    assert evaluate_nll(model, X, Y) < 1.5 < math.log(27)


def test_step_decay_and_lr_sweep():
    sched = step_decay(0.1, 0.5, 0.1, steps=10)
    assert [sched(s) for s in (0, 4, 5, 9)] == [0.1, 0.1, pytest.approx(0.01), pytest.approx(0.01)]
    X, Y = build_context_dataset(WORDS, 3)
    losses = lr_sweep(MLPLanguageModel(generator=torch.Generator().manual_seed(0)), X, Y,
                      [10 ** e for e in torch.linspace(-3, 0, 20).tolist()], progress=False)
    assert len(losses) == 20 and all(math.isfinite(v) for v in losses)


def test_evaluate_nll_does_not_depend_on_batching():
    X, Y = build_context_dataset(WORDS, 3)
    model = MLPLanguageModel(generator=torch.Generator().manual_seed(0))
    assert evaluate_nll(model, X, Y, batch_size=7) == pytest.approx(evaluate_nll(model, X, Y))


def test_sample_names_uses_only_letters_and_is_reproducible():
    model = MLPLanguageModel(generator=torch.Generator().manual_seed(0))
    a = sample_names(model, 5, torch.Generator().manual_seed(3), max_len=20)
    b = sample_names(model, 5, torch.Generator().manual_seed(3), max_len=20)
    assert a == b and len(a) == 5
    assert all(set(n) <= set(CHARS[1:]) and len(n) <= 20 for n in a)


def test_vocabulary_matches_the_count_models():
    from minigpt import ngram

    assert "".join(ngram.CHARS) == CHARS and len(CHARS) == 27
    xs, ys = bigram_pairs(WORDS)
    counts = torch.zeros(27, 27, dtype=torch.int64)
    counts.index_put_((xs, ys), torch.ones(len(xs), dtype=torch.int64), accumulate=True)
    assert torch.equal(counts, ngram.bigram_counts(WORDS))


def test_fit_names_mlp_is_lesson_03s_recipe():
    from minigpt.mlp import fit_names_mlp

    names = {"train": WORDS[:8], "dev": WORDS[8:]}
    model, nll = fit_names_mlp(names, steps=200, n_hidden=32, progress=False)
    assert set(nll) == {"train", "dev"} and nll["train"] < math.log(27)
    # the same steps written out, as lesson 03 does them
    X, Y = build_context_dataset(names["train"], 3)
    ref = MLPLanguageModel(n_hidden=32, generator=torch.Generator().manual_seed(42))
    train_mlp(ref, X, Y, steps=200, lr=step_decay(0.1, 0.5, 0.1, 200), generator=torch.Generator().manual_seed(42),
              progress=False)
    assert nll["train"] == pytest.approx(evaluate_nll(ref, X, Y))
