"""The course data sets: where they come from, how they are checked, and the fixed splits.

A file is looked for, in order, in
1. ``MINIGPT_DATA_DIR`` (an offline folder, e.g. ``../shared/data``),
2. the user cache (``$XDG_CACHE_HOME/minigpt``, default ``~/.cache/minigpt``),
3. its public URL: downloaded with a progress bar, checked against its size and SHA-256, written
   atomically. A download killed midway can leave a ``NAME.XXXX.part`` file in the cache; the next
   download of that file removes such leftovers once they have not changed for an hour (a live
   download writes to its own ``.part`` file every few milliseconds, so it is never touched).

Every problem is reported as one line: a :class:`DataError` when the data cannot be used, or a
``note:`` line on stderr when a bad offline copy was skipped and the cache or a download served.

A *derived* data set (the Tang poems) has no URL that serves it: step 3 downloads its public
sources instead, checks each, derives the file (``minigpt.tang``) and checks the result's SHA-256.

Every lesson scores its models on the same splits (the course's one yardstick):
names are shuffled with seed 42 into 80/10/10 train/dev/test; Tiny Shakespeare is split
into the first 90% (train) and the last 10% (val); each Tang poem's split is in the file.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib
import json
import os
import random
import re
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .files import sha256_file  # torch-free, so `data --help` is fast

TANG_SOURCE_URL = ("https://github.com/chinese-poetry/chinese-poetry/tree/"
                   "99ebbef7e1345c0985c44b9fd96a3f9e776f117b/%E5%85%A8%E5%94%90%E8%AF%97")


@dataclass(frozen=True)
class DataSet:
    """One registered data set: its file name, public URL, byte size and SHA-256."""

    name: str
    filename: str
    url: str
    size: int
    sha256: str
    description: str
    derived_by: str = ""  # a module whose build() derives the file from public sources (no URL serves it)


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
    # GPT-2's released tokenizer (read by minigpt.bpe.gpt2_tokenizer): the same files tiktoken's
    # "gpt2" encoding and Hugging Face's "gpt2" tokenizer are built from.
    "gpt2-encoder": DataSet(
        name="gpt2-encoder",
        filename="gpt2-encoder.json",
        url="https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
        size=1042301,
        sha256="196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
        description="GPT-2's vocabulary: 50,257 token texts (through its byte-to-unicode table) -> ids",
    ),
    "gpt2-vocab": DataSet(
        name="gpt2-vocab",
        filename="gpt2-vocab.bpe",
        url="https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
        size=456318,
        sha256="1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
        description="GPT-2's 50,000 BPE merges in rank order",
    ),
    # Derived from the 58 source files of the Complete Tang Poems (minigpt/tang_sources.sha256) by
    # minigpt.tang; the URL is where those sources live.
    "tang-poems": DataSet(
        name="tang-poems",
        filename="tang-poems.jsonl",
        url=TANG_SOURCE_URL,
        size=5446340,
        sha256="035c7e9c215904daa623e95a27fb30b24d4edb1aa96cedd3362bfdf4f7d36d99",
        description="21,485 eight-line Tang poems of 5- or 7-character lines, simplified (train 19,312 / val 2,173)",
        derived_by="tang",
    ),
    "tang-poets": DataSet(
        name="tang-poets",
        filename="tang-poets.jsonl",
        url=TANG_SOURCE_URL,
        size=973376,
        sha256="3162d21e8dbf3edaf908c2ea2f9ca5fbe1606c2e1517a20c3d1e87a0ff20c616",
        description="poet attribution: 4,422 poems of tang-poems by 8 poets (keys label, text, split)",
        derived_by="tang",
    ),
}

NAMES_SPLIT_SEED = 42
SHAKESPEARE_TRAIN_FRACTION = 0.9
STALE_PART_SECONDS = 3600  # a .part file unchanged for this long belongs to a download that died


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


def _unreadable(path: Path, e: OSError, fix: str) -> DataError:
    why = "permission denied" if isinstance(e, PermissionError) else (e.strerror or type(e).__name__)
    return DataError(f"cannot read {path}: {why}; {fix}")


def _stat(path: Path, fix: str) -> os.stat_result | None:
    """``path``'s status, or None when nothing is there; a one-line DataError when it cannot be read."""
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise _unreadable(path, e, fix) from None


