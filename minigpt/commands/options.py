"""Argument types that check a number where it is parsed: its option's name and allowed range in the error.

Every numeric option of every command uses :func:`number`, so NaN, infinity, negative, zero and huge
values stop at the command line with one line that names the option, not deep inside the library
(``tests/test_commands.py`` finds every numeric option in the parser and tries each bad value).
"""

from __future__ import annotations

import argparse
import math

SEED_MAX = 2**32 - 1  # numpy's seeds are 32-bit


class NumberType:
    """``type=`` for argparse: parse ``kind`` (int or float) and check ``low <= value <= high``.

    ``low_open``: the low end itself is refused (``> low``). ``name`` is shown after the option
    (``--batch-size: batch_size must be ...``); ``must`` replaces the generated range text;
    ``low_hint`` is added when the value is below ``low``.
    """

    def __init__(self, option: str, kind: type, low: float, high: float, *, low_open: bool = False,
                 name: str | None = None, must: str | None = None, low_hint: str = ""):
        self.option, self.kind, self.low, self.high, self.low_open = option, kind, low, high, low_open
        self.label = f"{option}: {name}" if name else option
        self.must, self.low_hint = must or self._range_text(), low_hint
        self.__name__ = "integer" if kind is int else "number"  # argparse names the type in some messages

    def _range_text(self) -> str:
        low, high = self.low, f"{self.high:,}" if self.kind is int else f"{self.high:g}"
        if self.kind is int:
            if low == 1:
                return f"a positive integer (at most {high})"
            if low == 0:
                return f"an integer >= 0 (at most {high})"
            return f"an integer from {low:,} to {high}"
        if self.high <= 1:
            return f"in {'(' if self.low_open else '['}{low:g}, {self.high:g}]"
        return f"a number {'>' if self.low_open else '>='} {low:g} and at most {high}"

    def __call__(self, text: str):
        try:
            value = int(text) if self.kind is int else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{self.label} must be {self.must}, got {text!r}") from None
        too_low = value <= self.low if self.low_open else value < self.low
        if isinstance(value, float) and not math.isfinite(value) or too_low or value > self.high:
            hint = f"; {self.low_hint}" if too_low and self.low_hint else ""
            raise argparse.ArgumentTypeError(f"{self.label} must be {self.must}, got {text}{hint}")
        return value


def integer(option: str, low: int, high: int, **kw) -> NumberType:
    """An integer option in ``[low, high]``."""
    return NumberType(option, int, low, high, **kw)


def real(option: str, low: float, high: float, **kw) -> NumberType:
    """A finite float option in ``[low, high]`` (``low_open=True``: ``(low, high]``)."""
    return NumberType(option, float, low, high, **kw)


def seed(option: str = "--seed") -> NumberType:
    """A random seed: an integer from 0 to 2**32 - 1."""
    return NumberType(option, int, 0, SEED_MAX)
