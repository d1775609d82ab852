"""The progress sandbox's launcher: run by path in front of each kernel, it imports nothing from minigpt.

``python sandbox_launcher.py [--writable DIR]... [--memory-mb N] [--cpu-seconds N] [--file-mb N]
[--processes N] [--namespaces] [--cgroup NAME] -- KERNEL COMMAND``: inside the namespaces that
:func:`minigpt.sandbox.wrap` asks ``unshare`` for, it makes the filesystem read-only outside the
``--writable`` folders, joins root's pids cgroup, sets the resource limits and replaces itself with the
kernel. :mod:`minigpt.sandbox` is the library side (what is contained, and the command that does it).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import resource  # the launcher runs only where it exists (minigpt.sandbox.wrap)
import sys

CGROUP_BASES = ("/sys/fs/cgroup", "/sys/fs/cgroup/pids")  # cgroup v2, then v1's pids hierarchy (as minigpt.sandbox)

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
    """Set the resource limits that ``args`` names (None leaves one as it is)."""
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
    """Parse the launcher's options, lock the sandbox down and replace this process with the command."""
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
