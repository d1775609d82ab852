"""Generation: turning next-token logits into text, one token at a time.

Each sampling strategy is a small function on the logits of the last position, (B, V) -> (B, V):

    logits -> repetition / frequency penalty -> / temperature -> top-k -> top-p -> softmax -> draw

Greedy decoding (temperature 0) skips the draw and takes the argmax. The settings of a draw are one
:class:`SamplingSettings` (each setting's default is its one "off" value); every function here takes
``settings=`` and/or single settings by name (``temperature=0.8``). :func:`generate` runs the loop on
token ids; :func:`stream` runs it on text, yields each piece as soon as it is made and stops at a
stop string (:class:`StopStrings`). A ``torch.Generator`` makes every strategy reproducible.

The KV cache (:class:`minigpt.model.KVCache`) makes each new token cost one position instead of
the whole context. GPT-2-style models learn one embedding per absolute position, and every cached
key was computed with its token's position mixed in. When the text grows past ``block_size``, the
window of the last ``block_size`` tokens slides by one: every token in it moves to a new position,
so every cached key is stale. The cache is then refilled from the window (one full forward), which
is exactly what recomputing does; past ``block_size`` each token costs a whole window again.
Models with relative positions (RoPE, ALiBi) do not have this problem.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from .tokenizer import Tokenizer

__all__ = ["greedy", "apply_temperature", "top_k_filter", "top_p_filter", "repetition_penalty",
           "frequency_penalty", "SamplingSettings", "sampling_settings", "check_sampling_args", "check_max_new_tokens",
           "next_token_probs", "sample_next", "generate", "generate_tokens", "StopStrings", "stream",
           "generate_text"]


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


# --------------------------------------------------------------------------- the settings

@dataclass(frozen=True)
class SamplingSettings:
    """How the next token is drawn from the logits. Each setting has one "off" value, its default:

        temperature  1.0   softmax(logits / T): below 1 sharper, above 1 flatter; 0 = greedy (no draw)
        top_k        None  keep only the k most likely tokens
        top_p        None  keep the smallest set of tokens with probability p (p = 1 keeps every
                           token, so it is stored as None)
        repetition   1.0   CTRL's repetition penalty on tokens that already occur
        frequency    0.0   OpenAI's frequency penalty per earlier occurrence

    A setting that makes no sense is one clear ``ValueError`` when the settings are made. Functions
    that sample take ``settings=`` and/or the settings by name (``temperature=0.8``); names given
    replace the fields of ``settings``.
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    repetition: float = 1.0
    frequency: float = 0.0

    def __post_init__(self):
        t, k, p = self.temperature, self.top_k, self.top_p
        if isinstance(t, bool) or not (isinstance(t, (int, float)) and math.isfinite(t) and t >= 0):
            raise ValueError(f"temperature must be a number >= 0 (0 = greedy), got {t}")
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k <= 0):
            raise ValueError(f"top-k must be a positive integer (or None for no limit), got {k}")
        if p is not None and (isinstance(p, bool) or not (isinstance(p, (int, float)) and 0 < p <= 1)):
            raise ValueError(f"top-p must be in (0, 1] (1 keeps every token), got {p}")
        r, f = self.repetition, self.frequency
        if isinstance(r, bool) or not (isinstance(r, (int, float)) and math.isfinite(r) and r > 0):
            raise ValueError(f"repetition penalty must be > 0 (1 = none), got {r}")
        if isinstance(f, bool) or not (isinstance(f, (int, float)) and math.isfinite(f)):
            raise ValueError(f"frequency penalty must be a finite number (0 = none), got {f}")
        if p == 1:
            object.__setattr__(self, "top_p", None)  # one "off" value: p = 1 keeps every token

    @classmethod
    def from_options(cls, options=None, /, **overrides) -> SamplingSettings:
        """Settings from options given by name: an ``argparse.Namespace`` (the command line's ``args``)
        or a dict, whose entries named like a setting are read (any others, e.g. ``ckpt``, are not),
        then ``overrides``. A setting given as None is left at its default ("off")."""
        if options is None:
            given = {}
        elif isinstance(options, Mapping):
            given = dict(options)
        else:
            given = vars(options)
        names = {f.name for f in fields(cls)}
        chosen = {k: v for k, v in given.items() if k in names}
        chosen.update(overrides)
        return cls().replace(**{k: v for k, v in chosen.items() if v is not None})

    def replace(self, **changes) -> SamplingSettings:
        """A copy with the named settings changed (and checked)."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(f"unknown sampling setting{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                            f"the settings are {', '.join(f.name for f in fields(self))}")
        return dataclasses.replace(self, **changes) if changes else self

    @property
    def is_greedy(self) -> bool:
        """True for temperature 0: the most likely token, no draw."""
        return self.temperature == 0

    @property
    def has_penalty(self) -> bool:
        """True when a penalty needs the counts of the tokens so far."""
        return self.repetition != 1.0 or self.frequency != 0.0


def sampling_settings(settings: SamplingSettings | None = None, **options) -> SamplingSettings:
    """``settings`` (default: every setting off) with the settings named in ``options`` replaced."""
    if settings is None:
        settings = SamplingSettings()
    elif not isinstance(settings, SamplingSettings):
        raise TypeError(f"settings must be a SamplingSettings, got {type(settings).__name__}; give single "
                        "settings by name instead, e.g. temperature=0.8")
    return settings.replace(**options)


def check_max_new_tokens(max_new_tokens) -> None:
    """Raise ``ValueError`` with one clear line unless ``max_new_tokens`` is an integer >= 0."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max new tokens must be an integer >= 0, got {max_new_tokens}")


