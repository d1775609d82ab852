"""Scoring held-out text: one home for the loss every lesson reports.

Three layers, each usable alone:

- :func:`windows` / :func:`gather`: the trainer's fixed validation windows of a token stream;
- :func:`token_nll` / :func:`nll_sum` / :func:`mean_nll`: negative log-likelihood (nats) of every target
  ``y`` given inputs ``x``, for any model: a GPT, the MLP, the neural bigram (a module that returns
  logits, or ``(logits, loss)``), or a count model wrapped in :class:`NGramScorer`. Targets equal to
  ``IGNORE`` (-1) are not scored;
- :func:`bits_per_char`: a text's cost in bits per character, the unit shared by every tokenizer,
  with a stated context policy (``POLICIES``):

  * ``"separate"``: the text is cut into consecutive windows of the model's context (or of at most
    ``context`` characters); a token early in a window sees little context, on average half a window.
    This is how the trainer reports its validation loss (and, like it, leaves out a last partial window).
  * ``"sliding"``: windows overlap so that every scored token has at least ``context`` characters
    before it (all the text there is, for the first ones). Costs more forward passes, scores better.

Each scored token is counted once (under "sliding", every token after the first), and for BPE the
bits of a text are its summed token NLLs over the characters those tokens spell:

    bits per character = sum_t NLL_t / (N_chars * ln 2)
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["IGNORE", "POLICIES", "windows", "gather", "token_nll", "nll_sum", "mean_nll", "NGramScorer",
           "score_plan", "separate_plan", "sliding_plan", "bits_per_char"]

IGNORE = -1  # a target that is not scored (padding, a prompt, a token an earlier window scored)
POLICIES = ("separate", "sliding")


# --------------------------------------------------------------------------- windows of a token stream

def windows(n_tokens: int, block_size: int, eval_tokens: int | None = None) -> torch.Tensor:
    """Start offsets of the trainer's validation windows: non-overlapping, evenly spread, always the same.
    ``eval_tokens`` keeps about that many tokens' worth of them (evenly spaced); None keeps them all."""
    n = (n_tokens - 1) // block_size  # each window needs block_size + 1 tokens (inputs and targets)
    starts = torch.arange(n) * block_size
    if eval_tokens is not None:
        k = max(1, min(n, eval_tokens // block_size))
        starts = starts[torch.linspace(0, n - 1, k).round().long()]
    return starts


def gather(data: torch.Tensor, starts: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets of the windows at ``starts`` of the 1-D ``data``: two (len(starts), block_size)."""
    ix = starts[:, None] + torch.arange(block_size + 1)
    chunk = data[ix]
    return chunk[:, :-1], chunk[:, 1:]


# --------------------------------------------------------------------------- NLL per token, any model

def token_nll(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """NLL in nats of every target ``y`` given inputs ``x`` (float32, the shape of ``y``; 0 where ``y`` is IGNORE).

    ``model`` is a module returning logits (..., V) or ``(logits, loss)``, or any object with its own
    ``token_nll(x, y)`` (:class:`NGramScorer`). Runs on the model's device; call it under ``no_grad``.
    """
    if hasattr(model, "token_nll"):
        return model.token_nll(x, y)
    out = model(x)
    logits = out[0] if isinstance(out, tuple) else out
    nll = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1).to(logits.device),
                          ignore_index=IGNORE, reduction="none")
    return nll.view(y.shape)


def _device(model) -> torch.device:
    params = getattr(model, "parameters", None)
    first = next(iter(params()), None) if params else None
    return first.device if first is not None else torch.device("cpu")


@torch.no_grad()
def nll_sum(model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> tuple[float, int]:
    """Summed NLL (nats) and number of scored targets of ``x, y``, in batches of ``batch_size`` rows,
    with the model in eval mode (its mode is restored)."""
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    device = _device(model)
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    try:
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
            total += token_nll(model, xb, yb).to(device).double().sum()
            count += int((yb != IGNORE).sum())
    finally:
        if hasattr(model, "train"):
            model.train(was_training)
    return float(total), count


def mean_nll(model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Mean NLL per token (nats) over every target of ``y`` that is not IGNORE: the course's yardstick."""
    total, count = nll_sum(model, x, y, batch_size)
    if count == 0:
        raise ValueError("there are no targets to score (every target is -1)")
    return total / count


class NGramScorer:
    """A count model (:class:`minigpt.ngram.NGramModel`) with the neural models' interface: token ids in,
    NLL per target out. ``vocab[i]`` is the token that id ``i`` stands for; a context shorter than the
    n-gram's order is padded with its start marker, as the n-gram pads a sequence.

        mean_nll(NGramScorer(ngram, ["."] + list("abc...z")), X, Y)  # == ngram.nll(words) on the same events
    """

    def __init__(self, ngram, vocab: Sequence[str]):
        self.ngram, self.vocab = ngram, list(vocab)

    def token_nll(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """NLL in nats of each target given every input up to it (the shape of ``y``; 0 where IGNORE).
        ``y`` of shape (N,) is one target per row of ``x`` (the MLP's datasets): it follows the whole row."""
        single = y.dim() == 1
        targets = y[:, None] if single else y
        out = torch.zeros(targets.shape, dtype=torch.float32)
        for b, (row, row_targets) in enumerate(zip(x.tolist(), targets.tolist())):
            for t, target in enumerate(row_targets):
                if target == IGNORE:
                    continue
                context = [self.vocab[i] for i in row[:len(row) if single else t + 1]]  # the n-gram keeps its last n-1
                p = self.ngram.prob(context, self.vocab[target])
                out[b, t] = -math.log(p) if p > 0 else math.inf
        return out.view(y.shape)


# --------------------------------------------------------------------------- plans: which windows score what

def _char_offsets(tokenizer, ids: list[int]) -> list[int]:
    """cum[i] = characters spelled by ids[:i]. A byte-level tokenizer (one with ``decode_bytes``) may end a
    token inside a multi-byte character (a rare Chinese character is 3 byte tokens): such a character counts
    for the token that completes it, so the offsets are exact for any text."""
    if hasattr(tokenizer, "decode_bytes"):
        ends, n = [0], 0
        for t in ids:
            n += len(tokenizer.decode_bytes([t]))
            ends.append(n)
        data = tokenizer.decode_bytes(ids)
        starts = [0] * (len(data) + 1)  # starts[p]: characters that begin in data[:p] (UTF-8 lead bytes)
        for p, b in enumerate(data):
            starts[p + 1] = starts[p] + ((b & 0xC0) != 0x80)
        inside = lambda p: p < len(data) and (data[p] & 0xC0) == 0x80  # byte p continues a character  # noqa: E731
        return [starts[p] - inside(p) for p in ends]
    length = {t: len(tokenizer.decode([t])) for t in set(ids)}
    cum = [0]
    for t in ids:
        cum.append(cum[-1] + length[t])
    return cum


def separate_plan(n_tokens: int, block_size: int, cum: list[int] | None = None,
                  context: int | None = None) -> list[tuple[int, int, int]]:
    """Consecutive windows of ``block_size`` tokens (or of at most ``context`` characters, ``cum`` giving
    character offsets), each scoring all its targets: a list of ``(start, length, first_scored)``.
    As in the trainer, a last window cut short by the end of the text is left out (unless it is the only one)."""
    plan, s = [], 0
    while s < n_tokens - 1:
        e = s + block_size
        if context is not None:
            e = min(e, bisect.bisect_right(cum, cum[s] + context) - 1)  # inputs ids[s:e] span <= context chars
        e = max(e, s + 1)
        if e > n_tokens - 1:  # the text ends inside this window
            if not plan:
                plan.append((s, n_tokens - 1 - s, 0))
            break
        plan.append((s, e - s, 0))
        s = e
    return plan


def sliding_plan(n_tokens: int, block_size: int, cum: list[int], context: int) -> list[tuple[int, int, int]]:
    """Overlapping windows that score every target with at least ``context`` characters before it (all the
    text before it when there is less): a list of ``(start, length, first_scored)``, each target once.
    Where ``block_size`` tokens span fewer than ``context`` characters, a target gets the whole window
    (:func:`bits_per_char` counts such targets as ``short_context``)."""
    if context > cum[-1]:
        context = cum[-1]  # more than the whole text: every target gets all the text before it
    plan, j = [], 1  # j: the next target to score, ids[j]
    while j < n_tokens:
        # the latest start that leaves target j at least `context` characters (0: all the text there is)
        s = max(0, j - block_size, min(j - 1, bisect.bisect_right(cum, cum[j] - context) - 1))
        e = min(s + block_size, n_tokens - 1)  # inputs ids[s:e], targets ids[s + 1:e + 1]
        plan.append((s, e - s, j - s - 1))
        j = e + 1
    return plan


@torch.no_grad()
def score_plan(model, seqs: Sequence[torch.Tensor], plan: Sequence[tuple[int, int, int, int]],
               batch_size: int = 64) -> list[torch.Tensor]:
    """NLL (nats, float64) of every target that ``plan`` scores, 0 elsewhere: one tensor like each of ``seqs``.

    A window ``(seq, start, length, first)`` feeds ``seqs[seq][start:start + length]`` and scores its
    targets ``seqs[seq][start + 1 + first:start + 1 + length]``. Windows of any length share a batch."""
    nll = [torch.zeros(len(ids), dtype=torch.float64) for ids in seqs]
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        for i in range(0, len(plan), batch_size):
            chunk = plan[i:i + batch_size]
            T = max(length for _, _, length, _ in chunk)
            x = torch.zeros(len(chunk), T, dtype=torch.long)
            y = torch.full((len(chunk), T), IGNORE, dtype=torch.long)
            for k, (q, s, length, first) in enumerate(chunk):
                x[k, :length] = seqs[q][s:s + length]
                y[k, first:length] = seqs[q][s + 1 + first:s + 1 + length]
            got = token_nll(model, x.to(_device(model)), y).double().cpu()
            for k, (q, s, length, first) in enumerate(chunk):
                nll[q][s + 1 + first:s + 1 + length] = got[k, first:length]
    finally:
        if hasattr(model, "train"):
            model.train(was_training)
    return nll


def bits_per_char(model, tokenizer, text: str, policy: str = "separate", context: int | None = None,
                  max_windows: int | None = None, batch_size: int = 64, block_size: int | None = None) -> dict:
    """Score ``model`` on ``text`` in bits per character, with a stated context policy (see the module doc).

    ``policy="separate"``: consecutive windows of the model's ``block_size`` tokens, or of at most ``context``
    characters when given. ``policy="sliding"``: every token has at least ``context`` characters before it
    (required; ``short_context`` counts the tokens whose window could not hold that many). ``max_windows``
    keeps that many evenly spaced windows (a quick estimate). ``block_size``: the model's window in tokens
    (default ``model.config.block_size``; give it for an :class:`NGramScorer`). Returns ``{"bits_per_char",
    "nats_per_token", "tokens", "characters", "windows", "policy", "context", "short_context"}``.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose one of: {', '.join(POLICIES)}")
    if context is not None and context < 1:
        raise ValueError(f"context is a number of characters >= 1, got {context}")
    if policy == "sliding" and context is None:
        raise ValueError("policy 'sliding' needs context=C: the characters every scored token sees at least")
    B = block_size or model.config.block_size
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    if len(ids) < 2:
        raise ValueError(f"the text is {len(ids)} token(s) long; scoring needs at least 2")
    cum = _char_offsets(tokenizer, ids.tolist())
    if policy == "separate":
        plan = separate_plan(len(ids), B, cum, context)
    else:
        plan = sliding_plan(len(ids), B, cum, context)
    if max_windows is not None and max_windows < len(plan):
        plan = [plan[i] for i in torch.linspace(0, len(plan) - 1, max(1, max_windows)).round().long().tolist()]
    nll = score_plan(model, [ids], [(0, *w) for w in plan], batch_size)[0]
    scored = torch.zeros(len(ids), dtype=torch.bool)
    for s, length, first in plan:
        scored[s + 1 + first:s + 1 + length] = True
    lengths = torch.tensor(cum[1:]) - torch.tensor(cum[:-1])
    nats, tokens, chars = float(nll[scored].sum()), int(scored.sum()), int(lengths[scored].sum())
    short = 0 if policy == "separate" else sum(  # targets the window could not give `context` characters
        1 for s, length, first in plan if s > 0
        for j in range(s + 1 + first, s + 1 + length) if cum[j] - cum[s] < context)
    return {"bits_per_char": nats / (chars * math.log(2)), "nats_per_token": nats / tokens, "tokens": tokens,
            "characters": chars, "windows": len(plan), "policy": policy, "context": context, "short_context": short}
