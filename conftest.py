"""Test-suite wiring: FAST mode for every notebook, and a record of which notebooks ran.

Notebook kernels inherit this process's environment, so setting ``MINIGPT_FAST=1`` here makes
every lesson run small. Each notebook's ``fast_mode()`` call appends a line to the file named by
``MINIGPT_FAST_LOG``; ``tests/test_zz_harness.py`` reads it at the end of the session.

With pytest-xdist (``make test`` runs two workers, ``--dist loadscope`` so each notebook's cells stay
in order on one worker), the sentinels cannot run last inside the same session: ``make test`` runs
them in a second, short session that reads the same two logs (``MINIGPT_FAST_LOG`` and
``MINIGPT_COLLECTED_LOG``, the notebooks the first session collected).
"""

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
NOTEBOOK_DIRS = ("notebooks", "solutions")

os.environ["MINIGPT_FAST"] = "1"
# Idle OpenMP threads sleep instead of spinning: with a notebook kernel, DDP workers or other jobs
# sharing 2 cores, spinning threads slowed training ~40x here (1,249 ms vs 29 ms a step).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")
shared = ROOT.parent / "shared" / "data"
if "MINIGPT_DATA_DIR" not in os.environ and shared.is_dir():
    os.environ["MINIGPT_DATA_DIR"] = str(shared)


def pytest_configure(config):
    # One log file per test session; notebook kernels inherit its name through the environment.
    if "MINIGPT_FAST_LOG" not in os.environ:
        fd, name = tempfile.mkstemp(prefix="minigpt-fast-", suffix=".log")
        os.close(fd)
        os.environ["MINIGPT_FAST_LOG"] = name
    if "MINIGPT_COLLECTED_LOG" not in os.environ:
        fd, name = tempfile.mkstemp(prefix="minigpt-collected-", suffix=".log")
        os.close(fd)
        os.environ["MINIGPT_COLLECTED_LOG"] = name
    # Training runs of the lessons (minigpt.utils.runs_dir) go to a folder of this session, so the
    # suite never reads or writes a learner's runs/ and starts from nothing on every machine.
    if "MINIGPT_RUNS_DIR" not in os.environ:
        os.environ["MINIGPT_RUNS_DIR"] = tempfile.mkdtemp(prefix="minigpt-runs-")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and not os.environ.get("MINIGPT_RUNS_WORKER"):
        # One runs folder per xdist worker: each trains its own FAST course model, so no test waits
        # on (or reads half of) another worker's run.
        os.environ["MINIGPT_RUNS_WORKER"] = worker
        os.environ["MINIGPT_RUNS_DIR"] = str(Path(os.environ["MINIGPT_RUNS_DIR"]) / worker)


def pytest_collection_modifyitems(session, config, items):
    """Run the harness sentinels last, after every notebook has had its chance to run."""
    last = [i for i in items if "test_zz_harness" in str(i.fspath)]
    rest = [i for i in items if "test_zz_harness" not in str(i.fspath)]
    items[:] = rest + last
    config._minigpt_notebooks = sorted(
        {Path(str(i.fspath)).resolve() for i in items if str(i.fspath).endswith(".ipynb")}
    )
    if config._minigpt_notebooks:  # every xdist worker collects the same list; appending is harmless
        with open(os.environ["MINIGPT_COLLECTED_LOG"], "a", encoding="utf-8") as f:
            f.writelines(f"{p}\n" for p in config._minigpt_notebooks)


@pytest.fixture
def collected_notebooks(request):
    """The notebooks this session collected, and those an earlier session of the same run logged."""
    log = Path(os.environ["MINIGPT_COLLECTED_LOG"])
    logged = {Path(line) for line in log.read_text(encoding="utf-8").splitlines() if line} if log.exists() else set()
    return sorted(set(request.config._minigpt_notebooks) | logged)
