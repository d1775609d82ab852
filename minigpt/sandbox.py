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

This file is also the launcher (run by path, it imports nothing from minigpt):
``python sandbox.py --writable DIR ... --memory-mb N ... -- KERNEL COMMAND``.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

CGROUP_BASES = ("/sys/fs/cgroup", "/sys/fs/cgroup/pids")  # cgroup v2, then v1's pids hierarchy


@dataclass
class Limits:
    """Resource limits for one kernel; None leaves a limit as it is."""

    memory_mb: int | None = 4096  # RLIMIT_DATA: the heap and anonymous mappings (what malloc and torch use)
    cpu_seconds: int | None = 1800  # RLIMIT_CPU: past it the kernel is killed (SIGXCPU)
    file_mb: int | None = 512  # RLIMIT_FSIZE: the largest file the kernel may write
    processes: int | None = 512  # RLIMIT_NPROC: processes and threads (only with namespaces, see wrap)


def _unshare_args(as_root: bool) -> list[str]:
    # as root, the user namespace comes later (main): first the mounts, with root's own rights
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
        command = [*_unshare_args(os.geteuid() == 0), "--", sys.executable, str(Path(__file__).resolve()),
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
    launcher = [sys.executable, str(Path(__file__).resolve())]
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


# --------------------------------------------------------------------------- inside the namespaces

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 32, 4096, 1024, 2048, 1 << 21
MOUNT_FLAGS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
               "noatime": MS_NOATIME, "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}


def _mount(libc, source, target, fstype, flags, data=None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    if libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _mount_points() -> list[tuple[str, int]]:
    """Every mount point with its per-mount flags, from /proc/self/mountinfo."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            target = fields[4].replace("\\040", " ")
            flags = sum(MOUNT_FLAGS.get(opt, 0) for opt in fields[5].split(","))
            out.append((target, flags))
    return out


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def lock_down(writable: list[str]) -> None:
    """Remount everything read-only except ``writable`` and /proc; a fresh /dev/shm."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    _mount(libc, None, "/", None, (1 << 18) | (1 << 14))  # MS_PRIVATE | MS_REC: nothing leaks back out
    for w in writable:
        _mount(libc, w, w, None, MS_BIND | (1 << 14))  # its own mount, so it stays writable below
    if os.path.isdir("/dev/shm"):
        _mount(libc, "tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=256m")
    for target, flags in _mount_points():
        if any(_inside(target, w) for w in writable) or _inside(target, "/proc") or target == "/dev/shm":
            continue
        if not os.path.exists(target):
            continue
        try:
            _mount(libc, None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)
        except OSError:  # a mount hidden under another, or one we may not touch: its parent is read-only
            pass
    if not os.statvfs("/").f_flag & os.ST_RDONLY:  # fail closed: never run a kernel that is not locked
        raise SystemExit("sandbox: could not make the filesystem read-only")


def set_limits(args) -> None:
    import resource

    for value, which, scale in ((args.memory_mb, resource.RLIMIT_DATA, 2**20),
                                (args.cpu_seconds, resource.RLIMIT_CPU, 1),
                                (args.file_mb, resource.RLIMIT_FSIZE, 2**20),
                                (args.processes, getattr(resource, "RLIMIT_NPROC", None), 1)):
        if value is None or which is None:
            continue
        try:
            soft, hard = resource.getrlimit(which)
            new = value * scale if hard == resource.RLIM_INFINITY else min(value * scale, hard)
            resource.setrlimit(which, (new, new))
        except (ValueError, OSError):  # a limit this system does not let us set: the others still hold
            pass


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="sandbox", description="start a command in the progress sandbox")
    p.add_argument("--writable", action="append", default=[])
    p.add_argument("--memory-mb", type=int)
    p.add_argument("--cpu-seconds", type=int)
    p.add_argument("--file-mb", type=int)
    p.add_argument("--processes", type=int)
    p.add_argument("--namespaces", action="store_true", help="we are in fresh namespaces: lock the filesystem")
    p.add_argument("--cgroup", help="as root: the name of a pids cgroup to join (the process limit)")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("no command to run")
    if args.cgroup and args.processes:
        join_pids_cgroup(args.cgroup, args.processes)
    if args.namespaces:
        lock_down(args.writable)
        os.chdir(os.getcwd())  # the working folder again, now through its new (writable) mount
        # a nested user namespace locks the read-only mounts: root inside it cannot remount them
        command = ["unshare", "--user", "--map-root-user", "--mount", "--", *command]
    set_limits(args)
    os.execvp(command[0], command)


def join_pids_cgroup(name: str, most: int) -> bool:
    """Put this process in a new cgroup that allows ``most`` processes (for root, whom RLIMIT_NPROC spares)."""
    for base in CGROUP_BASES:
        if not os.path.exists(os.path.join(base, "cgroup.procs")):
            continue
        if not base.endswith("pids"):
            try:
                with open(os.path.join(base, "cgroup.subtree_control")) as f:
                    if "pids" not in f.read().split():
                        continue
            except OSError:
                continue
        group = os.path.join(base, name)
        try:
            os.makedirs(group, exist_ok=True)
            with open(os.path.join(group, "pids.max"), "w") as f:
                f.write(str(most))
            with open(os.path.join(group, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
            return True
        except OSError:
            continue
    return False


if __name__ == "__main__":
    main(sys.argv[1:])