def check_sampling_args(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                        repetition: float = 1.0, frequency: float = 0.0, max_new_tokens: int = 0) -> None:
    """Raise ``ValueError`` with one clear line for a sampling setting that makes no sense (the checks
    of :class:`SamplingSettings`, and ``max_new_tokens``)."""
    SamplingSettings(temperature, top_k, top_p, repetition, frequency)
    check_max_new_tokens(max_new_tokens)


def _penalised(logits, counts, s: SamplingSettings):
    logits = logits.float()
    if counts is not None and s.repetition != 1.0:
        logits = repetition_penalty(logits, counts, s.repetition)
    if counts is not None and s.frequency != 0.0:
        logits = frequency_penalty(logits, counts, s.frequency)
    return logits


def _filtered(logits, s: SamplingSettings):
    logits = apply_temperature(logits, s.temperature)
    if s.top_k is not None:
        logits = top_k_filter(logits, s.top_k)
    if s.top_p is not None:
        logits = top_p_filter(logits, s.top_p)
    return logits


def next_token_probs(logits: torch.Tensor, settings: SamplingSettings | None = None,
                     counts: torch.Tensor | None = None, **options) -> torch.Tensor:
    """The distribution a token is drawn from, after every filter: (B, V), rows sum to 1.

    ``settings`` and/or single settings by name (``temperature=0.8``, ``top_p=0.9``, ...); the
    penalties need ``counts`` (B, V), how often each token occurred. Temperature 0 puts all the
    mass on the argmax (greedy decoding).
    """
    s = sampling_settings(settings, **options)
    logits = _penalised(logits, counts, s)
    if s.is_greedy:
        return torch.zeros_like(logits).scatter_(-1, greedy(logits), 1.0)
    return F.softmax(_filtered(logits, s), dim=-1)


def sample_next(logits: torch.Tensor, settings: SamplingSettings | None = None,
                generator: torch.Generator | None = None, counts: torch.Tensor | None = None,
                **options) -> torch.Tensor:
    """One token per row from the last position's logits (B, V): (B, 1). Temperature 0 is greedy."""
    s = sampling_settings(settings, **options)
    logits = _penalised(logits, counts, s)
    if s.is_greedy:
        return greedy(logits)
    probs = F.softmax(_filtered(logits, s), dim=-1)
    if generator is not None and generator.device != probs.device:
        return torch.multinomial(probs.cpu(), 1, generator=generator).to(probs.device)
    return torch.multinomial(probs, 1, generator=generator)


# --------------------------------------------------------------------------- the loop

