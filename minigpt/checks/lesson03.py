"""Checks for lesson 03 (the MLP language model): the context-window data set, the embedding
lookup, the forward pass, the initialisation fix, and the context-length experiment."""

from __future__ import annotations

import math

import torch

from ._core import Check

__all__ = ["build_context", "embed_context", "mlp_forward", "init_params", "context_length_experiment"]

_WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "charlotte", "mia", "amelia", "harper", "evelyn"]


def _tensor(c: Check, value, what: str) -> torch.Tensor:
    c.that(isinstance(value, torch.Tensor), f"{what} should be a torch.Tensor, got {type(value).__name__}")
    return value.detach()


def build_context(fn):
    """``fn(words, block_size) -> (X, Y)``: makemore's context windows, '.'-padded, ending with '.'."""
    from minigpt.mlp import CHARS, build_context_dataset

    c = Check("build_context")
    for words, block_size in [(["emma"], 3), (_WORDS, 3), (_WORDS, 1), (_WORDS, 5)]:
        ref_X, ref_Y = build_context_dataset(words, block_size)
        out = c.call(fn, list(words), block_size)
        c.that(isinstance(out, tuple) and len(out) == 2, "return a pair (X, Y)")
        X, Y = (_tensor(c, v, name) for v, name in zip(out, ("X", "Y")))
        n_chars = sum(len(w) for w in words)
        if X.shape[0] == n_chars:
            c.fail(f"X has {n_chars} rows, one per character; each name also needs one example "
                   "that predicts the end marker '.'")
        c.shape(X, tuple(ref_X.shape), f"X for block_size={block_size}")
        c.shape(Y, tuple(ref_Y.shape), f"Y for block_size={block_size}")
        c.that(not X.is_floating_point() and not Y.is_floating_point(),
               "X and Y hold character ids: use an integer dtype (torch.long)")
        for i, (row, y) in enumerate(zip(X.tolist(), Y.tolist())):
            if row != ref_X[i].tolist() or y != ref_Y[i].item():
                ctx = "".join(CHARS[j] if 0 <= j < 27 else "?" for j in row)
                c.fail(f"example {i} (block_size={block_size}) has context {ctx!r} -> "
                       f"{CHARS[y] if 0 <= y < 27 else y!r}, which is not right; pad the start with '.' "
                       "(id 0) and slide the window by one character per example")
        c.count += 1
    c.done()


def embed_context(fn):
    """``fn(C, X) -> emb``: look up each context character's row of ``C`` and concatenate, (N, T * d)."""
    c = Check("embed_context")
    g = torch.Generator().manual_seed(0)
    for T, d in [(3, 10), (4, 2)]:
        C = torch.randn(27, d, generator=g)
        X = torch.randint(0, 27, (16, T), generator=g)
        ref = C[X].reshape(16, T * d)
        got = _tensor(c, c.call(fn, C.clone(), X.clone()), "the embedding")
        if tuple(got.shape) in [(16, d), (16, T)]:
            c.fail(f"the result has shape {tuple(got.shape)}; keep every character's vector and "
                   f"concatenate them into (N, block_size * n_embd) = (16, {T * d}), don't sum or average")
        c.shape(got, (16, T * d), "the embedding")
        if not torch.allclose(got, ref) and torch.allclose(got, C[X].transpose(1, 2).reshape(16, T * d)):
            c.fail("the numbers are right but interleaved: the first n_embd values must be the first "
                   "character's whole vector (flatten (N, T, d) without transposing)")
        c.close(got, ref, "the embedding")
    c.done()


def _params(seed: int, T: int = 3, d: int = 10, H: int = 50, V: int = 27):
    g = torch.Generator().manual_seed(seed)
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
    for seed in (0, 1):
        X, C, W1, b1, W2, b2 = _params(seed)
        emb = C[X].flatten(1)
        ref = torch.tanh(emb @ W1 + b1) @ W2 + b2
        got = _tensor(c, c.call(fn, X, C, W1, b1, W2, b2), "the logits")
        c.shape(got, (32, 27), "the logits")
        if torch.allclose(got, (emb @ W1 + b1) @ W2 + b2, atol=1e-4):
            c.fail("your network is linear: apply tanh to the hidden layer's pre-activations")
        if torch.allclose(got, torch.softmax(ref, dim=1), atol=1e-5):
            c.fail("return the logits; the softmax belongs to the loss (F.cross_entropy applies it)")
        c.close(got, ref, "the logits", atol=1e-4)
    c.done()


