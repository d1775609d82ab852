"""Fixtures of the browser test: one JupyterLab server for every lesson, one headless Chromium.

The server runs from this virtual environment on 127.0.0.1, a free port and a random token, in a
temporary folder holding a copy of notebooks/ (JupyterLab may autosave what it opens; the committed
lessons are never touched), with its own Jupyter config, data, runtime, settings and workspace
folders, so a learner's ~/.jupyter cannot change what is tested. Its kernels get MINIGPT_FAST=1,
the offline data, a temporary MINIGPT_RUNS_DIR and OMP_WAIT_POLICY=PASSIVE. Server and browser are
shut down whatever happens, and every process started under the server's runtime folder is ended.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from find_chromium import find_chromium

ROOT = Path(__file__).resolve().parent.parent
REPORT: list[str] = []  # lines for the end of pytest's output (timings, then the screenshot folder)
SCREENSHOTS: list[Path] = []

# JupyterLab settings for the test: every cell attached to the page (not only those in view), no news
# or update pop-ups (they would ask a website, and cover part of the screenshots).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                       "checkForUpdates": False},
}
# Set by the test suite's conftest.py for nbval; a learner's kernel has none of them.
NOT_FOR_THE_KERNEL = ("MPLBACKEND", "TQDM_DISABLE", "MINIGPT_FAST_LOG", "MINIGPT_REQUIRE_ALL_NOTEBOOKS",
                      "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_PATH",
                      "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR",
                      "MINIGPT_LANG")  # the language must follow each notebook's edition


def pytest_terminal_summary(terminalreporter):
    if REPORT or SCREENSHOTS:
        terminalreporter.write_sep("-", "browser test")
        for line in REPORT:
            terminalreporter.write_line(line)
        for path in SCREENSHOTS:
            terminalreporter.write_line(f"screenshots and the JupyterLab server's log: {path}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A running ``jupyter lab``: its URL, token, REST calls, and how to stop it and its kernels."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.work = tmp / "work"  # the server's root: work/notebooks/ and work/zh/notebooks/ are the copies
        self.runtime = tmp / "runtime"
        self.log = tmp / "jupyter-server.log"
        self.fast_log = tmp / "fast.log"  # minigpt.utils.fast_mode() appends one line per kernel
        self.token = secrets.token_hex(24)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    # --- start -------------------------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> None:
        for folder in ("notebooks", "zh/notebooks"):  # the lessons, and the Chinese edition's
            if (ROOT / folder).is_dir():
                shutil.copytree(ROOT / folder, self.work / folder,
                                ignore=shutil.ignore_patterns("runs", ".ipynb_checkpoints", "__pycache__"))
        for name, value in LAB_SETTINGS.items():
            path = self.tmp / "lab-settings" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        env = {k: v for k, v in os.environ.items() if k not in NOT_FOR_THE_KERNEL}
        shared = ROOT.parent / "shared" / "data"  # the offline copies beside the checkout
        if not env.get("MINIGPT_DATA_DIR") and shared.is_dir():
            env["MINIGPT_DATA_DIR"] = str(shared.resolve())
        env.update(
            MINIGPT_FAST="1",
            MINIGPT_RUNS_DIR=str(self.tmp / "runs"),
            MINIGPT_FAST_LOG=str(self.fast_log),
            OMP_WAIT_POLICY="PASSIVE",
            PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
            JUPYTER_CONFIG_DIR=str(self.tmp / "config"),
            JUPYTER_DATA_DIR=str(self.tmp / "data"),
            JUPYTER_RUNTIME_DIR=str(self.runtime),
            JUPYTERLAB_SETTINGS_DIR=str(self.tmp / "lab-settings"),
            JUPYTERLAB_WORKSPACES_DIR=str(self.tmp / "workspaces"),
            JUPYTER_PLATFORM_DIRS="1",
        )
        venv_lab = ROOT / ".venv" / "bin" / "jupyter-lab"
        command = [str(venv_lab)] if venv_lab.exists() else [sys.executable, "-m", "jupyterlab"]
        command += [
            "--no-browser", "--allow-root",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.work}",
            "--ServerApp.terminals_enabled=False",
            "--LabApp.extension_manager=readonly",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: the test reads the notebook's model
        ]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(command, cwd=self.work, env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with code {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.api("GET", "/api/status")
                return
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter lab did not answer on {self.url} in {timeout:.0f} s:\n"
                                       f"{self.log_tail()}") from None
                time.sleep(0.5)

    # --- REST ----------------------------------------------------------------------------------------
    def api(self, method: str, path: str, timeout: float = 10.0):
        request = urllib.request.Request(self.url + path, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def lab_url(self, path: str) -> str:
        """The page that opens ``path`` (relative to the server's root) in a fresh workspace."""
        return f"{self.url}/lab/tree/{path}?reset&token={self.token}"

    def kernel_state(self, path: str) -> str | None:
        """The execution state ("idle", "busy", "starting", "dead") of the kernel of notebook ``path``."""
        for session in self.api("GET", "/api/sessions"):
            if session.get("path") == path and session.get("kernel"):
                return session["kernel"].get("execution_state")
        return None

    def fast_lines(self) -> list[str]:
        return self.fast_log.read_text().splitlines() if self.fast_log.exists() else []

    def log_tail(self, n: int = 40) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(lines[-n:])

    # --- stop ------------------------------------------------------------------------------------------
    def shutdown_kernels(self) -> None:
        """Shut every kernel down through the server (a lesson's kernel is not needed after its test)."""
        try:
            for kernel in self.api("GET", "/api/kernels"):
                self.api("DELETE", f"/api/kernels/{kernel['id']}", timeout=30)
        except (OSError, urllib.error.URLError, ValueError):
            pass

    def _our_processes(self) -> list[int]:
        """Processes whose command line names this server's runtime folder: its kernels."""
        pids, marker = [], str(self.runtime).encode()
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                if marker in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
        return pids

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.shutdown_kernels()
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the server shuts its kernels down too
                self.proc.wait(timeout=20)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        # Kernels run in sessions of their own (jupyter_client), so the group kill does not reach them.
        for pid in self._our_processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="session")
