"""Checks for lesson 03 (the MLP language model): the context-window data set, the embedding
lookup, the forward pass, the initialisation fix, and the context-length experiment.

Every check draws fresh inputs each call (words, shapes, fan-ins, a small synthetic language), so an
answer that fits one input, or a hard-coded result, cannot pass.
"""

from __future__ import annotations

import math

import torch

from ..evaluate import mean_nll
from ..i18n import _
from ..mlp import CHARS, build_context_dataset
from ._core import Check, fresh_generator

__all__ = ["build_context", "embed_context", "mlp_forward", "init_params", "context_length_experiment"]

_WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "charlotte", "mia", "amelia", "harper", "evelyn"]


def _tensor(c: Check, value, what: str) -> torch.Tensor:
    c.that(isinstance(value, torch.Tensor), _("{what} should be a torch.Tensor, got {type}").format(what=what, type=type(value).__name__))
    return value.detach()


def build_context(fn):
    """``fn(words, block_size) -> (X, Y)``: makemore's context windows, '.'-padded, ending with '.'."""
    c = Check("build_context")
    g = fresh_generator()
    drawn = [_WORDS[int(i)] for i in torch.randperm(len(_WORDS), generator=g)[:4]]
    cases = [(["emma"], 3), (_WORDS, 1), (drawn, int(torch.randint(2, 8, (1,), generator=g))),
             (drawn[:2], int(torch.randint(2, 8, (1,), generator=g)))]
    for words, block_size in cases:
        ref_X, ref_Y = build_context_dataset(words, block_size)
        out = c.call(fn, list(words), block_size)
        c.that(isinstance(out, tuple) and len(out) == 2, _("return a pair (X, Y)"))
        X, Y = (_tensor(c, v, name) for v, name in zip(out, ("X", "Y")))
        n_chars = sum(len(w) for w in words)
        if X.shape[0] == n_chars:
            c.fail(_("X has {n_chars} rows, one per character; each name also needs one example that predicts "
                     "the end marker '.'").format(n_chars=n_chars))
        c.shape(X, tuple(ref_X.shape), _("X for block_size={block_size}").format(block_size=block_size))
        c.shape(Y, tuple(ref_Y.shape), _("Y for block_size={block_size}").format(block_size=block_size))
        c.that(not X.is_floating_point() and not Y.is_floating_point(),
               _("X and Y hold character ids: use an integer dtype (torch.long)"))
        for i, (row, y) in enumerate(zip(X.tolist(), Y.tolist())):
            if row != ref_X[i].tolist() or y != ref_Y[i].item():
                ctx = "".join(CHARS[j] if 0 <= j < 27 else "?" for j in row)
                c.fail(_("example {i} (block_size={block_size}) has context {ctx!r} -> {value!r}, which is not "
                         "right; pad the start with '.' (id 0) and slide the window by one character per example").format(i=i, block_size=block_size, ctx=ctx, value=CHARS[y] if 0 <= y < 27 else y))
        c.count += 1
    c.done()


def embed_context(fn):
    """``fn(C, X) -> emb``: look up each context character's row of ``C`` and concatenate, (N, T * d)."""
    c = Check("embed_context")
    g = fresh_generator()
    for T, d in [(3, 10), tuple(int(v) for v in torch.randint(2, 7, (2,), generator=g))]:
        N = int(torch.randint(5, 20, (1,), generator=g))
        C = torch.randn(27, d, generator=g)
        X = torch.randint(0, 27, (N, T), generator=g)
        ref = C[X].reshape(N, T * d)
        got = _tensor(c, c.call(fn, C.clone(), X.clone()), _("the embedding"))
        if tuple(got.shape) in [(N, d), (N, T)]:
            c.fail(_("the result has shape {shape}; keep every character's vector and concatenate them into "
                     "(N, block_size * n_embd) = ({N}, {value}), don't sum or average").format(shape=tuple(got.shape), N=N, value=T * d))
        c.shape(got, (N, T * d), _("the embedding"))
        if not torch.allclose(got, ref) and torch.allclose(got, C[X].transpose(1, 2).reshape(N, T * d)):
            c.fail(_("the numbers are right but interleaved: the first n_embd values must be the first "
                   "character's whole vector (flatten (N, T, d) without transposing)"))
        c.close(got, ref, _("the embedding"))
    c.done()


