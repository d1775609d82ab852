"""The course data sets: where they come from, how they are checked, and the fixed splits.

A file is looked for, in order, in
1. ``MINIGPT_DATA_DIR`` (an offline folder, e.g. ``../shared/data``),
2. the user cache (``$XDG_CACHE_HOME/minigpt``, default ``~/.cache/minigpt``),
3. its public URL: downloaded with a progress bar, checked against its SHA-256, written atomically.

Every lesson scores its models on the same splits (the course's one yardstick):
names are shuffled with seed 42 into 80/10/10 train/dev/test; Tiny Shakespeare is split
into the first 90% (train) and the last 10% (val).
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from .utils import sha256_file


@dataclass(frozen=True)
class DataSet:
    """One registered data set: its file name, public URL, byte size and SHA-256."""

    name: str
    filename: str
    url: str
    size: int
    sha256: str
    description: str


DATASETS: dict[str, DataSet] = {
    "names": DataSet(
        name="names",
        filename="names.txt",
        url="https://raw.githubusercontent.com/karpathy/makemore/master/names.txt",
        size=228145,
        sha256="0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d",
        description="32,033 common US baby names, one per line, lowercase a-z",
    ),
    "tinyshakespeare": DataSet(
        name="tinyshakespeare",
        filename="tinyshakespeare.txt",
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        size=1115394,
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        description="40,000 lines of Shakespeare's plays, 65 distinct characters",
    ),
}

NAMES_SPLIT_SEED = 42
SHAKESPEARE_TRAIN_FRACTION = 0.9


class DataError(RuntimeError):
    """A data set could not be found, downloaded or verified."""


def dataset(name: str) -> DataSet:
    """Return the registry entry for ``name``, or raise with the list of known names."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise DataError(f"unknown data set {name!r}; known data sets: {known}") from None


def cache_dir() -> Path:
    """The user cache folder: ``$XDG_CACHE_HOME/minigpt`` or ``~/.cache/minigpt``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "minigpt"


def offline_dir() -> Path | None:
    """The offline folder named by ``MINIGPT_DATA_DIR``, or None when it is not set."""
    value = os.environ.get("MINIGPT_DATA_DIR")
    return Path(value).expanduser() if value else None


def _verify(ds: DataSet, path: Path) -> str | None:
    """None when ``path`` holds the right bytes, else a sentence saying what is wrong."""
    size = path.stat().st_size
    if size != ds.size:
        return f"{path} has {size} bytes, expected {ds.size}"
    digest = sha256_file(path)
    if digest != ds.sha256:
        return f"{path} has sha256 {digest[:12]}..., expected {ds.sha256[:12]}..."
    return None


def download(url: str, dest: Path, sha256: str, size: int | None = None, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` atomically, checking its SHA-256 (and size, when given).

    The bytes go to a temporary file beside ``dest`` and are renamed into place only when the
    checksum matches, so a failed or corrupt download never leaves a bad file behind.
    """
    from tqdm.auto import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or size
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                for chunk in iter(lambda: resp.read(1 << 16), b""):
                    out.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
        digest = h.hexdigest()
        if digest != sha256:
            raise DataError(
                f"checksum mismatch for {url}: got sha256 {digest[:12]}..., expected {sha256[:12]}...; "
                "the file was not saved. Try again later, or put a good copy in MINIGPT_DATA_DIR."
            )
        os.replace(tmp, dest)
        return dest
    finally:
        if tmp.exists():
            tmp.unlink()


def locate(name: str, download_missing: bool = True, progress: bool = True) -> tuple[Path, str]:
    """Find (or fetch) data set ``name``; return its path and where it came from.

    The source is ``"offline"``, ``"cache"`` or ``"download"``.
    """
    ds = dataset(name)
    problems: list[str] = []
    off = offline_dir()
    if off is not None:
        candidate = off / ds.filename
        if candidate.exists():
            problem = _verify(ds, candidate)
            if problem is None:
                return candidate, "offline"
            msg = f"ignoring corrupt offline copy: {problem}"
            warnings.warn(msg, stacklevel=2)
            problems.append(msg)
        else:
            problems.append(f"{candidate} does not exist")
    cached = cache_dir() / ds.filename
    if cached.exists():
        problem = _verify(ds, cached)
        if problem is None:
            return cached, "cache"
        problems.append(f"removed corrupt cached copy: {problem}")
        cached.unlink()
    if not download_missing:
        raise DataError(_missing_message(ds, problems))
    try:
        download(ds.url, cached, ds.sha256, ds.size, progress=progress)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        problems.append(f"download failed: {e}")
        raise DataError(_missing_message(ds, problems)) from e
    return cached, "download"


