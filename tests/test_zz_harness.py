"""Sentinels, run last (see conftest.py): every notebook was collected, and every one ran in FAST mode.

Under pytest-xdist they run in a second session after the first (``make test``), reading its logs.

``make test`` sets MINIGPT_REQUIRE_ALL_NOTEBOOKS=1: then a notebook under notebooks/ or solutions/
that pytest did not collect is a failure, so none can be left out of CI by accident.
"""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIRS = ("notebooks", "solutions")


def _all_notebooks() -> list[Path]:
    return sorted(p.resolve() for d in NOTEBOOK_DIRS for p in (ROOT / d).glob("*.ipynb"))


def test_every_notebook_was_collected(collected_notebooks):
    if os.environ.get("MINIGPT_REQUIRE_ALL_NOTEBOOKS") == "1":
        missing = sorted(set(_all_notebooks()) - set(collected_notebooks))
        assert not missing, f"notebooks not collected by pytest: {[str(p.relative_to(ROOT)) for p in missing]}"
        assert len(collected_notebooks) >= 1
    # Whatever was collected must be one of the course's notebooks, not a stray checkpoint copy.
    assert all(".ipynb_checkpoints" not in str(p) for p in collected_notebooks)


def test_every_notebook_ran_in_fast_mode(collected_notebooks):
    log = Path(os.environ["MINIGPT_FAST_LOG"])
    lines = log.read_text().splitlines() if log.exists() else []
    # Lines of notebook kernels only (kernel=1): library tests may call fast_mode() in their own process.
    kernel_lines = [line for line in lines if "kernel=1" in line.split()]
    kernels = {line.split()[1] for line in kernel_lines}
    slow = [line for line in kernel_lines if line.startswith("fast=0")]
    assert not slow, f"{len(slow)} notebook kernel(s) ran at full size in the test suite: {slow}"
    # Each notebook runs in its own kernel and calls fast_mode() once in its parameters cell.
    assert len(kernels) >= len(collected_notebooks), (
        f"{len(collected_notebooks)} notebooks collected but only {len(kernels)} kernels reported FAST mode; "
        "does every notebook call minigpt.utils.fast_mode() in its parameters cell?"
    )
