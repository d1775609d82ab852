"""Each lesson-06 check accepts the reference answer and rejects typical mistakes, a constant among them.

The checks draw new inputs every call, so the accepting tests run each check several times."""

import pytest
import torch
import torch.nn.functional as F

from minigpt import checks as check
from minigpt.checks import CheckFailed

REPEATS = range(3)


def block_params_ref(C, bias=True):
    return 12 * C * C + (13 * C if bias else 2 * C)


@pytest.mark.parametrize("attempt", REPEATS)
def test_count_block_params_accepts_reference(attempt, capsys):
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
        (lambda C, bias=True: 50_112, "too"),  # a constant: the block of n_embd=64
    ],
)
def test_count_block_params_rejects_mistakes(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check.count_block_params(wrong)


@pytest.mark.parametrize("attempt", REPEATS)
def test_layer_norm_accepts_reference(attempt, capsys):
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
        (lambda x, w, b, eps=1e-5: x, "differs from LayerNorm"),
        (lambda x, w, b, eps=1e-5: (x - x.mean(-1, keepdim=True)) / (x.var(-1, keepdim=True, unbiased=False).sqrt() + eps)
         * w + b, "where eps enters"),  # eps outside the square root
        (lambda x, w, b, eps=1e-5: F.layer_norm(x, x.shape[-1:], w, b), "ignores the eps"),
        (lambda x, w, b, eps=1e-5: torch.zeros_like(x), "differs from LayerNorm"),  # a constant
    ],
)
def test_layer_norm_rejects_mistakes(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check.layer_norm(wrong)


@pytest.mark.parametrize("attempt", REPEATS)
def test_block_forward_accepts_reference(attempt, capsys):
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
        (lambda block, x: block(x), "calls the block itself"),
        (lambda block, x: block.forward(x), "calls the block itself"),
        (lambda block, x: torch.zeros_like(x), "differs from the reference"),  # a constant
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


@pytest.mark.parametrize("attempt", REPEATS)
def test_name_row_accepts_reference(attempt, capsys):
    check.name_row(_row)
    assert "✓ name_row" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda w, bs: _row(w, bs, pad_y=0), "ignore_index"),
        (lambda w, bs: _row(w, bs, end=False), "end marker"),
        (lambda w, bs: _row(w, bs, lead=False), "start with the start marker"),
        (lambda w, bs: _row(w, bs)[0], "pair"),
        (lambda w, bs: _row("emma", 8), "must both have|is off|should"),  # a constant
    ],
)
def test_name_row_rejects_mistakes(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check.name_row(wrong)


def stds_ref(model, idx):
    tr = model.transformer
    x = tr.wte(idx) + tr.wpe(torch.arange(idx.size(1)))
    out = [x.std().item()]
    for block in tr.h:
        x = block(x)
        out.append(x.std().item())
    return out


def stds_by_hooks(model, idx):
    out = []
    handles = [b.register_forward_hook(lambda m, i, o: out.append(o.std().item())) for b in model.transformer.h]
    handles.append(model.transformer.h[0].register_forward_pre_hook(lambda m, i: out.insert(0, i[0].std().item())))
    model(idx)
    for h in handles:
        h.remove()
    return out


def stds_after_ln(model, idx):
    tr = model.transformer
    x = tr.wte(idx) + tr.wpe(torch.arange(idx.size(1)))
    out = [x.std().item()]
    for block in tr.h:
        x = block(x)
        out.append(block.ln_1(x).std().item())
    return out


def stds_by_sublayer(model, idx):
    tr = model.transformer
    x = tr.wte(idx) + tr.wpe(torch.arange(idx.size(1)))
    out = [x.std().item()]
    for block in tr.h:
        out.append(block.mlp(block.ln_2(x)).std().item())
        x = block(x)
    return out


def stds_token_only(model, idx):
    return [model.transformer.wte(idx).std().item()] + stds_ref(model, idx)[1:]


@pytest.mark.parametrize("answer", [stds_ref, stds_by_hooks])
@pytest.mark.parametrize("attempt", REPEATS)
def test_stream_stds_accepts_correct_methods(answer, attempt, capsys):
    check.stream_stds(answer)
    assert "✓ stream_stds" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda model, idx: [0.02, 0.5, 1.0, 2.0], "points to measure|too|after the embeddings"),  # a constant
    (lambda model, idx: stds_ref(model, idx)[1:], "points to measure"),
    (stds_after_ln, "too"),
    (stds_by_sublayer, "too"),
    (stds_token_only, "position embedding"),
    (lambda model, idx: stds_ref(model, idx)[-1], "list of numbers"),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_stream_stds_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.stream_stds(wrong)
