"""Fixtures shared by the package tests (the suite-wide wiring is in the top-level conftest.py)."""

import pytest
import torch

from minigpt.data import shakespeare_split


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread; two threads on a busy 2-core machine wait on each other."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def text():
    """A small slice of the course's Tiny Shakespeare split, enough for a few training steps."""
    sp = shakespeare_split()
    return {"train": sp["train"][:60_000], "val": sp["val"][:6_000]}