def _missing_message(ds: DataSet, problems: list[str]) -> str:
    lines = [
        f"data set {ds.name!r} is not available offline and could not be downloaded.",
        f"  Download {ds.url}",
        f"  into a folder and set MINIGPT_DATA_DIR to that folder (or into {cache_dir()}).",
    ]
    lines += [f"  - {p}" for p in problems]
    return "\n".join(lines)


def path(name: str) -> Path:
    """Path of the verified file for data set ``name``, downloading it if needed."""
    return locate(name)[0]


def load_text(name: str) -> str:
    """The whole text of data set ``name`` (UTF-8)."""
    return path(name).read_text(encoding="utf-8")


def status(name: str) -> dict:
    """Where data set ``name`` is, its size, and whether its checksum matches (never downloads)."""
    ds = dataset(name)
    info = {"name": name, "url": ds.url, "expected_bytes": ds.size, "path": None, "source": None,
            "bytes": None, "sha256_ok": False}
    try:
        p, source = locate(name, download_missing=False)
    except DataError as e:
        info["error"] = str(e).splitlines()[0]
        return info
    info.update(path=str(p), source=source, bytes=p.stat().st_size, sha256_ok=True)
    return info


def load_names() -> list[str]:
    """All 32,033 names, in file order."""
    return load_text("names").split()


def names_split(words: list[str] | None = None, seed: int = NAMES_SPLIT_SEED) -> dict[str, list[str]]:
    """The course's fixed 80/10/10 split of the names: ``{"train", "dev", "test"}``.

    Shuffled with ``random.Random(seed)``, as in makemore's lectures, so the split is the same on
    every machine and in FAST and full mode.
    """
    words = list(load_names() if words is None else words)
    random.Random(seed).shuffle(words)
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    return {"train": words[:n1], "dev": words[n1:n2], "test": words[n2:]}


def shakespeare_split(text: str | None = None) -> dict[str, str]:
    """The course's fixed split of Tiny Shakespeare: first 90% ``train``, last 10% ``val``."""
    text = load_text("tinyshakespeare") if text is None else text
    n = int(SHAKESPEARE_TRAIN_FRACTION * len(text))
    return {"train": text[:n], "val": text[n:]}


def add_cli(sub) -> None:
    """``python -m minigpt data [NAME] [--json]``."""
    p = sub.add_parser("data", help="where each data set is, its size, and whether its checksum matches")
    p.add_argument("name", nargs="?", help=f"one of: {', '.join(sorted(DATASETS))} (default: all)")
    p.add_argument("--download", action="store_true", help="download data sets that are missing")
    p.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    p.set_defaults(func=_cli_data)


def _cli_data(args) -> int:
    import json

    names = [args.name] if args.name else sorted(DATASETS)
    for n in names:
        dataset(n)  # unknown names fail here, listing the known ones
    if args.download:
        for n in names:
            locate(n)
    rows = [status(n) for n in names]
    for r in rows:
        mark = "ok" if r["sha256_ok"] else "MISSING"
        where = f"{r['path']} ({r['source']})" if r["path"] else r.get("error", "")
        size = f"{r['bytes']:,} bytes" if r["bytes"] else f"expected {r['expected_bytes']:,} bytes"
        print(f"{r['name']:<16} {mark:<8} {size:<20} {where}")
    if not all(r["sha256_ok"] for r in rows):
        print("missing data: run `python -m minigpt data --download`, or set MINIGPT_DATA_DIR to a folder with the files")
    if args.json:
        print(json.dumps({"datasets": rows}))
    return 0 if all(r["sha256_ok"] for r in rows) else 1
