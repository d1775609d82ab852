"""Byte-level byte-pair encoding (BPE), as in GPT-2 and GPT-4, written to be read (after minbpe).

Text becomes UTF-8 bytes, so every string has an encoding and there is no unknown token. Training
starts from the 256 byte values and repeatedly merges the most frequent adjacent pair into a new
token. An optional regex first splits the text into chunks (words, numbers, punctuation, spaces)
so that no merge crosses a chunk boundary; the GPT-2 and GPT-4 patterns are built in.

Training is incremental: the text is reduced to its distinct chunks with their counts, and after
each merge only the chunks that contain the merged pair are recounted, instead of every pair of
the whole corpus. Ties between equally frequent pairs go to the smallest pair ``(a, b)``.

    tok = train(text, vocab_size=512)          # 256 bytes + 256 merges
    ids = tok.encode("To be, or not to be")
    assert tok.decode(ids) == "To be, or not to be"
    tok.save("shakespeare512.json"); tok = BPETokenizer.load("shakespeare512.json")

Strings that are not valid Unicode (Python allows lone surrogates such as ``"\\ud800"``) cannot be
written as UTF-8; like tiktoken, :meth:`BPETokenizer.encode` replaces each such code point with
U+FFFD. For every other string, ``decode(encode(text)) == text``. ``decode`` of an arbitrary id
sequence may cut a character's bytes in half; those bytes also decode to U+FFFD.
"""

from __future__ import annotations

import heapq
import json
import operator
import os
import time
from collections import Counter, defaultdict
from pathlib import Path

import regex

from . import data
from .tokenizer import Tokenizer

# The pre-split patterns of GPT-2 and GPT-4 (cl100k_base), as published in tiktoken.
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT4_SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|"""
    r"""\s+(?!\S)|\s+"""
)
PATTERNS = {"gpt2": GPT2_SPLIT_PATTERN, "gpt4": GPT4_SPLIT_PATTERN, "none": None}

FORMAT = "minigpt-bpe"
FORMAT_VERSION = 1


def get_stats(ids, counts: dict | None = None, weight: int = 1) -> dict:
    """Count adjacent pairs: ``[1, 2, 3, 1, 2] -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}``."""
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge(ids, pair: tuple[int, int], idx: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids`` (left to right, no overlaps) by ``idx``."""
    a, b = pair
    out, i, n = [], 0, len(ids)
    while i < n:
        if i < n - 1 and ids[i] == a and ids[i + 1] == b:
            out.append(idx)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _resolve_pattern(pattern: str | None) -> str | None:
    """A pattern name (``gpt2``, ``gpt4``, ``none``) or a regex string -> the regex, or None."""
    if pattern is None:
        return None
    if not isinstance(pattern, str):
        raise ValueError(f"pattern {pattern!r} is not a string ({type(pattern).__name__}); give one of "
                         f"{sorted(PATTERNS)}, a regex string, or None (null in a tokenizer file) for no pre-split")
    if pattern in PATTERNS:
        return PATTERNS[pattern]
    try:
        regex.compile(pattern)
    except regex.error as e:
        raise ValueError(f"pattern {pattern!r} is neither one of {sorted(PATTERNS)} nor a valid regex: {e}") from None
    return pattern


def _as_id(x) -> int | None:
    """``x`` as a token id when it is a whole number (int, numpy int; not bool, float or str), else None."""
    if isinstance(x, bool):
        return None
    try:
        return operator.index(x)
    except TypeError:
        return None


