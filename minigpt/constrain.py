"""Controlling what a model writes: logit bias, banned tokens, constrained decoding, stop strings.

Every control here edits the next-token logits before the draw (:func:`minigpt.generate.sample_next`):

    ban:        logit = -inf for the banned tokens        (probability exactly 0: never drawn)
    bias:       logit += b for chosen tokens              (a nudge: b < 0 makes a token rarer, not impossible)
    allow only: logit = -inf for every token not allowed  (a hard constraint)
    format:     allow only the tokens that keep the text a prefix of a match of a regular expression

A hard constraint always holds; its price is that the text is no longer what the model would have
written, which :func:`continuation_nll` measures: the NLL of the text under the unconstrained model.
Stop strings end a sample at the first occurrence of any of them (:class:`minigpt.generate.StopStrings`,
as in :func:`minigpt.generate.stream`); :func:`sample_texts` runs many samples at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import regex
import torch

from .evaluate import score_plan, sliding_plan
from .generate import (
    SamplingSettings,
    StopStrings,
    check_max_new_tokens,
    generate_tokens,
    sampling_settings,
)
from .tokenizer import Tokenizer

__all__ = ["ban_tokens", "bias_tokens", "allow_only", "RegexConstraint", "sample_texts", "continuation_nll"]


def ban_tokens(logits: torch.Tensor, ids: Sequence[int]) -> torch.Tensor:
    """A copy of ``logits`` (..., V) with the tokens ``ids`` at -inf: they can never be drawn."""
    out = logits.clone()
    out[..., list(ids)] = float("-inf")
    return out


def bias_tokens(logits: torch.Tensor, bias: dict[int, float]) -> torch.Tensor:
    """A copy of ``logits`` (..., V) with ``bias[i]`` added to token i's logit (OpenAI's ``logit_bias``)."""
    out = logits.clone()
    for i, b in bias.items():
        out[..., i] += b
    return out


def allow_only(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """``logits`` (..., V) with every token where the boolean mask ``allowed`` (V,) or (..., V) is False at -inf."""
    return logits.masked_fill(~allowed.to(device=logits.device, dtype=torch.bool), float("-inf"))


class RegexConstraint:
    """Keeps generated text a prefix of a full match of ``pattern`` (the ``regex`` module's partial matching).

    ``allowed(text)`` is the mask (V,) of tokens whose text keeps ``text`` on a path to a match;
    ``complete(text)`` says whether ``text`` already matches in full.
    """

    def __init__(self, pattern: str, tokenizer: Tokenizer):
        self.pattern = pattern
        self.regex = regex.compile(pattern)
        self.pieces = [tokenizer.decode([i]) for i in range(tokenizer.vocab_size)]
        self._memo: dict[str, torch.Tensor] = {}

    def allowed(self, text: str) -> torch.Tensor:
        if text not in self._memo:
            ok = [self.regex.fullmatch(text + p, partial=True) is not None for p in self.pieces]
            if len(self._memo) > 100_000:
                self._memo.clear()
            self._memo[text] = torch.tensor(ok)
        return self._memo[text]

    def complete(self, text: str) -> bool:
        return self.regex.fullmatch(text) is not None

    def __repr__(self) -> str:
        return f"RegexConstraint({self.pattern!r})"


@torch.no_grad()
def sample_texts(model, tokenizer: Tokenizer, prompt: str, n: int, max_new_tokens: int, *,
                 settings: SamplingSettings | None = None,
                 logits_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 constraint: RegexConstraint | None = None, stop: str | Sequence[str] | None = None,
                 generator: torch.Generator | None = None, **options) -> list[str]:
    """``n`` continuations of ``prompt`` sampled side by side (the prompt is not repeated).

    The draw follows ``settings`` and any settings given by name (``temperature=0.8``, ``top_k``, ...).
    ``logits_fn`` edits the last position's logits (B, V) before the draw (e.g. a ban or a bias);
    ``constraint`` allows only tokens that keep each text on a path to a full match, and a sample ends
    when no token is allowed (it matched, or it can go no further); a ``stop`` string ends a sample and
    is cut off. With none of them, and n = 1, this draws exactly what :func:`minigpt.generate.generate`
    draws with the same generator.
    """
    settings = sampling_settings(settings, **options)
    check_max_new_tokens(max_new_tokens)
    stops = StopStrings(stop)
    if n <= 0:
        raise ValueError(f"n must be a positive number of samples, got {n}")
    device = next(model.parameters()).device
    start = tokenizer.encode(prompt)
    if not start:
        raise ValueError("the prompt is empty; give at least one character (e.g. a newline)")
    new: list[list[int]] = [[] for _ in range(n)]
    texts = [""] * n
    done = [False] * n

    def process(logits, _tokens):  # (n, V): the controls, then finished rows draw anything
        logits = logits.float()
        if logits_fn is not None:
            logits = logits_fn(logits)
        if constraint is not None:
            mask = torch.stack([constraint.allowed(t) if not d else torch.ones(logits.size(-1), dtype=torch.bool)
                                for t, d in zip(texts, done)])
            for b in range(n):
                if not done[b] and not mask[b].any():
                    done[b] = True  # matched in full, or a dead end: nothing may follow
            logits = allow_only(logits, mask)
        finished = torch.tensor(done, device=logits.device)
        return torch.where(finished[:, None], torch.zeros_like(logits), logits)

    idx = torch.tensor([start] * n, device=device)
    for nxt in generate_tokens(model, idx, max_new_tokens, settings=settings, generator=generator,
                               logits_processor=process):  # nxt: (n, 1)
        if all(done):
            break  # every sample ended before this draw: it is not used
        for b in range(n):
            if done[b]:
                continue
            new[b].append(int(nxt[b, 0]))
            texts[b], done[b] = stops.cut(tokenizer.decode(new[b]))
        if all(done):
            break
    return texts


def continuation_nll(model, tokenizer, prompt: str, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """Mean NLL per token of each ``text`` as a continuation of ``prompt``, under ``model`` at temperature 1:
    (N,), NaN for an empty text. Sequences longer than the window are scored in windows that slide by
    half a window, every token with at least half a window of context (Hugging Face's strided perplexity;
    :func:`minigpt.evaluate.sliding_plan` with a context of ``block_size + 1 - stride`` tokens)."""
    block = model.config.block_size
    stride = max(1, block // 2)
    p = tokenizer.encode(prompt)
    if not p:
        raise ValueError("the prompt is empty; give at least one character")
    seqs = [torch.tensor(p + tokenizer.encode(text), dtype=torch.long) for text in texts]
    plan = [(row, *w) for row, ids in enumerate(seqs) if texts[row]
            for w in sliding_plan(len(ids), block, list(range(len(ids) + 1)), block + 1 - stride)]
    nll = score_plan(model, seqs, plan, batch_size)
    out = torch.full((len(texts),), float("nan"))
    for row, text in enumerate(texts):
        if text:  # score only the continuation: targets at positions >= len(prompt)
            out[row] = nll[row][len(p):].mean()
    return out
