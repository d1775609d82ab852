"""Lesson 03's checks accept the reference answers and reject the typical mistakes."""

import math

import pytest
import torch

from minigpt import checks as check
from minigpt.checks import CheckFailed
from minigpt.mlp import MLPLanguageModel, build_context_dataset


def test_build_context_accepts_the_package_function(capsys):
    check.build_context(build_context_dataset)
    assert "✓ build_context" in capsys.readouterr().out


def test_build_context_rejects_a_missing_end_marker():
    def no_end(words, block_size):
        X, Y = build_context_dataset(words, block_size)
        keep = Y != 0
        return X[keep], Y[keep]

    with pytest.raises(CheckFailed, match="end marker"):
        check.build_context(no_end)


def test_build_context_rejects_a_window_that_does_not_slide():
    def stuck(words, block_size):
        X, Y = build_context_dataset(words, block_size)
        return torch.zeros_like(X), Y

    with pytest.raises(CheckFailed, match="example 1 .*slide the window"):
        check.build_context(stuck)


def test_embed_context_accepts_the_reference(capsys):
    check.embed_context(lambda C, X: C[X].view(X.shape[0], -1))
    assert "✓ embed_context" in capsys.readouterr().out


def test_embed_context_rejects_summing_and_interleaving():
    with pytest.raises(CheckFailed, match="concatenate"):
        check.embed_context(lambda C, X: C[X].sum(1))
    with pytest.raises(CheckFailed, match="interleaved"):
        check.embed_context(lambda C, X: C[X].transpose(1, 2).reshape(X.shape[0], -1))


def forward(X, C, W1, b1, W2, b2):
    return torch.tanh(C[X].flatten(1) @ W1 + b1) @ W2 + b2


def test_mlp_forward_accepts_the_reference(capsys):
    check.mlp_forward(forward)
    assert "✓ mlp_forward" in capsys.readouterr().out


def test_mlp_forward_rejects_a_missing_tanh_and_a_softmax():
    with pytest.raises(CheckFailed, match="linear"):
        check.mlp_forward(lambda X, C, W1, b1, W2, b2: (C[X].flatten(1) @ W1 + b1) @ W2 + b2)
    with pytest.raises(CheckFailed, match="return the logits"):
        check.mlp_forward(lambda *a: torch.softmax(forward(*a), dim=1))


def scaled(block_size, n_embd, n_hidden, vocab_size, generator, w1_scale=None, w2_scale=0.01):
    fan_in = block_size * n_embd
    w1_scale = (5 / 3) / math.sqrt(fan_in) if w1_scale is None else w1_scale
    return (torch.randn(vocab_size, n_embd, generator=generator),
            torch.randn(fan_in, n_hidden, generator=generator) * w1_scale,
            torch.randn(n_hidden, generator=generator) * 0.01,
            torch.randn(n_hidden, vocab_size, generator=generator) * w2_scale,
            torch.zeros(vocab_size))


def test_init_params_accepts_the_kaiming_fix(capsys):
    check.init_params(scaled)
    assert "✓ init_params" in capsys.readouterr().out


def test_init_params_rejects_naive_init_and_a_silent_hidden_layer():
    with pytest.raises(CheckFailed, match="too confident"):
        check.init_params(lambda *a: scaled(*a, w1_scale=1.0, w2_scale=1.0))
    with pytest.raises(CheckFailed, match="saturated"):
        check.init_params(lambda *a: scaled(*a, w1_scale=1.0))
    with pytest.raises(CheckFailed, match="near 0"):
        check.init_params(lambda *a: scaled(*a, w1_scale=1e-4))


def test_init_params_accepts_the_package_models_scaled_init(capsys):
    def from_model(block_size, n_embd, n_hidden, vocab_size, generator):
        m = MLPLanguageModel(vocab_size, block_size, n_embd, n_hidden, init="scaled", generator=generator)
        return (m.wte.weight, m.hidden.weight.T, m.hidden.bias, m.lm_head.weight.T, m.lm_head.bias)

    check.init_params(from_model)
    assert "✓ init_params" in capsys.readouterr().out


def test_context_length_experiment_accepts_plausible_results(capsys):
    check.context_length_experiment({1: 2.47, 2: 2.30, 3: 2.20, 5: 2.18, 8: 2.19})
    assert "✓ context_length_experiment" in capsys.readouterr().out


def test_context_length_experiment_rejects_perplexities_and_missing_bigram():
    with pytest.raises(CheckFailed, match="perplexities"):
        check.context_length_experiment({1: 11.8, 2: 9.9, 3: 9.0})
    with pytest.raises(CheckFailed, match="including 1"):
        check.context_length_experiment({2: 2.3, 3: 2.2, 5: 2.18})
    with pytest.raises(CheckFailed, match="training split"):
        check.context_length_experiment({1: 2.2, 2: 2.1, 3: 2.0})
