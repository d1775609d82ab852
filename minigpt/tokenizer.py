"""Tokenizers: the interface every tokenizer of the course shares, and the character-level one.

After minbpe: :class:`Tokenizer` says what a tokenizer does (text -> token ids -> text, a vocabulary
size, save and load as JSON); each kind is a short subclass. :class:`CharTokenizer` (here) makes one
token per distinct character of the training text; :class:`minigpt.bpe.BPETokenizer` merges bytes.
Code that takes "a tokenizer" (training, checkpoints, generation, the widgets) is typed
:class:`Tokenizer` and works with either. :func:`minigpt.checkpoint.load_tokenizer` reads a saved
tokenizer of either kind.
"""

from __future__ import annotations

import json
import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

from .utils import write_json_atomic

__all__ = ["Tokenizer", "CharTokenizer", "read_tokenizer_file"]


def _os_why(e: OSError) -> str:
    return "permission denied" if isinstance(e, PermissionError) else (e.strerror or type(e).__name__)


def _check_writable(path: Path) -> None:
    """Raise a one-line ValueError when a file cannot be written at ``path`` (tried with a probe file)."""
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a file name for the tokenizer, e.g. {path / 'tokenizer.json'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"cannot write {path}: a part of its folder path is a file, not a folder; "
                         "choose a path inside a folder") from None
    except OSError as e:
        raise ValueError(f"cannot write {path}: {_os_why(e)} in {path.parent}; choose a folder you can "
                         "write to") from None
    os.close(fd)
    os.unlink(probe)


def read_tokenizer_file(path: str | os.PathLike, kind: str = "tokenizer", hint: str = "") -> object:
    """The parsed JSON of a saved tokenizer file, or one clear error: missing (FileNotFoundError),
    a folder, unreadable or not UTF-8 JSON (ValueError). ``kind`` and ``hint`` (``{path}`` in it is the file) go into the messages."""
    path = Path(path)
    if not path.exists():
        hint = "; " + hint.format(path=path) if hint else ""
        raise FileNotFoundError(f"tokenizer file {path} does not exist{hint}")
    if path.is_dir():
        raise ValueError(f"tokenizer file {path} is a folder, not a file; give the JSON file the tokenizer "
                         "was saved to")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not a {kind} file (not UTF-8 JSON: {e})") from None
    except OSError as e:
        raise ValueError(f"cannot read tokenizer file {path}: {_os_why(e)}; check its permissions") from None


class Tokenizer(ABC):
    """What every tokenizer does: ``encode`` text to token ids, ``decode`` ids to text, ``vocab_size``
    ids in all, and ``save``/``load`` as plain JSON (``to_dict``/``from_dict``, never pickle).

    A subclass implements the five abstract members; ``save`` and ``load`` are shared. ``decode``
    raises ``ValueError`` for an id outside ``range(vocab_size)``.
    """

    kind = "tokenizer"  # how error messages name this kind of tokenizer
    load_hint = ""  # what to do when a file of this kind is missing ({path} is the file)

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of token ids: every id is in ``range(vocab_size)``."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """The token ids of ``text``."""

    @abstractmethod
    def decode(self, ids) -> str:
        """The text of a sequence of token ids."""

    @abstractmethod
    def to_dict(self) -> dict:
        """Everything needed to rebuild the tokenizer, as plain JSON values."""

    @classmethod
    @abstractmethod
    def from_dict(cls, d: dict) -> Tokenizer:
        """The tokenizer :meth:`to_dict` described; a ``ValueError`` naming the bad field otherwise."""

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` as JSON (atomically); a folder or an unwritable place is a clear error."""
        path = Path(path)
        _check_writable(path)
        try:
            write_json_atomic(path, self.to_dict())
        except OSError as e:
            raise ValueError(f"cannot write {path}: {_os_why(e)}; choose a folder you can write to") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Read a tokenizer of this kind written by :meth:`save` (any kind: :func:`minigpt.checkpoint.load_tokenizer`)."""
        if cls is Tokenizer:
            raise TypeError("Tokenizer is the interface, not a kind of tokenizer: load with CharTokenizer.load, "
                            "BPETokenizer.load, or minigpt.checkpoint.load_tokenizer for either kind")
        return cls.from_dict(read_tokenizer_file(path, f"{cls.kind} tokenizer", cls.load_hint))


class CharTokenizer(Tokenizer):
    """Maps each character to an integer id (sorted order) and back; saves as JSON."""

    kind = "character"

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
        """Number of distinct characters."""
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
        """``{"type": "char", "chars": [...]}``."""
        return {"type": "char", "chars": self.chars}

    @classmethod
    def from_dict(cls, d: dict) -> CharTokenizer:
        """A tokenizer from :meth:`to_dict`'s form."""
        if not isinstance(d, dict) or d.get("type") != "char" or not isinstance(d.get("chars"), list):
            raise ValueError("not a character tokenizer: expected a JSON object with type 'char' and a 'chars' list")
        return cls(d["chars"])

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"
