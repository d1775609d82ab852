"""Checks for lesson 06 (transformer block and GPT): counting a block's parameters, LayerNorm by
hand, the pre-LN block's forward pass, and one name as a padded training row."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._core import Check

__all__ = ["count_block_params", "layer_norm", "block_forward", "name_row"]


def count_block_params(fn):
    """``fn(n_embd, bias=True) -> int``: parameters of one ``minigpt.model.Block``."""
    from minigpt.model import Block, GPTConfig

    c = Check("count_block_params")
    for C, bias in [(64, True), (48, True), (64, False), (768, True), (8, False)]:
        got = c.call(fn, C, bias=bias)
        c.that(isinstance(got, int) and not isinstance(got, bool), f"return an int, got {type(got).__name__}")
        ref = sum(p.numel() for p in Block(GPTConfig(block_size=4, n_embd=C, n_head=4, bias=bias)).parameters())
        if got != ref:
            what = f"n_embd={C}, bias={bias}"
            if not bias and got == ref - 2 * C:
                c.fail(f"{what}: without biases the two LayerNorms still have their gains")
            if got == 12 * C * C:
                c.fail(f"{what}: you counted only the weight matrices; the Linear biases and the LayerNorms have parameters too")
            if bias and got == ref - 4 * C:
                c.fail(f"{what}: {got} is short by exactly the two LayerNorms' parameters (a gain and a bias each)")
            if got == ref - 4 * C * C or got == ref + 4 * C * C:
                c.fail(f"{what}: look again at the attention part: Q, K, V and the output projection are four C x C matrices")
            c.fail(f"{what}: {got:,} is {'too many' if got > ref else 'too few'}; count attention, MLP and the "
                   "two LayerNorms part by part")
        c.count += 1
    c.done()


def layer_norm(fn):
    """``fn(x, weight, bias, eps=1e-5)`` must match ``F.layer_norm`` over the last dimension."""
    c = Check("layer_norm")
    g = torch.Generator().manual_seed(11)
    for shape in [(4, 16), (2, 3, 8), (1, 5)]:
        C = shape[-1]
        x = 2 + 3 * torch.randn(*shape, generator=g)
        w, b = torch.randn(C, generator=g), torch.randn(C, generator=g)
        got = c.call(fn, x.clone(), w.clone(), b.clone(), eps=1e-5)
        c.shape(got, shape, f"layer_norm(x) for x of shape {shape}")
        got = torch.as_tensor(got).detach()
        ref = F.layer_norm(x, (C,), w, b, 1e-5)
        if not torch.allclose(got, ref, atol=1e-4):
            unbiased = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + 1e-5) * w + b
            if torch.allclose(got, unbiased, atol=1e-4):
                c.fail("close, but the variance is the unbiased one (divided by C - 1); LayerNorm divides by C "
                       "(torch.var is unbiased by default)")
            plain = F.layer_norm(x, (C,), None, None, 1e-5)
            if torch.allclose(got, plain, atol=1e-4):
                c.fail("the normalisation is right but weight and bias are not applied")
            over_batch = (x - x.mean(0, keepdim=True)) / torch.sqrt(x.var(0, keepdim=True, unbiased=False) + 1e-5) * w + b
            if x.dim() > 1 and x.size(0) > 1 and torch.allclose(got, over_batch, atol=1e-4):
                c.fail("you normalised over the batch dimension (that is BatchNorm); normalise over the last one")
        c.close(got, ref, "layer_norm(x)", atol=1e-4)
    c.done()


def block_forward(fn):
    """``fn(block, x)`` must equal ``block(x)`` for a pre-LN ``minigpt.model.Block``."""
    from minigpt.model import Block, GPTConfig

    c = Check("block_forward")
    torch.manual_seed(0)
    block = Block(GPTConfig(block_size=8, n_embd=32, n_head=4)).eval()
    with torch.no_grad():  # make every part matter: non-trivial LayerNorm gains and projections
        for p in block.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(2, 8, 32)
    with torch.no_grad():
        got = c.call(fn, block, x.clone())
        ref = block(x)
        c.shape(got, tuple(ref.shape), "block_forward(block, x)")
        got = torch.as_tensor(got)
        if not torch.allclose(got, ref, atol=1e-4):
            post_ln = block.ln_1(x + block.attn(x))
            post_ln = block.ln_2(post_ln + block.mlp(post_ln))
            no_res = block.mlp(block.ln_2(block.attn(block.ln_1(x))))
            attn_only = x + block.attn(block.ln_1(x))
            if torch.allclose(got, post_ln, atol=1e-4):
                c.fail("this is the post-LN block of the original Transformer; GPT-2 normalises the *input* of "
                       "each sub-layer and adds the result to the unnormalised stream")
            if torch.allclose(got, no_res, atol=1e-4):
                c.fail("the residual connections are missing: each sub-layer's output is added to x")
            if torch.allclose(got, attn_only, atol=1e-4):
                c.fail("the attention half is right; the MLP half is missing")
        c.close(got, ref, "block_forward(block, x)", atol=1e-4)
    c.done()


def name_row(fn):
    """``fn(word, block_size) -> (x, y)``: two lists like one row of ``minigpt.names_gpt.make_dataset``."""
    from minigpt.names_gpt import make_dataset

    c = Check("name_row")
    for word, bs in [("emma", 8), ("li", 5), ("abcdefg", 8), ("a", 2)]:
        got = c.call(fn, word, bs)
        c.that(isinstance(got, (tuple, list)) and len(got) == 2, "return a pair (x, y)")
        x, y = (list(map(int, torch.as_tensor(v).tolist())) for v in got)
        X, Y = make_dataset([word], bs)
        rx, ry = X[0].tolist(), Y[0].tolist()
        c.that(len(x) == bs and len(y) == bs, f"for {word!r} with block_size {bs}: x and y must both have {bs} entries, "
               f"got {len(x)} and {len(y)}")
        c.that(x[0] == 0, f"for {word!r}: x must start with the start marker '.' (id 0)")
        if x != rx:
            c.fail(f"for {word!r}: x should be the start marker, the letters, then 0 padding; position "
                   f"{next(i for i in range(bs) if x[i] != rx[i])} is off")
        if y != ry:
            if y[: len(word)] != ry[: len(word)]:
                c.fail(f"for {word!r}: y should start with the letters of the name (x shifted left by one)")
            if y[len(word)] != 0:
                c.fail(f"for {word!r}: the target after the last letter is the end marker '.' (id 0); the model "
                       "must learn where names end")
            c.fail(f"for {word!r}: the padding after the end marker must be ignored by the loss; which target "
                   "value does F.cross_entropy(..., ignore_index=...) skip?")
        c.count += 1
    c.done()
