"""Each lesson-09 check accepts the reference answer and rejects typical mistakes, a constant among them.

The checks draw new inputs every call, so each test runs the check several times."""

import pytest
import torch

from minigpt import checks as check
from minigpt.checks import CheckFailed
from minigpt.interpret import ablate_heads, nll

REPEATS = range(3)


def positions(w):
    T = w.size(-1)
    pos = torch.arange(T, dtype=w.dtype)
    return pos[:, None] - pos[None, :]


def distance_ref(w):
    return (w * positions(w)).sum(-1).mean()


@pytest.mark.parametrize("attempt", REPEATS)
def test_mean_attention_distance_accepts_reference(attempt, capsys):
    check.mean_attention_distance(distance_ref)
    assert "✓ mean_attention_distance" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda w: 1.0, "mean distance"),  # a constant
    (lambda w: -(w * positions(w)).sum(-1).mean(), "sign is flipped"),
    (lambda w: (w * positions(w)).sum(-1).sum(), "sum over the rows"),
    (lambda w: (torch.arange(w.size(-1)) - w.argmax(-1)).float().mean(), "largest weight"),
    (lambda w: (w * positions(w).abs()).mean(), "mean distance"),  # mean over all cells, not rows
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_mean_attention_distance_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.mean_attention_distance(wrong)


def prev_ref(w):
    return torch.diagonal(w, offset=-1, dim1=-2, dim2=-1).mean()


@pytest.mark.parametrize("attempt", REPEATS)
def test_previous_token_score_accepts_reference(attempt, capsys):
    check.previous_token_score(prev_ref)
    assert "✓ previous_token_score" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda w: 0.5, "previous-token score"),  # a constant
    (lambda w: torch.diagonal(w, dim1=-2, dim2=-1).mean(), "diagonal"),
    (lambda w: torch.diagonal(w, offset=-1, dim1=-2, dim2=-1).sum(-1).mean() / w.size(-1), "divide by T"),
    (lambda w: torch.diagonal(w, offset=-1, dim1=-2, dim2=-1).max(), "previous-token score"),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_previous_token_score_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.previous_token_score(wrong)


def zero_ref(y, head, n_head):
    hs = y.size(-1) // n_head
    out = y.clone()
    out[..., head * hs:(head + 1) * hs] = 0
    return out


def zero_in_place(y, head, n_head):
    hs = y.size(-1) // n_head
    y[..., head * hs:(head + 1) * hs] = 0
    return y


def zero_wrong_slice(y, head, n_head):
    out = y.clone()
    out[..., head * n_head:(head + 1) * n_head] = 0
    return out


@pytest.mark.parametrize("attempt", REPEATS)
def test_zero_head_accepts_reference(attempt, capsys):
    check.zero_head(zero_ref)
    assert "✓ zero_head" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda y, head, n_head: torch.zeros_like(y), "you zeroed channels"),  # a constant
    (lambda y, head, n_head: y.clone(), "you zeroed channels"),  # nothing zeroed
    (zero_in_place, "changed its input"),
    (zero_wrong_slice, "you zeroed channels"),
    (lambda y, head, n_head: None, "return the new tensor"),
    (lambda y, head, n_head: zero_ref(y, 0, n_head), "you zeroed channels"),  # ignores `head`: always the first
    (lambda y, head, n_head: zero_ref(y, n_head - 1, n_head), "you zeroed channels"),  # always the last
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_zero_head_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.zero_head(wrong)


@pytest.mark.parametrize("attempt", REPEATS)
def test_lens_logits_accepts_reference(attempt, capsys):
    check.lens_logits(lambda model, x: model.lm_head(model.transformer.ln_f(x)))
    assert "✓ lens_logits" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda model, x: model.lm_head(x), "change scale with the residual stream"),
    (lambda model, x: torch.zeros(*x.shape[:2], model.config.vocab_size), "differ from the model's own reading"),  # a constant
    (lambda model, x: model.lm_head(model.transformer.h[0].ln_1(x)), "differ from the model's own reading"),
    (lambda model, x: model.lm_head(model.transformer.ln_f(x)).softmax(-1), "differ from the model's own reading"),  # probabilities
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_lens_logits_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.lens_logits(wrong)


def importance_ref(model, x, y, layer, head):
    base = nll(model, x, y)
    with ablate_heads(model, [(layer, head)]):
        return nll(model, x, y) - base


def importance_by_weights(model, x, y, layer, head):
    """Zero the head's columns of c_proj's weight, measure, and put them back."""
    hs = model.config.n_embd // model.config.n_head
    proj = model.transformer.h[layer].attn.c_proj.weight
    base = nll(model, x, y)
    saved = proj.data[:, head * hs:(head + 1) * hs].clone()
    proj.data[:, head * hs:(head + 1) * hs] = 0
    out = nll(model, x, y) - base
    proj.data[:, head * hs:(head + 1) * hs] = saved
    return out


def importance_forgets_to_restore(model, x, y, layer, head):
    hs = model.config.n_embd // model.config.n_head
    base = nll(model, x, y)
    model.transformer.h[layer].attn.c_proj.weight.data[:, head * hs:(head + 1) * hs] = 0
    return nll(model, x, y) - base


def importance_next_layer(model, x, y, layer, head):
    other = (layer + 1) % model.config.n_layer, (head + 1) % model.config.n_head
    return importance_ref(model, x, y, *other)


@pytest.mark.parametrize("answer", [importance_ref, importance_by_weights])
@pytest.mark.parametrize("attempt", REPEATS)
def test_head_importance_accepts_correct_methods(answer, attempt, capsys):
    check.head_importance(answer)
    assert "✓ head_importance" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda model, x, y, layer, head: 0.05, "rise in NLL|another head"),  # a constant
    (lambda model, x, y, layer, head: importance_ref(model, x, y, layer, head) + nll(model, x, y), "rises"),
    (importance_forgets_to_restore, "remove your hooks or restore the weights"),
    (importance_next_layer, "another head|rise in NLL"),
    (lambda model, x, y, layer, head: importance_ref(model, x, y, 0, head), "another head|rise in NLL"),  # ignores `layer`
    (lambda model, x, y, layer, head: importance_ref(model, x, y, layer, 0), "another head|rise in NLL"),  # ignores `head`
    (lambda model, x, y, layer, head: importance_ref(model, x, y, model.config.n_layer - 1, model.config.n_head - 1),
     "another head|rise in NLL"),  # always the last head of the last layer
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_head_importance_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.head_importance(wrong)
