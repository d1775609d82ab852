"""Each lesson-06 check accepts the reference answer and rejects typical mistakes with a useful hint."""

import pytest
import torch
import torch.nn.functional as F

from minigpt import checks as check
from minigpt.checks import CheckFailed


def block_params_ref(C, bias=True):
    return 12 * C * C + (13 * C if bias else 2 * C)


def test_count_block_params_accepts_reference(capsys):
    check.count_block_params(block_params_ref)
    assert "✓ count_block_params" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda C, bias=True: 12 * C * C, "only the weight matrices"),
        (lambda C, bias=True: 12 * C * C + 9 * C, "two LayerNorms"),
        (lambda C, bias=True: 12 * C * C + (13 * C if bias else 0), "still have their gains"),
        (lambda C, bias=True: 8 * C * C + (13 * C if bias else 2 * C), "four C x C"),
        (lambda C, bias=True: float(block_params_ref(C, bias)), "return an int"),
        (lambda C, bias=True: block_params_ref(C, bias) + 1, "too many"),
    ],
)
def test_count_block_params_rejects_mistakes(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check.count_block_params(wrong)


def test_layer_norm_accepts_reference(capsys):
    def ref(x, w, b, eps=1e-5):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + eps) * w + b

    check.layer_norm(ref)
    assert "✓ layer_norm" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda x, w, b, eps=1e-5: (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + eps) * w + b,
         "unbiased"),
        (lambda x, w, b, eps=1e-5: F.layer_norm(x, x.shape[-1:], None, None, eps), "weight and bias"),
        (lambda x, w, b, eps=1e-5: (x - x.mean(0, keepdim=True)) / torch.sqrt(x.var(0, keepdim=True, unbiased=False) + eps) * w + b,
         "BatchNorm"),
        (lambda x, w, b, eps=1e-5: x, "differs from the reference"),
    ],
)
def test_layer_norm_rejects_mistakes(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check.layer_norm(wrong)


def test_block_forward_accepts_reference(capsys):
    def ref(block, x):
        x = x + block.attn(block.ln_1(x))
        return x + block.mlp(block.ln_2(x))

    check.block_forward(ref)
    assert "✓ block_forward" in capsys.readouterr().out


def _post_ln(block, x):
    x = block.ln_1(x + block.attn(x))
    return block.ln_2(x + block.mlp(x))


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_post_ln, "post-LN"),
        (lambda block, x: block.mlp(block.ln_2(block.attn(block.ln_1(x)))), "residual connections"),
        (lambda block, x: x + block.attn(block.ln_1(x)), "MLP half is missing"),
        (lambda block, x: x, "differs from the reference"),
    ],
)
def test_block_forward_rejects_mistakes(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check.block_forward(wrong)


def _row(word, bs, pad_y=-1, end=True, lead=True):
    ids = [ord(ch) - 96 for ch in word]
    x = ([0] if lead else []) + ids
    x += [0] * (bs - len(x))
    y = ids + ([0] if end else [])
    y += [pad_y] * (bs - len(y))
    return x, y


def test_name_row_accepts_reference(capsys):
    check.name_row(_row)
    assert "✓ name_row" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda w, bs: _row(w, bs, pad_y=0), "ignore_index"),
        (lambda w, bs: _row(w, bs, end=False), "end marker"),
        (lambda w, bs: _row(w, bs, lead=False), "start with the start marker"),
        (lambda w, bs: _row(w, bs)[0], "pair"),
    ],
)
def test_name_row_rejects_mistakes(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check.name_row(wrong)
