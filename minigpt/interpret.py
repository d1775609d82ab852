"""Looking inside a trained GPT (lesson 09): what each attention head does, which heads matter, and
what the residual stream "believes" after each layer.

- :func:`head_stats`: per-head attention entropy, mean attention distance and previous-token score
  over held-out text, each a (n_layer, n_head) tensor;
- :func:`induction_test`: sequences repeated twice (random tokens, or ones you give), the loss on each
  copy and a per-head induction score (Olsson et al. 2022);
- :func:`attention_only_gpt` / :func:`train_induction_model`: the positive control for that test, a
  two-layer attention-only GPT trained on repeated random tokens, a setting where induction heads have
  been seen to form (Elhage et al. 2021; Olsson et al. 2022);
- :func:`ablate_heads` / :func:`ablation_nll`: switch one head off (zero it, or replace it by its mean
  output, :func:`head_means`) and measure the held-out NLL;
- :func:`logit_lens`: decode the residual stream after every layer through ``ln_f`` and the output
  head (nostalgebraist 2020).

Everything works on a :class:`minigpt.model.GPT` as it is: the forward passes are the model's own
modules called in order, and ablation is a forward pre-hook on ``c_proj`` that is always removed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
from torch import nn

from .evaluate import mean_nll, token_nll
from .model import GPT, GPTConfig

__all__ = ["attention", "held_out_windows", "head_stats", "induction_test", "repeated_random_tokens",
           "attention_only_gpt", "train_induction_model", "head_means", "ablate_heads", "ablation_nll",
           "logit_lens", "nll"]

ABLATIONS = ("zero", "mean")


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
                   generator: torch.Generator | None = None, sequences: torch.Tensor | None = None) -> dict:
    """Sequences each repeated twice: random tokens of ``length`` (default: half the context) drawn from
    ``vocab`` (default: all), or the given ``sequences`` (N, length) of token ids.

    A model that can copy ("induction": find the earlier occurrence of the current token, predict
    what followed it) predicts the second copy far better than the first. Returns ``loss_first``
    and ``loss_second`` (mean NLL per token on each copy, the first token of each excluded),
    ``loss_by_position`` (2 * length - 1,) and ``score`` (n_layer, n_head): the mean attention from
    each token of the second copy to the token right after its earlier occurrence.
    """
    device = next(model.parameters()).device
    if sequences is not None:
        if sequences.dim() != 2 or sequences.size(1) < 2:
            raise ValueError(f"sequences must be (N, length) with length >= 2, got shape {tuple(sequences.shape)}")
        seq = sequences.long()
    else:
        n = length or model.config.block_size // 2
        pool = torch.tensor(list(vocab) if vocab is not None else range(model.config.vocab_size))
        seq = pool[torch.randint(len(pool), (n_seqs, n), generator=generator)]
    L = seq.size(1)
    if 2 * L > model.config.block_size:
        raise ValueError(f"two copies of {L} tokens do not fit in block_size {model.config.block_size}")
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


# ---- the positive control: a model where induction heads form ------------------------------------------
def repeated_random_tokens(n: int, block_size: int, vocab_size: int, min_period: int = 4,
                           max_period: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` rows of ``block_size + 1`` tokens: a random stretch of tokens, with a random length (period)
    from ``min_period`` to ``max_period`` (default: half the block) for each row, repeated to fill the row.
    Past the first period every token can be copied from one period back, and only by content: the period
    differs from row to row, so no fixed offset works."""
    max_period = max_period or block_size // 2
    if not 1 <= min_period <= max_period <= block_size:
        raise ValueError(f"periods {min_period}..{max_period} must satisfy 1 <= min <= max <= block_size {block_size}")
    periods = torch.randint(min_period, max_period + 1, (n,), generator=generator)
    base = torch.randint(vocab_size, (n, max_period), generator=generator)
    pos = torch.arange(block_size + 1)
    return base.gather(1, pos[None, :] % periods[:, None])  # (n, block_size + 1)


class _NoMLP(nn.Module):
    """An MLP that adds nothing to the residual stream: the block is attention only."""

    def forward(self, x):
        return torch.zeros_like(x)