def _verify(ds: DataSet, path: Path, st: os.stat_result, fix: str) -> str | None:
    """None when ``path`` holds the right bytes, else a sentence saying what is wrong.

    ``fix`` says what to do when the file cannot be read (raised as a DataError, never swallowed).
    """
    if stat.S_ISDIR(st.st_mode):
        return f"{path} is a folder, not a file"
    if st.st_size != ds.size:
        return f"{path} has {st.st_size} bytes, expected {ds.size}"
    try:
        digest = sha256_file(path)
    except OSError as e:
        raise _unreadable(path, e, fix) from None
    if digest != ds.sha256:
        return f"{path} has sha256 {digest[:12]}..., expected {ds.sha256[:12]}..."
    return None


def _remove_stale_parts(dest: Path, max_age: float = STALE_PART_SECONDS) -> list[Path]:
    """Delete ``dest.name.XXXX.part`` leftovers of killed downloads that have not changed for ``max_age`` s.

    Only regular files named exactly like :func:`download`'s temporary files are touched; a fresh
    ``.part`` file may belong to a download running in another process, so it is left alone.
    """
    pattern = re.compile(re.escape(dest.name) + r"\.[A-Za-z0-9_]+\.part")
    removed = []
    try:
        entries = list(os.scandir(dest.parent))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and now - entry.stat(follow_symlinks=False).st_mtime > max_age:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # gone already, or not ours to remove: leave it
            pass
    return removed


