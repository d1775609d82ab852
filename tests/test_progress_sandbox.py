"""The sandbox ``progress`` runs learners' notebooks in: misbehaving notebooks are stopped or contained.

Each test runs a real kernel through :func:`minigpt.progress.execute` with small limits, so every
misbehaviour ends in a few seconds. Where this machine has no namespaces (``sandbox.namespaces_available()``
is False), the network and the filesystem are open: the tests then check that the start line says so.
"""

import hashlib
import os
import socket
import threading
import time

import nbformat
import pytest

from minigpt import exercises, progress, sandbox
from minigpt.progress import PASSED
from minigpt.sandbox import Limits

TIMEOUT = 10  # seconds a cell may run
SMALL = Limits(memory_mb=1024, cpu_seconds=60, file_mb=8, processes=64)
CONTAINED = sandbox.namespaces_available()


def tree_digest(folder):
    """Every file under ``folder`` with its contents' hash: equal digests, unchanged files."""
    out = {}
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            p = os.path.join(dirpath, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, folder)] = hashlib.sha256(f.read()).hexdigest()
    return out


@pytest.fixture
def instructor(tmp_path, monkeypatch):
    """The instructor's files: a folder with a grade sheet, and a HOME with a .bashrc."""
    mine = tmp_path / "instructor"
    mine.mkdir()
    (mine / "grades.csv").write_text("learner,score\nann,10\n")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("# mine\n")
    monkeypatch.setenv("HOME", str(home))
    return mine, home


