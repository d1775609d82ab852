"""Lesson 03's checks accept the reference answers and reject typical mistakes, a constant among them.

The checks draw new inputs every call, so the accepting tests run each check several times."""

import math

import pytest
import torch

from minigpt import checks as check
from minigpt.checks import CheckFailed
from minigpt.mlp import MLPLanguageModel, build_context_dataset, step_decay, train_mlp

REPEATS = range(3)


# ---------------------------------------------------------------- the context windows
@pytest.mark.parametrize("attempt", REPEATS)
def test_build_context_accepts_the_package_function(attempt, capsys):
    check.build_context(build_context_dataset)
    assert "✓ build_context" in capsys.readouterr().out


def no_end(words, block_size):
    X, Y = build_context_dataset(words, block_size)
    keep = Y != 0
    return X[keep], Y[keep]


def stuck(words, block_size):
    X, Y = build_context_dataset(words, block_size)
    return torch.zeros_like(X), Y


def emma_only(words, block_size):  # a hard-coded answer: the data set of "emma" with three characters
    return build_context_dataset(["emma"], 3)


@pytest.mark.parametrize("wrong, hint", [
    (no_end, "end marker"),
    (stuck, "example 1 .*slide the window"),
    (emma_only, "shape"),
    (lambda words, block_size: build_context_dataset(words, 3), "shape"),  # ignores block_size
    (lambda words, block_size: tuple(t.float() for t in build_context_dataset(words, block_size)), "integer"),
])
def test_build_context_rejects_mistakes(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check.build_context(wrong)


# ---------------------------------------------------------------- embedding a batch of contexts
@pytest.mark.parametrize("attempt", REPEATS)
def test_embed_context_accepts_the_reference(attempt, capsys):
    check.embed_context(lambda C, X: C[X].view(X.shape[0], -1))
    assert "✓ embed_context" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda C, X: C[X].sum(1), "concatenate"),
    (lambda C, X: C[X].transpose(1, 2).reshape(X.shape[0], -1), "interleaved"),
    (lambda C, X: torch.zeros(16, 30), "shape|differs"),  # a constant
    (lambda C, X: C[X[:, :1]].expand(-1, X.shape[1], -1).reshape(X.shape[0], -1), "differs"),  # first char only
])
def test_embed_context_rejects_mistakes(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check.embed_context(wrong)


# ---------------------------------------------------------------- the forward pass
def forward(X, C, W1, b1, W2, b2):
    return torch.tanh(C[X].flatten(1) @ W1 + b1) @ W2 + b2


@pytest.mark.parametrize("attempt", REPEATS)
def test_mlp_forward_accepts_the_reference(attempt, capsys):
    check.mlp_forward(forward)
    assert "✓ mlp_forward" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda X, C, W1, b1, W2, b2: (C[X].flatten(1) @ W1 + b1) @ W2 + b2, "linear"),
    (lambda *a: torch.softmax(forward(*a), dim=1), "return the logits"),
    (lambda X, C, W1, b1, W2, b2: torch.tanh(C[X].flatten(1) @ W1) @ W2 + b2, "differs"),  # no b1
    (lambda X, C, W1, b1, W2, b2: torch.zeros(32, 27), "differs"),  # a constant
])
def test_mlp_forward_rejects_mistakes(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check.mlp_forward(wrong)


# ---------------------------------------------------------------- the initialisation
def scaled(block_size, n_embd, n_hidden, vocab_size, generator, w1_scale=None, w2_scale=0.01, zero_w1=False):
    fan_in = block_size * n_embd
    w1_scale = (5 / 3) / math.sqrt(fan_in) if w1_scale is None else w1_scale
    W1 = torch.randn(fan_in, n_hidden, generator=generator) * w1_scale
    return (torch.randn(vocab_size, n_embd, generator=generator),
            torch.zeros_like(W1) if zero_w1 else W1,
            torch.randn(n_hidden, generator=generator) * (1.0 if zero_w1 else 0.01),
            torch.randn(n_hidden, vocab_size, generator=generator) * w2_scale,
            torch.zeros(vocab_size))


def ignores_generator(block_size, n_embd, n_hidden, vocab_size, generator):
    return scaled(block_size, n_embd, n_hidden, vocab_size, None)


FIXED = {}


def fixed_tensors(block_size, n_embd, n_hidden, vocab_size, generator):
    """A hard-coded answer: the tensors of the first call, whatever is asked next."""
    if not FIXED:
        FIXED["params"] = scaled(block_size, n_embd, n_hidden, vocab_size, generator)
    return FIXED["params"]


@pytest.mark.parametrize("attempt", REPEATS)
def test_init_params_accepts_the_kaiming_fix(attempt, capsys):
    check.init_params(scaled)
    check.init_params(lambda *a: scaled(*a, w1_scale=1 / math.sqrt(a[0] * a[1])))  # gain 1 is fine too
    assert capsys.readouterr().out.count("✓ init_params") == 2


@pytest.mark.parametrize("wrong, hint", [
    (lambda *a: scaled(*a, w1_scale=1.0, w2_scale=1.0), "too confident"),
    (lambda *a: scaled(*a, w1_scale=1.0), "saturated"),
    (lambda *a: scaled(*a, w1_scale=1e-4), "silent"),
    (lambda *a: scaled(*a, zero_w1=True), "same output for every input"),
    (lambda *a: scaled(*a, w1_scale=0.3), "fan-in"),  # a fixed scale, right for fan_in ~ 30 only
    (lambda *a: scaled(*a, w1_scale=0.2), "fan-in"),
    (lambda *a: scaled(*a, w1_scale=1 / (a[0] * a[1])), "fan-in"),  # 1 / fan_in, not 1 / sqrt(fan_in)
    (ignores_generator, "generator"),
    (fixed_tensors, "shape"),  # a constant
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_init_params_rejects_mistakes(wrong, hint, attempt):
    FIXED.clear()
    with pytest.raises(CheckFailed, match=hint):
        check.init_params(wrong)


def test_init_params_accepts_the_package_models_scaled_init(capsys):
    def from_model(block_size, n_embd, n_hidden, vocab_size, generator):
        m = MLPLanguageModel(vocab_size, block_size, n_embd, n_hidden, init="scaled", generator=generator)
        return (m.wte.weight, m.hidden.weight.T, m.hidden.bias, m.lm_head.weight.T, m.lm_head.bias)

    check.init_params(from_model)
    assert "✓ init_params" in capsys.readouterr().out


# ---------------------------------------------------------------- the context-length experiment
def train_context(words, block_size, steps, seed, data_words=None, seed_batches=True):
    X, Y = build_context_dataset(data_words or words, block_size)
    model = MLPLanguageModel(block_size=block_size, n_embd=10, n_hidden=200,
                             generator=torch.Generator().manual_seed(seed))
    train_mlp(model, X, Y, steps=steps, lr=step_decay(0.1, 0.5, 0.1, steps), progress=False,
              generator=torch.Generator().manual_seed(seed) if seed_batches else None)
    return model


def test_context_length_experiment_accepts_the_reference(capsys):
    check.context_length_experiment(train_context)
    assert "✓ context_length_experiment" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda words, bs, steps, seed: MLPLanguageModel(block_size=bs, generator=torch.Generator().manual_seed(seed)),
     "below 0.85"),  # untrained: a constant
    (lambda words, bs, steps, seed: train_context(words, 3, steps, seed), "block_size=1 your model fails"),
    (lambda words, bs, steps, seed: train_context(words, bs, steps, seed, seed_batches=False), "same seed"),
    (lambda words, bs, steps, seed: train_context(words, bs, 20, seed), "below 0.85"),  # ignores steps
    (lambda words, bs, steps, seed: train_context(words, bs, 600, seed), "train for `steps` steps"),  # ignores steps (600, the default)
    (lambda words, bs, steps, seed: train_context(words, bs, steps, seed, data_words=["emma", "ava", "mia"]),
     "below 0.85"),  # trains on other words than it is given
    (lambda words, bs, steps, seed: {1: 2.47, 2: 2.30, 3: 2.20}, "nn.Module"),  # a hard-coded dict
])
def test_context_length_experiment_rejects_mistakes(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check.context_length_experiment(wrong)
