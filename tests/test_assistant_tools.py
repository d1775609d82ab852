"""minigpt.tools: the safe calculator and the generation loop that runs its calls."""

import pytest
import torch

from minigpt.chat_template import ChatTokenizer
from minigpt.model import GPT, GPTConfig, KVCache
from minigpt.sft import grow_embeddings
from minigpt.tokenizer import CharTokenizer
from minigpt.tools import (
    MAX_EXPONENT,
    MAX_LENGTH,
    CalculatorError,
    calculate,
    format_number,
    generate_with_tools,
)


@pytest.mark.parametrize("expression", ["12+34", "7 - 10", "6*7", "7/2", "7//2", "-7 % 3", "2**10", "-(3+4)*2",
                                        "1.5e3 + 0.25", "((2))", "+5", "2**-2"])
def test_calculate_agrees_with_python_on_allowed_expressions(expression):
    # the reference is Python's own arithmetic on a hand-checked allowed list, never the calculator's input
    reference = {"12+34": 46, "7 - 10": -3, "6*7": 42, "7/2": 3.5, "7//2": 3, "-7 % 3": 2, "2**10": 1024,
                 "-(3+4)*2": -14, "1.5e3 + 0.25": 1500.25, "((2))": 2, "+5": 5, "2**-2": 0.25}[expression]
    assert calculate(expression) == reference


@pytest.mark.parametrize("expression, why", [
    ("__import__('os').system('ls')", "function calls"),
    ("x + 1", "names"),
    ("(1).real", "attributes"),
    ("[1, 2][0]", "subscripts"),
    ("'a' * 3", "only numbers"),
    ("True + 1", "only numbers"),
    ("1 < 2", "not allowed"),
    ("1 if 1 else 2", "not allowed"),
    ("lambda: 1", "not allowed"),
    ("9**9**9", "exponent"),
    ("10**40", "larger than the limit"),
    ("(10**15) * (10**20)", "larger than the limit"),
    ("1/0", "division by zero"),
    ("5 % 0", "division by zero"),
    ("1 +", "not an arithmetic expression"),
    ("", "empty"),
    ("1+" * 60 + "1", "limit is"),
    ("(-8) ** 0.5", "complex number"),
])
def test_calculate_refuses_everything_else_with_a_clear_error(expression, why):
    with pytest.raises(CalculatorError, match=why):
        calculate(expression)


def test_bounds_are_the_stated_limits():
    assert calculate(f"1**{MAX_EXPONENT}") == 1 and calculate("2**99") == 2 ** 99
    with pytest.raises(CalculatorError, match="exponent"):
        calculate(f"1**{MAX_EXPONENT + 1}")
    at_limit = "1+" * ((MAX_LENGTH - 1) // 2) + "1"
    assert len(at_limit) <= MAX_LENGTH and calculate(at_limit) == at_limit.count("1")
    with pytest.raises(CalculatorError, match="limit is"):
        calculate("1" * (MAX_LENGTH + 1))


def test_format_number_writes_whole_numbers_without_a_decimal_point():
    assert [format_number(x) for x in (46, 2.0, 3.5, 1 / 3)] == ["46", "2", "3.5", "0.333333"]


class ScriptedModel(torch.nn.Module):
    """A 'model' whose next token follows a script, whatever the context: drives the engine exactly."""

    def __init__(self, script, vocab_size):
        super().__init__()
        self.config = GPTConfig(block_size=512, vocab_size=vocab_size, n_layer=1, n_head=1, n_embd=8)
        self.script, self.calls, self.dummy = script, 0, torch.nn.Parameter(torch.zeros(1))
        self.seen = []

    def new_kv_cache(self, batch_size):  # generate asks the model for its cache (minigpt.model.GPT's method)
        return KVCache(self.config, batch_size)

    def forward(self, idx, targets=None, cache=None):
        if cache is not None:
            cache.length += idx.size(1)
        self.seen.append(idx[0].tolist())
        logits = torch.full((idx.size(0), idx.size(1), self.config.vocab_size), -1e9)
        logits[:, -1, self.script[min(self.calls, len(self.script) - 1)]] = 0.0
        self.calls += 1
        return logits, None


def test_engine_runs_the_call_appends_the_tool_turn_and_continues_to_end_of_turn():
    tok = ChatTokenizer(CharTokenizer.from_text("abc"))
    sp = tok.special
    script = [sp["<|calc|>"], *tok.encode("12*3"), sp["<|/calc|>"], *tok.encode("36"), sp["<|end|>"]]
    model = ScriptedModel(script, tok.vocab_size)
    conv = [{"role": "user", "content": "What is 12 times 3?"}]
    out = generate_with_tools(model, tok, conv, max_new_tokens=20)
    assert out == [{"role": "assistant", "tool_call": "12*3"}, {"role": "tool", "content": "36"},
                   {"role": "assistant", "content": "36"}]
    # after the call the model's context holds the tool's result and a fresh assistant header
    expected = tok.render_prompt(conv + out[:2])
    assert any(seen == expected for seen in model.seen)


def test_engine_reports_a_refused_expression_in_the_tool_turn():
    tok = ChatTokenizer(CharTokenizer.from_text("abc"))
    sp = tok.special
    script = [sp["<|calc|>"], *tok.encode("a+1"), sp["<|/calc|>"], sp["<|end|>"]]
    out = generate_with_tools(ScriptedModel(script, tok.vocab_size), tok, [{"role": "user", "content": "a"}])
    assert out[1]["role"] == "tool" and out[1]["content"].startswith("error: names are not allowed")


def test_engine_stops_at_the_token_budget_on_a_real_model():
    tok = ChatTokenizer(CharTokenizer.from_text("abc"))
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=64, vocab_size=3, n_layer=1, n_head=1, n_embd=16))
    grow_embeddings(model, tok.vocab_size)
    out = generate_with_tools(model, tok, [{"role": "user", "content": "hi"}], max_new_tokens=7)
    written = sum(len(tok.encode(m.get("content", "") or "")) for m in out if m["role"] == "assistant")
    assert out[-1]["role"] == "assistant" and written <= 7


def test_an_unclosed_call_stays_visible_in_the_reply_so_it_never_counts_as_an_answer():
    tok = ChatTokenizer(CharTokenizer.from_text("abc"))
    sp = tok.special
    script = [sp["<|calc|>"], *tok.encode("7"), sp["<|end|>"]]
    out = generate_with_tools(ScriptedModel(script, tok.vocab_size), tok, [{"role": "user", "content": "a"}])
    assert out == [{"role": "assistant", "content": "<|calc|>7"}]
