"""A chat format with special tokens (lesson 15), in the spirit of transformers' ``apply_chat_template``.

A conversation is a list of messages ``{"role": ..., "content": ...}`` with roles system, user,
assistant and tool. Each message renders as its role token, its text, and the end-of-turn token;
an assistant message may also call the calculator (``"tool_call": "12+34"``), which renders as
``<|calc|>12+34<|/calc|>`` and ends the turn there (the tool's answer comes next):

    <|user|>What is 12 + 34?<|end|><|assistant|><|calc|>12+34<|/calc|><|tool|>46<|end|><|assistant|>46<|end|>

The special tokens get ids above the base tokenizer's vocabulary, and :meth:`ChatTokenizer.encode`
only ever produces ordinary ids: a user who types ``<|assistant|>`` gets the characters ``<``, ``|``,
... and not a role switch (prompt injection at the tokenizer level fails). The role headers are
written by the code, never by the text.

:meth:`ChatTokenizer.render` also returns the loss mask: 1 on the tokens the assistant writes
(its text, its calculator call and the end-of-turn or ``<|/calc|>`` that closes its turn), 0 on
everything else, including the ``<|assistant|>`` header, which the prompt supplies.
"""

from __future__ import annotations

import string

from .checkpoint import load_checkpoint, read_meta, save_checkpoint, tokenizer_from_dict
from .tokenizer import CharTokenizer

__all__ = ["ROLES", "SPECIAL_TOKENS", "ChatTokenizer", "DEFAULT_EXTRA_CHARS", "save_assistant", "load_assistant",
           "is_assistant_run"]

CHAT_FORMAT = "minigpt-chat"
ROLES = ("system", "user", "assistant", "tool")
SPECIAL_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|tool|>", "<|end|>", "<|calc|>", "<|/calc|>",
                  "<|pad|>")
# Characters a character-level base tokenizer gets if it lacks them (Tiny Shakespeare has no digits
# but 3, no + * / % < > |): instructions need them, and so does typing "<|assistant|>" as text.
DEFAULT_EXTRA_CHARS = string.ascii_letters + string.digits + string.punctuation + " \n"


