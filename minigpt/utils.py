"""Small helpers every lesson uses: FAST mode, device choice, seeding; and safe file writing."""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from .files import os_error_message, sha256_file  # noqa: F401 (moved to files.py; kept importable from here)

_TRUE = {"1", "true", "yes", "on"}


def fast_mode() -> bool:
    """True when ``MINIGPT_FAST`` is set to 1 (the test suite's small, quick version of each lesson).

    When ``MINIGPT_FAST_LOG`` names a file, one line is appended to it, so the test suite can
    prove that every notebook really ran in FAST mode.
    """
    fast = os.environ.get("MINIGPT_FAST", "").strip().lower() in _TRUE
    log = os.environ.get("MINIGPT_FAST_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            # kernel=1 marks a notebook kernel, so the suite's sentinel counts kernels, not test processes
            # (which may import ipykernel without being one)
            app = sys.modules.get("ipykernel.kernelapp")
            kernel = bool(app is not None and app.IPKernelApp.initialized())
            f.write(f"fast={int(fast)} pid={os.getpid()} kernel={int(kernel)}\n")
    return fast


def get_device(preferred: str | None = None) -> torch.device:
    """Pick a device: ``preferred`` or ``MINIGPT_DEVICE`` if given, else CUDA, then MPS, then CPU."""
    name = preferred or os.environ.get("MINIGPT_DEVICE") or ""
    if name:
        dev = torch.device(name)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} was asked for, but CUDA is not available here; use 'cpu'")
        if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise RuntimeError(f"device {name!r} was asked for, but MPS is not available here; use 'cpu'")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` exists on this machine (on Windows, where it cannot be asked safely,
    every positive PID counts as alive)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def describe_differences(have: dict, want: dict, skip=(), most: int = 4) -> str:
    """``"n_embd 16 instead of 32, ..."`` for the keys of ``want`` whose values ``have`` does not match."""
    diffs = [f"{k} {have.get(k)!r} instead of {want[k]!r}" for k in want if k not in skip and have.get(k) != want[k]]
    return ", ".join(diffs[:most]) + (f" and {len(diffs) - most} more" if len(diffs) > most else "")


def runs_dir() -> Path:
    """Where the course keeps its training runs: ``MINIGPT_RUNS_DIR`` if set, else ``runs/`` at the
    top of this checkout (the same folder whichever notebook asks), else ``./runs``."""
    env = os.environ.get("MINIGPT_RUNS_DIR")
    if env:
        return Path(env).expanduser().resolve()
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir():
        return root / "runs"
    return Path("runs").resolve()


def describe_device(device: torch.device) -> str:
    """One line naming the device, e.g. ``cuda (NVIDIA H100, bf16)`` or ``cpu (8 threads)``."""
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        bf16 = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return f"cuda ({torch.cuda.get_device_name(idx)}, {bf16})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({torch.get_num_threads()} threads)"


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch; return a ``torch.Generator`` seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as UTF-8 JSON to ``path`` atomically: a crash leaves the old file or the new one."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    except OSError as e:  # name the file the user asked for, not our temporary one
        raise type(e)(e.errno, e.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
