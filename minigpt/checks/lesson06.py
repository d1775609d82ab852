"""Checks for lesson 06 (transformer block and GPT): counting a block's parameters, LayerNorm by
hand, the pre-LN block's forward pass, one name as a padded training row, and measuring the
residual stream's size layer by layer (the experiment).

Every check draws fresh inputs each call (sizes, eps, seeds, words), including inputs where a
shortcut gives a different answer from the right one, so a hard-coded answer cannot pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..i18n import _
from ..model import GPT, Block, GPTConfig
from ..names_gpt import make_dataset
from ._core import Check, fresh_generator

__all__ = ["count_block_params", "layer_norm", "block_forward", "name_row", "stream_stds"]


def count_block_params(fn):
    """``fn(n_embd, bias=True) -> int``: parameters of one ``minigpt.model.Block``."""
    c = Check("count_block_params")
    g = fresh_generator()
    drawn = [(4 * int(torch.randint(2, 100, (1,), generator=g)), bool(b)) for b in (True, False)]
    for C, bias in [(64, True), (64, False), (768, True)] + drawn:
        got = c.call(fn, C, bias=bias)
        c.that(isinstance(got, int) and not isinstance(got, bool), _("return an int, got {type}").format(type=type(got).__name__))
        ref = sum(p.numel() for p in Block(GPTConfig(block_size=4, n_embd=C, n_head=4, bias=bias)).parameters())
        if got != ref:
            what = f"n_embd={C}, bias={bias}"
            if not bias and got == ref - 2 * C:
                c.fail(_("{what}: without biases the two LayerNorms still have their gains").format(what=what))
            if got == 12 * C * C:
                c.fail(_("{what}: you counted only the weight matrices; the Linear biases and the LayerNorms have "
                         "parameters too").format(what=what))
            if bias and got == ref - 4 * C:
                c.fail(_("{what}: {got} is short by exactly the two LayerNorms' parameters (a gain and a bias "
                         "each)").format(what=what, got=got))
            if got == ref - 4 * C * C or got == ref + 4 * C * C:
                c.fail(_("{what}: look again at the attention part: Q, K, V and the output projection are four C "
                         "x C matrices").format(what=what))
            c.fail(_("{what}: {got:,} is {value}; count attention, MLP and the two LayerNorms part by part").format(what=what, got=got, value=_("too many") if got > ref else _("too few")))
        c.count += 1
    c.done()


def layer_norm(fn):
    """``fn(x, weight, bias, eps=1e-5)`` must match ``F.layer_norm`` over the last dimension."""
    c = Check("layer_norm")
    g = fresh_generator()
    C = int(torch.randint(3, 24, (1,), generator=g))
    # eps matters only when it is not tiny next to the variance: a large eps, and a quiet input
    cases = [((4, C), 1e-5, 3.0), ((2, 3, C), float(torch.empty(1).uniform_(0.3, 2.0, generator=g)), 1.0),
             ((5, C), 1e-5, 0.01), ((1, C), 1e-5, 3.0)]
    for shape, eps, scale in cases:
        # an offset of 2, except for the quiet input: float32 cannot resolve std 0.01 around 2 well enough
        x = (2.0 if scale > 0.1 else 0.0) + scale * torch.randn(*shape, generator=g)
        w, b = torch.randn(C, generator=g), torch.randn(C, generator=g)
        got = c.call(fn, x.clone(), w.clone(), b.clone(), eps=eps)
        c.shape(got, shape, _("layer_norm(x) for x of shape {shape}").format(shape=shape))
        got = torch.as_tensor(got).detach()
        ref = F.layer_norm(x, (C,), w, b, eps)
        what = f"x of shape {shape} (std about {scale:g}) and eps={eps:.3g}"
        if not torch.allclose(got, ref, atol=1e-4):
            unbiased = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + eps) * w + b
            if torch.allclose(got, unbiased, atol=1e-4):
                c.fail(_("close, but the variance is the unbiased one (divided by C - 1); LayerNorm divides by C "
                       "(torch.var is unbiased by default)"))
            plain = F.layer_norm(x, (C,), None, None, eps)
            if torch.allclose(got, plain, atol=1e-4):
                c.fail(_("the normalisation is right but weight and bias are not applied"))
            over_batch = (x - x.mean(0, keepdim=True)) / torch.sqrt(x.var(0, keepdim=True, unbiased=False) + eps) * w + b
            if x.dim() > 1 and x.size(0) > 1 and torch.allclose(got, over_batch, atol=1e-4):
                c.fail(_("you normalised over the batch dimension (that is BatchNorm); normalise over the last one"))
            if torch.allclose(got, F.layer_norm(x, (C,), w, b, 1e-5), atol=1e-4):
                c.fail(_("for {what} your result ignores the eps you were given; use the eps argument").format(what=what))
            c.fail(_("for {what} the result differs from LayerNorm; when eps is not tiny next to the variance "
                     "it shows where eps enters the formula: look at how you divide by the standard deviation").format(what=what))
        c.count += 1
    c.done()


def block_forward(fn):
    """``fn(block, x)`` must equal ``block(x)`` for a pre-LN ``minigpt.model.Block``."""
    c = Check("block_forward")
    g = fresh_generator()
    for _i in range(2):
        n_head = int(torch.randint(1, 5, (1,), generator=g))
        C, T = n_head * int(torch.randint(2, 9, (1,), generator=g)), int(torch.randint(2, 10, (1,), generator=g))
        torch.manual_seed(int(torch.randint(0, 2**30, (1,), generator=g)))
        block = Block(GPTConfig(block_size=T, n_embd=C, n_head=n_head)).eval()
        with torch.no_grad():  # make every part matter: non-trivial LayerNorm gains and projections
            for p in block.parameters():
                p.add_(0.3 * torch.randn_like(p))
        x = torch.randn(2, T, C, generator=g)
        with torch.no_grad():
            ref = block(x)

        def refuse(*args, **kwargs):
            c.fail(_("your function calls the block itself (block(x) or block.forward); the exercise is to write "
                   "that forward pass from the block's parts: block.ln_1, block.attn, block.ln_2, block.mlp"))

        block.forward = refuse  # the rule of the exercise, checked: calling the whole block fails
        try:
            with torch.no_grad():
                got = c.call(fn, block, x.clone())
        finally:
            del block.forward
        with torch.no_grad():
            c.shape(got, tuple(ref.shape), _("block_forward(block, x)"))
            got = torch.as_tensor(got)
            if not torch.allclose(got, ref, atol=1e-4):
                post_ln = block.ln_1(x + block.attn(x))
                post_ln = block.ln_2(post_ln + block.mlp(post_ln))
                no_res = block.mlp(block.ln_2(block.attn(block.ln_1(x))))
                attn_only = x + block.attn(block.ln_1(x))
                if torch.allclose(got, post_ln, atol=1e-4):
                    c.fail(_("this is the post-LN block of the original Transformer; GPT-2 normalises the *input* of "
                           "each sub-layer and adds the result to the unnormalised stream"))
                if torch.allclose(got, no_res, atol=1e-4):
                    c.fail(_("the residual connections are missing: each sub-layer's output is added to x"))
                if torch.allclose(got, attn_only, atol=1e-4):
                    c.fail(_("the attention half is right; the MLP half is missing"))
            c.close(got, ref, _("block_forward(block, x)"), atol=1e-4)
    c.done()


def name_row(fn):
    """``fn(word, block_size) -> (x, y)``: two lists like one row of ``minigpt.names_gpt.make_dataset``."""
    c = Check("name_row")
    g = fresh_generator()
    letters = "abcdefghijklmnopqrstuvwxyz"
    drawn = "".join(letters[int(i)] for i in torch.randint(0, 26, (int(torch.randint(2, 9, (1,), generator=g)),),
                                                           generator=g))
    for word, bs in [("emma", 8), ("li", 5), ("abcdefg", 8), ("a", 2),
                     (drawn, len(drawn) + 1 + int(torch.randint(0, 5, (1,), generator=g)))]:
        got = c.call(fn, word, bs)
        c.that(isinstance(got, (tuple, list)) and len(got) == 2, _("return a pair (x, y)"))
        x, y = (list(map(int, torch.as_tensor(v).tolist())) for v in got)
        X, Y = make_dataset([word], bs)
        rx, ry = X[0].tolist(), Y[0].tolist()
        c.that(len(x) == bs and len(y) == bs, _("for {word!r} with block_size {bs}: x and y must both have {bs} entries, got {n_x} and "
                                                "{n_y}").format(word=word, bs=bs, n_x=len(x), n_y=len(y)))
        c.that(x[0] == 0, _("for {word!r}: x must start with the start marker '.' (id 0)").format(word=word))
        if x != rx:
            c.fail(_("for {word!r}: x should be the start marker, the letters, then 0 padding; position "
                     "{next} is off").format(word=word, next=next(i for i in range(bs) if x[i] != rx[i])))
        if y != ry:
            if y[: len(word)] != ry[: len(word)]:
                c.fail(_("for {word!r}: y should start with the letters of the name (x shifted left by one)").format(word=word))
            if y[len(word)] != 0:
                c.fail(_("for {word!r}: the target after the last letter is the end marker '.' (id 0); the model "
                         "must learn where names end").format(word=word))
            c.fail(_("for {word!r}: the padding after the end marker must be ignored by the loss; which "
                     "target value does F.cross_entropy(..., ignore_index=...) skip?").format(word=word))
        c.count += 1
    c.done()


def _ref_stream_stds(model, idx):
    tr = model.transformer
    x = tr.wte(idx) + tr.wpe(torch.arange(idx.size(1)))
    out = [float(x.std())]
    for block in tr.h:
        x = block(x)
        out.append(float(x.std()))
    return out


def stream_stds(fn):
    """``fn(model, idx) -> list``: the standard deviation of the residual stream (all its numbers
    together) after the embeddings and after each block: n_layer + 1 floats; the model unchanged."""
    c = Check("stream_stds")
    g = fresh_generator()
    for _i in range(2):
        n_head = int(torch.randint(1, 4, (1,), generator=g))
        cfg = GPTConfig(block_size=16, vocab_size=int(torch.randint(10, 40, (1,), generator=g)),
                        n_layer=int(torch.randint(2, 6, (1,), generator=g)), n_head=n_head, n_embd=8 * n_head)
        torch.manual_seed(int(torch.randint(0, 2**30, (1,), generator=g)))
        model = GPT(cfg).eval()
        with torch.no_grad():  # blocks that add a lot, so that every layer's number is different
            for name, p in model.named_parameters():
                if name.endswith("c_proj.weight"):
                    p.mul_(float(torch.empty(1).uniform_(5, 20, generator=g)))
        idx = torch.randint(0, cfg.vocab_size, (3, int(torch.randint(4, 16, (1,), generator=g))), generator=g)
        with torch.no_grad():
            ref = _ref_stream_stds(model, idx)
            logits_before = model(idx)[0].clone()
            got = c.call(fn, model, idx.clone())
        try:
            got = [float(v) for v in got]
        except (TypeError, ValueError):
            c.fail(_("return a list of numbers, one per layer, got {type}").format(type=type(got).__name__))
        n = cfg.n_layer
        c.that(len(got) == n + 1, _("a model with {n} blocks has {value} points to measure (after the embeddings and after "
                                    "each block); you returned {n_got}").format(n=n, value=n + 1, n_got=len(got)))
        with torch.no_grad():
            c.that(torch.allclose(model(idx)[0], logits_before, atol=1e-6),
                   _("after your function the model gives other logits: measure without changing it"))
        for i, (v, r) in enumerate(zip(got, ref)):
            if abs(v - r) > 1e-4 * max(1.0, r):
                where = _("after the embeddings") if i == 0 else _("after block {i}").format(i=i)
                with torch.no_grad():
                    token_only = float(model.transformer.wte(idx).std())
                if i == 0 and abs(v - token_only) < 1e-4 * max(1.0, token_only):
                    c.fail(_("{where} your std is {v:.4g}: the stream starts as token embedding plus position "
                             "embedding").format(where=where, v=v))
                c.fail(_("{where} your std is {v:.4g}, {value}: measure the stream itself (what the next block "
                         "receives), not a sub-layer's output or a LayerNorm's").format(where=where, v=v, value=_("too high") if v > r else _("too low")))
        c.count += 1
    c.done()
