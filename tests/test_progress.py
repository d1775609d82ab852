"""``python -m minigpt progress``: exercise notebooks run as copies and every exercise classified.

The class test runs a made-up class of learners on lesson 06 (its exercises run in about a second
in FAST mode): complete, partial, a broken notebook, wrong answers (with an error in an earlier
cell and an endless loop), an empty one, and a learner without the lesson.
"""

import csv
import hashlib
import inspect
import io
import json
import re

import nbformat
import pytest

from minigpt import cli, exercises, progress
from minigpt.checks import Check, CheckFailed
from minigpt.checks._core import parse_failure, parse_passes, pass_line
from minigpt.progress import ERROR, FAILED, MISSING, NOT_ATTEMPTED, PASSED

LESSON = "06"
KNOWN = progress.lessons()
SOLUTION = nbformat.read(exercises.ROOT / "solutions" / KNOWN[LESSON].filename, as_version=4)
TIMEOUT = 8  # seconds a cell may run in these tests: lesson 06's cells take about one


def clean():
    return exercises.make_exercise(SOLUTION)


def solution_source(name):
    return next(c.source for c in SOLUTION.cells if c.cell_type == "code" and name in progress.check_calls(c.source))


def check_cell(nb, name):
    return next(c for c in nb.cells if c.cell_type == "code" and name in progress.check_calls(c.source))


def answered(names):
    """A clean exercise notebook with the reference answers to ``names`` filled in."""
    nb = clean()
    for name in names:
        check_cell(nb, name).source = solution_source(name)
    return nb


def digest(path):
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns


# --------------------------------------------------------------------------- the result line

def test_the_result_line_reads_well_and_parses(capsys):
    c = Check("layer_norm")
    c.that(True, "unused")
    c.done()
    out = capsys.readouterr().out
    assert out == "✓ layer_norm: all 1 checks passed\n" == pass_line("layer_norm", 1) + "\n"
    assert parse_passes("some output\n" + out + "more") == {"layer_norm": 1}
    assert parse_passes("✓ layer_norm: all 1 checks passed, I promise") == {}  # only the whole line counts
    with pytest.raises(CheckFailed) as err:
        Check("layer_norm").fail("the variance is the unbiased one")
    assert str(err.value) == "✗ layer_norm: the variance is the unbiased one"
    assert (err.value.check, err.value.hint) == ("layer_norm", "the variance is the unbiased one")
    assert parse_failure(str(err.value)) == ("layer_norm", "the variance is the unbiased one")
    assert parse_failure("name 'x' is not defined") is None


def test_check_failed_raised_the_old_way_still_works():
    e = CheckFailed("✗ top_p_filter: probabilities do not sum to 1")
    assert (e.check, e.hint) == ("top_p_filter", "probabilities do not sum to 1")
    plain = CheckFailed("something is off")
    assert plain.check is None and plain.hint == "something is off" and str(plain) == "something is off"


def test_every_check_prints_the_name_the_check_cell_calls():
    # progress matches a check cell's `check.NAME(` with the NAME in its ✓ line: each public check
    # builds a Check of its own name (itself, or in a helper of its module)
    from minigpt import checks

    for name in checks.__all__:
        if name in ("Check", "CheckFailed"):
            continue
        module = inspect.getsource(inspect.getmodule(getattr(checks, name)))
        assert re.search(r"\bCheck\(\s*[\"']" + re.escape(name) + r"[\"']", module), \
            f"checks.{name} never builds Check({name!r})"


# --------------------------------------------------------------------------- classifying without a kernel

def executed(nb, outputs: dict[int, list], errors=()):
    """``nb`` as if run: ``outputs`` per cell index, every code cell ran, ``errors`` the failing ones."""
    ran = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        cell.outputs = outputs.get(i, [])
        err = progress._cell_error(cell)
        ran[i] = {"status": "error" if err else "ok", "ename": err[0] if err else None}
    return ran


