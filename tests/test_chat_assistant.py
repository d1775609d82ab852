"""The assistant mode of the chat: saving and loading an assistant run, AssistantChat, and
`python -m minigpt chat --assistant` (template, end-of-turn, calculator calls shown, a plain run refused)."""

import io
import sys

import pytest
import torch

import minigpt.chat
from minigpt.chat import AssistantChat, describe_message
from minigpt.chat_template import ChatTokenizer, is_assistant_run, load_assistant, save_assistant
from minigpt.checkpoint import load_checkpoint, save_checkpoint
from minigpt.cli import main
from minigpt.model import GPT, GPTConfig
from minigpt.sft import grow_embeddings
from minigpt.tokenizer import CharTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")


def _model(vocab_size, seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(block_size=64, vocab_size=vocab_size, n_layer=1, n_head=2, n_embd=16)).eval()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("assistant")
    base_tok = CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyz ?.")
    plain = _model(base_tok.vocab_size)
    save_checkpoint(root / "plain", plain, base_tok, 10, train_config={})
    tok = ChatTokenizer(base_tok)
    model = grow_embeddings(_model(base_tok.vocab_size), tok.vocab_size, noise=0.5,
                            generator=torch.Generator().manual_seed(0))
    save_assistant(root / "assistant", model, tok, notes={"stage": "test"})
    return {"plain": root / "plain", "assistant": root / "assistant", "model": model, "tok": tok}


def test_an_assistant_run_round_trips_with_its_chat_tokenizer_and_logits(runs):
    assert is_assistant_run(runs["assistant"]) and not is_assistant_run(runs["plain"])
    ck = load_assistant(runs["assistant"])
    assert isinstance(ck.tokenizer, ChatTokenizer) and ck.tokenizer.special == runs["tok"].special
    assert ck.extra["assistant"] is True and ck.extra["stage"] == "test"
    ids = torch.tensor([runs["tok"].render_prompt([{"role": "user", "content": "What is 1+2?"}])])
    with torch.no_grad():
        assert torch.equal(ck.model(ids)[0], runs["model"](ids)[0])


def test_a_plain_run_is_not_an_assistant_and_an_assistant_is_not_a_plain_run(runs):
    with pytest.raises(ValueError, match="not an assistant run"):
        load_assistant(runs["plain"])
    with pytest.raises(ValueError, match="chat --assistant"):
        load_checkpoint(runs["assistant"])  # what `sample` and the script chat call
    with pytest.raises(ValueError, match="ChatTokenizer"):
        save_assistant(runs["plain"].parent / "x", runs["model"], CharTokenizer.from_text("ab"))


def test_assistant_chat_keeps_the_turns_and_refuses_what_it_cannot_read(runs):
    chat = AssistantChat(runs["model"], runs["tok"], system="be brief", max_new_tokens=6)
    new = chat.reply("  hello  ")
    assert chat.messages[:2] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
    assert chat.messages[2:] == new and new[-1]["role"] == "assistant" and new[-1]["content"]
    with pytest.raises(ValueError, match="empty"):
        chat.reply("  ")
    with pytest.raises(ValueError, match="cannot read"):
        chat.reply("日本")
    with pytest.raises(ValueError, match="not an assistant"):
        AssistantChat(runs["model"], CharTokenizer.from_text("ab"))


def test_describe_message_shows_a_call_its_result_and_the_answer():
    assert describe_message({"role": "assistant", "tool_call": "12*3"}) == "  [calculator] 12*3"
    assert describe_message({"role": "tool", "content": "36"}) == "  [calculator] = 36"
    assert describe_message({"role": "assistant", "content": "36"}) == "36"


def test_chat_assistant_command_shows_the_call_the_result_and_the_answer(runs, monkeypatch, capsys):
    def scripted(model, tok, conversation, **kw):  # a model that calls the calculator, whatever it is asked
        assert conversation[-1] == {"role": "user", "content": "what is twelve times three?"}
        return [{"role": "assistant", "tool_call": "12*3"}, {"role": "tool", "content": "36"},
                {"role": "assistant", "content": "36"}]

    monkeypatch.setattr(minigpt.chat, "generate_with_tools", scripted)
    monkeypatch.setattr(sys, "stdin", io.StringIO("what is twelve times three?\n"))
    assert main(["chat", "--assistant", "--ckpt", str(runs["assistant"]), "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Talking to the assistant in ")
    assert out[1:] == ["you: assistant:   [calculator] 12*3", "  [calculator] = 36", "assistant: 36", "you: "]


def test_chat_assistant_command_answers_each_line_up_to_end_of_turn_with_the_real_model(runs, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\n\nwhat is up?\n"))
    assert main(["chat", "--assistant", "--ckpt", str(runs["assistant"]), "--max-new-tokens", "5",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.count("assistant: ") == 2  # two lines said, two turns; the blank line was skipped
    assert "<|end|>" not in out  # the end-of-turn token ends the turn, it is not shown


@pytest.mark.parametrize("which, args, match", [
    ("plain", [], "is not an assistant run"),
    ("assistant", ["--top-p", "0.9"], "--top-k and --top-p are for the script chat"),
])
def test_chat_assistant_command_refuses_with_one_line(runs, which, args, match, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\n"))
    assert main(["chat", "--assistant", "--ckpt", str(runs[which]), *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and match in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and captured.out == ""


def test_system_message_without_assistant_mode_is_refused(runs, capsys):
    assert main(["chat", "--ckpt", str(runs["plain"]), "--system", "hi"]) == 2
    assert "add --assistant" in capsys.readouterr().err