def run_cells(tmp_path, sources, limits=SMALL, timeout=TIMEOUT):
    """Run ``sources`` as a notebook in the sandbox, as ``check_notebook`` does; the cells, their replies."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    work, runs = tmp_path / "copy", tmp_path / "runs"
    work.mkdir()
    runs.mkdir()
    t0 = time.perf_counter()
    ran, stopped, problems = progress.execute(nb, work, progress.kernel_env(runs, home=work), timeout=timeout,
                                              sandbox_dirs=[work, runs], limits=limits)
    assert time.perf_counter() - t0 < 60, "a misbehaving notebook must be stopped quickly"
    return nb, ran, stopped, work


def stdout(cell):
    return progress._cell_stdout(cell)


def test_writes_outside_the_copy_are_refused_and_home_is_the_copy(tmp_path, instructor):
    mine, home = instructor
    before = (tree_digest(mine), tree_digest(home))
    targets = [mine / "grades.csv", mine / "new.txt", "~/.bashrc", "~/new.txt", "here.txt"]
    code = ("import os\nfor t in %r:\n    t = os.path.expanduser(t)\n"
            "    try:\n        open(t, 'a').write('pwned')\n        print('wrote', t)\n"
            "    except OSError as e:\n        print('refused', t, e.strerror)\n") % [str(t) for t in targets]
    nb, ran, stopped, work = run_cells(tmp_path, [code, "import os, tempfile\nprint(os.environ['HOME'], tempfile.gettempdir())"])
    assert stopped is None
    out = stdout(nb.cells[0])
    assert f"wrote {work}/.bashrc" in out and f"wrote {work}/new.txt" in out  # ~ is the throw-away copy
    assert "wrote here.txt" in out and (work / "here.txt").read_text() == "pwned"  # and so is the working folder
    assert (tree_digest(home)) == before[1]  # the instructor's HOME is untouched either way
    assert stdout(nb.cells[1]).split() == [str(work), str(work / "tmp")]
    if CONTAINED:
        assert f"refused {mine}/grades.csv Read-only file system" in out
        assert f"refused {mine}/new.txt Read-only file system" in out
        assert tree_digest(mine) == before[0]
    else:  # only HOME moved: the start line must not promise more
        assert "cannot take away the network or protect your files" in sandbox.describe()


def test_unbounded_allocation_stops_with_memory_error_and_the_kernel_lives(tmp_path):
    nb, ran, stopped, _ = run_cells(tmp_path, ["blocks = []\nwhile True:\n    blocks.append(bytearray(50_000_000))",
                                               "del blocks\nprint('alive')"])
    assert ran[0]["ename"] == "MemoryError"
    assert stopped is None and stdout(nb.cells[1]).strip() == "alive"


def test_unbounded_forking_stops_at_the_process_limit(tmp_path):
    code = ("import os, time\nforked = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
            "            time.sleep(30)\n            os._exit(0)\n        forked += 1\n"
            "finally:\n    print('forked', forked)")
    if not CONTAINED:  # the process limit would count all of this user's processes: it is not set
        assert "limit processes" in sandbox.describe()
        return
    nb, ran, stopped, _ = run_cells(tmp_path, [code, "print('alive')"])
    assert ran[0]["ename"] == "BlockingIOError"  # fork: Resource temporarily unavailable
    forked = int(stdout(nb.cells[0]).split()[-1])
    assert 0 < forked < SMALL.processes
    assert stopped is None and stdout(nb.cells[1]).strip() == "alive"


def test_a_socket_cannot_reach_this_machine(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(15)
    port = server.getsockname()[1]
    accepted = []

    def accept():
        try:
            accepted.append(server.accept()[0])
        except OSError:
            pass

    waiter = threading.Thread(target=accept, daemon=True)
    waiter.start()
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3)\nprint('connected')"
    try:
        nb, ran, stopped, _ = run_cells(tmp_path, [code])
    finally:
        server.close()
        waiter.join(5)
    if CONTAINED:
        assert ran[0]["ename"] in ("OSError", "ConnectionRefusedError", "TimeoutError")
        assert "Network is unreachable" in ran[0]["evalue"]
        assert accepted == [] and "connected" not in stdout(nb.cells[0])
    else:
        assert "cannot take away the network" in sandbox.describe()


def test_cpu_time_and_file_size_limits_stop_the_cell(tmp_path):
    limits = Limits(memory_mb=1024, cpu_seconds=3, file_mb=1, processes=64)
    big = "open('big.bin', 'wb').write(bytes(2_000_000))"
    nb, ran, stopped, work = run_cells(tmp_path, [big, "while True:\n    pass", "print('never')"], limits=limits)
    assert ran[0]["ename"] == "OSError" and "File too large" in ran[0]["evalue"]
    assert (work / "big.bin").stat().st_size <= 2**20
    assert stopped is not None and stopped[0] == 1 and "kernel died" in stopped[1]  # SIGXCPU ends it
    assert 2 not in ran


def test_a_normal_exercise_notebook_still_grades_as_before(tmp_path, instructor):
    known = progress.lessons()
    solution = nbformat.read(exercises.ROOT / "solutions" / known["06"].filename, as_version=4)
    answered = exercises.make_exercise(solution)
    for cell, ref in zip(answered.cells, solution.cells):
        cell.source = ref.source
    path = tmp_path / known["06"].filename
    nbformat.write(answered, path)
    runs = tmp_path / "runs"
    runs.mkdir()
    report = progress.check_notebook(path, known, runs, timeout=30, limits=Limits())
    assert [r.status for r in report.results] == [PASSED] * len(known["06"].checks), report.results
    assert report.problems == []


def test_the_start_line_says_code_will_run_and_points_at_the_container_recipe():
    line = sandbox.describe()
    assert line.startswith("note: the notebooks' code will run on this machine")
    assert "container" in line and "INSTRUCTORS.md" in line and "\n" not in line


def test_an_endless_cell_is_interrupted_and_the_next_one_runs(tmp_path):
    # the time-out interrupts the kernel's process group (unshare and the kernel): only the cell stops
    nb, ran, stopped, _ = run_cells(tmp_path, ["while True:\n    pass", "print('alive')"], timeout=2)
    assert ran[0]["ename"] == progress.TIMEOUT_ENAME
    assert stopped is None and stdout(nb.cells[1]).strip() == "alive"


def test_without_namespaces_the_limits_and_home_still_apply_and_the_line_says_what_is_open(tmp_path, monkeypatch):
    # what a Mac, WSL1 or a Linux without user namespaces gets: the same run, limits only
    monkeypatch.setattr(sandbox, "namespaces_available", lambda: False)
    assert "cannot take away the network, protect your files or limit processes" in sandbox.describe()
    nb, ran, stopped, work = run_cells(tmp_path, ["blocks = []\nwhile True:\n    blocks.append(bytearray(50_000_000))",
                                                  "del blocks\nimport os\nprint(os.environ['HOME'])"])
    assert ran[0]["ename"] == "MemoryError"
    assert stopped is None and stdout(nb.cells[1]).strip() == str(work)
