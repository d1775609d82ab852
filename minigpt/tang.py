"""The Tang poems data sets, derived from the Complete Tang Poems (全唐诗) of chinese-poetry.

No public URL serves ``tang-poems.jsonl`` and ``tang-poets.jsonl`` as they are, so a user without them
downloads the 58 source files listed in ``tang_sources.sha256`` (checked and cached like any download)
and derives both files by the steps of ``../shared/data/README.md``, one function each:

1. :func:`has_shape`        keep eight-line poems of 5- or 7-character lines (one rule, also the junk filter)
2. :func:`to_simplified`    OpenCC ``t2s``, keeping the traditional character where t2s leaves U+4E00-U+9FFF
3. :func:`drop_duplicates`  drop a poem when 2 of its 4 couplets occur in poems kept before it
4. :func:`split_of`         ``val`` when the SHA-256 of the text is divisible by 10, else ``train``
5. :func:`poets_subset`     the 8 authors with most poems (不详/无名氏 excluded), less poems that share a
                            couplet with another author's poem in the source (disputed attribution)

:func:`derive` runs them all; :func:`minigpt.data.locate` calls it and checks the result's SHA-256.
The poems are public domain; the chinese-poetry compilation is MIT-licensed (Copyright (c) 2016 JackeyGao).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .data import DataError, download

SOURCE_COMMIT = "99ebbef7e1345c0985c44b9fd96a3f9e776f117b"
SOURCE_BASE_URL = f"https://raw.githubusercontent.com/chinese-poetry/chinese-poetry/{SOURCE_COMMIT}"
SOURCE_LIST = Path(__file__).with_name("tang_sources.sha256")  # sha256, bytes, path of the 58 files
OPENCC_VERSION = "1.4.2"  # the version the registered checksums were made with
INSTALL_HINT = "pip install 'minigpt[chinese]' (or pip install opencc==1.4.2)"
N_POETS = 8
UNNAMED_AUTHORS = ("不详", "无名氏")  # "unknown" and "anonymous": not a poet to attribute

HAN = "\u4e00-\u9fff"  # the basic CJK block: the only characters a kept poem may contain
COUPLET = {n: re.compile(f"[{HAN}]{{{n}}}[，？！；][{HAN}]{{{n}}}[。？！]") for n in (5, 7)}


def source_files(list_path: Path | None = None) -> list[tuple[str, int, str]]:
    """The source files as (sha256, bytes, path in the repository), read from ``tang_sources.sha256``."""
    rows = []
    for line in Path(list_path or SOURCE_LIST).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            sha, size, rel = line.split(None, 2)
            rows.append((sha, int(size), rel))
    return rows


def fetch_sources(dest_dir: Path, base_url: str | None = None, list_path: Path | None = None,
                  progress: bool = True) -> list[Path]:
    """Download the source files into ``dest_dir`` (each checked against its SHA-256; cached ones reused)."""
    paths = []
    for sha, size, rel in source_files(list_path):
        dest = Path(dest_dir) / Path(rel).name
        if not (dest.is_file() and dest.stat().st_size == size and _sha256(dest.read_bytes()) == sha):
            url = f"{base_url or SOURCE_BASE_URL}/{urllib.parse.quote(rel)}"
            download(url, dest, sha, size, progress=progress)
        paths.append(dest)
    return paths


def read_sources(paths: list[Path]) -> list[dict]:
    """Every source poem, in file order: dicts with ``author``, ``title`` and ``paragraphs``."""
    poems = []
    for p in paths:
        poems += json.loads(Path(p).read_text(encoding="utf-8"))
    return poems


# ----- step 1: the shape (and junk) filter ------------------------------------------------------------
def has_shape(paragraphs: list[str]) -> bool:
    """Exactly 4 paragraphs, each n Han characters, a mark from ，？！；, n Han characters, a mark from 。？！,
    with n = 5 for all four or 7 for all four."""
    if not isinstance(paragraphs, list) or len(paragraphs) != 4:
        return False
    return any(all(COUPLET[n].fullmatch(p) for p in paragraphs) for n in (5, 7))


# ----- step 2: simplified characters --------------------------------------------------------------------
def opencc_t2s() -> Callable[[str], str]:
    """OpenCC's ``t2s`` converter; a one-line DataError saying how to install OpenCC when it is missing."""
    # Deferred on purpose: OpenCC is an optional dependency used only to derive these files.
    try:
        import opencc
    except ImportError:
        raise DataError(f"deriving the Tang poems needs OpenCC {OPENCC_VERSION}: {INSTALL_HINT}") from None
    return opencc.OpenCC("t2s").convert


def opencc_version() -> str | None:
    """The installed OpenCC's version, or None when it is not installed."""
    try:
        return version("opencc")
    except PackageNotFoundError:
        return None


def _is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


def to_simplified(text: str, convert: Callable[[str], str]) -> str:
    """``convert(text)``, except that where it gives a character outside U+4E00-U+9FFF the original stays."""
    out = convert(text)
    if len(out) != len(text):  # a conversion that changed the length: go character by character
        out = "".join(c if len(c := convert(ch)) == 1 else ch for ch in text)
    return "".join(o if _is_han(o) or o == t else t for t, o in zip(text, out))


