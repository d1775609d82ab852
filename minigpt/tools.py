"""Tool use (lesson 15): a safe calculator and a generation loop that calls it.

The assistant writes ``<|calc|>12+34<|/calc|>``; :func:`generate_with_tools` sees the closing
marker, evaluates the expression with :func:`calculate`, appends the result as a tool turn
(``<|tool|>46<|end|>``) and the assistant header, and lets the model go on until end-of-turn, as
nanochat's engine does with its python tool.

:func:`calculate` never calls ``eval``: it parses with ``ast`` and walks the tree, allowing numbers,
``+ - * / // % **`` and unary minus only, with bounds on the expression's length, the exponent and
the size of every intermediate result (so ``9**9**9`` is refused before it is computed).
"""

from __future__ import annotations

import ast
import math
import operator

import torch

from .generate import generate_tokens

__all__ = ["CalculatorError", "calculate", "format_number", "generate_with_tools", "MAX_LENGTH", "MAX_EXPONENT",
           "MAX_ABS"]

MAX_LENGTH = 100  # characters in an expression
MAX_EXPONENT = 100  # largest exponent allowed in a ** b
MAX_ABS = 10 ** 30  # largest magnitude of any number, given or computed

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}


class CalculatorError(ValueError):
    """The calculator refused an expression; the message says why."""


def _check_size(x):
    if isinstance(x, complex):
        raise CalculatorError("the result is a complex number (a negative number to a fractional power)")
    if isinstance(x, float) and not math.isfinite(x):
        raise CalculatorError(f"the result {x} is not a finite number")
    if abs(x) > MAX_ABS:
        raise CalculatorError(f"a number in the calculation is larger than the limit {MAX_ABS:.0e}")
    return x


def _eval(node):
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise CalculatorError(f"only numbers are allowed, got {node.value!r}")
        return _check_size(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        x = _eval(node.operand)
        return -x if isinstance(node.op, ast.USub) else x
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        a, b = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            if abs(b) > MAX_EXPONENT:
                raise CalculatorError(f"the exponent {b} is larger than the limit {MAX_EXPONENT}")
            if abs(a) > 1 and abs(b) * math.log10(abs(a)) > math.log10(MAX_ABS):
                raise CalculatorError(f"{a} ** {b} would be larger than the limit {MAX_ABS:.0e}")
        try:
            return _check_size(_BINARY[type(node.op)](a, b))
        except ZeroDivisionError:
            raise CalculatorError("division by zero") from None
        except (OverflowError, TypeError) as e:  # e.g. a negative number to a fractional power
            raise CalculatorError(f"cannot compute {a} {type(node.op).__name__} {b}: {e}") from None
    what = {ast.Name: "names", ast.Attribute: "attributes", ast.Call: "function calls",
            ast.Subscript: "subscripts"}.get(type(node), type(node).__name__)
    raise CalculatorError(f"{what} are not allowed; use numbers and + - * / // % ** only")


def calculate(expression: str) -> int | float:
    """The value of an arithmetic ``expression`` (numbers, + - * / // % **, unary minus, brackets).

    Raises :class:`CalculatorError` for anything else, for an expression longer than ``MAX_LENGTH``
    characters, an exponent above ``MAX_EXPONENT`` or a number beyond ``MAX_ABS``.
    """
    if not isinstance(expression, str):
        raise CalculatorError(f"the expression must be a string, got {type(expression).__name__}")
    if len(expression) > MAX_LENGTH:
        raise CalculatorError(f"the expression has {len(expression)} characters; the limit is {MAX_LENGTH}")
    if not expression.strip():
        raise CalculatorError("the expression is empty")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise CalculatorError(f"{expression!r} is not an arithmetic expression") from None
    return _eval(tree)


def format_number(x: int | float) -> str:
    """A calculator result as the tool turn shows it: integers as digits, other floats to 6 digits."""
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x) if isinstance(x, int) else f"{x:.6g}"


@torch.no_grad()
def generate_with_tools(model, tok, conversation: list[dict], max_new_tokens: int = 64, max_calls: int = 3,
                        temperature: float = 0.0, generator: torch.Generator | None = None) -> list[dict]:
    """Continue ``conversation`` as the assistant, running calculator calls; return the new messages.

    ``tok`` is a :class:`minigpt.chat_template.ChatTokenizer`. The result is e.g.
    ``[{"role": "assistant", "tool_call": "12+34"}, {"role": "tool", "content": "46"},
    {"role": "assistant", "content": "46"}]``; a refused expression's tool turn says ``error: ...``.
    ``max_new_tokens`` bounds the tokens the model writes in total.
    """
    device = next(model.parameters()).device
    ids = tok.render_prompt(conversation)
    end, call, call_end = tok.special["<|end|>"], tok.special["<|calc|>"], tok.special["<|/calc|>"]
    messages, written, budget, calls = [], [], max_new_tokens, 0
    while budget > 0:
        idx = torch.tensor([ids], dtype=torch.long, device=device)
        stop = None
        for t in generate_tokens(model, idx, budget, temperature=temperature, generator=generator):
            t = int(t[0, 0])
            budget -= 1
            ids.append(t)
            if t in (end, call_end):
                stop = t
                break
            written.append(t)
        if stop == call_end and call in written and calls < max_calls:
            calls += 1
            at = written.index(call)
            expression = tok.decode(written[at + 1:])
            message = {"role": "assistant", "tool_call": expression}
            if at > 0:  # text before the call stays in the same assistant turn
                message["content"] = tok.decode(written[:at])
            messages.append(message)
            try:
                result = format_number(calculate(expression))
            except CalculatorError as e:
                result = f"error: {e}"
            messages.append({"role": "tool", "content": result})
            ids += tok.render_message({"role": "tool", "content": result})[0] + [tok.special["<|assistant|>"]]
            written = []
            continue
        break
    messages.append({"role": "assistant", "content": tok.decode(written)})  # an unclosed call stays visible
    return messages
