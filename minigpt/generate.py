"""Generation: turning next-token logits into text, one token at a time.

Each sampling strategy is a small function on the logits of the last position, (B, V) -> (B, V):

    logits -> repetition / frequency penalty -> / temperature -> top-k -> top-p -> softmax -> draw

Greedy decoding (temperature 0) skips the draw and takes the argmax. :func:`generate` runs the
loop on token ids; :func:`stream` runs it on text, yields each piece as soon as it is made and stops
at a stop string. A ``torch.Generator`` makes every strategy reproducible.

The KV cache (:class:`minigpt.model.KVCache`) makes each new token cost one position instead of
the whole context. GPT-2-style models learn one embedding per absolute position, and every cached
key was computed with its token's position mixed in. When the text grows past ``block_size``, the
window of the last ``block_size`` tokens slides by one: every token in it moves to a new position,
so every cached key is stale. The cache is then refilled from the window (one full forward), which
is exactly what recomputing does; past ``block_size`` each token costs a whole window again.
Models with relative positions (RoPE, ALiBi) do not have this problem.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

__all__ = ["greedy", "apply_temperature", "top_k_filter", "top_p_filter", "repetition_penalty",
           "frequency_penalty", "next_token_probs", "sample_next", "generate", "generate_tokens",
           "stream", "generate_text", "check_sampling_args"]


# --------------------------------------------------------------------------- the strategies

def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The most likely token of each row: (B, V) -> (B, 1). Ties go to the lowest id."""
    return logits.argmax(dim=-1, keepdim=True)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The logits for softmax(logits / T): T < 1 sharpens the distribution, T > 1 flattens it, T = 1
    leaves it. They come back shifted so that each row's largest is 0 (softmax does not change)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 here (0 means greedy: use greedy()), got {temperature}")
    # Shifting by the maximum changes no probability, and keeps a tiny T (1e-45) from turning the
    # logits into inf - inf = NaN: the favourite stays at 0, the rest go to -inf, as T -> 0 should.
    return (logits - logits.amax(dim=-1, keepdim=True)) / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row, set the rest to -inf (ties with the k-th are kept)."""
    if k >= logits.size(-1):
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (B, 1): the k-th largest
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering (Holtzman et al. 2020): keep the smallest set of most likely tokens whose
    probability reaches ``p``; the rest get -inf. Equal probabilities are taken lowest id first."""
    if p >= 1.0:
        return logits
    probs = F.softmax(logits.double(), dim=-1)
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass of the tokens ranked above each one
    drop_sorted = mass_before >= p  # the set already reached p without this token
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def repetition_penalty(logits: torch.Tensor, counts: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's penalty (Keskar et al. 2019), as in Hugging Face: every token that already occurs
    (``counts`` (B, V) > 0) has its logit divided by ``penalty`` if positive, multiplied if negative."""
    seen = counts > 0
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def frequency_penalty(logits: torch.Tensor, counts: torch.Tensor, alpha: float) -> torch.Tensor:
    """OpenAI's frequency penalty: subtract ``alpha`` times how often each token already occurs."""
    return logits - alpha * counts.to(logits.dtype)


def check_sampling_args(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                        repetition: float = 1.0, frequency: float = 0.0, max_new_tokens: int = 0) -> None:
    """Raise ``ValueError`` with one clear line for a sampling setting that makes no sense."""
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a number >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0):
        raise ValueError(f"top-k must be a positive integer (or None for no limit), got {top_k}")
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise ValueError(f"top-p must be in (0, 1] (1 keeps every token), got {top_p}")
    if not (isinstance(repetition, (int, float)) and math.isfinite(repetition) and repetition > 0):
        raise ValueError(f"repetition penalty must be > 0 (1 = none), got {repetition}")
    if not (isinstance(frequency, (int, float)) and math.isfinite(frequency)):
        raise ValueError(f"frequency penalty must be a finite number (0 = none), got {frequency}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max new tokens must be an integer >= 0, got {max_new_tokens}")


def _penalised(logits, counts, repetition, frequency):
    logits = logits.float()
    if counts is not None and repetition != 1.0:
        logits = repetition_penalty(logits, counts, repetition)
    if counts is not None and frequency != 0.0:
        logits = frequency_penalty(logits, counts, frequency)
    return logits


def _filtered(logits, temperature, top_k, top_p):
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return logits


def next_token_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                     top_p: float | None = None, counts: torch.Tensor | None = None,
                     repetition: float = 1.0, frequency: float = 0.0) -> torch.Tensor:
    """The distribution a token is drawn from, after every filter: (B, V), rows sum to 1.

    Temperature 0 puts all the mass on the argmax (greedy decoding).
    """
    check_sampling_args(temperature, top_k, top_p, repetition, frequency)
    logits = _penalised(logits, counts, repetition, frequency)
    if temperature == 0:
        return torch.zeros_like(logits).scatter_(-1, greedy(logits), 1.0)
    return F.softmax(_filtered(logits, temperature, top_k, top_p), dim=-1)


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None,
                counts: torch.Tensor | None = None, repetition: float = 1.0,
                frequency: float = 0.0) -> torch.Tensor:
    """One token per row from the last position's logits (B, V): (B, 1). Temperature 0 is greedy."""
    logits = _penalised(logits, counts, repetition, frequency)
    if temperature == 0:
        return greedy(logits)
    probs = F.softmax(_filtered(logits, temperature, top_k, top_p), dim=-1)
    if generator is not None and generator.device != probs.device:
        return torch.multinomial(probs.cpu(), 1, generator=generator).to(probs.device)
    return torch.multinomial(probs, 1, generator=generator)


