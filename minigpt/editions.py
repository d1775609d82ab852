"""The Chinese edition: ``zh/notebooks/``, ``zh/solutions/`` and ``zh/exercises/``, built from the English
notebooks and the translation files in ``zh/translations/``.

    python -m minigpt editions            # build zh/ (make editions)
    python -m minigpt editions --check    # exit 1 when a translation is missing or stale, or zh/ is out of date
    python -m minigpt editions --stale    # each missing or stale cell, with its old and new English
    python -m minigpt editions update 05  # add the missing cells of lesson 05 to its translation files

A built notebook is the English one with every markdown cell replaced by its translation: the same
code cells, the same saved outputs, the same cell ids; its metadata says ``"minigpt_edition":
{"language": "zh-CN", ...}``. ``zh/exercises/`` comes from ``zh/solutions/`` through
:func:`minigpt.exercises.make_exercise`, with the placeholders in Chinese.

The translation file of ``notebooks/05_self_attention.ipynb`` is
``zh/translations/notebooks/05_self_attention.json`` (the format is fixed; see CONTRIBUTING.md)::

    {"source": "notebooks/05_self_attention.ipynb",
     "cells": [{"id": ..., "en_sha256": ..., "en": ..., "zh": ...}, ...]}

One entry per English markdown cell, in notebook order, keyed by the cell's id. An entry is
**stale** when ``en_sha256`` is not the hash of the cell's current English (the English changed after
it was translated), **missing** when there is no entry or its ``zh`` is empty. A missing or stale cell
is built in English (its metadata says why) so the edition never shows a translation of text that is
no longer there; ``--check`` fails until it is translated.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .exercises import BEGIN, END, differences, make_exercise, render, solutions_notebook

ROOT = Path(__file__).resolve().parent.parent
LANGUAGE = "zh-CN"
EDITION = "zh"  # the edition's folder at the top of the checkout
SOURCE_DIRS = ("notebooks", "solutions")  # translated; exercises/ is generated from solutions/
METADATA_KEY = "minigpt_edition"


def en_sha256(text: str) -> str:
    """The hash a translation records of the English it translates."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def translation_path(source: Path, root: Path = ROOT) -> Path:
    """``zh/translations/notebooks/05_x.json`` for ``notebooks/05_x.ipynb``."""
    source = Path(source)
    return root / EDITION / "translations" / source.parent.name / f"{source.stem}.json"


def english_notebooks(root: Path = ROOT) -> list[Path]:
    """Every English notebook that the edition translates, in folder then lesson order."""
    return [p for d in SOURCE_DIRS for p in sorted((root / d).glob("*.ipynb"))]


def markdown_cells(nb) -> list:
    """The markdown cells of a notebook, each with an id (nbformat 4.5)."""
    cells = [c for c in nb.cells if c.cell_type == "markdown"]
    for c in cells:
        if not c.get("id"):
            raise ValueError("a markdown cell has no id; upgrade the notebook to nbformat 4.5 "
                             "(nbformat.validator.normalize) so that translations can be keyed by cell id")
    return cells


def read_translation(path: Path) -> dict:
    """A translation file, checked against the format; a bad file raises a one-line ValueError."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("cells"), list) or not isinstance(obj.get("source"), str):
        raise ValueError(f"{path} must be an object with \"source\" (a string) and \"cells\" (a list)")
    seen = set()
    for i, entry in enumerate(obj["cells"]):
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("id", "en_sha256", "en", "zh")):
            raise ValueError(f"{path}: cells[{i}] needs the strings \"id\", \"en_sha256\", \"en\" and \"zh\"")
        if entry["id"] in seen:
            raise ValueError(f"{path}: cell id {entry['id']!r} appears twice")
        seen.add(entry["id"])
    return obj


def write_translation(path: Path, obj: dict) -> None:
    """Write a translation file in the fixed format (UTF-8, ``indent=1``, trailing newline)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


@dataclass
class CellProblem:
    kind: str  # "missing", "stale", "unused" (an entry for a cell the English no longer has), "markers"
    cell_id: str
    new_en: str = ""  # the English cell now
    old_en: str = ""  # the English the translation was made from


