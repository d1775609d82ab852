"""Generate ``exercises/`` from ``solutions/``: the answers between the solution markers come out.

    python -m minigpt.exercises          # regenerate every exercise notebook
    python -m minigpt.exercises --check  # exit 1 when an exercise notebook is out of date

In code cells, the lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` become
``# YOUR CODE HERE`` and ``raise NotImplementedError()`` (nbgrader's convention), indented like the
marker. In Markdown cells they become "*Your answer here.*". Outputs are cleared.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
ROOT = Path(__file__).resolve().parent.parent


def strip_solution(source: str, cell_type: str) -> str:
    """The cell source with every solution block replaced by a placeholder."""
    out, inside = [], False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if inside:
                raise ValueError(f"nested {BEGIN!r} in cell:\n{source}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            if cell_type == "code":
                out += [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError()"]
            else:
                out.append(f"{indent}*Your answer here.*")
        elif stripped.startswith(END):
            if not inside:
                raise ValueError(f"{END!r} without {BEGIN!r} in cell:\n{source}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN!r} without {END!r} in cell:\n{source}")
    return "\n".join(out)


def make_exercise(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """An exercise notebook from a solutions notebook (a new object; ``nb`` is not changed)."""
    ex = nbformat.from_dict(nb)
    ex.metadata.pop("widgets", None)  # saved widget state of the executed solutions
    for cell in ex.cells:
        cell.source = strip_solution(cell.source, cell.cell_type)
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


def stale(root: Path = ROOT) -> list[str]:
    """Exercise notebooks that are missing, out of date, or have no solutions notebook."""
    expected = expected_exercises(root)
    problems = []
    for path, text in expected.items():
        if not path.exists():
            problems.append(f"{path.relative_to(root)} is missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path.relative_to(root)} is out of date")
    for path in sorted((root / "exercises").glob("*.ipynb")):
        if path not in expected:
            problems.append(f"{path.relative_to(root)} has no solutions/{path.name}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minigpt.exercises", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale exercise notebooks")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale()
        for p in problems:
            print(p)
        if problems:
            print("run `make exercises` (python -m minigpt.exercises) to regenerate them")
        return 1 if problems else 0
    (ROOT / "exercises").mkdir(exist_ok=True)
    for path, text in expected_exercises().items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