def _to_utf8(text: str) -> bytes:
    """UTF-8 bytes of ``text``; lone surrogates (not valid Unicode) become U+FFFD, as in tiktoken."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


def _sanitize(text: str) -> str:
    return _to_utf8(text).decode("utf-8")


class BPETokenizer(Tokenizer):
    """A trained byte-level BPE: ``merges`` in rank order, an optional split pattern, special tokens.

    Token ids 0-255 are the bytes; merge ``i`` creates id ``256 + i``; special tokens come after.
    ``byte_order[i]`` is the byte that id ``i`` < 256 stands for: by default id b is byte b, but
    GPT-2 numbers its 256 byte tokens in another order (see :func:`gpt2_tokenizer`).
    ``save``/``load`` come from :class:`minigpt.tokenizer.Tokenizer`.
    """

    kind = "BPE"
    load_hint = "train one with `python -m minigpt bpe train --data tinyshakespeare --out {path}`"

    def __init__(self, merges=(), pattern: str | None = "gpt4", special_tokens: dict[str, int] | None = None,
                 byte_order=None):
        self.pattern = _resolve_pattern(pattern)
        self._compiled = regex.compile(self.pattern) if self.pattern else None
        order = list(range(256)) if byte_order is None else [_as_id(b) for b in byte_order]
        if sorted(x for x in order if x is not None) != list(range(256)) or len(order) != 256:
            raise ValueError("byte_order must list each of the 256 byte values 0-255 once (the byte each id "
                             "0-255 stands for)")
        self.byte_order = order
        # bytes.translate turns a chunk's bytes into the ids of its byte tokens in one C call
        self._byte_ids = bytes(order.index(b) for b in range(256))
        self.merges: dict[tuple[int, int], int] = {}
        self.vocab: dict[int, bytes] = {i: bytes([order[i]]) for i in range(256)}
        for i, pair in enumerate(merges):
            try:
                ids = [] if isinstance(pair, (str, bytes, dict)) else [_as_id(x) for x in pair]
            except TypeError:  # not iterable
                ids = []
            if len(ids) != 2 or None in ids:
                raise ValueError(f"merge {i} {pair!r} is not a pair of integer token ids, e.g. (104, 101)")
            a, b = ids
            idx = 256 + i
            if a not in self.vocab or b not in self.vocab:
                raise ValueError(f"merge {i} ({a}, {b}) uses a token that does not exist yet (ids < {idx})")
            if (a, b) in self.merges:
                raise ValueError(f"merge {i} ({a}, {b}) appears twice")
            self.merges[(a, b)] = idx
            self.vocab[idx] = self.vocab[a] + self.vocab[b]
        self.special_tokens: dict[str, int] = {}
        self.inverse_special: dict[int, str] = {}
        self.register_special_tokens(special_tokens or {})
        self._cache: dict[bytes, list[int]] = {}

    # ---- vocabulary ---------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Number of token ids: 256 bytes + merges + special tokens."""
        return 256 + len(self.merges) + len(self.special_tokens)

    def register_special_tokens(self, special_tokens: dict[str, int] | list[str]) -> None:
        """Add special tokens, e.g. ``["<|endoftext|>"]`` (ids assigned after the merges) or a dict."""
        if not isinstance(special_tokens, dict):
            special_tokens = {s: self.vocab_size + i for i, s in enumerate(special_tokens)}
        for s, i in special_tokens.items():
            if not isinstance(s, str) or not s:
                raise ValueError(f"special token {s!r} is not a non-empty string")
            if _as_id(i) is None:
                raise ValueError(f"special token {s!r} has id {i!r}, which is not a whole number; "
                                 f"use integer ids from {256 + len(self.merges)} on")
            i = _as_id(i)
            if i < 256 + len(self.merges) or i in self.inverse_special:
                raise ValueError(f"special token {s!r} has id {i}, which is already taken; "
                                 f"use ids from {256 + len(self.merges)} on")
            self.special_tokens[s] = i
            self.inverse_special[i] = s
        self._special_re = None
        if self.special_tokens:
            alts = sorted(self.special_tokens, key=len, reverse=True)
            self._special_re = regex.compile("(" + "|".join(regex.escape(s) for s in alts) + ")")

    def token_bytes(self, idx: int) -> bytes:
        """The bytes token ``idx`` stands for (a special token's UTF-8 text)."""
        if idx in self.vocab:
            return self.vocab[idx]
        if idx in self.inverse_special:
            return self.inverse_special[idx].encode("utf-8")
        raise ValueError(f"token id {idx} is out of range for a vocabulary of {self.vocab_size}")

    # ---- encode / decode ----------------------------------------------------------------------
    def split(self, text: str) -> list[str]:
        """The chunks the split pattern cuts ``text`` into (the whole text when there is none)."""
        if self._compiled is None:
            return [text] if text else []
        return self._compiled.findall(text)

    def _encode_chunk(self, chunk: bytes) -> list[int]:
        # Merge the pair with the lowest rank (earliest merge) until no pair is a merge.
        ids = list(chunk.translate(self._byte_ids))
        merges = self.merges
        while len(ids) >= 2:
            best, best_rank = None, None
            for pair in zip(ids, ids[1:]):
                r = merges.get(pair)
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = pair, r
            if best is None:
                break
            ids = merge(ids, best, best_rank)
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of ``text``, treating special-token strings as ordinary text."""
        text = _sanitize(text)
        out: list[int] = []
        cache = self._cache
        for chunk in self.split(text):
            b = chunk.encode("utf-8")
            ids = cache.get(b)
            if ids is None:
                ids = self._encode_chunk(b)
                if len(cache) < 1_000_000:
                    cache[b] = ids
            out.extend(ids)
        return out

    def encode(self, text: str, allowed_special="none") -> list[int]:
        """Token ids of ``text``. ``allowed_special``: ``"none"`` (special strings are ordinary
        text), ``"all"``, or a set of special-token strings to recognise."""
        if allowed_special == "none" or not self.special_tokens:
            return self.encode_ordinary(text)
        if allowed_special == "all":
            allowed = set(self.special_tokens)
        else:
            allowed = set(allowed_special)
            unknown = allowed - set(self.special_tokens)
            if unknown:
                raise ValueError(f"unknown special tokens {sorted(unknown)}; known: {sorted(self.special_tokens)}")
        out: list[int] = []
        for part in self._special_re.split(text):
            if part in allowed:
                out.append(self.special_tokens[part])
            elif part:
                out.extend(self.encode_ordinary(part))
        return out

    def decode_bytes(self, ids) -> bytes:
        """The raw bytes of a sequence of ids."""
        return b"".join(self.token_bytes(int(i)) for i in ids)

    def decode(self, ids, errors: str = "replace") -> str:
        """The text of a sequence of ids; bytes that are not valid UTF-8 become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    # ---- training -----------------------------------------------------------------------------
    @classmethod
    def train(cls, text: str, vocab_size: int, pattern: str | None = "gpt4",
              special_tokens: dict[str, int] | list[str] | None = None, progress: bool = False,
              verbose: int = 0) -> BPETokenizer:
        """Learn ``vocab_size - 256`` merges from ``text`` (see :func:`train`)."""
        if not isinstance(vocab_size, int) or vocab_size < 256:
            raise ValueError(f"vocab_size {vocab_size} is below 256; a byte-level BPE needs the 256 byte "
                             "tokens plus the merges, so use 256 or more (e.g. 512)")
        if not isinstance(text, str):
            raise ValueError(f"the training text must be a str, got {type(text).__name__}")
        if not text:
            raise ValueError("the training text is empty; a BPE learns its merges from text, so give it some")
        tok = cls(pattern=pattern)
        text = _sanitize(text)
        chunk_counts = Counter(tok.split(text))
        merges = _learn_merges(
            {c.encode("utf-8"): n for c, n in chunk_counts.items()}, vocab_size - 256, progress=progress,
            verbose=verbose,
        )
        return cls(merges, pattern=pattern, special_tokens=special_tokens)

    # ---- save / load / interop ----------------------------------------------------------------
    def to_dict(self) -> dict:
        """Pattern, merges in rank order, special tokens (and GPT-2's byte order), as plain JSON values."""
        d = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "pattern": self.pattern,
            "merges": [list(p) for p in self.merges],  # dicts keep insertion (= rank) order
            "special_tokens": self.special_tokens,
        }
        if self.byte_order != list(range(256)):
            d["byte_order"] = self.byte_order  # only when it is not the identity (GPT-2's tokenizer)
        return d

    @classmethod
    def from_dict(cls, d) -> BPETokenizer:
        """A tokenizer from :meth:`to_dict`'s form; every field is checked before it is used."""
        if not isinstance(d, dict) or d.get("format") != FORMAT or not isinstance(d.get("merges"), list):
            raise ValueError(f"not a BPE tokenizer: expected a JSON object with format {FORMAT!r} and a "
                             "'merges' list (write one with `python -m minigpt bpe train`)")
        version = d.get("version")
        if isinstance(version, bool) or version != FORMAT_VERSION:
            raise ValueError(f"BPE tokenizer file version {version!r} is not supported "
                             f"(this minigpt reads version {FORMAT_VERSION})")
        merges = []
        for i, pair in enumerate(d["merges"]):
            ids = [_as_id(x) for x in pair] if isinstance(pair, list) else []
            if len(ids) != 2 or None in ids:
                raise ValueError(f"not a BPE tokenizer: merge {i} is {json.dumps(pair)}, but each merge must be "
                                 "a pair of integer token ids such as [104, 101]")
            merges.append(tuple(ids))
        pattern = d.get("pattern")
        if pattern is not None and not isinstance(pattern, str):
            raise ValueError(f"not a BPE tokenizer: 'pattern' is {json.dumps(pattern)}, but it must be a regex "
                             "string or null")
        special = d.get("special_tokens")
        if special is None:
            special = {}
        if not isinstance(special, dict):
            raise ValueError(f"not a BPE tokenizer: 'special_tokens' must be an object such as "
                             f'{{"<|endoftext|>": {256 + len(merges)}}}, got {type(special).__name__}')
        for s, i in special.items():
            if _as_id(i) is None:
                raise ValueError(f"not a BPE tokenizer: special token {s!r} has id {json.dumps(i)}, but ids "
                                 "must be whole numbers")
        byte_order = d.get("byte_order")
        if byte_order is not None and not isinstance(byte_order, list):
            raise ValueError("not a BPE tokenizer: 'byte_order' must be a list of the 256 byte values")
        return cls(merges, pattern=pattern, special_tokens=special, byte_order=byte_order)

    def save_vocab_text(self, path: str | os.PathLike) -> None:
        """A human-readable listing, one token per line: ``id [a][b] -> text`` (not loadable)."""
        lines = []
        for idx in range(256, 256 + len(self.merges)):
            a, b = self._pair_of(idx)
            lines.append(f"{idx} [{_show(self.vocab[a])}][{_show(self.vocab[b])}] -> [{_show(self.vocab[idx])}]")
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")

    def _pair_of(self, idx: int) -> tuple[int, int]:
        if not hasattr(self, "_pairs") or len(self._pairs) != len(self.merges):
            self._pairs = {i: p for p, i in self.merges.items()}
        return self._pairs[idx]

    def to_tiktoken(self, name: str = "minigpt-bpe"):
        """A ``tiktoken.Encoding`` with our ranks (token bytes -> id), pattern and special tokens."""
        import tiktoken

        ranks = {self.vocab[i]: i for i in range(256 + len(self.merges))}
        if len(ranks) != 256 + len(self.merges):
            raise ValueError("two merges produce the same bytes; tiktoken needs one id per byte string")
        return tiktoken.Encoding(
            name=name,
            pat_str=self.pattern or r"[\s\S]+",
            mergeable_ranks=ranks,
            special_tokens=dict(self.special_tokens),
        )

    def __repr__(self) -> str:
        pat = next((k for k, v in PATTERNS.items() if v == self.pattern), "custom")
        return f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, pattern={pat})"


