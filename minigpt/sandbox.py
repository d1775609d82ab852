"""A sandbox for the kernels that ``progress`` runs learners' notebooks in.

What it does, where the operating system allows it (Linux with unprivileged user namespaces and
util-linux ``unshare``), before the kernel starts:

- resource limits (memory, CPU time, file size, processes), so an endless allocation or fork
  stops with an error in the learner's cell instead of taking the machine down;
- no network: the kernel lives in a network namespace of its own, with no interface up;
- a read-only view of the whole filesystem, except the throw-away folders given as ``writable``
  (the notebook's copy, its ``HOME`` and ``TMPDIR``, the scratch runs folder) and a private
  ``/dev/shm``; the mounts are locked (a nested user namespace), so the code cannot remount them;
- a process namespace: when the kernel ends, every process it started ends with it.

Not contained: reading files the instructor can read, and CPU and memory use up to the limits.
Untrusted submissions belong in a container (INSTRUCTORS.md). Without namespaces (macOS, Windows,
a Linux that forbids them), only the limits apply, and the network and the filesystem are open.

The part that runs inside the namespaces (lock the mounts, set the limits, start the kernel) is the
launcher :mod:`minigpt.commands.sandbox_launcher`, run by path so that it imports nothing from minigpt:
``python sandbox_launcher.py --writable DIR ... --memory-mb N ... -- KERNEL COMMAND``.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

CGROUP_BASES = ("/sys/fs/cgroup", "/sys/fs/cgroup/pids")  # cgroup v2, then v1's pids hierarchy (as the launcher)
# the launcher is a command, run as its own process by path (a file, not an import)
LAUNCHER = Path(__file__).resolve().parent / "commands" / "sandbox_launcher.py"


@dataclass
class Limits:
    """Resource limits for one kernel; None leaves a limit as it is."""

    memory_mb: int | None = 4096  # RLIMIT_DATA: the heap and anonymous mappings (what malloc and torch use)
    cpu_seconds: int | None = 1800  # RLIMIT_CPU: past it the kernel is killed (SIGXCPU)
    file_mb: int | None = 512  # RLIMIT_FSIZE: the largest file the kernel may write
    processes: int | None = 512  # RLIMIT_NPROC: processes and threads (only with namespaces, see wrap)


def _unshare_args(as_root: bool) -> list[str]:
    # as root, the user namespace comes later (the launcher): first the mounts, with root's own rights
    user = [] if as_root else ["--user", "--map-root-user"]
    return ["unshare", *user, "--mount", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]


@functools.cache
def namespaces_available() -> bool:
    """Whether this machine lets us put a kernel in its own user, mount, network and process namespaces."""
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return False
    # the real thing, on a scratch folder: the launcher locks the filesystem, and the probe checks that
    # / is read-only, the scratch folder writable and the network gone
    probe_code = ("import os, socket, sys\n"
                  "assert os.statvfs('/').f_flag & os.ST_RDONLY\n"
                  "open(os.path.join(sys.argv[1], 'probe'), 'w').write('ok')\n"
                  "try:\n    socket.create_connection(('127.0.0.1', 9), timeout=1)\n"
                  "except ConnectionRefusedError:\n    sys.exit(1)\n"
                  "except OSError:\n    pass\n")
    with tempfile.TemporaryDirectory(prefix="minigpt-sandbox-probe-") as scratch:
        command = [*_unshare_args(os.geteuid() == 0), "--", sys.executable, str(LAUNCHER),
                   "--writable", scratch, "--namespaces", "--", sys.executable, "-c", probe_code, scratch]
        try:
            probe = subprocess.run(command, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return False
        return probe.returncode == 0 and os.path.exists(os.path.join(scratch, "probe"))


def describe() -> str:
    """One line for the start of ``progress``: what runs, what is contained, and where to read more."""
    try:
        import resource  # noqa: F401
    except ImportError:
        return ("note: the notebooks' code will run on this machine as you, with no sandbox on this system "
                "(no resource limits, network and files open). For untrusted submissions, run progress in a "
                "container: see INSTRUCTORS.md, 'Grading untrusted notebooks'.")
    if namespaces_available():
        kept = ("without network, with the filesystem read-only outside a throw-away copy "
                "(reading your files is still possible), and with memory, CPU, file size and process limits")
    else:
        kept = ("with memory, CPU and file size limits only: this system cannot take away the network, "
                "protect your files or limit processes (no user namespaces)")
    return (f"note: the notebooks' code will run on this machine as you, {kept}. For untrusted "
            "submissions, run progress in a container: see INSTRUCTORS.md, 'Grading untrusted notebooks'.")


def wrap(kernel_cmd: list[str], writable: list[Path], limits: Limits) -> list[str]:
    """The command that starts ``kernel_cmd`` in the sandbox (namespaces if available, limits always)."""
    try:
        import resource  # noqa: F401  (not on Windows: there the kernel starts as it always did)
    except ImportError:
        return list(kernel_cmd)
    launcher = [sys.executable, str(LAUNCHER)]
    for w in writable:
        launcher += ["--writable", str(Path(w).resolve())]
    # the process limit counts all of a user's processes: only in a namespace of its own is it the kernel's
    names = ("memory_mb", "cpu_seconds", "file_mb", "processes") if namespaces_available() else (
        "memory_mb", "cpu_seconds", "file_mb")
    for name in names:
        value = getattr(limits, name)
        if value is not None:
            launcher += [f"--{name.replace('_', '-')}", str(int(value))]
    if namespaces_available():
        if os.geteuid() == 0 and limits.processes is not None:  # root ignores RLIMIT_NPROC: a pids cgroup
            launcher += ["--cgroup", f"minigpt-progress-{os.getpid()}-{uuid.uuid4().hex[:8]}"]
        return [*_unshare_args(os.geteuid() == 0), "--", *launcher, "--namespaces", "--", *kernel_cmd]
    return [*launcher, "--", *kernel_cmd]


def release(command: list[str]) -> None:
    """Remove what :func:`wrap` made outside the sandbox for ``command`` (root's process-count cgroup)."""
    if "--cgroup" in command:
        name = command[command.index("--cgroup") + 1]
        for base in CGROUP_BASES:
            try:
                os.rmdir(os.path.join(base, name))
            except OSError:
                pass
