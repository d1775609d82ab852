"""The machinery behind the check cells: count passed checks, fail with a hint.

Every check ends in one line that a learner reads and a program can parse (``python -m minigpt
progress`` does, from a notebook's saved outputs):

- a pass is printed on stdout as ``✓ NAME: all N checks passed`` (in the Chinese edition
  ``✓ NAME: 全部 N 项检查通过``; both forms parse);
- a failure raises :class:`CheckFailed`, whose message is ``✗ NAME: HINT`` (in a notebook: the
  error's name is ``CheckFailed`` and its value is that line); the exception also carries
  ``.check`` (NAME) and ``.hint`` (HINT).

NAME is the check's name (``bigram_counts``, the function called in the check cell). The grammar
is :data:`PASS_LINE` and :data:`FAIL_LINE`; :func:`parse_passes` and :func:`parse_failure` read it.

Hints are written in English and wrapped in ``_()`` (:mod:`minigpt.i18n`): a learner in the Chinese
edition reads them in Chinese (the catalog ``minigpt/locale/zh_CN/LC_MESSAGES/minigpt.po``).
"""

from __future__ import annotations

import math
import random
import re

import torch

from ..i18n import _

PASS_MARK, FAIL_MARK = "✓", "✗"
PASS_LINE = re.compile(r"^✓ (?P<check>[A-Za-z_][\w.]*): (?:all (?P<count>\d+) checks passed|全部 (?P<count_zh>\d+) 项检查通过)"
                       r"[ \t]*$", re.MULTILINE)
FAIL_LINE = re.compile(r"^✗ (?P<check>[A-Za-z_][\w.]*): (?P<hint>.*)$", re.DOTALL)


def pass_line(name: str, count: int) -> str:
    """The line a passed check prints, e.g. ``✓ add_k_probs: all 21 checks passed`` (in the learner's language)."""
    return f"{PASS_MARK} {name}: " + _("all {count} checks passed").format(count=count)


def parse_passes(text: str) -> dict[str, int]:
    """The checks that passed in ``text`` (a cell's stdout): ``{name: number of checks}``."""
    return {m["check"]: int(m["count"] or m["count_zh"]) for m in PASS_LINE.finditer(text)}


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
            self.fail(_("not implemented yet: replace `raise NotImplementedError()` with your code"))
        except CheckFailed:
            raise
        except Exception as e:  # the learner's code raised: say what and where to look
            self.fail(_("your function raised {type}: {error}").format(type=type(e).__name__, error=e))

    def shape(self, value, expected: tuple, what: str | None = None):
        """Check ``value`` is a tensor/array of shape ``expected``."""
        what = what if what is not None else _("the result")
        got = tuple(getattr(value, "shape", ()))
        self.that(hasattr(value, "shape"), _("{what} should be a tensor, got {type}").format(what=what, type=type(value).__name__))
        self.that(got == tuple(expected), _("{what} has shape {got}, expected {expected}").format(
            what=what, got=got, expected=tuple(expected)))

    def close(self, value, reference, what: str | None = None, atol: float = 1e-4, rtol: float = 1e-4):
        """Check ``value`` is close to ``reference``; the hint names the first mismatch, not the answer."""
        what = what if what is not None else _("the result")
        value = torch.as_tensor(value).double()
        reference = torch.as_tensor(reference).double()
        self.shape(value, tuple(reference.shape), what)
        self.count += 1
        ok = torch.isclose(value, reference, atol=atol, rtol=rtol) | (value.isnan() & reference.isnan())
        if not bool(ok.all()):
            bad = (~ok).nonzero()[0].tolist()
            where = _("at index {index}").format(index=tuple(bad)) if bad else ""
            n_bad = int((~ok).sum())
            self.fail(_("{what} differs from the reference {where} (your value {value:.4g}); {n_bad} of {n} entries "
                        "are off").format(what=what, where=where, value=value[tuple(bad)].item(), n_bad=n_bad,
                                          n=value.numel()))

    def number(self, value, reference: float, what: str, tol: float):
        """Check a scalar is within ``tol`` of ``reference`` without printing the reference."""
        self.count += 1
        try:
            value = float(value)
        except (TypeError, ValueError):
            self.fail(_("{what} should be a number, got {type}").format(what=what, type=type(value).__name__))
        if math.isnan(value) or abs(value - reference) > tol:
            direction = _("too high") if value > reference else _("too low")
            self.fail(_("{what} = {value:.4f} is {direction} (allowed error {tol:g})").format(
                what=what, value=value, direction=direction, tol=tol))

    def done(self):
        """Print the one-line pass."""
        print(pass_line(self.name, self.count))