def _show(b: bytes) -> str:
    """Printable form of a token's bytes: text where valid UTF-8, escapes for control bytes."""
    s = b.decode("utf-8", errors="replace")
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in s)


def _piece(b: bytes) -> str:
    """A token for display: its text, or its bytes in hex when they are part of a character."""
    try:
        return _show(b.decode("utf-8").encode("utf-8"))
    except UnicodeDecodeError:
        return "<" + " ".join(f"{x:02x}" for x in b) + ">"


def _learn_merges(chunk_counts: dict[bytes, int], num_merges: int, progress: bool = False,
                  verbose: int = 0) -> list[tuple[int, int]]:
    """The BPE merges of a corpus given as distinct chunks with their counts.

    ``stats`` holds each pair's count (weighted by chunk frequency) and ``where`` the chunks that
    contain it. A merge touches only the chunks in ``where[pair]``: their old pairs are
    subtracted, the pair is merged, their new pairs are added. A heap with lazy deletion finds the
    most frequent pair; ties go to the smallest pair.
    """
    from tqdm.auto import tqdm

    words = [list(c) for c in chunk_counts]
    freqs = list(chunk_counts.values())
    stats: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for wi, w in enumerate(words):
        f = freqs[wi]
        for pair in zip(w, w[1:]):
            stats[pair] += f
            where[pair].add(wi)
    heap = [(-c, p) for p, c in stats.items()]
    heapq.heapify(heap)

    merges: list[tuple[int, int]] = []
    vocab = {i: bytes([i]) for i in range(256)}
    bar = tqdm(total=num_merges, desc="BPE merges", disable=not progress)
    for k in range(num_merges):
        pair = None
        while heap:
            negc, p = heapq.heappop(heap)
            if stats.get(p, 0) == -negc and negc < 0:
                pair = p
                break
        if pair is None:  # every chunk is a single token: nothing left to merge
            break
        idx = 256 + k
        count = stats[pair]
        changed = set()
        for wi in where.pop(pair):
            w = words[wi]
            new = merge(w, pair, idx)
            if len(new) == len(w):  # stale entry: this chunk no longer holds the pair
                continue
            f = freqs[wi]
            for p in zip(w, w[1:]):
                stats[p] -= f
                changed.add(p)
            for p in zip(new, new[1:]):
                stats[p] += f
                where[p].add(wi)
                changed.add(p)
            words[wi] = new
        for p in changed:
            c = stats[p]
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                del stats[p]
                where.pop(p, None)
        merges.append(pair)
        vocab[idx] = vocab[pair[0]] + vocab[pair[1]]
        if verbose and k < verbose:
            print(f"merge {k + 1}/{num_merges}: ({pair[0]}, {pair[1]}) -> {idx} "
                  f"[{_show(vocab[idx])}] had {count} occurrences")
        bar.update(1)
    bar.close()
    return merges