class ChatTokenizer:
    """A char or BPE tokenizer plus the chat's special tokens, whose ids come after its vocabulary.

    For a :class:`~minigpt.tokenizer.CharTokenizer`, characters of ``extra_chars`` it lacks are added
    as ordinary tokens first (after its own ids, which do not move). ``base_vocab_size`` is the
    base tokenizer's size: a model trained on it grows its embedding to ``vocab_size``
    (:func:`minigpt.sft.grow_embeddings`).
    """

    def __init__(self, base, extra_chars: str = DEFAULT_EXTRA_CHARS):
        self.base = base
        self.base_vocab_size = base.vocab_size
        if isinstance(base, CharTokenizer):
            missing = [c for c in dict.fromkeys(extra_chars) if c not in base.stoi]
            self.ordinary = CharTokenizer(base.chars + missing)
        elif hasattr(base, "encode_ordinary"):  # minigpt.bpe.BPETokenizer: bytes cover every text
            self.ordinary = base
        else:
            raise ValueError(f"ChatTokenizer wraps a CharTokenizer or a BPETokenizer, got {type(base).__name__}")
        n = self.ordinary.vocab_size
        self.special = {s: n + i for i, s in enumerate(SPECIAL_TOKENS)}
        self.special_text = {i: s for s, i in self.special.items()}
        self.pad_id = self.special["<|pad|>"]

    @property
    def vocab_size(self) -> int:
        """Ordinary ids plus the special tokens."""
        return self.ordinary.vocab_size + len(self.special)

    def encode(self, text: str) -> list[int]:
        """Ordinary token ids of ``text``; special-token strings in it stay ordinary characters."""
        if hasattr(self.ordinary, "encode_ordinary"):
            return self.ordinary.encode_ordinary(text)
        return self.ordinary.encode(text)

    def decode(self, ids) -> str:
        """The text of ``ids``, special tokens written as their strings."""
        out, run = [], []
        for i in ids:
            i = int(i)
            if i in self.special_text:
                out.append(self.ordinary.decode(run))
                out.append(self.special_text[i])
                run = []
            else:
                run.append(i)
        out.append(self.ordinary.decode(run))
        return "".join(out)

    def render_message(self, message: dict) -> tuple[list[int], list[int]]:
        """Ids and loss mask of one message: role token, text, then end-of-turn (or the call's close)."""
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ValueError(f"a message is a dict with a role in {ROLES}, got {message!r}")
        role = message["role"]
        content, call = message.get("content"), message.get("tool_call")
        if call is not None and role != "assistant":
            raise ValueError(f"only the assistant calls tools; a {role} message has a tool_call")
        if content is None and call is None:
            raise ValueError(f"the {role} message has no content")
        for name, value in (("content", content), ("tool_call", call)):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"the {role} message's {name} must be a string, got {type(value).__name__}")
        body = self.encode(content) if content else []
        if call is not None:  # the turn ends at the call's close; the tool's turn follows
            body += [self.special["<|calc|>"], *self.encode(call), self.special["<|/calc|>"]]
        else:
            body.append(self.special["<|end|>"])
        ids = [self.special[f"<|{role}|>"], *body]
        trained = 1 if role == "assistant" else 0
        return ids, [0] + [trained] * len(body)

    def render(self, conversation: list[dict]) -> tuple[list[int], list[int]]:
        """Token ids of a whole conversation and its loss mask (1 on the assistant's tokens)."""
        if not isinstance(conversation, (list, tuple)) or not conversation:
            raise ValueError("a conversation is a non-empty list of messages")
        for i, m in enumerate(conversation):
            if isinstance(m, dict) and m.get("role") == "system" and i > 0:
                raise ValueError(f"a system message may only come first; message {i} is one")
        ids, mask = [], []
        for m in conversation:
            i, k = self.render_message(m)
            ids += i
            mask += k
        return ids, mask

    def render_prompt(self, conversation: list[dict]) -> list[int]:
        """Ids of ``conversation`` followed by the assistant header: what the model continues."""
        ids, _ = self.render(conversation)
        return ids + [self.special["<|assistant|>"]]

    def to_dict(self) -> dict:
        """A JSON-ready description: the base tokenizer's dict, the extra characters and the special tokens."""
        extra = "".join(self.ordinary.chars[self.base_vocab_size:]) if isinstance(self.base, CharTokenizer) else ""
        return {"format": CHAT_FORMAT, "base": self.base.to_dict(), "extra_chars": extra,
                "special_tokens": list(SPECIAL_TOKENS)}

    @classmethod
    def from_dict(cls, d: dict) -> ChatTokenizer:
        """The tokenizer :meth:`to_dict` described (its ids are the same)."""
        if not isinstance(d, dict) or d.get("format") != CHAT_FORMAT:
            raise ValueError(f"not a chat tokenizer (format {CHAT_FORMAT!r}); this run is not an assistant: "
                             "fine-tune it with minigpt.sft first")
        if d.get("special_tokens") != list(SPECIAL_TOKENS):
            raise ValueError(f"the saved special tokens {d.get('special_tokens')} differ from this version's "
                             f"{list(SPECIAL_TOKENS)}; the ids would not match")
        return cls(tokenizer_from_dict(d["base"]), extra_chars=d.get("extra_chars", ""))

    def __repr__(self) -> str:
        return (f"ChatTokenizer({type(self.base).__name__} of {self.base_vocab_size}, "
                f"{self.ordinary.vocab_size - self.base_vocab_size} extra characters, {len(self.special)} special)")


def save_assistant(out_dir, model, tok: ChatTokenizer, *, step: int = 0, notes: dict | None = None):
    """Save a fine-tuned assistant as a run folder (atomically, :func:`minigpt.checkpoint.save_checkpoint`),
    marked ``"assistant": true`` with its chat tokenizer; ``notes`` (JSON-ready) go into its metadata."""
    if not isinstance(tok, ChatTokenizer):
        raise ValueError(f"an assistant is saved with its ChatTokenizer, got {type(tok).__name__}")
    if model.config.vocab_size != tok.vocab_size:
        raise ValueError(f"the model has {model.config.vocab_size} token rows but the chat tokenizer "
                         f"{tok.vocab_size}; grow the embeddings (minigpt.sft.grow_embeddings) and fine-tune first")
    return save_checkpoint(out_dir, model, tok, step, train_config={"assistant": True},
                           extra={"assistant": True, "chat_format": CHAT_FORMAT, **(notes or {})})


def is_assistant_run(path) -> bool:
    """Whether the run (or checkpoint) folder at ``path`` holds an assistant saved by :func:`save_assistant`."""
    meta = read_meta(path)
    return bool((meta.get("extra") or {}).get("assistant")) and (meta.get("tokenizer") or {}).get("format") == CHAT_FORMAT


def load_assistant(path, device="cpu"):
    """The assistant run at ``path``: a :class:`minigpt.checkpoint.Checkpoint` whose tokenizer is its
    :class:`ChatTokenizer`. A run that is not an assistant raises a one-line ``ValueError``."""
    if not is_assistant_run(path):
        raise ValueError(f"{path} is not an assistant run (no chat tokenizer): it only continues text; "
                         "fine-tune one in lesson 15 (minigpt.chat_template.save_assistant), or chat without --assistant")
    return load_checkpoint(path, device=device, load_state=False, tokenizer_loader=ChatTokenizer.from_dict)