def report() -> list[str]:
    """Lines a test adds here are printed at the end of pytest's output."""
    return REPORT


@pytest.fixture(scope="session")
def chromium_path() -> str:
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    path, reason = find_chromium()
    if not path:
        pytest.skip(f"browser test skipped: {reason}")
    return path


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    """MINIGPT_SCREENSHOTS, else a new temporary folder; named at the end of pytest's output."""
    wanted = os.environ.get("MINIGPT_SCREENSHOTS")
    path = Path(wanted).resolve() if wanted else Path(tempfile.mkdtemp(prefix="minigpt-browser-")) / "browser-screenshots"
    path.mkdir(parents=True, exist_ok=True)
    SCREENSHOTS.append(path)
    return path


@pytest.fixture(scope="session")
def lab(chromium_path, screenshot_dir):
    """A JupyterLab server for the whole session (starting one is the slow part of the test)."""
    tmp = Path(tempfile.mkdtemp(prefix="minigpt-lab-"))
    server = Lab(tmp)
    t0 = time.monotonic()
    try:
        server.start()
        REPORT.append(f"jupyter lab answered in {time.monotonic() - t0:.1f} s on {server.url}")
        yield server
    finally:
        server.stop()
        if server.log.exists():
            shutil.copy2(server.log, screenshot_dir / server.log.name)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def browser(chromium_path):
    """Headless Chromium through Playwright, launched from ``chromium_path`` (Playwright never downloads one)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, headless=True)
        REPORT.append(f"browser: {chromium_path} (Chromium {browser.version})")
        try:
            yield browser
        finally:
            browser.close()
