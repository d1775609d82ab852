"""A character-level tokenizer: one token per distinct character of the training text."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .utils import write_json_atomic


class CharTokenizer:
    """Maps each character to an integer id (sorted order) and back; saves as JSON."""

    def __init__(self, chars: list[str] | str):
        chars = list(chars)
        if len(set(chars)) != len(chars):
            raise ValueError("CharTokenizer: the character list has duplicates")
        if any(len(c) != 1 for c in chars):
            raise ValueError("CharTokenizer: every vocabulary entry must be exactly one character")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}
        self.itos = dict(enumerate(chars))

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """Build the vocabulary from the distinct characters of ``text``, in sorted order."""
        if not text:
            raise ValueError("CharTokenizer.from_text: the text is empty, there is nothing to build a vocabulary from")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str, unknown: str | None = None) -> list[int]:
        """Token ids of ``text``. A character not in the vocabulary raises (naming it and its position),
        or, when ``unknown`` names a vocabulary character, is encoded as that one."""
        if unknown is not None:
            if unknown not in self.stoi:
                raise ValueError(f"unknown={unknown!r} is not in the vocabulary; pick one of its characters, e.g. '?'")
            return [self.stoi.get(c, self.stoi[unknown]) for c in text]
        try:
            return [self.stoi[c] for c in text]
        except KeyError as e:
            ch = e.args[0]
            pos = text.index(ch)
            raise ValueError(
                f"character {ch!r} (U+{ord(ch):04X}) at position {pos} is not in the vocabulary of "
                f"{self.vocab_size} characters; remove it, encode with unknown='?' to replace it, or build "
                "the tokenizer from text that has it"
            ) from None

    def decode(self, ids) -> str:
        """The text for a sequence of token ids."""
        out = []
        for i in ids:
            i = int(i)
            if i not in self.itos:
                raise ValueError(f"token id {i} is out of range for a vocabulary of {self.vocab_size}")
            out.append(self.itos[i])
        return "".join(out)

    def to_dict(self) -> dict:
        return {"type": "char", "chars": self.chars}

    @classmethod
    def from_dict(cls, d: dict) -> CharTokenizer:
        if not isinstance(d, dict) or d.get("type") != "char" or not isinstance(d.get("chars"), list):
            raise ValueError("not a character tokenizer: expected a JSON object with type 'char' and a 'chars' list")
        return cls(d["chars"])

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as JSON (atomically)."""
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharTokenizer:
        """Read a vocabulary written by :meth:`save`."""
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not a character tokenizer file (not UTF-8 JSON: {e})") from None
        return cls.from_dict(d)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"
