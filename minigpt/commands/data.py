"""``python -m minigpt data [NAME] [--download] [--json]``: the data sets and their checksums."""

from __future__ import annotations

import json

from ..data import DATASETS, dataset, locate, status


def add_cli(sub) -> None:
    """``python -m minigpt data [NAME] [--json]``."""
    p = sub.add_parser("data", help="where each data set is, its size, and whether its checksum matches")
    p.add_argument("name", nargs="?", help=f"one of: {', '.join(sorted(DATASETS))} (default: all)")
    p.add_argument("--download", action="store_true", help="download data sets that are missing")
    p.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    p.set_defaults(func=_cli_data)


def _cli_data(args) -> int:
    """Print one line per data set; exit 1 when one is missing."""
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