def train(text: str, vocab_size: int, pattern: str | None = "gpt4",
          special_tokens: dict[str, int] | list[str] | None = None, progress: bool = False,
          verbose: int = 0) -> BPETokenizer:
    """Train a byte-level BPE with ``vocab_size`` = 256 bytes + merges (special tokens come on top).

    ``pattern``: ``"gpt4"`` (default), ``"gpt2"``, ``"none"``/None (no pre-split: merges may cross
    word boundaries, and the whole text is one chunk, so each merge costs a pass over it: meant for
    small texts) or a regex. ``verbose=N`` prints the first N merges. Training stops early if the
    text runs out of pairs.
    """
    return BPETokenizer.train(text, vocab_size, pattern=pattern, special_tokens=special_tokens,
                              progress=progress, verbose=verbose)


# ---- GPT-2's released tokenizer ------------------------------------------------------------------
GPT2_EOT = "<|endoftext|>"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from each byte to a printable character, in which its files spell every token.

    Printable Latin-1 bytes stand for themselves; the other 68 (control bytes, space, ...) are moved
    to U+0100 and up, in byte order: the space (byte 32) is spelled "Ġ", the newline "Ċ".
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    moved = [b for b in range(256) if b not in keep]
    table = {b: chr(b) for b in keep}
    table.update({b: chr(256 + n) for n, b in enumerate(moved)})
    return table


