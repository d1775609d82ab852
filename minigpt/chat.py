"""A chat loop on a script-trained GPT (lesson 11).

Tiny Shakespeare is a script: each speech is the speaker's name and a colon on a line of its own,
the lines of the speech, then a blank line. A chat is a prompt in that format: you speak as one
character, the model answers as another, and generation stops at the blank line that ends its
speech (the next speaker would follow it):

    ROMEO:
    Good morrow, friar.

    FRIAR LAURENCE:
    <the model writes here, up to the blank line>

The model sees only its last ``block_size`` characters, so a long conversation is forgotten from
the start. ``python -m minigpt chat --ckpt DIR --as ROMEO --to JULIET`` runs the same loop in a
terminal; :class:`ChatPanel` is the notebook's widget.
"""

from __future__ import annotations

import html
import re
import sys
from collections import Counter

import torch

from .chat_template import ChatTokenizer
from .data import DATASETS, DataError, locate
from .generate import SamplingSettings, check_max_new_tokens, sampling_settings, stream
from .i18n import _
from .tokenizer import Tokenizer
from .tools import generate_with_tools

__all__ = ["speeches", "speakers", "script_prompt", "Chat", "ChatPanel", "END_OF_SPEECH", "CHAT_SETTINGS", "AssistantChat",
           "describe_message"]

END_OF_SPEECH = "\n\n"  # a blank line ends a speech in the script format
CHAT_SETTINGS = SamplingSettings(temperature=0.8, top_p=0.9)  # lesson 08's choice for lively, sane text
_SPEAKER = re.compile(r"[A-Z][A-Za-z' .-]*")


def speeches(text: str) -> list[tuple[str, str]]:
    """The (speaker, speech) pairs of a script, in order; the speech's lines joined by newlines."""
    out = []
    for block in text.split(END_OF_SPEECH):
        lines = block.strip("\n").split("\n")
        if len(lines) >= 2 and lines[0].endswith(":") and _SPEAKER.fullmatch(lines[0][:-1]):
            speech = "\n".join(lines[1:]).strip()
            if speech:
                out.append((lines[0][:-1], speech))
    return out


def speakers(text: str) -> Counter:
    """How many speeches each character has in a script."""
    return Counter(s for s, _ in speeches(text))


def script_prompt(turns: list[tuple[str, str]], to: str) -> str:
    """The script so far, then ``to``'s name line: the model continues with ``to``'s speech."""
    return "".join(f"{who}:\n{said}{END_OF_SPEECH}" for who, said in turns) + f"{to}:\n"


def _readable_line(line: str, tokenizer, who: str) -> str:
    """``line`` stripped, or a ValueError saying it is empty or holds characters ``who`` cannot read."""
    line = line.strip()
    if not line:
        raise ValueError("say something: the line is empty")
    try:
        tokenizer.encode(line)
    except ValueError as e:
        raise ValueError(f"{who} cannot read that line: {e}") from None
    return line


class Chat:
    """A conversation with the model: you speak as ``as_name``, it answers as ``to_name``.

    ``reply(line)`` adds your line to the script and returns the model's speech (streamed to
    ``on_piece`` when given). ``settings`` (default :data:`CHAT_SETTINGS`, lesson 08's) with any
    settings given by name (``temperature=0.5``) replacing its fields; the seed makes a chat repeatable.
    """

    def __init__(self, model, tokenizer: Tokenizer, as_name: str = "ROMEO", to_name: str = "JULIET", *,
                 settings: SamplingSettings | None = None, max_new_tokens: int = 300, seed: int = 1337,
                 **options):
        self.settings = sampling_settings(CHAT_SETTINGS if settings is None else settings, **options)
        check_max_new_tokens(max_new_tokens)
        self.model, self.tokenizer = model.eval(), tokenizer
        for what, name in (("your character (as)", as_name), ("the model's character (to)", to_name)):
            if not name or ":" in name or "\n" in name:
                raise ValueError(f"{what} must be a name without ':' or newlines, got {name!r}")
            try:
                tokenizer.encode(name)
            except ValueError as e:
                raise ValueError(f"{what} {name!r}: {e}") from None
        self.as_name, self.to_name = as_name, to_name
        self.max_new_tokens = max_new_tokens
        self.generator = torch.Generator().manual_seed(seed)
        self.turns: list[tuple[str, str]] = []

    def prompt(self) -> str:
        """What the model reads now: the script so far, cut to its last ``block_size`` characters later."""
        return script_prompt(self.turns, self.to_name)

    def reply(self, line: str, on_piece=None) -> str:
        """Say ``line``; return the model's answer (its speech, without the name line)."""
        line = _readable_line(line, self.tokenizer, "the model")
        self.turns.append((self.as_name, line))
        pieces = []
        for piece in stream(self.model, self.tokenizer, self.prompt(), self.max_new_tokens, stop=END_OF_SPEECH,
                            settings=self.settings, generator=self.generator):
            pieces.append(piece)
            if on_piece is not None:
                on_piece(piece)
        answer = "".join(pieces).strip() or "..."  # an empty speech would break the script format
        self.turns.append((self.to_name, answer))
        return answer