def simplify_poem(poem: dict, convert: Callable[[str], str]) -> dict:
    """A source poem in simplified characters: ``author``, ``title``, and ``text`` (its paragraphs, one a line)."""
    return {"author": to_simplified(poem.get("author") or "", convert),
            "title": to_simplified(poem.get("title") or "", convert),
            "text": "\n".join(to_simplified(p, convert) for p in poem["paragraphs"])}


# ----- step 3: duplicates -------------------------------------------------------------------------------
def drop_duplicates(poems: list[dict]) -> list[dict]:
    """Drop each poem when 2 or more of its couplets already occur in poems kept before it (first wins)."""
    seen: set[str] = set()
    kept = []
    for poem in poems:
        couplets = poem["text"].split("\n")
        if sum(c in seen for c in couplets) >= 2:
            continue
        seen.update(couplets)
        kept.append(poem)
    return kept


# ----- step 4: the split --------------------------------------------------------------------------------
def split_of(text: str) -> str:
    """``"val"`` when the SHA-256 of ``text`` (UTF-8), as a big-endian integer, is divisible by 10."""
    return "val" if int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) % 10 == 0 else "train"


# ----- step 5: the poets subset -------------------------------------------------------------------------
def disputed_couplets(source: list[dict]) -> set[str]:
    """Couplets (source paragraphs, as the source writes them) that occur in poems of 2 or more authors."""
    authors: dict[str, set[str]] = defaultdict(set)
    for s in source:
        for p in s.get("paragraphs") or []:
            authors[p].add(s.get("author") or "")
    return {p for p, a in authors.items() if len(a) > 1}


def poets_subset(poems: list[dict], disputed: list[bool], n_poets: int = N_POETS) -> list[dict]:
    """The rows of ``tang-poets.jsonl`` (``label``, ``text``, ``split``): poems of the ``n_poets`` named authors
    with the most poems, less the disputed ones (``disputed[i]`` for ``poems[i]``), in file order."""
    counts = Counter(p["author"] for p in poems if p["author"] not in UNNAMED_AUTHORS)
    top = {a for a, _ in counts.most_common(n_poets)}
    return [{"label": p["author"], "text": p["text"], "split": p["split"]}
            for p, bad in zip(poems, disputed) if p["author"] in top and not bad]


def derive(source: list[dict], convert: Callable[[str], str]) -> dict[str, list[dict]]:
    """Both files' rows from the source poems, in source order: ``{"tang-poems": [...], "tang-poets": [...]}``."""
    shaped = [s for s in source if has_shape(s.get("paragraphs"))]                          # step 1
    simplified = [simplify_poem(s, convert) for s in shaped]                                 # step 2
    origin = {id(p): s for p, s in zip(simplified, shaped)}
    kept = drop_duplicates(simplified)                                                        # step 3
    poems = [{**p, "split": split_of(p["text"])} for p in kept]                              # step 4
    disputed_set = disputed_couplets(source)                                                  # step 5
    disputed = [any(c in disputed_set for c in origin[id(p)]["paragraphs"]) for p in kept]
    return {"tang-poems": poems, "tang-poets": poets_subset(poems, disputed)}


def to_jsonl(rows: list[dict]) -> bytes:
    """One JSON object a line (UTF-8, characters as they are), as the shared files are written."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def _sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def build(dest_dir: Path, expected: dict[str, str], *, convert: Callable[[str], str] | None = None,
          base_url: str | None = None, list_path: Path | None = None, progress: bool = True) -> dict[str, Path]:
    """Download and check the sources, derive both files, check each against ``expected`` (name -> SHA-256),
    and write them into ``dest_dir`` atomically. A mismatch writes nothing and names the OpenCC version expected."""
    convert = convert or opencc_t2s()  # before the 25 MB download: a missing OpenCC fails at once
    dest_dir = Path(dest_dir)
    paths = fetch_sources(dest_dir / "tang-sources", base_url, list_path, progress)
    rows = derive(read_sources(paths), convert)
    blobs = {name: to_jsonl(r) for name, r in rows.items()}
    for name, blob in blobs.items():
        if _sha256(blob) != expected[name]:
            raise DataError(
                f"derived {name} has sha256 {_sha256(blob)[:12]}..., expected {expected[name][:12]}...; "
                f"the files are made with OpenCC {OPENCC_VERSION} (installed: {opencc_version() or 'none'}): "
                f"pip install opencc=={OPENCC_VERSION}, or put the files in MINIGPT_DATA_DIR")
    out = {}
    for name, blob in blobs.items():
        out[name] = dest_dir / f"{name}.jsonl"
        try:
            fd, tmp = tempfile.mkstemp(prefix=f"{name}.", suffix=".part", dir=dest_dir)
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, out[name])
        except OSError as e:
            raise DataError(f"cannot write {out[name]}: {e.strerror or type(e).__name__}; make {dest_dir} "
                            "writable, or point XDG_CACHE_HOME at a writable folder") from None
    return out