# --------------------------------------------------------------------------- the loop

@torch.no_grad()
def generate_tokens(model, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                    top_k: int | None = None, top_p: float | None = None, repetition: float = 1.0,
                    frequency: float = 0.0, generator: torch.Generator | None = None,
                    use_cache: bool = True, logits_processor=None) -> Iterator[torch.Tensor]:
    """Yield ``max_new_tokens`` new tokens, one (B, 1) tensor at a time, continuing ``idx`` (B, T).

    ``use_cache=False`` recomputes the whole context (up to ``block_size`` tokens) for every token;
    with the cache both give the same logits (see the module's docstring for the sliding window).
    ``logits_processor(logits, tokens)``, if given, edits the next token's logits (B, V) before the
    draw, seeing the tokens so far (B, n) (e.g. a ban, a bias or a format constraint: lesson 12).
    """
    check_sampling_args(temperature, top_k, top_p, repetition, frequency, max_new_tokens)
    if idx.dim() != 2 or idx.size(1) == 0:
        raise ValueError(f"idx must be (batch, length) with at least one token, got shape {tuple(idx.shape)}")
    block = model.config.block_size
    B, T0 = idx.shape
    tokens = torch.empty(B, T0 + max_new_tokens, dtype=torch.long, device=idx.device)
    tokens[:, :T0] = idx
    counts = None
    if repetition != 1.0 or frequency != 0.0:  # how often each token occurs so far, (B, V)
        counts = torch.zeros(B, model.config.vocab_size, device=idx.device)
        counts.scatter_add_(1, idx, torch.ones_like(idx, dtype=counts.dtype))
    cache = model.new_kv_cache(B) if use_cache else None
    was_training = model.training
    model.eval()
    try:
        n = T0
        for _ in range(max_new_tokens):
            if cache is None:
                logits, _ = model(tokens[:, max(0, n - block):n])  # the whole window, every time
            elif cache.length == 0 or cache.length == block:
                # first step, or the window slid past block_size: fill the cache from the window
                cache.reset()
                logits, _ = model(tokens[:, max(0, n - block):n], cache=cache)
            else:
                logits, _ = model(tokens[:, n - 1:n], cache=cache)  # only the newest token
            last = logits[:, -1, :]
            if logits_processor is not None:
                last = logits_processor(last, tokens[:, :n])
            nxt = sample_next(last, temperature, top_k, top_p, generator, counts, repetition, frequency)
            tokens[:, n] = nxt[:, 0]
            n += 1
            if counts is not None:
                counts.scatter_add_(1, nxt, torch.ones_like(nxt, dtype=counts.dtype))
            yield nxt
    finally:
        model.train(was_training)


@torch.no_grad()
def generate(model, idx: torch.Tensor, max_new_tokens: int, **kwargs) -> torch.Tensor:
    """``idx`` (B, T) followed by ``max_new_tokens`` generated tokens: (B, T + max_new_tokens).

    Keyword arguments are those of :func:`generate_tokens`: ``temperature`` (0 = greedy),
    ``top_k``, ``top_p``, ``repetition``, ``frequency``, ``generator``, ``use_cache``.
    """
    new = list(generate_tokens(model, idx, max_new_tokens, **kwargs))
    return torch.cat([idx, *new], dim=1) if new else idx.clone()


def _encode_prompt(tokenizer, prompt: str, device) -> torch.Tensor:
    if not prompt:
        raise ValueError("the prompt is empty; give at least one character (e.g. a newline)")
    return torch.tensor([tokenizer.encode(prompt)], dtype=torch.long, device=device)


def stream(model, tokenizer, prompt: str, max_new_tokens: int, stop: str | Sequence[str] | None = None,
           **kwargs) -> Iterator[str]:
    """Yield the generated text piece by piece as it is made (the prompt is not repeated).

    Generation ends after ``max_new_tokens`` tokens or at the first ``stop`` string, which is not
    yielded. Text that might be the start of a stop string is held back until it is clear.
    """
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if any(not isinstance(s, str) or not s for s in stops):
        raise ValueError(f"stop strings must be non-empty strings, got {stops!r}")
    device = next(model.parameters()).device
    idx = _encode_prompt(tokenizer, prompt, device)
    ids: list[int] = []  # the generated tokens
    decoded = ""  # their text so far (decoded as a whole: a byte-level token may be half a character)
    pending = ""  # generated text not yet yielded
    for nxt in generate_tokens(model, idx, max_new_tokens, **kwargs):
        ids.append(int(nxt[0, 0]))
        text = tokenizer.decode(ids)
        if text.endswith("\ufffd"):
            continue  # an incomplete multi-byte character: wait for the token that completes it
        pending += text[len(decoded):]
        decoded = text
        hits = [pending.find(s) for s in stops if s in pending]
        if hits:
            if min(hits) > 0:
                yield pending[:min(hits)]
            return
        # hold back the longest tail that is the beginning of a stop string
        hold = max((k for s in stops for k in range(1, len(s)) if pending.endswith(s[:k])), default=0)
        if len(pending) > hold:
            yield pending[:len(pending) - hold]
            pending = pending[len(pending) - hold:]
    pending += tokenizer.decode(ids)[len(decoded):] if ids else ""
    if pending:
        yield pending


def generate_text(model, tokenizer, prompt: str, max_new_tokens: int, stop: str | Sequence[str] | None = None,
                  **kwargs) -> str:
    """The generated continuation of ``prompt`` as one string (see :func:`stream`)."""
    return "".join(stream(model, tokenizer, prompt, max_new_tokens, stop=stop, **kwargs))
