"""Small file helpers without torch: checksums, one-line OS errors, and the rule that an output never
overwrites its own source. The command line and the data registry use them before torch is loaded."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def os_error_message(e: OSError, doing: str = "use") -> str:
    """One line for an operating-system error: what failed, on which path, and what to do."""
    path = e.filename if e.filename is not None else "the file"
    why = e.strerror or type(e).__name__
    hint = {
        PermissionError: "check its permissions or choose another path",
        IsADirectoryError: "it is a folder; give a file",
        NotADirectoryError: "a part of the path is a file, not a folder; choose another path",
        FileExistsError: "something is already there; choose another path",
        FileNotFoundError: "check the path",
    }.get(type(e), "check the path, the free disk space and the permissions")
    return f"cannot {doing} {path}: {why}; {hint}"


def refuse_out_over_source(source: str | os.PathLike, out: str | os.PathLike,
                           source_option: str, out_option: str = "--out") -> None:
    """Raise ``ValueError`` when ``out`` is ``source``, or (for a source folder) contains it or lies inside it.

    A command that reads one file or folder and writes another must never write over what it reads:
    ``--overwrite`` permits replacing the target, not the source. Symlinks are resolved first.
    """
    src, dst = Path(source).resolve(), Path(out).resolve()
    if dst == src:
        where = "is"
    elif not src.is_dir():
        return
    elif src in dst.parents:
        where = "lies inside"
    elif dst in src.parents:
        where = "contains"
    else:
        return
    raise ValueError(f"{out_option} {out} {where} the source {source_option} {source}; writing there would "
                     f"overwrite what the command reads; choose an {out_option} outside it")