class ChatPanel:
    """A chat panel for the notebook: type a line, press Enter or *send*; the transcript shows the script.

    Public: ``text`` (the input box), ``send_button``, ``temperature``, ``transcript`` (HTML), ``chat``
    (the :class:`Chat`), ``error`` (why the last line was refused, or ""), and ``send(line)``.
    """

    def __init__(self, model, tokenizer: Tokenizer, as_name: str = "ROMEO", to_name: str = "JULIET", **chat_kwargs):
        import ipywidgets as W

        self.chat = Chat(model, tokenizer, as_name, to_name, **chat_kwargs)
        self.text = W.Text(placeholder=_("speak as {as_name}, press Enter").format(as_name=as_name), continuous_update=False,
                           layout=W.Layout(width="70%"))
        self.send_button = W.Button(description=_("send"), button_style="primary")
        self.temperature = W.FloatSlider(value=self.chat.settings.temperature, min=0.0, max=1.5, step=0.05,
                                         description=_("temperature"))
        self.transcript = W.HTML()
        self.info = W.HTML()
        self.error = ""
        self.send_button.on_click(lambda _: self.send(self.text.value))
        self.text.observe(self._on_enter, names="value")  # without continuous updates: fires on Enter
        self.widget = W.VBox([self.transcript, W.HBox([self.text, self.send_button]), self.temperature, self.info])
        self._render()

    def _on_enter(self, change):
        if change["new"].strip():
            self.send(change["new"])

    def send(self, line: str) -> str:
        """Say ``line`` as your character; the answer streams into the transcript. Returns it ("" if refused)."""
        self.error = ""
        self.chat.settings = self.chat.settings.replace(temperature=float(self.temperature.value))
        self.text.value = ""
        partial = []

        def show(piece):
            partial.append(piece)
            self._render(pending="".join(partial))

        try:
            answer = self.chat.reply(line, on_piece=show)
        except ValueError as e:
            self.error = str(e)
            self._render()
            return ""
        self._render()
        return answer

    def _render(self, pending: str | None = None):
        rows = [(who, said) for who, said in self.chat.turns]
        if pending is not None:
            rows.append((self.chat.to_name, pending + "▌"))
        body = "".join(f"<p style='margin:4px 0'><b>{html.escape(who)}:</b><br>"
                       f"{html.escape(said).replace(chr(10), '<br>')}</p>" for who, said in rows)
        self.transcript.value = (f"<div style='font-family: monospace; max-height: 320px; overflow-y: auto'>"
                                 f"{body or '<i>(the script is empty: say something)</i>'}</div>")
        self.info.value = _("<b>cannot send:</b> {error}").format(error=html.escape(self.error)) if self.error else ""

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def known_speakers(train_config: dict) -> Counter | None:
    """The speakers of the data the checkpoint was trained on, or None (with a note) when that data is
    not on this machine; nothing is downloaded."""
    name = (train_config or {}).get("dataset", "tinyshakespeare")
    if name not in DATASETS:
        return None
    try:
        path, _source = locate(name, download_missing=False)
        return speakers(path.read_text(encoding="utf-8"))
    except (DataError, OSError) as e:
        print(f"note: character names are not checked: the {name} data is not here ({str(e).splitlines()[0][:120]}...)",
              file=sys.stderr)
        return None


def resolve_speaker(name: str, known: Counter | None, what: str) -> str:
    """``name`` as the script spells it (ROMEO for romeo); a ValueError naming some real speakers if unknown."""
    if known is None:
        return name
    if name in known:
        return name
    folded = {k.casefold(): k for k in known}
    if name.casefold() in folded:
        return folded[name.casefold()]
    common = ", ".join(k for k, _ in known.most_common(8))
    raise ValueError(f"unknown character {name!r} for {what}: no speech in the training script is theirs; "
                     f"try one of {common} (any of the {len(known)} speakers works)")


class AssistantChat:
    """A conversation with an assistant run (lesson 15) in its chat template.

    ``reply(line)`` adds your line as a user turn, lets the model answer up to its end-of-turn token,
    running its calculator calls (:func:`minigpt.tools.generate_with_tools`), and returns the new
    messages: e.g. a call, the tool's result, then the answer. Greedy by default (``temperature=0``).
    The model reads only its last ``block_size`` tokens, so earlier turns fall out of view.
    """

    def __init__(self, model, tok, *, system: str | None = None, temperature: float = 0.0,
                 max_new_tokens: int = 48, seed: int = 1337):
        if not isinstance(tok, ChatTokenizer):
            raise ValueError(f"an assistant chat needs the run's ChatTokenizer, got {type(tok).__name__}; "
                             "this model is not an assistant")
        if not (temperature >= 0) or temperature != temperature or temperature == float("inf"):
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
        check_max_new_tokens(max_new_tokens)
        self.model, self.tok = model.eval(), tok
        self.temperature, self.max_new_tokens = float(temperature), max_new_tokens
        self.generator = torch.Generator().manual_seed(seed)
        self.messages: list[dict] = [{"role": "system", "content": system}] if system else []

    def reply(self, line: str) -> list[dict]:
        """Say ``line``; return the assistant's new messages (calls, tool results, the answer)."""
        line = _readable_line(line, self.tok, "the assistant")
        self.messages.append({"role": "user", "content": line})
        new = generate_with_tools(self.model, self.tok, self.messages, max_new_tokens=self.max_new_tokens,
                                  temperature=self.temperature, generator=self.generator)
        if not new[-1].get("content"):
            new[-1]["content"] = "..."  # an empty turn cannot be rendered back into the template
        self.messages += new
        return new


def describe_message(message: dict) -> str:
    """One line for a message of an assistant's turn: a calculator call, its result, or the answer."""
    if message["role"] == "tool":
        return f"  [calculator] = {message['content']}"
    text = message.get("content") or ""
    if message.get("tool_call") is not None:
        return (f"{text} " if text else "") + f"  [calculator] {message['tool_call']}"
    return text
