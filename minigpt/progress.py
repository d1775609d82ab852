"""``python -m minigpt progress``: what a learner (or a class) has done in the exercise notebooks.

    python -m minigpt progress                          # your exercises/ folder
    python -m minigpt progress exercises/05_self_attention.ipynb
    python -m minigpt progress submissions/ --csv class.csv --markdown class.md

Each notebook is executed as a copy, in a fresh kernel, in FAST mode, with a per-cell time limit;
the learner's file is only read. The kernel runs in a sandbox (:mod:`minigpt.sandbox`): resource
limits, HOME and TMPDIR in the copy and, where Linux allows it, no network and a read-only filesystem
outside the copy. Every exercise (a check cell, ``check.NAME(...)``) is then

- ``passed``: its check printed ``✓ NAME: all N checks passed``;
- ``failed``: its check raised ``CheckFailed`` (the hint is shown);
- ``not attempted``: the ``raise NotImplementedError()`` placeholder is still in the exercise;
- ``error``: an earlier cell (or the check cell itself) raised, ran past the time limit, or the
  kernel died; the first such cell is named;
- ``missing``: the learner has no notebook for that lesson.

A notebook that is not valid JSON, a kernel that dies, an endless loop and a missing lesson each
get one line, and everything else is still reported. A folder with one subfolder (or one
notebook) per learner is a class: the report is a table of learners x exercises (Markdown, CSV)
with each exercise's pass rate, so an instructor sees where the room is stuck.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from . import sandbox
from .checks._core import parse_failure, parse_passes
from .data import cache_dir
from .exercises import PLACEHOLDER_RAISE, ROOT
from .sandbox import Limits

PASSED, FAILED, NOT_ATTEMPTED, ERROR, MISSING = "passed", "failed", "not attempted", "error", "missing"
SYMBOL = {PASSED: "✓", FAILED: "✗", NOT_ATTEMPTED: "·", ERROR: "!", MISSING: "–"}
CHECK_CALL = re.compile(r"\bcheck\.([A-Za-z_]\w*)\s*\(")
LESSON_NAME = re.compile(r"^(\d{2})_")
TIMEOUT_ENAME = "CellTimeout"
_QUIET = logging.getLogger("minigpt.progress.kernel")  # nbclient's own error lines would repeat ours
_QUIET.propagate = False
_QUIET.addHandler(logging.NullHandler())


@dataclass
class Lesson:
    """A lesson with exercises, as ``solutions/`` defines it: its number, notebook name and checks."""

    number: str
    filename: str
    checks: list[str]


@dataclass
class ExerciseResult:
    lesson: str
    exercise: str
    status: str
    detail: str = ""


@dataclass
class NotebookReport:
    """One learner notebook: what ran, and each of its lesson's exercises."""

    path: str
    lesson: str | None
    results: list[ExerciseResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line each: not JSON, kernel died, timeouts...
    seconds: float = 0.0
    readable: bool = True  # False: not a notebook (not JSON, cut off, unreadable file)


@dataclass
class LearnerReport:
    name: str
    notebooks: list[NotebookReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # missing lessons, notebooks that were skipped

    def results(self) -> dict[tuple[str, str], ExerciseResult]:
        return {(r.lesson, r.exercise): r for nb in self.notebooks for r in nb.results}


# --------------------------------------------------------------------------- lessons and notebooks

def check_calls(source: str) -> list[str]:
    """The checks a cell calls (``check.NAME(``), in order, ignoring commented-out lines."""
    names = []
    for line in source.splitlines():
        code = line.split("#", 1)[0]
        names += CHECK_CALL.findall(code)
    return names


def lessons(root: Path = ROOT) -> dict[str, Lesson]:
    """Every lesson with exercises, from ``root/solutions``: ``{"05": Lesson(...)}``."""
    import nbformat

    out = {}
    for path in sorted((root / "solutions").glob("*.ipynb")):
        m = LESSON_NAME.match(path.name)
        if not m:
            continue
        nb = nbformat.read(path, as_version=4)
        checks = [name for c in nb.cells if c.cell_type == "code" for name in check_calls(c.source)]
        out[m[1]] = Lesson(m[1], path.name, list(dict.fromkeys(checks)))
    return out


def identify_lesson(path: Path, nb, known: dict[str, Lesson]) -> str | None:
    """The lesson of a notebook: from its name (``05_...``), else from the checks it calls."""
    m = LESSON_NAME.match(path.name)
    if m and m[1] in known:
        return m[1]
    if nb is None:
        return None
    called = {n for c in nb.cells if c.cell_type == "code" for n in check_calls(c.source)}
    best = max(known.values(), key=lambda les: len(called & set(les.checks)), default=None)
    return best.number if best is not None and called & set(best.checks) else None


def _has_placeholder(source: str) -> bool:
    return any(line.strip() == PLACEHOLDER_RAISE for line in source.splitlines())


def _first_line(source: str) -> str:
    line = next((s.strip() for s in source.splitlines() if s.strip() and not s.strip().startswith("#")), "")
    return line if len(line) <= 60 else line[:57] + "..."


def _where(nb, i: int) -> str:
    first = _first_line(nb.cells[i].source)
    return f"cell {i + 1}" + (f" (`{first}`)" if first else "")


def _short(text: str, n: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _cell_error(cell) -> tuple[str, str] | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return out.get("ename", "Error"), out.get("evalue", "")
    return None


def _cell_stdout(cell) -> str:
    return "".join(out.get("text", "") for out in cell.get("outputs", [])
                   if out.get("output_type") == "stream" and out.get("name") == "stdout")


# --------------------------------------------------------------------------- what each exercise is

def classify(nb, lesson: Lesson, ran: dict[int, dict], stopped: tuple[int, str] | None = None,
             timeout: float | None = None) -> list[ExerciseResult]:
    """Each exercise of ``lesson`` in an executed notebook ``nb``.

    ``ran`` maps the index of every executed code cell to its execute reply's content (``status``,
    ``ename``); a cell missing from it was not run. ``stopped`` is ``(cell index, why)`` when the
    run ended early (the kernel died). Placeholders are looked for in the cells of the exercise:
    after the previous check cell, up to and including its own.
    """
    where_check = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            for name in check_calls(cell.source):
                where_check.setdefault(name, i)
    order = sorted((i, name) for name, i in where_check.items())
    start_of = {}
    prev = -1
    for i, name in order:
        start_of[name] = prev + 1
        prev = i
    results = []
    for name in lesson.checks:
        def result(status, detail="", _name=name):
            results.append(ExerciseResult(lesson.number, _name, status, detail))

        if name not in where_check:
            result(ERROR, f"the check cell `check.{name}(...)` is not in the notebook (deleted or commented out); "
                          f"copy it back from a clean notebook")
            continue
        c = where_check[name]
        region = range(start_of[name], c + 1)
        cell = nb.cells[c]
        passes = parse_passes(_cell_stdout(cell))
        err = _cell_error(cell)
        if c in ran and (name in passes or (passes and err is None and len(check_calls(cell.source)) == 1)):
            result(PASSED, f"{passes.get(name, next(iter(passes.values())))} checks")
            continue
        if any(nb.cells[i].cell_type == "code" and _has_placeholder(nb.cells[i].source) for i in region):
            result(NOT_ATTEMPTED, f"`{PLACEHOLDER_RAISE}` is still in the exercise")
            continue
        timed_out = [i for i in region if ran.get(i, {}).get("ename") == TIMEOUT_ENAME]
        if timed_out:
            limit = f"the {timeout:g} s limit" if timeout else "the time limit"
            result(ERROR, f"{_where(nb, timed_out[0])} ran past {limit} and was stopped (an endless loop?)")
            continue
        if stopped is not None and stopped[0] <= c:
            i, why = stopped
            result(ERROR, f"{why} in {_where(nb, i)}" if i in region else f"not run: {why} in {_where(nb, i)}")
            continue
        if c not in ran:
            result(ERROR, "the check cell was not run")
            continue
        if err is not None and err[0] == "CheckFailed":
            parsed = parse_failure(err[1])
            result(FAILED, _short(parsed[1] if parsed else err[1]))
            continue
        earlier = [i for i in range(c) if i in ran and ran[i].get("status") == "error"]
        in_region = [i for i in earlier if i in region]
        first = in_region[0] if in_region else (earlier[0] if earlier else None)
        if first is not None:
            ename, evalue = _cell_error(nb.cells[first]) or (ran[first].get("ename", "Error"), ran[first].get("evalue", ""))
            result(ERROR, _short(f"{ename} in {_where(nb, first)}: {evalue}"))
        elif err is not None:
            result(ERROR, _short(f"{err[0]} in the check cell, {_where(nb, c)}: {err[1]}"))
        else:
            result(ERROR, "the check cell ran but printed no result (was its output cleared or printing redirected?)")
    return results


# --------------------------------------------------------------------------- running a notebook

def _kernel_manager(sandbox_dirs: list[Path] | None = None, limits: Limits | None = None):
    """A kernel of this Python (the one that has minigpt), whatever kernels Jupyter has registered.

    With ``sandbox_dirs`` (the folders it may write: the first also holds its connection files), the
    kernel starts in the sandbox of :mod:`minigpt.sandbox` with ``limits``.
    """
    import ipykernel.kernelspec as ks
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    spec = ks.get_kernel_dict()
    if sandbox_dirs is not None:
        spec["argv"] = sandbox.wrap(spec["argv"], sandbox_dirs, limits or Limits())

    class ThisPython(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            return self.kernel_spec_class(resource_dir=ks.RESOURCES, **spec)

    km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=ThisPython())
    km.sandbox_argv = spec["argv"]  # for sandbox.release once the kernel is gone
    if sandbox_dirs is None:
        return km
    kernel_dir = Path(sandbox_dirs[0])
    km.connection_file = str(kernel_dir / "kernel.json")
    if sandbox.namespaces_available():  # no network inside: talk over Unix sockets in a folder it may write
        km.transport, km.ip = "ipc", str(kernel_dir / "kernel")
    return km


def kernel_env(runs: Path, home: Path | None = None) -> dict[str, str]:
    """The kernel's environment: FAST mode, training runs in a scratch folder (never the learner's), and
    with ``home``, ``HOME`` and ``TMPDIR`` in the throw-away copy (the data is still read from your cache)."""
    env = dict(os.environ)
    env.update(MINIGPT_FAST="1", MINIGPT_RUNS_DIR=str(runs), MPLBACKEND="Agg", TQDM_DISABLE="1")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle threads sleep: kernels share the CPU with us
    if home is not None:
        if not env.get("MINIGPT_DATA_DIR") and cache_dir().is_dir():
            env["MINIGPT_DATA_DIR"] = str(cache_dir())  # the learner's HOME moves; the data stays where it is
        hf_cache = Path(os.path.expanduser("~")) / ".cache" / "huggingface"
        if not env.get("HF_HOME") and hf_cache.is_dir():
            env["HF_HOME"] = str(hf_cache)  # models already downloaded are read from there
        if sandbox.namespaces_available():
            env["HF_HUB_OFFLINE"] = "1"  # no network in the sandbox: do not wait for the Hub
        tmp = Path(home) / "tmp"
        tmp.mkdir(exist_ok=True)
        env.update(HOME=str(home), TMPDIR=str(tmp), TMP=str(tmp), TEMP=str(tmp))
        for name in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "MPLCONFIGDIR", "IPYTHONDIR"):
            env.pop(name, None)  # each would point outside the copy; under HOME they land in it
    return env


def edition_env(nb, env: dict[str, str]) -> dict[str, str]:
    """``{"MINIGPT_LANG": "zh"}`` for a notebook of the Chinese edition (its metadata says so) when the
    environment does not choose a language: its copy runs outside ``zh/``, and its hints stay Chinese."""
    meta = nb.get("metadata", {}).get("minigpt_edition", {}) if isinstance(nb, dict) else {}
    language = str(meta.get("language", "")) if isinstance(meta, dict) else ""
    return {"MINIGPT_LANG": "zh"} if language.startswith("zh") and not env.get("MINIGPT_LANG") else {}


def execute(nb, workdir: Path, env: dict[str, str], timeout: float = 60.0, startup_timeout: float = 120.0,
            sandbox_dirs: list[Path] | None = None, limits: Limits | None = None,
            ) -> tuple[dict[int, dict], tuple[int, str] | None, list[str]]:
    """Run every code cell of ``nb`` (changed in place: outputs) in a fresh kernel in ``workdir``.

    With ``sandbox_dirs``, the kernel runs in the sandbox (:mod:`minigpt.sandbox`): only those folders
    are writable, no network, ``limits`` on memory, CPU time, file size and processes.

    Errors do not stop the run; a cell past ``timeout`` seconds is interrupted and the run goes on;
    when two cells in a row time out (the kernel does not respond) or the kernel dies, the run stops.
    Returns the replies of the cells that ran, ``(cell index, why)`` when it stopped early, and one
    line per problem.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    ran: dict[int, dict] = {}
    problems: list[str] = []

    def on_executed(cell, cell_index, execute_reply):
        content = (execute_reply or {}).get("content", {})
        ran[cell_index] = {"status": content.get("status", "ok"), "ename": content.get("ename"),
                           "evalue": content.get("evalue", "")}

    km = _kernel_manager(sandbox_dirs, limits)
    client = NotebookClient(
        nb, km=km, log=_QUIET, timeout=timeout, startup_timeout=startup_timeout, allow_errors=True,
        interrupt_on_timeout=True, record_timing=False, on_cell_executed=on_executed,
        error_on_timeout={"ename": TIMEOUT_ENAME, "evalue": f"cell ran longer than {timeout:g} s", "traceback": []},
        resources={"metadata": {"path": str(workdir)}},
    )
    stopped = None
    try:
        # the kernel's own log lines (e.g. a warning about TCP transport) would be noise in the report
        with client.setup_kernel(env=env, cleanup_kc=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
            timeouts_in_a_row = 0
            for i, cell in enumerate(nb.cells):
                if cell.cell_type != "code" or not cell.source.strip():
                    continue
                try:
                    client.execute_cell(cell, i)
                except DeadKernelError:
                    stopped = (i, "the kernel died (out of memory, or the code ended the process)")
                    break
                except CellTimeoutError:  # the interrupt did not free the kernel
                    ran[i] = {"status": "error", "ename": TIMEOUT_ENAME, "evalue": ""}
                if ran.get(i, {}).get("ename") == TIMEOUT_ENAME:
                    problems.append(f"{_where(nb, i)} ran past the {timeout:g} s limit and was interrupted")
                    timeouts_in_a_row += 1
                    if timeouts_in_a_row >= 2:
                        stopped = (i, "the kernel stopped responding after a time-out")
                        break
                else:
                    timeouts_in_a_row = 0
    except DeadKernelError:
        stopped = stopped or (0, "the kernel died")
    except Exception as e:  # the kernel did not start, or the connection to it broke: report, go on
        stopped = (max(ran, default=0), f"the kernel failed ({type(e).__name__}: {_short(e, 120)})")
    finally:
        sandbox.release(km.sandbox_argv)
    if stopped is not None:
        problems.append(f"{stopped[1]} in {_where(nb, stopped[0])}; later cells were not run"
                        if nb.cells else stopped[1])
    return ran, stopped, problems


def check_notebook(path: Path, known: dict[str, Lesson], runs: Path, timeout: float = 60.0,
                   lesson: str | None = None, limits: Limits | None = None,
                   sandboxed: bool = True) -> NotebookReport:
    """Execute a copy of the notebook at ``path`` and classify its lesson's exercises.

    The copy runs in the sandbox (``sandboxed``): its folder is the kernel's HOME and TMPDIR, and it
    and ``runs`` are the only folders it may write (see :mod:`minigpt.sandbox`)."""
    import nbformat

    t0 = time.perf_counter()
    report = NotebookReport(path=str(path), lesson=lesson)
    try:
        text = Path(path).read_text(encoding="utf-8")
        with warnings.catch_warnings():  # an older notebook format is fine; nbformat upgrades it
            warnings.simplefilter("ignore")
            nb = nbformat.reads(text, as_version=4)
        if not isinstance(nb.get("cells"), list):
            raise ValueError("it has no list of cells")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, AttributeError, TypeError) as e:
        why = ("not valid JSON" if isinstance(e, ValueError) and "JSON" in type(e).__name__ + str(e)
               else _short(e, 120) if not isinstance(e, OSError) else (e.strerror or type(e).__name__))
        number = lesson or identify_lesson(Path(path), None, known)
        fix = f"; get a clean copy with `python -m minigpt exercises reset {number}`" if number else ""
        report.readable = False
        report.problems.append(f"{path}: cannot be read as a notebook ({why}){fix}")
        if number:
            report.lesson = number
            report.results = [ExerciseResult(number, name, ERROR, "the notebook cannot be read")
                              for name in known[number].checks]
        report.seconds = time.perf_counter() - t0
        return report
    number = lesson or identify_lesson(Path(path), nb, known)
    if number is None:
        report.problems.append(f"{path}: no lesson with exercises matches it (name it NN_slug.ipynb, like "
                               "the notebooks in exercises/); skipped")
        return report
    report.lesson = number
    with tempfile.TemporaryDirectory(prefix="minigpt-progress-") as tmp:
        copy = Path(tmp) / Path(path).name
        copy.write_text(text, encoding="utf-8")  # the kernel works beside a copy, never beside the original
        env = kernel_env(runs, home=Path(tmp)) if sandboxed else kernel_env(runs)
        env.update(edition_env(nb, env))
        if sandboxed:
            ran, stopped, problems = execute(nb, Path(tmp), env, timeout=timeout,
                                             sandbox_dirs=[Path(tmp), Path(runs)], limits=limits)
        else:
            ran, stopped, problems = execute(nb, Path(tmp), env, timeout=timeout)
    report.problems += [f"{path}: {p}" for p in problems]
    report.results = classify(nb, known[number], ran, stopped, timeout)
    report.seconds = time.perf_counter() - t0
    return report


# --------------------------------------------------------------------------- learners and classes

def _notebooks_in(folder: Path) -> list[Path]:
    """Notebooks under ``folder``, skipping hidden folders (``.ipynb_checkpoints``) and ``backups``."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "backups")
        out += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(".ipynb") and not f.startswith(".")]
    return out


def _subfolders_with_notebooks(folder: Path) -> list[Path]:
    return [d for d in sorted(folder.iterdir())
            if d.is_dir() and not d.name.startswith(".") and d.name != "backups" and _notebooks_in(d)]


def gather(paths: list[Path], known: dict[str, Lesson], as_class: bool = False) -> dict[str, list[Path]]:
    """Learners and their notebooks from the command line's paths.

    A notebook is one learner's. A folder is one learner's notebooks, unless it is a class: ``as_class``,
    or it has subfolders with notebooks (one per learner), or its notebooks repeat a lesson (one notebook
    per learner, named after them).
    """
    learners: dict[str, list[Path]] = {}

    def add(name, nbs):
        base, n = name, 1
        while name in learners:
            n += 1
            name = f"{base}-{n}"
        learners[name] = nbs

    for p in paths:
        p = Path(p)
        if not p.exists():
            raise FileNotFoundError(f"no such notebook or folder: {p}")
        if p.is_file():
            if p.suffix != ".ipynb":
                raise ValueError(f"{p} is not a notebook (.ipynb)")
            add(p.parent.resolve().name or "learner", [p])
            continue
        subs = _subfolders_with_notebooks(p)
        top = [q for q in sorted(p.glob("*.ipynb")) if not q.name.startswith(".")]
        numbers = [LESSON_NAME.match(q.name)[1] for q in top if LESSON_NAME.match(q.name)]
        repeated = len(numbers) != len(set(numbers)) or (top and not numbers and len(top) > 1)
        if as_class or subs or repeated:
            for d in subs:
                add(d.name, _notebooks_in(d))
            for q in top:
                add(q.stem, [q])
        else:
            add(p.resolve().name, _notebooks_in(p))
    return learners


def _pick_per_lesson(name: str, notebooks: list[Path], known: dict[str, Lesson]) -> tuple[dict, list[str]]:
    """One notebook per lesson for a learner: the one named like the lesson, else the newest."""
    import nbformat

    by_lesson: dict[str | None, list[Path]] = {}
    for p in notebooks:
        number = identify_lesson(p, None, known)
        if number is None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    number = identify_lesson(p, nbformat.read(p, as_version=4), known)
            except Exception:  # unreadable: check_notebook reports it
                number = None
        by_lesson.setdefault(number, []).append(p)
    chosen, notes = {}, []
    for number, ps in by_lesson.items():
        if number is None:
            chosen.update({f"?{i}": p for i, p in enumerate(ps)})
            continue
        canonical = [p for p in ps if p.name == known[number].filename]
        best = canonical[0] if canonical else max(ps, key=lambda p: p.stat().st_mtime)
        chosen[number] = best
        notes += [f"{name}: {p} ignored, {best.name} is the notebook for lesson {number}" for p in ps if p != best]
    return chosen, notes


def run_progress(paths: list[Path] | None = None, *, as_class: bool = False, only: list[str] | None = None,
                 timeout: float = 60.0, root: Path = ROOT, echo=None, limits: Limits | None = None,
                 sandboxed: bool = True) -> list[LearnerReport]:
    """Execute and classify every learner's notebooks; ``echo`` gets one line per notebook as it goes
    (and first, a line that says their code will run, and how it is contained: :func:`sandbox.describe`).
    Each kernel runs in the sandbox of :mod:`minigpt.sandbox` with ``limits`` unless ``sandboxed`` is False."""
    known = lessons(root)
    if not known:
        raise FileNotFoundError(f"no lesson notebooks in {root / 'solutions'}")
    if only:
        bad = [n for n in only if n not in known]
        if bad:
            raise ValueError(f"no lesson {', '.join(bad)} with exercises; lessons with exercises: {', '.join(known)}")
    learners = gather(paths or [root / "exercises"], known, as_class)
    if not learners:
        raise FileNotFoundError("no notebooks found in " + ", ".join(map(str, paths or [root / "exercises"])))
    picked = {}
    notes: dict[str, list[str]] = {}
    for name, nbs in learners.items():
        picked[name], notes[name] = _pick_per_lesson(name, nbs, known)
    expected = only or sorted({n for ch in picked.values() for n in ch if not n.startswith("?")})
    if echo:
        echo(sandbox.describe() if sandboxed else
             "note: the notebooks' code will run on this machine as you, with no sandbox (sandboxed=False)")
    reports = []
    with tempfile.TemporaryDirectory(prefix="minigpt-progress-runs-") as runs:
        for name, chosen in picked.items():
            learner = LearnerReport(name, problems=list(notes[name]))
            for number, path in sorted(chosen.items()):
                if only and number not in only and not number.startswith("?"):
                    continue
                nb_report = check_notebook(path, known, Path(runs), timeout,
                                           None if number.startswith("?") else number, limits, sandboxed)
                learner.notebooks.append(nb_report)
                learner.problems += nb_report.problems
                if echo:
                    passed = sum(r.status == PASSED for r in nb_report.results)
                    done = (f"{passed} of {len(nb_report.results)} exercises passed" if nb_report.lesson
                            else "skipped (see the problems below)")
                    echo(f"{name}: {path} ({nb_report.seconds:.0f} s): {done}")
            have = {nb.lesson for nb in learner.notebooks}
            # a notebook that cannot be read and is not named after its lesson may be the one "missing"
            unreadable = [nb.path for nb in learner.notebooks if nb.lesson is None and not nb.readable]
            for number in expected:
                if number in have:
                    continue
                if unreadable:
                    status, detail = ERROR, f"no readable notebook for this lesson ({', '.join(unreadable)} cannot be read)"
                else:
                    status, detail = MISSING, "no notebook"
                    learner.problems.append(f"{name}: lesson {number} is missing (no {known[number].filename})")
                learner.notebooks.append(NotebookReport(path="", lesson=number, results=[
                    ExerciseResult(number, c, status, detail) for c in known[number].checks]))
            learner.notebooks.sort(key=lambda r: r.lesson or "")
            reports.append(learner)
    return reports


# --------------------------------------------------------------------------- reports

def exercise_columns(reports: list[LearnerReport]) -> list[tuple[str, str]]:
    cols = []
    for learner in reports:
        for key in learner.results():
            if key not in cols:
                cols.append(key)
    return sorted(cols, key=lambda k: k[0])  # stable: each lesson's exercises keep their order


def pass_rates(reports: list[LearnerReport]) -> dict[tuple[str, str], tuple[int, int]]:
    """``{(lesson, exercise): (learners who passed, learners)}``."""
    cols = exercise_columns(reports)
    return {k: (sum(1 for r in reports if r.results().get(k) and r.results()[k].status == PASSED), len(reports))
            for k in cols}


def table_rows(reports: list[LearnerReport], words: bool) -> tuple[list[str], list[list[str]]]:
    cols = exercise_columns(reports)
    header = ["learner"] + [f"{lesson} {name}" for lesson, name in cols] + ["passed"]
    rows = []
    for r in reports:
        res = r.results()
        cells = [(res[k].status if words else SYMBOL[res[k].status]) if k in res else "" for k in cols]
        rows.append([r.name] + cells + [f"{sum(res[k].status == PASSED for k in cols if k in res)}/{len(cols)}"])
    rates = pass_rates(reports)
    rows.append(["pass rate"] + [f"{p}/{n} ({100 * p / n:.0f}%)" if n else "" for p, n in rates.values()] + [""])
    return header, rows


def markdown_table(reports: list[LearnerReport]) -> str:
    header, rows = table_rows(reports, words=False)
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    legend = ", ".join(f"{sym} {status}" for status, sym in SYMBOL.items())
    return "\n".join(lines) + f"\n\n{legend}\n"


def csv_table(reports: list[LearnerReport]) -> str:
    header, rows = table_rows(reports, words=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def learner_text(learner: LearnerReport) -> str:
    lines = []
    for nb in learner.notebooks:
        if nb.lesson is None:
            continue
        if not nb.path:
            status = nb.results[0].status if nb.results else MISSING
            lines.append(f"lesson {nb.lesson} · {SYMBOL[status]} {status}: {nb.results[0].detail if nb.results else ''}")
            continue
        lines.append(f"lesson {nb.lesson} · {nb.path}")
        width = max((len(r.exercise) for r in nb.results), default=0)
        for r in nb.results:
            detail = f": {r.detail}" if r.detail and r.status != PASSED else ""
            lines.append(f"  {SYMBOL[r.status]} {r.exercise:<{width}}  {r.status}{detail}")
    return "\n".join(lines)


def stuck(reports: list[LearnerReport], most: int = 3) -> list[str]:
    """The exercises fewest learners passed, as lines for the instructor."""
    rates = sorted(pass_rates(reports).items(), key=lambda kv: kv[1][0] / max(kv[1][1], 1))
    return [f"{lesson} {name}: {p} of {n} passed" for (lesson, name), (p, n) in rates[:most] if p < n]


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None
