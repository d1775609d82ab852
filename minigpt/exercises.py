"""Generate ``exercises/`` from ``solutions/``: the answers between the solution markers come out.

    python -m minigpt exercises          # regenerate every exercise notebook
    python -m minigpt exercises --check  # exit 1 when an exercise notebook is out of date
    python -m minigpt exercises reset 05 # a learner's clean start on lesson 05 (their copy kept)

In code cells, the lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` become
``# YOUR CODE HERE`` and ``raise NotImplementedError()`` (nbgrader's convention), indented like the
marker. In Markdown cells they become "*Your answer here.*". Outputs are cleared. The Chinese
edition (:mod:`minigpt.editions`) uses the same generator with the placeholders of ``PLACEHOLDERS["zh"]``.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
PLACEHOLDER_COMMENT, PLACEHOLDER_RAISE = "# YOUR CODE HERE", "raise NotImplementedError()"
PLACEHOLDER_ANSWER = "*Your answer here.*"
# (code comment, markdown answer) per edition; `raise NotImplementedError()` is code and stays as it is
PLACEHOLDERS = {"en": (PLACEHOLDER_COMMENT, PLACEHOLDER_ANSWER), "zh": ("# 在这里写你的代码", "*在这里写下你的答案。*")}
ROOT = Path(__file__).resolve().parent.parent


def strip_solution(source: str, cell_type: str, language: str = "en") -> str:
    """The cell source with every solution block replaced by a placeholder (in ``language``: en or zh)."""
    comment, answer = PLACEHOLDERS[language]
    out, inside = [], False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if inside:
                raise ValueError(f"nested {BEGIN!r} in cell:\n{source}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            if cell_type == "code":
                out += [f"{indent}{comment}", f"{indent}{PLACEHOLDER_RAISE}"]
            else:
                out.append(f"{indent}{answer}")
        elif stripped.startswith(END):
            if not inside:
                raise ValueError(f"{END!r} without {BEGIN!r} in cell:\n{source}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN!r} without {END!r} in cell:\n{source}")
    return "\n".join(out)


def make_exercise(nb: nbformat.NotebookNode, language: str = "en") -> nbformat.NotebookNode:
    """An exercise notebook from a solutions notebook (a new object; ``nb`` is not changed)."""
    ex = nbformat.from_dict(nb)
    ex.metadata.pop("widgets", None)  # saved widget state of the executed solutions
    for cell in ex.cells:
        cell.source = strip_solution(cell.source, cell.cell_type, language)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    return ex


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def expected_exercises(root: Path = ROOT) -> dict[Path, str]:
    """What every exercise notebook should contain, keyed by its path."""
    result = {}
    for sol in sorted((root / "solutions").glob("*.ipynb")):
        nb = nbformat.read(sol, as_version=4)
        result[root / "exercises" / sol.name] = render(make_exercise(nb))
    return result


def differences(expected: dict[Path, str], root: Path = ROOT) -> list[str]:
    """One line per generated file of ``expected`` ({path: text}) that is missing or differs on disk."""
    problems = []
    for path, text in expected.items():
        if not path.exists():
            problems.append(f"{path.relative_to(root)} is missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path.relative_to(root)} is out of date")
    return problems


def stale(root: Path = ROOT) -> list[str]:
    """Exercise notebooks that are missing, out of date, or have no solutions notebook."""
    expected = expected_exercises(root)
    problems = differences(expected, root)
    for path in sorted((root / "exercises").glob("*.ipynb")):
        if path not in expected:
            problems.append(f"{path.relative_to(root)} has no solutions/{path.name}")
    return problems


def solutions_notebook(lesson: str, root: Path = ROOT) -> Path:
    """``solutions/NN_slug.ipynb`` for lesson ``NN`` (``"5"``, ``"05"`` or ``"05_self_attention"``)."""
    key = str(lesson).strip().removesuffix(".ipynb")
    number = key.split("_", 1)[0]
    found = sorted((root / "solutions").glob(f"{number.zfill(2)}_*.ipynb")) if number.isdigit() else []
    if len(found) != 1:
        known = ", ".join(p.name.split("_", 1)[0] for p in sorted((root / "solutions").glob("*.ipynb")))
        raise ValueError(f"no lesson {lesson!r} with exercises; lessons with exercises: {known or 'none'}")
    return found[0]


def _backup_path(target: Path, now: datetime.datetime) -> Path:
    """``backups/NN_slug.YYYY-MM-DD_HHMMSS.ipynb`` beside ``target``, numbered when that name is taken."""
    folder = target.parent / "backups"
    stem = f"{target.stem}.{now:%Y-%m-%d_%H%M%S}"
    candidate, n = folder / f"{stem}.ipynb", 1
    while candidate.exists():
        n += 1
        candidate = folder / f"{stem}-{n}.ipynb"
    return candidate


def reset(lesson: str, exercises_dir: Path | None = None, root: Path = ROOT,
          now: datetime.datetime | None = None, clean: str | None = None) -> tuple[Path, Path | None]:
    """Restore a clean exercise notebook for ``lesson``, regenerated from ``solutions/`` (or ``clean``, the
    notebook's text: the Chinese edition's, from :func:`minigpt.editions.chinese_exercise`).

    The learner's copy, when there is one and it differs from the clean one, is first copied to
    ``exercises/backups/NN_slug.DATE_TIME.ipynb`` (an existing backup is never overwritten). When
    the backup cannot be written, nothing is changed. Returns the notebook's path and the backup's
    (None when no backup was needed).
    """
    sol = solutions_notebook(lesson, root)
    if clean is None:
        clean = render(make_exercise(nbformat.read(sol, as_version=4)))
    target = (Path(exercises_dir) if exercises_dir is not None else root / "exercises") / sol.name
    backup = None
    if target.is_dir():
        raise ValueError(f"{target} is a folder, not a notebook; move it away and try again")
    if target.exists():
        try:
            mine = target.read_bytes()
        except OSError as e:
            raise ValueError(f"cannot read your notebook {target} ({e.strerror or type(e).__name__}), so it "
                             "cannot be backed up; nothing was changed") from None
        if mine == clean.encode("utf-8"):
            return target, None
        backup = _backup_path(target, now or datetime.datetime.now())
        try:
            backup.parent.mkdir(parents=True, exist_ok=True)
            with open(backup, "xb") as f:  # "x": fails rather than overwrite a backup
                f.write(mine)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise ValueError(f"cannot write the backup {backup} ({e.strerror or type(e).__name__}); your "
                             f"notebook {target} was not changed. Make {backup.parent} writable, or copy "
                             "your notebook somewhere safe by hand") from None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(clean)
        os.replace(tmp, target)  # atomic: the old notebook or the new one, never half of each
    except OSError as e:
        kept = f"; your work is in {backup}" if backup else ""
        raise ValueError(f"cannot write {target} ({e.strerror or type(e).__name__}){kept}") from None
    return target, backup
