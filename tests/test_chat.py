"""minigpt.chat: the script format, the chat loop, the notebook panel and `python -m minigpt chat`."""

import io
import os
import select
import signal
import subprocess
import sys
import time

import pytest
import torch

from minigpt.chat import END_OF_SPEECH, Chat, ChatPanel, resolve_speaker, script_prompt, speakers, speeches
from minigpt.cli import main
from minigpt.model import GPT, GPTConfig
from minigpt.tokenizer import CharTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

SCRIPT = """First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

ROMEO:
But soft!
What light?

not a speaker line
just text

ROMEO:
It is the east.
"""


def test_speeches_and_speakers_read_the_script_format():
    assert speeches(SCRIPT) == [("First Citizen", "Before we proceed any further, hear me speak."),
                                ("All", "Speak, speak."), ("ROMEO", "But soft!\nWhat light?"),
                                ("ROMEO", "It is the east.")]
    assert speakers(SCRIPT) == {"ROMEO": 2, "First Citizen": 1, "All": 1}


def test_script_prompt_ends_with_the_answering_characters_name_line():
    p = script_prompt([("ROMEO", "Hello."), ("JULIET", "Hi.")], "ROMEO")
    assert p == "ROMEO:\nHello.\n\nJULIET:\nHi.\n\nROMEO:\n"


def test_resolve_speaker_fixes_case_and_names_real_speakers_when_unknown():
    known = speakers(SCRIPT)
    assert resolve_speaker("romeo", known, "--as") == "ROMEO"
    with pytest.raises(ValueError, match="unknown character 'TYBALT'.*ROMEO"):
        resolve_speaker("TYBALT", known, "--to")
    assert resolve_speaker("anyone", None, "--as") == "anyone"  # no data at hand: any name


@pytest.fixture(scope="module")
def tiny():
    tok = CharTokenizer.from_text(SCRIPT + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!?.,'")
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=32, vocab_size=tok.vocab_size, n_layer=1, n_head=2, n_embd=16)).eval()
    # make a blank line likely, so answers end on their own
    with torch.no_grad():
        model.lm_head.weight[tok.encode("\n")[0]] += 0.5
    return model, tok


def test_a_reply_is_one_speech_and_the_script_grows(tiny):
    model, tok = tiny
    chat = Chat(model, tok, "ROMEO", "JULIET", max_new_tokens=60, seed=1)
    pieces = []
    answer = chat.reply("  Good morrow.  ", on_piece=pieces.append)
    assert END_OF_SPEECH not in answer and answer == answer.strip() and answer
    assert chat.turns == [("ROMEO", "Good morrow."), ("JULIET", answer)]
    assert "".join(pieces).strip() in (answer, "")
    again = Chat(model, tok, "ROMEO", "JULIET", max_new_tokens=60, seed=1)
    assert again.reply("Good morrow.") == answer  # the seed makes a chat repeatable
    assert chat.prompt().endswith("JULIET:\n") and chat.prompt().startswith("ROMEO:\nGood morrow.\n\nJULIET:\n")


def test_a_line_the_model_cannot_read_is_refused_and_not_added(tiny):
    model, tok = tiny
    chat = Chat(model, tok, "ROMEO", "JULIET")
    with pytest.raises(ValueError, match="cannot read"):
        chat.reply("日本")
    with pytest.raises(ValueError, match="empty"):
        chat.reply("   ")
    assert chat.turns == []
    with pytest.raises(ValueError, match="without ':'"):
        Chat(model, tok, "ROMEO:", "JULIET")


def test_the_chat_samples_with_lesson_08s_settings_unless_told_otherwise(tiny):
    from minigpt.chat import CHAT_SETTINGS
    from minigpt.generate import SamplingSettings

    model, tok = tiny
    assert Chat(model, tok).settings == CHAT_SETTINGS == SamplingSettings(temperature=0.8, top_p=0.9)
    assert Chat(model, tok, temperature=0.5).settings == SamplingSettings(temperature=0.5, top_p=0.9)
    assert Chat(model, tok, top_p=None).settings == SamplingSettings(temperature=0.8)
    assert Chat(model, tok, settings=SamplingSettings(top_k=3)).settings == SamplingSettings(top_k=3)
    with pytest.raises(ValueError, match=r"top-p must be in \(0, 1\]"):
        Chat(model, tok, top_p=0)
    with pytest.raises(ValueError, match="max new tokens must be an integer >= 0"):
        Chat(model, tok, max_new_tokens=-1)


def test_the_chat_panel_sends_shows_and_refuses(tiny):
    model, tok = tiny
    panel = ChatPanel(model, tok, "ROMEO", "JULIET", max_new_tokens=40, seed=2)
    assert "empty" in panel.transcript.value
    panel.temperature.value = 0.0  # greedy: the panel passes its slider on
    answer = panel.send("Hello there.")
    assert panel.chat.settings.temperature == 0.0
    assert panel.error == "" and panel.text.value == ""
    assert "Hello there." in panel.transcript.value and "JULIET:" in panel.transcript.value
    assert panel.chat.turns[-1] == ("JULIET", answer)
    assert panel.send("日本") == "" and "cannot read" in panel.error and "cannot send" in panel.info.value
    assert len(panel.chat.turns) == 2


# --------------------------------------------------------------------------- the command line

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("chat") / "run"
    assert main(["train", "--preset", "tiny", "--max-iters", "10", "--eval-interval", "10", "--out", str(out),
                 "--device", "cpu", "--quiet"]) == 0
    return out


def test_chat_command_answers_each_line_and_ends_at_end_of_input(run, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("Good morrow.\n\nWhat news?\n"))
    assert main(["chat", "--ckpt", str(run), "--as", "romeo", "--to", "JULIET", "--max-new-tokens", "30",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("You are ROMEO; the model answers as JULIET.")
    assert out.count("JULIET: ") == 2  # two lines said, two answers; the blank line was skipped


def test_chat_command_skips_an_unreadable_line_with_a_note(run, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("日本\nHello.\n"))
    assert main(["chat", "--ckpt", str(run), "--max-new-tokens", "10", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "not sent" in captured.err and captured.out.count("JULIET: ") == 1


@pytest.mark.parametrize("args, match", [
    (["--to", "NOBODY"], "unknown character 'NOBODY'"),
    (["--as", "Frodo"], "unknown character 'Frodo'"),
    (["--top-p", "0"], "top-p must be in (0, 1]"),
])
def test_chat_command_bad_input_is_one_line_and_exit_2(run, args, match, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\n"))
    assert main(["chat", "--ckpt", str(run), *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and match in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and captured.out == ""


def test_chat_command_on_an_empty_folder_says_there_is_no_checkpoint(tmp_path, capsys):
    assert main(["chat", "--ckpt", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no checkpoint in ") and len(err.strip().splitlines()) == 1


def test_ctrl_c_at_the_prompt_ends_the_chat_cleanly(run):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "minigpt", "chat", "--ckpt", str(run), "--device", "cpu"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    seen, deadline = b"", time.monotonic() + 60
    while b"ROMEO: " not in seen and time.monotonic() < deadline:  # wait for the input prompt
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            seen += os.read(proc.stdout.fileno(), 4096)
    assert b"ROMEO: " in seen, seen
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err


def test_without_the_data_names_are_not_checked_and_a_note_says_so(run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINIGPT_DATA_DIR", str(tmp_path))  # no data here, and nothing is downloaded
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello.\n"))
    assert main(["chat", "--ckpt", str(run), "--to", "Gandalf", "--max-new-tokens", "5", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "names are not checked" in captured.err and "Gandalf: " in captured.out