def init_params(fn):
    """``fn(block_size, n_embd, n_hidden, vocab_size, generator) -> (C, W1, b1, W2, b2)``, well initialised."""
    c = Check("init_params")
    T, d, H, V = 3, 10, 200, 27
    out = c.call(fn, T, d, H, V, torch.Generator().manual_seed(0))
    c.that(isinstance(out, (tuple, list)) and len(out) == 5, "return five tensors (C, W1, b1, W2, b2)")
    C, W1, b1, W2, b2 = (_tensor(c, p, name) for p, name in zip(out, ("C", "W1", "b1", "W2", "b2")))
    for p, shape, name in [(C, (V, d), "C"), (W1, (T * d, H), "W1"), (b1, (H,), "b1"), (W2, (H, V), "W2"),
                           (b2, (V,), "b2")]:
        c.shape(p, shape, name)
    g = torch.Generator().manual_seed(1)
    X = torch.randint(0, V, (2000, T), generator=g)
    Y = torch.randint(0, V, (2000,), generator=g)
    pre = C[X].flatten(1) @ W1 + b1
    h = torch.tanh(pre)
    loss = torch.nn.functional.cross_entropy(h @ W2 + b2, Y).item()
    if loss > math.log(V) + 0.1:
        c.fail(f"the loss at initialisation is {loss:.2f}, but a model that knows nothing should give "
               f"about ln({V}) = {math.log(V):.2f}: the output layer starts too confident; scale W2 down")
    c.count += 1
    sat = (h.abs() > 0.99).float().mean().item()
    c.that(sat < 0.2, f"{sat:.0%} of the tanh units are saturated (|tanh| > 0.99) at init; "
                      "scale W1 by about gain / sqrt(fan_in) with fan_in = block_size * n_embd")
    c.that(sat + (h.abs() < 0.05).float().mean().item() < 0.9 and h.std().item() > 0.2,
           f"the hidden activations are all near 0 (std {h.std().item():.3f}); W1 is scaled down too far "
           "and the hidden layer would start almost silent")
    c.that(C.std().item() > 0.1, "C (the embeddings) should start with unit-size random vectors, not zeros")
    c.done()


def context_length_experiment(results):
    """``results``: dict ``{block_size: dev NLL}`` from your experiment, for at least three sizes including 1."""
    c = Check("context_length_experiment")
    c.that(isinstance(results, dict), f"pass a dict {{block_size: dev NLL}}, got {type(results).__name__}")
    c.that(len(results) >= 3 and 1 in results,
           f"try at least three block sizes including 1 (the bigram); you have {sorted(results)}")
    vals = {int(k): float(v) for k, v in results.items()}
    c.that(all(math.isfinite(v) for v in vals.values()), "every dev NLL should be a finite number")
    if all(v > math.log(27) + 0.5 for v in vals.values()):
        c.fail("these values are above ln(27) = 3.30, the uniform guess; are they perplexities (exp of "
               "the NLL)? report the mean NLL per token in nats")
    c.that(all(1.5 < v < math.log(27) for v in vals.values()),
           "every dev NLL should lie between 1.5 and ln(27) = 3.30 nats; did every model train?")
    c.that(vals[1] > 2.40, f"with block_size=1 the MLP is a bigram model, and no bigram gets below about 2.45 "
                           f"on dev; yours reports {vals[1]:.3f} (evaluated on the training split?)")
    best = min(vals, key=vals.get)
    c.that(best > 1, "a context of one character came out best: train longer or with a larger learning rate; "
                     "longer contexts should help")
    c.done()
