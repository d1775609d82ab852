"""exercises/ is generated from solutions/, and is never stale."""

import nbformat
import pytest

from minigpt import exercises


def test_solution_blocks_become_placeholders_with_the_same_indent():
    src = "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\ncheck(f)"
    assert exercises.strip_solution(src, "code") == (
        "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\ncheck(f)"
    )


def test_markdown_answers_are_taken_out():
    src = "Why does the loss spike?\n### BEGIN SOLUTION\nThe learning rate is too high.\n### END SOLUTION"
    assert exercises.strip_solution(src, "markdown") == "Why does the loss spike?\n*Your answer here.*"


@pytest.mark.parametrize("src", ["### BEGIN SOLUTION\nx = 1", "x = 1\n### END SOLUTION",
                                 "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION"])
def test_unbalanced_markers_are_an_error(src):
    with pytest.raises(ValueError, match="SOLUTION"):
        exercises.strip_solution(src, "code")


def test_exercise_notebooks_have_no_outputs_and_no_answers(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION", execution_count=3,
                                          outputs=[nbformat.v4.new_output("stream", text="hi")])]
    ex = exercises.make_exercise(nb)
    assert ex.cells[0].outputs == [] and ex.cells[0].execution_count is None
    assert "y = 2" not in ex.cells[0].source
    assert "y = 2" in nb.cells[0].source  # the solutions notebook is untouched


def test_stale_reports_missing_changed_and_orphaned_exercises(tmp_path):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "exercises").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("### BEGIN SOLUTION\nz = 3\n### END SOLUTION")]
    nbformat.write(nb, tmp_path / "solutions" / "01_x.ipynb")
    assert exercises.stale(tmp_path) == ["exercises/01_x.ipynb is missing"]
    for path, text in exercises.expected_exercises(tmp_path).items():
        path.write_text(text)
    assert exercises.stale(tmp_path) == []
    nb.cells[0].source = "### BEGIN SOLUTION\nz = 4\n### END SOLUTION\nprint(z)"
    nbformat.write(nb, tmp_path / "solutions" / "01_x.ipynb")
    assert exercises.stale(tmp_path) == ["exercises/01_x.ipynb is out of date"]
    (tmp_path / "exercises" / "99_orphan.ipynb").write_text("{}")
    assert "exercises/99_orphan.ipynb has no solutions/99_orphan.ipynb" in exercises.stale(tmp_path)


def test_the_repository_exercises_are_up_to_date():
    assert exercises.stale() == [], "run `make exercises` to regenerate exercises/ from solutions/"


def test_every_lesson_with_exercises_has_them_in_all_three_folders():
    root = exercises.ROOT
    solutions = {p.name for p in (root / "solutions").glob("*.ipynb")}
    assert {p.name for p in (root / "exercises").glob("*.ipynb")} == solutions
    lessons = {p.name for p in (root / "notebooks").glob("*.ipynb")}
    assert solutions <= lessons, f"solutions without a lesson: {solutions - lessons}"
