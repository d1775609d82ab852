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


# --------------------------------------------------------------------------- reset

def _course(tmp_path):
    """A course folder with one lesson (05) that has exercises."""
    (tmp_path / "solutions").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n")]
    nbformat.write(nb, tmp_path / "solutions" / "05_attention.ipynb")
    clean = exercises.render(exercises.make_exercise(nb))
    return tmp_path / "exercises" / "05_attention.ipynb", clean


def test_reset_writes_a_clean_notebook_and_keeps_the_learners_copy(tmp_path):
    import datetime

    target, clean = _course(tmp_path)
    target.parent.mkdir()
    target.write_text("my work, half done")
    when = datetime.datetime(2026, 3, 14, 9, 26, 53)
    path, backup = exercises.reset("5", root=tmp_path, now=when)
    assert path == target and target.read_text() == clean
    assert backup == target.parent / "backups" / "05_attention.2026-03-14_092653.ipynb"
    assert backup.read_text() == "my work, half done"
    # a second reset in the same second never overwrites the first backup
    target.write_text("second attempt")
    _, again = exercises.reset("05", root=tmp_path, now=when)
    assert again == target.parent / "backups" / "05_attention.2026-03-14_092653-2.ipynb"
    assert backup.read_text() == "my work, half done" and again.read_text() == "second attempt"
    # a clean notebook needs no backup; a missing one is simply written
    assert exercises.reset("05_attention", root=tmp_path, now=when) == (target, None)
    target.unlink()
    assert exercises.reset("05", root=tmp_path) == (target, None) and target.read_text() == clean
    assert exercises.stale(tmp_path) == []  # backups/ is not mistaken for an exercise notebook


def test_reset_refuses_when_the_backup_cannot_be_written(tmp_path):
    target, _ = _course(tmp_path)
    target.parent.mkdir()
    target.write_text("my work")
    (target.parent / "backups").write_text("a file where the backups folder should be")
    with pytest.raises(ValueError, match="cannot write the backup .* was not changed"):
        exercises.reset("05", root=tmp_path)
    assert target.read_text() == "my work"


def test_reset_command_line(tmp_path, capsys):
    from minigpt import cli

    target, clean = _course(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / target.name).write_text("work in progress")
    # the real course's lessons: an unknown one is one line, exit 2
    assert cli.main(["exercises", "reset", "99"]) == 2
    assert "error: no lesson '99' with exercises; lessons with exercises: 01" in capsys.readouterr().err
    # --dir: a learner's own folder (here against the real solutions, lesson 01)
    sol = sorted((exercises.ROOT / "solutions").glob("01_*.ipynb"))[0]
    (mine / sol.name).write_text("my lesson 01")
    assert cli.main(["exercises", "reset", "01", "--dir", str(mine)]) == 0
    out = capsys.readouterr().out
    assert "your previous copy is in" in out and "backups" in out
    assert (mine / sol.name).read_text() == exercises.render(exercises.make_exercise(nbformat.read(sol, as_version=4)))
    assert [p.read_text() for p in (mine / "backups").iterdir()] == ["my lesson 01"]
    assert cli.main(["exercises", "reset", "01", "--dir", str(mine)]) == 0
    assert "nothing to back up" in capsys.readouterr().out
    assert len(list((mine / "backups").iterdir())) == 1