def gpt2_tokenizer(encoder_path=None, vocab_path=None) -> BPETokenizer:
    """GPT-2's tokenizer as a :class:`BPETokenizer` whose ids are GPT-2's (50,257 tokens).

    Reads the released ``encoder.json`` (token text -> id) and ``vocab.bpe`` (merges in rank order),
    by default from the data registry (``gpt2-encoder``, ``gpt2-vocab``: offline folder, cache or
    download), and undoes the byte-to-unicode table. GPT-2's ids 0-255 are its single bytes in
    the table's order, merge ``i`` makes id ``256 + i``, and ``<|endoftext|>`` is 50256.
    """
    encoder_path = Path(encoder_path) if encoder_path else data.path("gpt2-encoder")
    vocab_path = Path(vocab_path) if vocab_path else data.path("gpt2-vocab")
    try:
        encoder = json.loads(encoder_path.read_text(encoding="utf-8"))
        lines = vocab_path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read GPT-2's tokenizer files {encoder_path} and {vocab_path}: {e}") from None
    if not isinstance(encoder, dict):
        raise ValueError(f"{encoder_path} is not GPT-2's encoder.json (a JSON object of token -> id)")
    decoder = {ch: b for b, ch in bytes_to_unicode().items()}
    byte_order = [None] * 256
    for ch, b in decoder.items():
        i = encoder.get(ch)
        if not isinstance(i, int) or not 0 <= i < 256:
            raise ValueError(f"{encoder_path}: the single byte {b} has id {i!r}; GPT-2 gives its 256 bytes ids 0-255")
        byte_order[i] = b
    merges = []
    pairs = [ln.split(" ") for ln in lines[1:] if ln and not ln.startswith("#version")]  # line 0: #version
    for rank, pair in enumerate(pairs):
        if len(pair) != 2 or any(t not in encoder for t in pair) or encoder.get(pair[0] + pair[1]) != 256 + rank:
            raise ValueError(f"{vocab_path}: merge {rank} {' '.join(pair)!r} does not match {encoder_path.name} "
                             f"(expected two known tokens whose join has id {256 + rank})")
        merges.append((encoder[pair[0]], encoder[pair[1]]))
    special = {t: i for t, i in encoder.items() if i >= 256 + len(merges)}
    return BPETokenizer(merges, pattern="gpt2", special_tokens=special, byte_order=byte_order)


