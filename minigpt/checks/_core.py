"""The machinery behind the check cells: count passed checks, fail with a hint.

Every check ends in one line that a learner reads and a program can parse (``python -m minigpt
progress`` does, from a notebook's saved outputs):

- a pass is printed on stdout as ``✓ NAME: all N checks passed``;
- a failure raises :class:`CheckFailed`, whose message is ``✗ NAME: HINT`` (in a notebook: the
  error's name is ``CheckFailed`` and its value is that line); the exception also carries
  ``.check`` (NAME) and ``.hint`` (HINT).

NAME is the check's name (``bigram_counts``, the function called in the check cell). The grammar
is :data:`PASS_LINE` and :data:`FAIL_LINE`; :func:`parse_passes` and :func:`parse_failure` read it.
"""

from __future__ import annotations

import math
import random
import re

import torch

PASS_MARK, FAIL_MARK = "✓", "✗"
PASS_LINE = re.compile(r"^✓ (?P<check>[A-Za-z_][\w.]*): all (?P<count>\d+) checks passed[ \t]*$", re.MULTILINE)
FAIL_LINE = re.compile(r"^✗ (?P<check>[A-Za-z_][\w.]*): (?P<hint>.*)$", re.DOTALL)


def pass_line(name: str, count: int) -> str:
    """The line a passed check prints, e.g. ``✓ add_k_probs: all 21 checks passed``."""
    return f"{PASS_MARK} {name}: all {count} checks passed"


def parse_passes(text: str) -> dict[str, int]:
    """The checks that passed in ``text`` (a cell's stdout): ``{name: number of checks}``."""
    return {m["check"]: int(m["count"]) for m in PASS_LINE.finditer(text)}


def parse_failure(message: str) -> tuple[str, str] | None:
    """``(name, hint)`` from a :class:`CheckFailed` message ``✗ NAME: HINT``, or None for other text."""
    m = FAIL_LINE.match(message.strip())
    return (m["check"], " ".join(m["hint"].split())) if m else None


_DRAWS: random.Random | None = None  # set by repeatable_draws (the test suite); None: the system's randomness


def repeatable_draws(key: str | None) -> None:
    """Make :func:`fresh_generator`'s seeds a repeatable sequence from ``key`` (tests that must replay a
    failing draw); ``None`` goes back to fresh seeds from the system."""
    global _DRAWS
    _DRAWS = None if key is None else random.Random(key)


def fresh_generator() -> torch.Generator:
    """A generator with a new seed on every call: a check's inputs cannot be known in advance."""
    return torch.Generator().manual_seed((_DRAWS or random.SystemRandom()).randrange(2**31))


class CheckFailed(AssertionError):
    """An exercise answer did not pass; the message (``✗ NAME: HINT``) says what to look at.

    ``check`` and ``hint`` hold NAME and HINT; raised with a message alone, they are parsed from it.
    """

    def __init__(self, message: str = "", check: str | None = None, hint: str | None = None):
        super().__init__(message)
        parsed = parse_failure(message) if isinstance(message, str) else None
        self.check = check if check is not None else (parsed[0] if parsed else None)
        self.hint = hint if hint is not None else (parsed[1] if parsed else message)


class Check:
    """Collects the checks for one exercise.

    >>> c = Check("add_k_probs")
    >>> c.that(True, "rows must sum to 1")
    >>> c.done()
    ✓ add_k_probs: all 1 checks passed
    """

    def __init__(self, name: str):
        self.name = name
        self.count = 0

    def fail(self, hint: str):
        raise CheckFailed(f"{FAIL_MARK} {self.name}: {hint}", check=self.name, hint=hint)

    def that(self, condition: bool, hint: str):
        """One check: fails with ``hint`` when ``condition`` is false."""
        self.count += 1
        if not condition:
            self.fail(hint)

    def call(self, fn, *args, **kwargs):
        """Call the learner's function, turning a crash into a hint instead of a traceback maze."""
        try:
            return fn(*args, **kwargs)
        except NotImplementedError:
            self.fail("not implemented yet: replace `raise NotImplementedError()` with your code")
        except CheckFailed:
            raise
        except Exception as e:  # the learner's code raised: say what and where to look
            self.fail(f"your function raised {type(e).__name__}: {e}")

    def shape(self, value, expected: tuple, what: str = "the result"):
        """Check ``value`` is a tensor/array of shape ``expected``."""
        got = tuple(getattr(value, "shape", ()))
        self.that(hasattr(value, "shape"), f"{what} should be a tensor, got {type(value).__name__}")
        self.that(got == tuple(expected), f"{what} has shape {got}, expected {tuple(expected)}")

    def close(self, value, reference, what: str = "the result", atol: float = 1e-4, rtol: float = 1e-4):
        """Check ``value`` is close to ``reference``; the hint names the first mismatch, not the answer."""
        value = torch.as_tensor(value).double()
        reference = torch.as_tensor(reference).double()
        self.shape(value, tuple(reference.shape), what)
        self.count += 1
        ok = torch.isclose(value, reference, atol=atol, rtol=rtol) | (value.isnan() & reference.isnan())
        if not bool(ok.all()):
            bad = (~ok).nonzero()[0].tolist()
            where = f"at index {tuple(bad)}" if bad else ""
            n_bad = int((~ok).sum())
            self.fail(f"{what} differs from the reference {where} (your value {value[tuple(bad)].item():.4g}); "
                      f"{n_bad} of {value.numel()} entries are off")

    def number(self, value, reference: float, what: str, tol: float):
        """Check a scalar is within ``tol`` of ``reference`` without printing the reference."""
        self.count += 1
        try:
            value = float(value)
        except (TypeError, ValueError):
            self.fail(f"{what} should be a number, got {type(value).__name__}")
        if math.isnan(value) or abs(value - reference) > tol:
            direction = "too high" if value > reference else "too low"
            self.fail(f"{what} = {value:.4f} is {direction} (allowed error {tol:g})")

    def done(self):
        """Print the one-line pass."""
        print(pass_line(self.name, self.count))