def download(url: str, dest: Path, sha256: str, size: int | None = None, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` atomically, checking its size and SHA-256.

    The bytes go to a temporary ``dest.name.XXXX.part`` file beside ``dest`` and are renamed into
    place only when the checksum matches, so a failed or corrupt download never leaves a bad file
    behind. Leftover ``.part`` files of killed downloads (unchanged for an hour) are removed first.
    The size expected is the server's ``Content-Length``, else ``size``; fewer bytes than that is
    reported as an incomplete download rather than as a checksum mismatch.
    """
    from tqdm.auto import tqdm

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_parts(dest)
        fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    except OSError as e:
        why = "permission denied" if isinstance(e, PermissionError) else (e.strerror or type(e).__name__)
        raise DataError(f"cannot write {dest.name} into {dest.parent}: {why}; make that folder writable, "
                        "point XDG_CACHE_HOME at a writable folder, or put the file in MINIGPT_DATA_DIR") from None
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        got = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as resp:
            try:
                declared = int(resp.headers.get("Content-Length") or 0) or None
            except ValueError:
                declared = None
            total = declared or size
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                try:
                    for chunk in iter(lambda: resp.read(1 << 16), b""):
                        out.write(chunk)
                        h.update(chunk)
                        got += len(chunk)
                        bar.update(len(chunk))
                except http.client.IncompleteRead as e:
                    got += len(e.partial)
        if total and got < total:
            raise DataError(
                f"incomplete download: got {got} of {total} bytes from {url}; the connection was cut and "
                "the file was not saved. Try again, or put a good copy in MINIGPT_DATA_DIR."
            )
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

    The source is ``"offline"``, ``"cache"`` or ``"download"``. A file that is there but cannot be
    read, or a folder where the cached file belongs, is a :class:`DataError` (nothing is deleted
    but a corrupt cached file). A bad offline copy is skipped, with a one-line note on stderr.
    """
    ds = dataset(name)
    problems: list[str] = []
    notes: list[str] = []  # problems worth a note when another source serves the file
    off = offline_dir()
    if off is None:
        problems.append("MINIGPT_DATA_DIR is not set")
    else:
        fix = "fix its permissions (e.g. `chmod a+rX`) or unset MINIGPT_DATA_DIR"
        off_st = _stat(off, fix)
        if off_st is None:
            notes.append(f"MINIGPT_DATA_DIR is set to {off}, a folder that does not exist")
        elif not stat.S_ISDIR(off_st.st_mode):
            notes.append(f"MINIGPT_DATA_DIR {off} is a file, not a folder")
        else:
            candidate = off / ds.filename
            st = _stat(candidate, fix)
            if st is None:
                problems.append(f"{candidate} does not exist")
            else:
                problem = _verify(ds, candidate, st, fix)
                if problem is None:
                    return candidate, "offline"
                kind = "offline path" if stat.S_ISDIR(st.st_mode) else "corrupt offline copy"
                notes.append(f"ignoring {kind}: {problem}")
    problems += notes
    cached = cache_dir() / ds.filename
    st = _stat(cached, "fix its permissions or delete it")
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise DataError(f"{cached} is a folder, but minigpt keeps the downloaded file {ds.filename} there; "
                        "move or remove that folder (minigpt never deletes folders) and try again")
    if st is None:
        problems.append(f"{cached} does not exist")
    else:
        problem = _verify(ds, cached, st, "fix its permissions or delete it")
        if problem is None:
            _note(notes, cached)
            return cached, "cache"
        try:
            cached.unlink()
        except OSError as e:
            why = "permission denied" if isinstance(e, PermissionError) else (e.strerror or type(e).__name__)
            raise DataError(f"cannot remove corrupt cached copy ({problem}): {why}; delete it by hand") from None
        problems.append(f"removed corrupt cached copy: {problem}")
    if not download_missing:
        raise DataError(_missing_message(ds, problems))
    if ds.derived_by:
        _derive(ds, progress)
        _note(notes, cached)
        return cached, "derived"
    try:
        download(ds.url, cached, ds.sha256, ds.size, progress=progress)
    except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as e:
        problems.append(f"download failed: {str(e) or type(e).__name__}")
        raise DataError(_missing_message(ds, problems)) from e
    _note(notes, cached)
    return cached, "download"


_NOTED: set[str] = set()


def _note(notes: list[str], used: Path) -> None:
    """One line on stderr, once per process, when a bad offline copy or folder was skipped.

    Not ``warnings.warn``: that prints a second line echoing this module's source.
    """
    line = f"note: {'; '.join(notes)}; using {used}"
    if notes and line not in _NOTED:
        _NOTED.add(line)
        print(line, file=sys.stderr)


def _derive(ds: DataSet, progress: bool) -> None:
    """Derive ``ds`` (and its sibling files) into the cache with its module's ``build()``."""
    # Looked up by name when needed: the deriving module imports this one.
    builder = importlib.import_module(f"{__package__}.{ds.derived_by}")
    expected = {n: d.sha256 for n, d in DATASETS.items() if d.derived_by == ds.derived_by}
    try:
        builder.build(cache_dir(), expected, progress=progress)
    except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as e:
        raise DataError(f"data set {ds.name!r} could not be derived: download failed: {str(e) or type(e).__name__}; "
                        f"put {ds.filename} in MINIGPT_DATA_DIR, or try again later") from e


def _missing_message(ds: DataSet, problems: list[str]) -> str:
    """One line: what was looked at and what was wrong, the URL, and where to put the file."""
    found = "; ".join(" ".join(str(p).splitlines()) for p in problems) or "no copy found"
    if ds.derived_by:
        return (f"data set {ds.name!r} is not available: {found}. It is derived from the sources at {ds.url}: "
                f"run `python -m minigpt data --download`, or put {ds.filename} in a folder and set "
                f"MINIGPT_DATA_DIR to that folder")
    return (f"data set {ds.name!r} is not available: {found}. Download {ds.url} into a folder and set "
            f"MINIGPT_DATA_DIR to that folder, or save it as {cache_dir() / ds.filename}")


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
        info["error"] = str(e)
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


def _read_jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in load_text(name).split("\n") if line]


def load_tang_poems() -> list[dict]:
    """The 21,485 Tang poems in file order: dicts with ``author``, ``title``, ``text``, ``split``.

    ``text`` is 4 lines joined by newlines, each a couplet such as ``国破山河在，城春草木深。``.
    """
    return _read_jsonl("tang-poems")


def load_tang_poets() -> list[dict]:
    """The poet-attribution set, 4,422 poems by 8 poets: dicts with ``label`` (the poet), ``text``, ``split``."""
    return _read_jsonl("tang-poets")


def tang_split(poems: list[dict] | None = None) -> dict[str, str]:
    """The course's character-model text of the Tang poems: ``{"train", "val"}``, each split's poems in
    file order, each poem's text followed by a blank line, ``"\\n\\n"`` (as the data README's baselines
    are measured)."""
    poems = load_tang_poems() if poems is None else poems
    return {s: "".join(p["text"] + "\n\n" for p in poems if p["split"] == s) for s in ("train", "val")}

