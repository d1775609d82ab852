"""Fixtures shared by the package tests (the suite-wide wiring is in the top-level conftest.py)."""

import functools
import http.server
import os
import random
import threading
import urllib.parse

import pytest
import torch

from minigpt.data import shakespeare_split


@pytest.fixture
def file_server():
    """Start local HTTP servers on 127.0.0.1: ``start(files, respond=None)`` serves ``files`` (a dict from
    path without the leading slash to bytes, read at request time so a test may change it) and returns
    ``(base_url, hits)``, ``hits`` the unquoted paths asked for. ``respond(handler, path)`` may answer a
    request itself (return True), e.g. to cut a transfer off. Unknown paths get 404."""
    servers = []

    def start(files, respond=None):
        hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = urllib.parse.unquote(self.path).lstrip("/")
                hits.append(path)
                if respond is not None and respond(self, path):
                    return
                body = files.get(path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}", hits

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


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


# --------------------------------------------------------------------------- the exercise checks' draws
# Every check draws its inputs afresh (checks._core.fresh_generator). In tests/test_checks_*.py each draw
# is seeded from this session's seed, the test and the draw's number, so a failing draw can be replayed:
# the seed is printed with the failure. `--check-draws N` (or MINIGPT_CHECK_DRAWS) runs each check test
# on N draws (`make test-checks-stress`: 50); then the repeats of a test (its "attempt" parameter) are
# folded into those draws.

def pytest_addoption(parser):
    parser.addoption("--check-draws", type=int, default=int(os.environ.get("MINIGPT_CHECK_DRAWS", "1")),
                     help="draws of fresh inputs for each exercise check test (default 1, or MINIGPT_CHECK_DRAWS)")
    parser.addoption("--check-seed", default=os.environ.get("MINIGPT_CHECK_SEED"),
                     help="the seed of the checks' draws (default: a new one per run, or MINIGPT_CHECK_SEED)")


def _with_draws(fn, nodeid, seed, draws):
    from minigpt.checks import _core

    @functools.wraps(fn)
    def run(*args, **kwargs):
        for draw in range(draws):
            key = f"{seed}/{nodeid}/{draw}"
            _core.repeatable_draws(key)
            torch.manual_seed(random.Random(key).randrange(2**31))  # a check's own unseeded draws too
            try:
                fn(*args, **kwargs)
            except BaseException as e:
                replay = (f"check draw {draw + 1} of {draws} failed; replay it with "
                          f"--check-seed={seed} --check-draws={draws} {nodeid!r}")
                print(replay)
                if hasattr(e, "add_note"):
                    e.add_note(replay)
                raise
            finally:
                _core.repeatable_draws(None)

    return run


def pytest_configure(config):
    seed = config.getoption("--check-seed", default=os.environ.get("MINIGPT_CHECK_SEED"))
    config._minigpt_check_seed = seed or str(random.SystemRandom().randrange(10**9))


def pytest_collection_modifyitems(session, config, items):
    draws = max(1, int(config.getoption("--check-draws", default=os.environ.get("MINIGPT_CHECK_DRAWS", "1"))))
    seed = getattr(config, "_minigpt_check_seed", None) or os.environ.get("MINIGPT_CHECK_SEED", "0")
    checks = [i for i in items if os.path.basename(str(i.fspath)).startswith("test_checks_")]
    if draws > 1:  # the repeats of a test become its draws
        repeats = [i for i in checks if getattr(i, "callspec", None) and i.callspec.params.get("attempt", 0) != 0]
        if repeats:
            config.hook.pytest_deselected(items=repeats)
            dropped = set(map(id, repeats))
            items[:] = [i for i in items if id(i) not in dropped]
            checks = [i for i in checks if id(i) not in dropped]
    for item in checks:
        if hasattr(item, "obj"):
            item.obj = _with_draws(item.obj, item.nodeid, seed, draws)


def pytest_report_header(config):
    seed = getattr(config, "_minigpt_check_seed", None)
    return f"exercise checks: draws seeded by {seed} (--check-seed)" if seed else None