@dataclass
class NotebookStatus:
    source: Path  # notebooks/05_x.ipynb
    translation: Path
    has_file: bool
    n_cells: int = 0
    problems: list[CellProblem] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.problems:
            out[p.kind] = out.get(p.kind, 0) + 1
        return out


def _markers(text: str) -> list[str]:
    return [ln.strip()[: len(BEGIN)] for ln in text.splitlines() if ln.strip().startswith((BEGIN, END))]


def notebook_status(source: Path, root: Path = ROOT) -> NotebookStatus:
    """The missing, stale and unused translations of one English notebook."""
    source = Path(source)
    nb = nbformat.read(source, as_version=4)
    cells = markdown_cells(nb)
    path = translation_path(source, root)
    status = NotebookStatus(source, path, path.exists(), len(cells))
    entries = {e["id"]: e for e in read_translation(path)["cells"]} if path.exists() else {}
    for c in cells:
        e = entries.get(c.id)
        if e is None or not e["zh"].strip():
            status.problems.append(CellProblem("missing", c.id, new_en=c.source))
        elif e["en_sha256"] != en_sha256(c.source):
            status.problems.append(CellProblem("stale", c.id, new_en=c.source, old_en=e["en"]))
        elif _markers(e["zh"]) != _markers(c.source):
            status.problems.append(CellProblem("markers", c.id, new_en=c.source))
    ids = {c.id for c in cells}
    status.problems += [CellProblem("unused", i, old_en=e["en"]) for i, e in entries.items() if i not in ids]
    return status


def edition_status(root: Path = ROOT) -> list[NotebookStatus]:
    """:func:`notebook_status` of every English notebook."""
    return [notebook_status(p, root) for p in english_notebooks(root)]


def build_notebook(nb, translation: dict | None, source: str):
    """The Chinese notebook: ``nb`` (not changed) with its markdown cells translated.

    A cell without a current translation stays English and its metadata says ``"missing"`` or ``"stale"``.
    """
    zh = nbformat.from_dict(nb)
    entries = {e["id"]: e for e in (translation or {}).get("cells", [])}
    for cell in markdown_cells(zh):
        e = entries.get(cell.id)
        if e is not None and e["zh"].strip() and e["en_sha256"] == en_sha256(cell.source):
            cell.source = e["zh"]
        else:
            cell.metadata[METADATA_KEY] = {"untranslated": "missing" if e is None or not e["zh"].strip() else "stale"}
    zh.metadata[METADATA_KEY] = {"language": LANGUAGE, "source": source,
                                 "translation": f"{EDITION}/translations/{source.removesuffix('.ipynb')}.json"}
    return zh


def expected_edition(root: Path = ROOT) -> dict[Path, str]:
    """What every notebook of ``zh/`` should contain, keyed by its path.

    Only notebooks that have a translation file are built (a lesson not yet translated has no Chinese
    notebook, rather than an English one in the Chinese folder).
    """
    result = {}
    for source in english_notebooks(root):
        path = translation_path(source, root)
        if not path.exists():
            continue
        nb = nbformat.read(source, as_version=4)
        rel = source.relative_to(root).as_posix()
        zh = build_notebook(nb, read_translation(path), rel)
        result[root / EDITION / source.parent.name / source.name] = render(zh)
        if source.parent.name == "solutions":
            result[root / EDITION / "exercises" / source.name] = render(_exercise(zh, rel))
    return result


def _exercise(zh, rel: str):
    """The Chinese exercise notebook from the built Chinese solutions notebook ``zh`` of ``rel``."""
    ex = make_exercise(zh, language="zh")
    ex.metadata[METADATA_KEY] = dict(zh.metadata[METADATA_KEY], source=rel.replace("solutions/", "exercises/", 1))
    return ex


def chinese_exercise(lesson: str, root: Path = ROOT) -> tuple[str, str]:
    """``(file name, text)`` of lesson ``lesson``'s clean Chinese exercise notebook, built from the sources
    (what ``python -m minigpt exercises reset NN --edition zh`` restores)."""
    sol = solutions_notebook(lesson, root)
    path = translation_path(sol, root)
    if not path.exists():
        raise ValueError(f"lesson {lesson} has no Chinese exercise notebook yet ({path.relative_to(root)} does "
                         "not exist); use the English one (--edition en)")
    rel = sol.relative_to(root).as_posix()
    zh = build_notebook(nbformat.read(sol, as_version=4), read_translation(path), rel)
    return sol.name, render(_exercise(zh, rel))


