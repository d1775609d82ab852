"""Looking inside a trained GPT (lesson 09): what each attention head does, which heads matter, and
what the residual stream "believes" after each layer.

- :func:`head_stats`: per-head attention entropy, mean attention distance and previous-token score
  over held-out text, each a (n_layer, n_head) tensor;
- :func:`induction_test`: random sequences repeated twice, the loss on each copy and a per-head
  induction score (Olsson et al. 2022);
- :func:`ablate_heads` / :func:`ablation_nll`: zero one head's output and measure the held-out NLL;
- :func:`logit_lens`: decode the residual stream after every layer through ``ln_f`` and the output
  head (nostalgebraist 2020).

Everything works on a :class:`minigpt.model.GPT` as it is: the forward passes are the model's own
modules called in order, and ablation is a forward pre-hook on ``c_proj`` that is always removed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch

from .evaluate import mean_nll, token_nll

__all__ = ["attention", "held_out_windows", "head_stats", "induction_test", "ablate_heads", "ablation_nll",
           "logit_lens", "nll"]


@torch.no_grad()
def attention(model, idx: torch.Tensor) -> torch.Tensor:
    """Attention weights of every layer and head for ``idx`` (B, T): (n_layer, B, n_head, T, T)."""
    return torch.stack(model.attention_weights(idx)).float()


def held_out_windows(ids: torch.Tensor, block_size: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` evenly spaced windows of token ids (a 1-D tensor): inputs and next-token targets, (n, block_size)."""
    if len(ids) < block_size + 2:
        raise ValueError(f"the text has {len(ids)} tokens; windows of {block_size} need at least {block_size + 2}")
    starts = torch.linspace(0, len(ids) - block_size - 2, n).long()
    x = torch.stack([ids[s:s + block_size] for s in starts])
    y = torch.stack([ids[s + 1:s + block_size + 1] for s in starts])
    return x, y