def attention_only_gpt(vocab_size: int, block_size: int, n_layer: int = 2, n_head: int = 4, n_embd: int = 64,
                       seed: int = 0, positions: str = "learned") -> GPT:
    """A GPT whose blocks have attention and no MLP (each MLP returns zeros), as in the attention-only
    transformers of Elhage et al. 2021. Everything else (embeddings, LayerNorms, tied head) is minigpt's."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(block_size=block_size, vocab_size=vocab_size, n_layer=n_layer, n_head=n_head,
                          n_embd=n_embd, positions=positions))
    for block in model.transformer.h:
        block.mlp = _NoMLP()
    return model


def train_induction_model(steps: int = 1000, vocab_size: int = 32, block_size: int = 16, batch_size: int = 64,
                          lr: float = 3e-3, seed: int = 0, n_layer: int = 2, n_head: int = 1, min_period: int = 2,
                          progress: bool = False):
    """Train :func:`attention_only_gpt` on :func:`repeated_random_tokens` (AdamW, constant ``lr``).
    Returns ``(model, losses)``: the model in eval mode and the training loss at every step (nats).

    Lesson 09 trains it with four heads a layer and periods of 4 to 8 in a context of 16: the model copies
    within a few hundred steps, but through layer-0 heads that look a fixed distance back, not through a
    previous-token head and an induction head. The defaults (one head a layer, periods of 2 to 8) leave
    fewer heads than periods, so that shortcut covers less; that they give a textbook induction circuit is
    not tested. In a longer context the model sits much longer on the plateau where it only learns "a
    token seen before is likely".
    """
    from tqdm.auto import tqdm

    model = attention_only_gpt(vocab_size, block_size, n_layer=n_layer, n_head=n_head, seed=seed)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    model.train()
    for _ in tqdm(range(steps), desc="training the control", disable=not progress):
        batch = repeated_random_tokens(batch_size, block_size, vocab_size, min_period=min_period, generator=g)
        _, loss = model(batch[:, :-1], batch[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model.eval(), losses


@torch.no_grad()
def head_means(model, x: torch.Tensor, batch_size: int = 64) -> dict[int, torch.Tensor]:
    """The mean input of each layer's ``c_proj`` over every position of the windows ``x`` (N, T):
    {layer: (n_embd,)}, the heads' mean outputs side by side (head h owns channels h*hs .. (h+1)*hs - 1)."""
    device = next(model.parameters()).device
    sums = {i: torch.zeros(model.config.n_embd) for i in range(model.config.n_layer)}
    count = 0
    handles = []

    def make_hook(i):
        def hook(module, args):
            sums[i] += args[0].detach().float().sum((0, 1)).cpu()
        return hook

    try:
        for i, block in enumerate(model.transformer.h):
            handles.append(block.attn.c_proj.register_forward_pre_hook(make_hook(i)))
        for j in range(0, len(x), batch_size):
            xb = x[j:j + batch_size].to(device)
            model(xb)
            count += xb.numel()
    finally:
        for h in handles:
            h.remove()
    return {i: v / count for i, v in sums.items()}


@contextlib.contextmanager
def ablate_heads(model, heads: Iterable[tuple[int, int]], means: dict[int, torch.Tensor] | None = None):
    """Inside the ``with`` block, the outputs of the given (layer, head) pairs are switched off: zero, or,
    with ``means`` (from :func:`head_means`), the head's mean output at every position.

    A head's output is its slice of channels in the input of the layer's ``c_proj`` (the heads'
    outputs side by side); a forward pre-hook replaces that slice. The hooks are always removed.
    Zero ablation also removes whatever constant the head adds; mean ablation keeps that constant and
    removes only what the head says about this particular input, so it is the gentler, fairer test.
    """
    heads = list(heads)
    n_layer, n_head = model.config.n_layer, model.config.n_head
    hs = model.config.n_embd // n_head
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        if not (0 <= layer < n_layer and 0 <= head < n_head):
            raise ValueError(f"no head ({layer}, {head}): the model has {n_layer} layers of {n_head} heads")
        by_layer.setdefault(layer, []).append(head)
    if means is not None and any(layer not in means for layer in by_layer):
        raise ValueError(f"means has no entry for layer(s) {sorted(set(by_layer) - set(means))}; "
                         "make it with head_means(model, x)")
    handles = []

    def make_hook(layer, hs_list):
        def hook(module, args):
            (y,) = args
            y = y.clone()
            for h in hs_list:
                sl = slice(h * hs, (h + 1) * hs)
                y[..., sl] = 0 if means is None else means[layer][sl].to(y.device, y.dtype)
            return (y,)
        return hook

    try:
        for layer, hs_list in by_layer.items():
            proj = model.transformer.h[layer].attn.c_proj
            handles.append(proj.register_forward_pre_hook(make_hook(layer, hs_list)))
        yield model
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def ablation_nll(model, x: torch.Tensor, y: torch.Tensor, progress: bool = False,
                 mode: str = "zero") -> tuple[float, torch.Tensor]:
    """The held-out NLL of the model, and (n_layer, n_head) NLLs with each head switched off in turn:
    ``mode="zero"`` zeroes its output, ``mode="mean"`` replaces it by its mean over ``x``."""
    from tqdm.auto import tqdm

    if mode not in ABLATIONS:
        raise ValueError(f"unknown ablation {mode!r}; choose one of {', '.join(ABLATIONS)}")
    means = head_means(model, x) if mode == "mean" else None
    base = nll(model, x, y)
    L, H = model.config.n_layer, model.config.n_head
    out = torch.zeros(L, H)
    for layer in tqdm(range(L), desc=f"{mode}-ablating heads", disable=not progress):
        for head in range(H):
            with ablate_heads(model, [(layer, head)], means):
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