# ---- the `tokenizers` library, for comparison -------------------------------------------------------
def train_hf_bytelevel(text: str, vocab_size: int):
    """A Hugging Face ``tokenizers`` byte-level BPE (GPT-2 style) trained on ``text``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False, special_tokens=[])
    # One "line" per ~100 KB piece, cut at newlines, so the library can use its threads.
    pieces, step = [], 100_000
    i = 0
    while i < len(text):
        j = text.find("\n", i + step)
        j = len(text) if j < 0 else j + 1
        pieces.append(text[i:j])
        i = j
    tok.train_from_iterator(pieces, trainer=trainer)
    return tok


def bench(text: str | None = None, vocab_size: int = 512, pattern: str = "gpt4") -> dict:
    """Time training and encoding of our BPE and of ``tokenizers`` on the same text; print the figures."""
    if text is None:
        text = data.load_text("tinyshakespeare")
    n_bytes = len(text.encode("utf-8"))
    t0 = time.perf_counter()
    ours = train(text, vocab_size, pattern=pattern)
    t_train = time.perf_counter() - t0
    ids = ours.encode(text)
    assert ours.decode(ids) == text, "round trip failed"
    ours._cache.clear()
    t0 = time.perf_counter()
    ours.encode(text)
    t_enc_cold = time.perf_counter() - t0

    t0 = time.perf_counter()
    hf = train_hf_bytelevel(text, vocab_size)
    t_hf_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    hf_ids = hf.encode(text).ids
    t_hf_enc = time.perf_counter() - t0
    lines = text.splitlines(keepends=True)  # the library's batch API, which uses its threads
    t0 = time.perf_counter()
    hf_batch = hf.encode_batch(lines)
    t_hf_batch = time.perf_counter() - t0
    n_hf_batch = sum(len(e.ids) for e in hf_batch)

    tk = ours.to_tiktoken()
    t0 = time.perf_counter()
    tk_ids = tk.encode_ordinary(text)
    t_tk_enc = time.perf_counter() - t0

    result = {
        "text_bytes": n_bytes, "vocab_size": vocab_size, "pattern": pattern,
        "ours_train_s": t_train, "ours_encode_s": t_enc_cold, "ours_tokens": len(ids),
        "tokenizers_train_s": t_hf_train, "tokenizers_encode_s": t_hf_enc, "tokenizers_tokens": len(hf_ids),
        "tokenizers_vocab_size": hf.get_vocab_size(), "tokenizers_encode_batch_lines_s": t_hf_batch,
        "tiktoken_encode_s": t_tk_enc, "tiktoken_same_ids": tk_ids == ids,
    }
    mb = n_bytes / 1e6
    print(f"text: {n_bytes:,} bytes, vocab {vocab_size}, pre-split {pattern}")
    print(f"{'':<28}{'train s':>9}{'encode s':>10}{'MB/s':>8}{'tokens':>10}{'bytes/token':>13}")
    rows = [("minigpt.bpe (Python)", t_train, t_enc_cold, len(ids)),
            ("tokenizers (Rust)", t_hf_train, t_hf_enc, len(hf_ids)),
            ("tokenizers, batch of lines", float("nan"), t_hf_batch, n_hf_batch),
            ("tiktoken, our merges", float("nan"), t_tk_enc, len(tk_ids))]
    for name, tt, te, nt in rows:
        tt_s = "-" if tt != tt else f"{tt:.2f}"
        print(f"{name:<28}{tt_s:>9}{te:>10.3f}{mb / te:>8.2f}{nt:>10,}{n_bytes / nt:>13.2f}")
    print(f"tiktoken gives the same ids as minigpt.bpe: {tk_ids == ids}")
    return result