def _params(g: torch.Generator, T: int = 3, d: int = 10, H: int = 50, V: int = 27):
    C = torch.randn(V, d, generator=g)
    W1 = torch.randn(T * d, H, generator=g) * 0.3
    b1 = torch.randn(H, generator=g) * 0.1
    W2 = torch.randn(H, V, generator=g) * 0.1
    b2 = torch.randn(V, generator=g) * 0.1
    X = torch.randint(0, V, (32, T), generator=g)
    return X, C, W1, b1, W2, b2


def mlp_forward(fn):
    """``fn(X, C, W1, b1, W2, b2) -> logits``: embed, concatenate, tanh hidden layer, output layer."""
    c = Check("mlp_forward")
    g = fresh_generator()
    for shape in [(3, 10, 50), tuple(int(v) for v in torch.randint(2, 9, (3,), generator=g) * torch.tensor([1, 1, 6]))]:
        X, C, W1, b1, W2, b2 = _params(g, *shape)
        emb = C[X].flatten(1)
        ref = torch.tanh(emb @ W1 + b1) @ W2 + b2
        got = _tensor(c, c.call(fn, X, C, W1, b1, W2, b2), _("the logits"))
        c.shape(got, (32, 27), _("the logits"))
        if torch.allclose(got, (emb @ W1 + b1) @ W2 + b2, atol=1e-4):
            c.fail(_("your network is linear: apply tanh to the hidden layer's pre-activations"))
        if torch.allclose(got, torch.softmax(ref, dim=1), atol=1e-5):
            c.fail(_("return the logits; the softmax belongs to the loss (F.cross_entropy applies it)"))
        c.close(got, ref, _("the logits"), atol=1e-4)
    c.done()


def init_params(fn):
    """``fn(block_size, n_embd, n_hidden, vocab_size, generator) -> (C, W1, b1, W2, b2)``, well initialised."""
    c = Check("init_params")
    g = fresh_generator()
    # one small and one large fan-in, drawn now: a fixed scale cannot suit both
    # (fan-ins 2..6 and 160..320: no fixed scale puts the tanh inputs in range for both)
    sizes = [(int(torch.randint(1, 3, (1,), generator=g)), int(torch.randint(2, 4, (1,), generator=g))),
             (int(torch.randint(8, 11, (1,), generator=g)), int(torch.randint(20, 33, (1,), generator=g)))]
    for T, d in sizes:
        H = int(torch.randint(100, 300, (1,), generator=g))
        V = int(torch.randint(20, 60, (1,), generator=g))
        seed = int(torch.randint(0, 2**30, (1,), generator=g))
        out = c.call(fn, T, d, H, V, torch.Generator().manual_seed(seed))
        c.that(isinstance(out, (tuple, list)) and len(out) == 5, _("return five tensors (C, W1, b1, W2, b2)"))
        C, W1, b1, W2, b2 = (_tensor(c, p, name) for p, name in zip(out, ("C", "W1", "b1", "W2", "b2")))
        for p, shape, name in [(C, (V, d), "C"), (W1, (T * d, H), "W1"), (b1, (H,), "b1"), (W2, (H, V), "W2"),
                               (b2, (V,), "b2")]:
            c.shape(p, shape, _("{name} for block_size={T}, n_embd={d}, n_hidden={H}, vocab_size={V}").format(name=name, T=T, d=d, H=H, V=V))
        again = c.call(fn, T, d, H, V, torch.Generator().manual_seed(seed))
        c.that(all(torch.equal(torch.as_tensor(a), b) for a, b in zip(again, (C, W1, b1, W2, b2))),
               _("two calls with the same generator seed gave different tensors: draw every random tensor "
               "with generator=generator, so an initialisation can be repeated"))
        X = torch.randint(0, V, (2000, T), generator=g)
        Y = torch.randint(0, V, (2000,), generator=g)
        pre = C[X].flatten(1) @ W1 + b1
        h = torch.tanh(pre)
        loss = torch.nn.functional.cross_entropy(h @ W2 + b2, Y).item()
        fan = _("with fan_in = block_size * n_embd = {value}").format(value=T * d)
        if loss > math.log(V) + 0.1:
            c.fail(_("the loss at initialisation is {loss:.2f}, but a model that knows nothing should give "
                     "about ln({V}) = {log:.2f}: the output layer starts too confident; scale W2 down").format(loss=loss, V=V, log=math.log(V)))
        c.count += 1
        c.that(C.std().item() > 0.1, _("C (the embeddings) should start with unit-size random vectors, not zeros"))
        per_unit = h.std(dim=0)  # how much each hidden unit varies from one input to the next
        c.that(float((per_unit > 1e-6).float().mean()) > 0.9,
               _("{float_mean:.0%} of the hidden units give the same output for every input: they carry "
                 "no information about the context, and units that start identical get identical "
                 "gradients and stay identical").format(float_mean=float((per_unit <= 1e-6).float().mean())))
        sat = (h.abs() > 0.99).float().mean().item()
        spread = pre.std(dim=0).mean().item()  # the typical size of a unit's input to tanh
        c.that(sat < 0.2 and spread < 2.2,
               _("{fan} the tanh inputs have std {spread:.2f} and {sat:.0%} of the units are saturated "
                 "(|tanh| > 0.99) at init; the scale of W1 has to shrink as its fan-in grows").format(fan=fan, spread=spread, sat=sat))
        c.that(spread > 0.5,
               _("{fan} the tanh inputs have std {spread:.3f}: the hidden layer starts almost silent; the "
                 "scale of W1 has to depend on its fan-in, not be a fixed small number").format(fan=fan, spread=spread))
    c.done()