def test_classify_names_the_first_failing_cell_of_the_exercise():
    nb = answered(KNOWN[LESSON].checks)
    c = nb.cells.index(check_cell(nb, "layer_norm"))
    nb.cells.insert(c, nbformat.v4.new_code_cell("from minigpt.model import NoSuchThing"))
    check_cell(nb, "layer_norm").source = "check.layer_norm(layer_norm)"
    err = nbformat.v4.new_output("error", ename="ImportError", evalue="cannot import name 'NoSuchThing'", traceback=[])
    later = nbformat.v4.new_output("error", ename="NameError", evalue="name 'layer_norm' is not defined", traceback=[])
    ok = {i: [nbformat.v4.new_output("stream", name="stdout", text=pass_line(n, 3) + "\n")]
          for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
          for n in progress.check_calls(cell.source) if n != "layer_norm"}
    ran = executed(nb, {**ok, c: [err], c + 1: [later]})
    got = {r.exercise: r for r in progress.classify(nb, KNOWN[LESSON], ran)}
    assert got["layer_norm"].status == ERROR
    assert got["layer_norm"].detail.startswith(f"ImportError in cell {c + 1} (`from minigpt.model import NoSuchThing`)")
    assert all(r.status == PASSED for name, r in got.items() if name != "layer_norm")


def test_classify_placeholder_beats_the_error_it_causes():
    nb = clean()
    c = nb.cells.index(check_cell(nb, "name_row"))
    hint = nbformat.v4.new_output("error", ename="CheckFailed", evalue="✗ name_row: not implemented yet", traceback=[])
    ran = executed(nb, {c: [hint]})
    got = {r.exercise: r.status for r in progress.classify(nb, KNOWN[LESSON], ran)}
    assert got["name_row"] == NOT_ATTEMPTED


def test_classify_reports_a_deleted_check_and_cells_that_never_ran():
    nb = answered(["count_block_params"])
    cell = check_cell(nb, "layer_norm")
    cell.source = "# check.layer_norm(layer_norm) -- commented out"
    ran = executed(nb, {})
    c = nb.cells.index(check_cell(nb, "count_block_params"))
    del ran[c]
    got = {r.exercise: r for r in progress.classify(nb, KNOWN[LESSON], ran)}
    assert got["layer_norm"].status == ERROR and "not in the notebook" in got["layer_norm"].detail
    assert got["count_block_params"].status == ERROR and "not run" in got["count_block_params"].detail


# --------------------------------------------------------------------------- finding learners

def test_gather_tells_a_learner_folder_from_a_class(tmp_path):
    text = nbformat.writes(clean())
    mine = tmp_path / "mine"
    (mine / ".ipynb_checkpoints").mkdir(parents=True)
    (mine / "backups").mkdir()
    for p in (mine / "06_gpt.ipynb", mine / "05_self_attention.ipynb", mine / ".ipynb_checkpoints" / "06_gpt-checkpoint.ipynb",
              mine / "backups" / "06_gpt.2026-01-01_120000.ipynb"):
        p.write_text(text)
    assert progress.gather([mine], KNOWN) == {"mine": [mine / "05_self_attention.ipynb", mine / "06_gpt.ipynb"]}
    room = tmp_path / "room"
    for who in ("ann", "ben"):
        (room / who).mkdir(parents=True)
        (room / who / "06_gpt.ipynb").write_text(text)
    (room / "cleo.ipynb").write_text(text)  # one notebook per learner, named after them
    assert sorted(progress.gather([room], KNOWN)) == ["ann", "ben", "cleo"]
    flat = tmp_path / "flat"
    flat.mkdir()
    for who in ("dan", "eve"):
        (flat / f"06_gpt_{who}.ipynb").write_text(text)  # lesson 06 twice: a class, not one learner
    assert sorted(progress.gather([flat], KNOWN)) == ["06_gpt_dan", "06_gpt_eve"]
    assert sorted(progress.gather([mine], KNOWN, as_class=True)) == ["05_self_attention", "06_gpt"]


