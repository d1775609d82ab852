"""The check machinery: one line on success, a hint (never the answer) on failure."""

import pytest
import torch

from minigpt import checks
from minigpt.checks import Check, CheckFailed


def test_passing_checks_print_one_line(capsys):
    c = Check("softmax")
    c.that(True, "unused")
    c.close(torch.tensor([0.2, 0.8]), torch.tensor([0.2, 0.8]))
    c.number(2.45, 2.45, "dev NLL", tol=0.01)
    c.done()
    assert capsys.readouterr().out == "✓ softmax: all 5 checks passed\n"


def test_wrong_shape_names_the_expected_shape():
    with pytest.raises(CheckFailed, match=r"has shape \(3,\), expected \(2,\)"):
        Check("x").close(torch.zeros(3), torch.zeros(2))


def test_mismatch_names_the_first_wrong_entry_but_not_the_reference():
    ref = torch.tensor([[0.25, 0.75], [0.5, 0.5]])
    mine = torch.tensor([[0.25, 0.75], [0.9, 0.1]])
    with pytest.raises(CheckFailed) as err:
        Check("probs").close(mine, ref, what="probs")
    msg = str(err.value)
    assert "at index (1, 0)" in msg and "0.9" in msg and "2 of 4 entries" in msg
    assert "0.5" not in msg  # the reference value is never shown


def test_number_says_too_high_or_too_low_without_the_answer():
    with pytest.raises(CheckFailed, match="too high") as err:
        Check("nll").number(3.0, 2.4567, "dev NLL", tol=0.01)
    assert "2.45" not in str(err.value)


def test_learner_code_that_is_not_written_yet_gets_a_hint():
    def todo():
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not implemented yet"):
        Check("todo").call(todo)


def test_learner_code_that_crashes_gets_the_error_in_one_line():
    with pytest.raises(CheckFailed, match="raised ZeroDivisionError"):
        Check("div").call(lambda: 1 / 0)


def test_lesson_checks_are_reexported():
    lesson_names = [n for n in checks.__all__ if n not in ("Check", "CheckFailed")]
    for name in lesson_names:
        assert callable(getattr(checks, name))