def _toy_language(g, sizes):
    """Words over four random letters in which each letter is fixed by the two before it (after a
    random start): a context of one character cannot predict them, a context of three can."""
    letters = [chr(97 + int(i)) for i in torch.randperm(26, generator=g)[:4]]
    table = torch.randint(0, 4, (4, 4), generator=g)
    splits = []
    for n in sizes:
        words = []
        for _i in range(n):
            ids = torch.randint(0, 4, (2,), generator=g).tolist()
            length = int(torch.randint(5, 10, (1,), generator=g))
            while len(ids) < length:
                ids.append(int(table[ids[-2], ids[-1]]))
            words.append("".join(letters[i] for i in ids))
        splits.append(words)
    return splits


def context_length_experiment(fn):
    """``fn(words, block_size, steps, seed) -> model``: an ``MLPLanguageModel`` with that block size,
    trained on ``words`` for ``steps`` steps, reproducibly from ``seed``. The check re-runs it on a
    small made-up language where the right context length is known, and scores the models itself."""
    from torch import nn

    c = Check("context_length_experiment")
    g = fresh_generator()
    train, held_out = _toy_language(g, (300, 200))
    steps, seed = 600, int(torch.randint(0, 2**30, (1,), generator=g))

    def score(block_size, model):
        c.that(isinstance(model, nn.Module), _("return the trained model (an nn.Module), got {type}").format(type=type(model).__name__))
        X, Y = build_context_dataset(held_out, block_size)
        try:
            return mean_nll(model, X, Y)
        except Exception as e:  # the model does not take contexts of this length
            c.fail(_("with block_size={block_size} your model fails on contexts of shape {shape} ({type}: "
                     "{e}); build the model and the data set for the block size you are given").format(block_size=block_size, shape=tuple(X.shape), type=type(e).__name__, e=e))

    nll = {bs: score(bs, c.call(fn, list(train), bs, steps, seed)) for bs in (1, 3)}
    again = score(3, c.call(fn, list(train), 3, steps, seed))
    c.that(abs(again - nll[3]) < 1e-6,
           _("two runs with the same seed gave held-out NLLs {nll:.4f} and {again:.4f}: seed both the "
             "initialisation and the order of the batches from `seed`, or the comparison between "
             "block sizes mixes the effect of the context with luck").format(nll=nll[3], again=again))
    c.that(nll[3] < 0.85,
           _("on a small made-up language (four letters, each fixed by the two before it) your model "
             "with block_size=3 reaches a held-out NLL of {nll:.3f} after {steps} steps; a model "
             "trained on the words it is given gets below 0.85. Does your function train on `words`, "
             "for `steps` steps?").format(nll=nll[3], steps=steps))
    few = max(1, steps // 60)  # a handful of steps: a function that ignores `steps` trains as long as before
    short = score(3, c.call(fn, list(train), 3, few, seed))
    c.that(short > nll[3] + 0.2,
           _("with steps={few} your model reaches a held-out NLL of {short:.3f}, with steps={steps} "
             "{nll:.3f}: a few steps should leave it far less trained. Does your function train for "
             "`steps` steps?").format(few=few, short=short, steps=steps, nll=nll[3]))
    c.that(nll[1] > nll[3] + 0.2,
           _("on that language a context of 1 character should do clearly worse than 3 (yours: "
             "{nll:.3f} against {nll2:.3f}); does the model really see block_size characters?").format(nll=nll[1], nll2=nll[3]))
    c.done()