START = "start.ipynb"  # the page `make lab` opens: choose 中文 or English
_START_HEAD = """# minigpt

**选择语言 · Choose your language**: 中文版与英文版的代码和输出完全相同，只有文字不同。在 `zh/` 下运行的笔记本，
检查提示和小部件也是中文的（环境变量 `MINIGPT_LANG=zh` 或 `en` 可以改变它）。The Chinese edition has the same
code and outputs as the English one; a notebook run from `zh/` gets Chinese check hints and widget labels
(`MINIGPT_LANG=zh` or `en` overrides that).

[中文说明 README.zh-CN.md](README.zh-CN.md) · [术语表 glossary](zh/glossary.md) · [README.md](README.md)
"""


def _title(nb) -> str:
    """A notebook's title: the first heading of its first markdown cell, without the ``#``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def start_notebook(root: Path = ROOT, built: dict[Path, str] | None = None) -> str:
    """``start.ipynb``: one table, a row per lesson, its English notebook and exercises beside the Chinese
    ones (a lesson not yet translated says so)."""
    built = expected_edition(root) if built is None else built
    rows = ["| # | 中文 | English |", "| --- | --- | --- |"]
    for source in sorted((root / "notebooks").glob("*.ipynb")):
        number = source.name.split("_", 1)[0]
        en = f"[{_title(nbformat.read(source, as_version=4)) or source.stem}](notebooks/{source.name})"
        if (root / "exercises" / source.name).exists():
            en += f" · [exercises](exercises/{source.name})"
        zh_path = root / EDITION / "notebooks" / source.name
        if zh_path in built:
            zh = f"[{_title(nbformat.reads(built[zh_path], as_version=4)) or source.stem}]({EDITION}/notebooks/{source.name})"
            if root / EDITION / "exercises" / source.name in built:
                zh += f" · [练习]({EDITION}/exercises/{source.name})"
        else:
            zh = "（翻译中）"
        rows.append(f"| {number} | {zh} | {en} |")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(_START_HEAD + "\n" + "\n".join(rows), id="choose-language")]
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    return render(nb)


def built_problems(root: Path = ROOT) -> list[str]:
    """Notebooks of ``zh/`` (and ``start.ipynb``) that are missing, out of date, or have no English source."""
    expected = expected_edition(root)
    expected[root / START] = start_notebook(root, expected)
    problems = differences(expected, root)
    for d in (*SOURCE_DIRS, "exercises"):
        for path in sorted((root / EDITION / d).glob("*.ipynb")):
            if path not in expected:
                problems.append(f"{path.relative_to(root)} has no translation file or no English source")
    for path in sorted((root / EDITION / "translations").glob("*/*.json")):
        if not (root / path.parent.name / f"{path.stem}.ipynb").exists():
            problems.append(f"{path.relative_to(root)} translates {path.parent.name}/{path.stem}.ipynb, "
                            "which does not exist")
    return problems


def translation_problems(root: Path = ROOT) -> list[str]:
    """One line per notebook whose translation is incomplete: no file, or missing, stale, unused cells."""
    lines = []
    for s in edition_status(root):
        rel = s.translation.relative_to(root)
        if not s.has_file:
            lines.append(f"{rel}: no translation file ({s.n_cells} markdown cells of {s.source.relative_to(root)})")
        elif s.problems:
            counts = ", ".join(f"{n} {kind}" for kind, n in s.counts().items())
            lines.append(f"{rel}: {counts} (of {s.n_cells} markdown cells)")
    return lines


def write_edition(root: Path = ROOT) -> list[Path]:
    """Build ``zh/`` and ``start.ipynb``: write the notebooks that changed; returns their paths."""
    written = []
    expected = expected_edition(root)
    expected[root / START] = start_notebook(root, expected)
    for path, text in expected.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def _indent(text: str, prefix: str = "    | ") -> str:
    return "\n".join(prefix + ln for ln in (text.splitlines() or [""]))


def stale_report(root: Path = ROOT, lessons: list[str] | None = None) -> str:
    """Every missing, stale or unused cell, notebook by notebook, with the English a translator needs."""
    out = []
    wanted = {normalize_lesson(k) for k in lessons} if lessons else None
    for s in edition_status(root):
        if wanted is not None and s.source.name.split("_", 1)[0] not in wanted:
            continue
        if not s.problems:
            continue
        counts = ", ".join(f"{n} {kind}" for kind, n in s.counts().items())
        head = f"{s.translation.relative_to(root)} ({s.source.relative_to(root)}): {counts}"
        out.append(head + ("" if s.has_file else "; the file does not exist yet"))
        if not s.has_file:
            continue  # every cell is missing: `editions update` writes the skeleton
        for p in s.problems:
            if p.kind == "missing":
                out += [f"  missing cell {p.cell_id}; English:", _indent(p.new_en)]
            elif p.kind == "stale":
                out += [f"  stale cell {p.cell_id}; old English (what \"zh\" translates):", _indent(p.old_en),
                        "    new English:", _indent(p.new_en)]
            elif p.kind == "markers":
                out.append(f"  cell {p.cell_id}: the translation must keep the English's `{BEGIN}` / `{END}` lines")
            else:
                out += [f"  unused entry {p.cell_id} (the English notebook has no such markdown cell now):",
                        _indent(p.old_en)]
    return "\n".join(out)


def normalize_lesson(key: str) -> str:
    """``"5"``, ``"05"`` or ``"05_self_attention"`` -> ``"05"``."""
    number = str(key).strip().split("_", 1)[0]
    if not number.isdigit():
        raise ValueError(f"{key!r} is not a lesson number (e.g. 05)")
    return number.zfill(2)


def update_translations(root: Path = ROOT, lessons: list[str] | None = None,
                        accept: list[str] | None = None) -> list[str]:
    """Bring translation files in line with the English notebooks, keeping every translation.

    Adds an entry with an empty ``"zh"`` for each missing cell, puts the entries in notebook order and
    drops the unused ones. A stale entry keeps its old English and hash (so it stays stale) unless its
    cell id is in ``accept``: then it records the current English, which says "zh now translates this".
    Returns one line per file changed.
    """
    accept = set(accept or [])
    wanted = {normalize_lesson(k) for k in lessons} if lessons else None
    changed, accepted, writes = [], set(), []
    for source in english_notebooks(root):
        if wanted is not None and source.name.split("_", 1)[0] not in wanted:
            continue
        path = translation_path(source, root)
        cells = markdown_cells(nbformat.read(source, as_version=4))
        old = read_translation(path) if path.exists() else {"cells": []}
        entries = {e["id"]: e for e in old["cells"]}
        new, notes = [], []
        for c in cells:
            e = entries.get(c.id)
            if e is None:
                new.append({"id": c.id, "en_sha256": en_sha256(c.source), "en": c.source, "zh": ""})
                notes.append("added")
            elif c.id in accept and e["en_sha256"] != en_sha256(c.source):
                new.append(dict(e, en_sha256=en_sha256(c.source), en=c.source))
                accepted.add(c.id)
                notes.append("accepted")
            else:
                new.append(e)
        dropped = [i for i in entries if i not in {c.id for c in cells}]
        obj = {"source": source.relative_to(root).as_posix(), "cells": new}
        if not path.exists() or obj != old:
            writes.append((path, obj))
            summary = ", ".join(f"{notes.count(k)} {k}" for k in ("added", "accepted") if notes.count(k))
            parts = [summary] if summary else []
            if dropped:
                parts.append(f"{len(dropped)} unused dropped ({', '.join(dropped)})")
            changed.append(f"wrote {path.relative_to(root)}" + (f": {'; '.join(parts)}" if parts else ""))
    unknown = accept - accepted
    if unknown:
        raise ValueError(f"--accept: no stale cell with id {', '.join(sorted(unknown))} in the lessons given; "
                         "`python -m minigpt editions --stale` lists the stale cells; nothing was written")
    for path, obj in writes:
        write_translation(path, obj)
    return changed