def test_bad_paths_and_lessons_are_one_line(tmp_path, capsys):
    assert cli.main(["progress", str(tmp_path / "nope")]) == 2
    assert "error: no such notebook or folder" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hi")
    assert cli.main(["progress", str(tmp_path / "notes.txt")]) == 2
    assert "is not a notebook" in capsys.readouterr().err
    assert cli.main(["progress", "--lessons", "99"]) == 2
    assert "no lesson 99 with exercises" in capsys.readouterr().err
    assert cli.main(["progress", str(tmp_path), "--csv", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


# --------------------------------------------------------------------------- a made-up class, run for real

@pytest.fixture(scope="module")
def room(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    checks = KNOWN[LESSON].checks
    wrong = answered([])
    check_cell(wrong, "count_block_params").source = (
        "def count_block_params(n_embd, bias=True):\n    return 0\n\n\ncheck.count_block_params(count_block_params)")
    check_cell(wrong, "layer_norm").source = (
        "def layer_norm(x, weight, bias, eps=1e-5):\n"
        "    return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + eps) * weight + bias\n\n\n"
        "check.layer_norm(layer_norm)")
    c = wrong.cells.index(check_cell(wrong, "block_forward"))
    wrong.cells[c].source = "check.block_forward(block_forward)"
    wrong.cells.insert(c, nbformat.v4.new_code_cell("block_forward = build_forward(Block)"))
    check_cell(wrong, "name_row").source = (
        "def name_row(word, block_size):\n    while True:\n        pass\n\n\ncheck.name_row(name_row)")
    learners = {
        "alice": answered(checks),  # complete
        "bob": answered(checks[:2]),  # partial
        "dave": wrong,  # wrong answers, an error in an earlier cell, an endless loop
        "erin": clean(),  # nothing done
    }
    for name, nb in learners.items():
        (root / name).mkdir()
        nbformat.write(nb, root / name / KNOWN[LESSON].filename)
    (root / "carol").mkdir()
    (root / "carol" / KNOWN[LESSON].filename).write_text('{"cells": [{"cell_type": "code", "sour')  # cut off
    (root / "frank").mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")]), root / "frank" / "notes.ipynb")
    files = sorted(root.rglob("*.ipynb"))
    before = {p: digest(p) for p in files}
    lines = []
    reports = progress.run_progress([root], timeout=TIMEOUT, echo=lines.append)
    return {"root": root, "reports": {r.name: r for r in reports}, "before": before, "lines": lines}


def statuses(report):
    return {name: r.status for (_, name), r in report.results().items()}


def test_learner_notebooks_are_never_modified(room):
    assert {p: digest(p) for p in room["before"]} == room["before"]
    assert sorted(room["root"].rglob("*")) == sorted(set(room["before"]) | {p.parent for p in room["before"]})


def test_complete_and_partial_learners(room):
    checks = KNOWN[LESSON].checks
    assert statuses(room["reports"]["alice"]) == dict.fromkeys(checks, PASSED)
    bob = statuses(room["reports"]["bob"])
    assert bob == {**dict.fromkeys(checks, NOT_ATTEMPTED), checks[0]: PASSED, checks[1]: PASSED}
    assert statuses(room["reports"]["erin"]) == dict.fromkeys(checks, NOT_ATTEMPTED)


def test_wrong_answers_get_the_hint_and_errors_name_their_cell(room):
    dave = room["reports"]["dave"].results()
    assert dave[(LESSON, "count_block_params")].status == FAILED
    assert dave[(LESSON, "layer_norm")].status == FAILED
    assert "unbiased" in dave[(LESSON, "layer_norm")].detail  # the check's own hint
    block = dave[(LESSON, "block_forward")]
    assert block.status == ERROR and block.detail.startswith("NameError in cell")
    assert "build_forward" in block.detail
    loop = dave[(LESSON, "name_row")]
    assert loop.status == ERROR and f"ran past the {TIMEOUT} s limit" in loop.detail
    # the endless loop was interrupted, so the exercise after it still ran
    later = [name for name in KNOWN[LESSON].checks if KNOWN[LESSON].checks.index(name) > 3]
    assert all(dave[(LESSON, name)].status == NOT_ATTEMPTED for name in later)
    assert sum("ran past" in p for p in room["reports"]["dave"].problems) == 1


def test_a_broken_notebook_and_a_missing_lesson_are_one_line_each(room):
    carol = room["reports"]["carol"]
    assert set(statuses(carol).values()) == {ERROR}
    assert len(carol.problems) == 1 and "not valid JSON" in carol.problems[0]
    assert f"exercises reset {LESSON}" in carol.problems[0]
    frank = room["reports"]["frank"]
    assert set(statuses(frank).values()) == {MISSING}
    assert any("notes.ipynb: no lesson with exercises matches it" in p for p in frank.problems)
    assert any(f"lesson {LESSON} is missing" in p for p in frank.problems)


def test_class_table_and_pass_rates(room):
    reports = list(room["reports"].values())
    checks = KNOWN[LESSON].checks
    rates = progress.pass_rates(reports)
    assert rates[(LESSON, checks[0])] == (2, 6)  # alice and bob
    assert rates[(LESSON, checks[2])] == (1, 6)
    rows = list(csv.reader(io.StringIO(progress.csv_table(reports))))
    assert rows[0] == ["learner"] + [f"{LESSON} {c}" for c in checks] + ["passed"]
    by_name = {r[0]: r for r in rows[1:]}
    assert by_name["dave"][1:3] == [FAILED, FAILED] and by_name["frank"][1] == MISSING
    assert by_name["alice"][-1] == f"{len(checks)}/{len(checks)}"
    assert by_name["pass rate"][1] == "2/6 (33%)"
    md = progress.markdown_table(reports)
    assert f"| alice | {' | '.join(['✓'] * len(checks))} | {len(checks)}/{len(checks)} |" in md
    assert "| carol | " + " | ".join(["!"] * len(checks)) in md
    assert md.count("\n| ") == len(reports) + 2  # header, separator... one row per learner and the rates
    assert progress.stuck(reports)[0] == f"{LESSON} {checks[2]}: 1 of 6 passed"  # the fewest passes first


def test_the_command_writes_the_tables(room, tmp_path, monkeypatch, capsys):
    reports = list(room["reports"].values())
    monkeypatch.setattr(progress, "run_progress", lambda *a, **k: reports)
    out_csv, out_md = tmp_path / "t" / "class.csv", tmp_path / "class.md"
    assert cli.main(["progress", str(room["root"]), "--csv", str(out_csv), "--markdown", str(out_md)]) == 0
    out = capsys.readouterr().out
    assert out_csv.read_text() == progress.csv_table(reports)
    assert out_md.read_text() == progress.markdown_table(reports)
    assert "| pass rate |" in out and "hardest:" in out and "not valid JSON" in out
    assert cli.main(["progress", str(room["root"]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {r["name"] for r in data["learners"]} == set(room["reports"])
    assert data["pass_rates"][f"{LESSON} {KNOWN[LESSON].checks[0]}"] == {"passed": 2, "learners": 6}


def test_a_dead_kernel_is_one_line_and_the_rest_is_still_reported(tmp_path, capsys):
    nb = answered(KNOWN[LESSON].checks)
    check_cell(nb, "layer_norm").source = "import os\nos._exit(1)\ncheck.layer_norm(None)"
    path = tmp_path / KNOWN[LESSON].filename
    nbformat.write(nb, path)
    assert cli.main(["progress", str(path), "--timeout", str(TIMEOUT)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert any(line.strip().startswith("✓ count_block_params") and "passed" in line for line in lines)
    died = [line for line in lines if "kernel died" in line]
    assert any(line.strip().startswith("! layer_norm") for line in died)
    assert any(line.strip().startswith("! block_forward") and "not run" in line for line in died)
    assert sum(line.startswith("  ") and "later cells were not run" in line for line in lines) == 1


def test_an_unreadable_notebook_of_unknown_lesson_is_an_error_not_missing(tmp_path):
    (tmp_path / "dan").mkdir()
    (tmp_path / "dan" / KNOWN[LESSON].filename).write_text("{")  # named: its lesson is known
    (tmp_path / "cy.ipynb").write_bytes(b"\xff\xfe not even text")  # one notebook per learner, unreadable
    reports = {r.name: r for r in progress.run_progress([tmp_path], as_class=True)}
    assert set(statuses(reports["dan"]).values()) == {ERROR}
    cy = reports["cy"].results()[(LESSON, KNOWN[LESSON].checks[0])]
    assert cy.status == ERROR and "cy.ipynb cannot be read" in cy.detail
    assert not any("missing" in p for p in reports["cy"].problems)
    assert sum("cannot be read as a notebook" in p for p in reports["cy"].problems) == 1