@torch.no_grad()
def generate_tokens(model, idx: torch.Tensor, max_new_tokens: int, *, settings: SamplingSettings | None = None,
                    generator: torch.Generator | None = None, use_cache: bool = True, logits_processor=None,
                    **options) -> Iterator[torch.Tensor]:
    """Yield ``max_new_tokens`` new tokens, one (B, 1) tensor at a time, continuing ``idx`` (B, T).

    The draw follows ``settings`` (a :class:`SamplingSettings`) with any settings given by name
    (``temperature=0.8``, ``top_k``, ``top_p``, ``repetition``, ``frequency``) replacing its fields.
    ``use_cache=False`` recomputes the whole context (up to ``block_size`` tokens) for every token;
    with the cache both give the same logits (see the module's docstring for the sliding window).
    ``logits_processor(logits, tokens)``, if given, edits the next token's logits (B, V) before the
    draw, seeing the tokens so far (B, n) (e.g. a ban, a bias or a format constraint: lesson 12).
    """
    s = sampling_settings(settings, **options)
    check_max_new_tokens(max_new_tokens)
    if idx.dim() != 2 or idx.size(1) == 0:
        raise ValueError(f"idx must be (batch, length) with at least one token, got shape {tuple(idx.shape)}")
    block = model.config.block_size
    B, T0 = idx.shape
    tokens = torch.empty(B, T0 + max_new_tokens, dtype=torch.long, device=idx.device)
    tokens[:, :T0] = idx
    counts = None
    if s.has_penalty:  # how often each token occurs so far, (B, V)
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
            nxt = sample_next(last, s, generator, counts)
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

    Keyword arguments are those of :func:`generate_tokens`: ``settings`` and/or single settings
    (``temperature`` (0 = greedy), ``top_k``, ``top_p``, ``repetition``, ``frequency``),
    ``generator``, ``use_cache``, ``logits_processor``.
    """
    new = list(generate_tokens(model, idx, max_new_tokens, **kwargs))
    return torch.cat([idx, *new], dim=1) if new else idx.clone()


def _encode_prompt(tokenizer: Tokenizer, prompt: str, device) -> torch.Tensor:
    if not prompt:
        raise ValueError("the prompt is empty; give at least one character (e.g. a newline)")
    return torch.tensor([tokenizer.encode(prompt)], dtype=torch.long, device=device)


class StopStrings:
    """The stop strings of a generation: text ends just before the first occurrence of any of them.

    ``cut(text)`` is ``text`` up to the first stop string and whether there was one; ``safe(text)``
    is how much of ``text`` can be shown now, holding back a tail that might be the start of one.
    """

    def __init__(self, stop: str | Sequence[str] | None = None):
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        if any(not isinstance(s, str) or not s for s in stops):
            raise ValueError(f"stop strings must be non-empty strings, got {stops!r}")
        self.stops = stops

    def cut(self, text: str) -> tuple[str, bool]:
        """``text`` up to (not including) the earliest stop string, and whether one was found."""
        hits = [text.find(s) for s in self.stops if s in text]
        return (text[:min(hits)], True) if hits else (text, False)

    def safe(self, text: str) -> int:
        """The length of the head of ``text`` that no stop string can start in: ``text`` less its
        longest tail that is the beginning of a stop string (``text`` holds none in full)."""
        hold = max((k for s in self.stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        return len(text) - hold

    def __bool__(self) -> bool:
        return bool(self.stops)


def stream(model, tokenizer: Tokenizer, prompt: str, max_new_tokens: int, stop: str | Sequence[str] | None = None,
           **kwargs) -> Iterator[str]:
    """Yield the generated text piece by piece as it is made (the prompt is not repeated).

    Generation ends after ``max_new_tokens`` tokens or at the first ``stop`` string, which is not
    yielded. Text that might be the start of a stop string is held back until it is clear.
    Keyword arguments are those of :func:`generate_tokens` (``settings``, ``temperature``, ...).
    """
    stops = StopStrings(stop)
    device = next(model.parameters()).device
    idx = _encode_prompt(tokenizer, prompt, device)
    ids: list[int] = []  # the generated tokens
    text = ""  # their text (decoded as a whole: a byte-level token may be half a character)
    shown = 0  # how much of it has been yielded
    for nxt in generate_tokens(model, idx, max_new_tokens, **kwargs):
        ids.append(int(nxt[0, 0]))
        new_text = tokenizer.decode(ids)
        if new_text.endswith("\ufffd"):
            continue  # an incomplete multi-byte character: wait for the token that completes it
        text = new_text
        head, stopped = stops.cut(text)
        if stopped:
            if len(head) > shown:
                yield head[shown:]
            return
        safe = stops.safe(text)
        if safe > shown:
            yield text[shown:safe]
            shown = safe
    text = tokenizer.decode(ids) if ids else text  # what is left, even an incomplete character at the end
    if len(text) > shown:
        yield text[shown:]


def generate_text(model, tokenizer: Tokenizer, prompt: str, max_new_tokens: int, stop: str | Sequence[str] | None = None,
                  **kwargs) -> str:
    """The generated continuation of ``prompt`` as one string (see :func:`stream`)."""
    return "".join(stream(model, tokenizer, prompt, max_new_tokens, stop=stop, **kwargs))