@torch.no_grad()
def head_stats(model, x: torch.Tensor, batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Per-head averages over every query position of the windows ``x`` (N, T), each (n_layer, n_head):

    - ``entropy``: -sum_j w_ij ln w_ij, in nats (0: looks at one token; ln(i+1): spread evenly);
    - ``distance``: sum_j w_ij (i - j), how far back the head looks, in tokens;
    - ``prev_token``: w_i,i-1, the weight on the previous token (queries i >= 1).
    """
    device = next(model.parameters()).device
    sums = None
    n_q = n_prev = 0
    for i in range(0, len(x), batch_size):
        w = attention(model, x[i:i + batch_size].to(device)).cpu()  # (L, B, H, T, T)
        T = w.size(-1)
        pos = torch.arange(T, dtype=w.dtype)
        entropy = -(w * w.clamp_min(1e-12).log()).sum(-1)  # (L, B, H, T)
        distance = (w * (pos[:, None] - pos[None, :])).sum(-1)  # (L, B, H, T)
        prev = torch.diagonal(w, offset=-1, dim1=-2, dim2=-1)  # (L, B, H, T - 1): w[i, i-1]
        part = torch.stack([entropy.sum((1, 3)), distance.sum((1, 3)), prev.sum((1, 3))])  # (3, L, H)
        sums = part if sums is None else sums + part
        n_q += w.size(1) * T
        n_prev += w.size(1) * (T - 1)
    return {"entropy": sums[0] / n_q, "distance": sums[1] / n_q, "prev_token": sums[2] / max(1, n_prev)}


def nll(model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 64) -> float:
    """Mean negative log-likelihood (nats per token) of targets ``y`` given inputs ``x``
    (:func:`minigpt.evaluate.mean_nll`)."""
    return mean_nll(model, x, y, batch_size)


@torch.no_grad()
def induction_test(model, n_seqs: int = 64, length: int | None = None, vocab: Iterable[int] | None = None,
                   generator: torch.Generator | None = None) -> dict:
    """Random token sequences of ``length`` (default: half the context), each repeated twice.

    A model that can copy ("induction": find the earlier occurrence of the current token, predict
    what followed it) predicts the second copy far better than the first. Returns ``loss_first``
    and ``loss_second`` (mean NLL per token on each copy, the first token of each excluded),
    ``loss_by_position`` (2 * length - 1,) and ``score`` (n_layer, n_head): the mean attention from
    each token of the second copy to the token right after its earlier occurrence.
    """
    device = next(model.parameters()).device
    L = length or model.config.block_size // 2
    if 2 * L > model.config.block_size:
        raise ValueError(f"two copies of {L} tokens do not fit in block_size {model.config.block_size}")
    pool = torch.tensor(list(vocab) if vocab is not None else range(model.config.vocab_size))
    seq = pool[torch.randint(len(pool), (n_seqs, L), generator=generator)]
    x = torch.cat([seq, seq], dim=1).to(device)  # (N, 2L)
    losses = token_nll(model, x[:, :-1], x[:, 1:])  # (N, 2L - 1), minigpt.evaluate's per-token NLL
    by_pos = losses.mean(0).cpu()  # predicting token t + 1 from tokens <= t
    w = attention(model, x).cpu()  # (n_layer, N, H, 2L, 2L)
    t = torch.arange(L, 2 * L)  # queries in the second copy
    src = t - L + 1  # the token after the earlier occurrence of token t
    keep = src < t  # (all of them; the last one's source is still in the past)
    score = w[:, :, :, t[keep], src[keep]].mean((1, 3))  # (n_layer, H)
    return {"loss_first": by_pos[: L - 1].mean().item(), "loss_second": by_pos[L:].mean().item(),
            "loss_by_position": by_pos, "score": score, "length": L}


@contextlib.contextmanager
def ablate_heads(model, heads: Iterable[tuple[int, int]]):
    """Inside the ``with`` block, the outputs of the given (layer, head) pairs are zero.

    A head's output is its slice of channels in the input of the layer's ``c_proj`` (the heads'
    outputs side by side); a forward pre-hook zeroes that slice. The hooks are always removed.
    """
    heads = list(heads)
    n_layer, n_head = model.config.n_layer, model.config.n_head
    hs = model.config.n_embd // n_head
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        if not (0 <= layer < n_layer and 0 <= head < n_head):
            raise ValueError(f"no head ({layer}, {head}): the model has {n_layer} layers of {n_head} heads")
        by_layer.setdefault(layer, []).append(head)
    handles = []

    def make_hook(hs_list):
        def hook(module, args):
            (y,) = args
            y = y.clone()
            for h in hs_list:
                y[..., h * hs:(h + 1) * hs] = 0
            return (y,)
        return hook

    try:
        for layer, hs_list in by_layer.items():
            proj = model.transformer.h[layer].attn.c_proj
            handles.append(proj.register_forward_pre_hook(make_hook(hs_list)))
        yield model
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def ablation_nll(model, x: torch.Tensor, y: torch.Tensor, progress: bool = False) -> tuple[float, torch.Tensor]:
    """The held-out NLL of the model, and (n_layer, n_head) NLLs with each head zeroed in turn."""
    from tqdm.auto import tqdm

    base = nll(model, x, y)
    L, H = model.config.n_layer, model.config.n_head
    out = torch.zeros(L, H)
    for layer in tqdm(range(L), desc="ablating heads", disable=not progress):
        for head in range(H):
            with ablate_heads(model, [(layer, head)]):
                out[layer, head] = nll(model, x, y)
    return base, out


@torch.no_grad()
def logit_lens(model, idx: torch.Tensor) -> torch.Tensor:
    """Logits read from the residual stream after the embeddings and after each block, through the
    final LayerNorm and the output head: (n_layer + 1, B, T, V). The last equals the model's logits."""
    tr = model.transformer
    B, T = idx.shape
    model._check_length(T)
    x = model.embed(idx)  # (B, T, C)
    rope = model.rope(T)  # RoPE's angles, None for learned positions
    out = [model.lm_head(tr.ln_f(x))]
    for block in tr.h:
        x = block(x, rope=rope)
        out.append(model.lm_head(tr.ln_f(x)))
    return torch.stack(out).float()
