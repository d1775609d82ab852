"""``python -m minigpt progress``: run learners' exercise notebooks and report each exercise (see
:mod:`minigpt.progress`)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from ..files import refuse_out_over_source
from .options import real


def add_cli(sub) -> None:
    """``python -m minigpt progress [NOTEBOOK_OR_FOLDER ...] [--class] [--csv F] [--markdown F] [--json]``."""
    p = sub.add_parser("progress", help="run exercise notebooks (a copy, FAST mode) and report each exercise; "
                                        "a folder of learners gives a class table")
    p.add_argument("paths", nargs="*", type=Path, metavar="NOTEBOOK_OR_FOLDER",
                   help="exercise notebooks, a learner's folder, or a class folder (default: exercises/)")
    p.add_argument("--class", dest="as_class", action="store_true",
                   help="treat each folder as a class: one subfolder or one notebook per learner")
    p.add_argument("--lessons", help="only these lessons, e.g. 01,05,08 (a learner without one is 'missing')")
    p.add_argument("--timeout", type=real("--timeout", 0, 86_400, low_open=True), default=60.0,
                   help="seconds a cell may run (default 60)")
    p.add_argument("--details", action="store_true", help="for a class: every learner's exercises with hints")
    p.add_argument("--csv", help="write the learners x exercises table as CSV to this file")
    p.add_argument("--markdown", help="write the table as Markdown to this file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the text report")
    p.set_defaults(func=_cli_progress)


def _cli_progress(args) -> int:
    # deferred: progress.py imports the checks, which import torch (~4 s), and --help must not
    from ..progress import (
        ROOT,
        _notebooks_in,
        _write,
        csv_table,
        learner_text,
        markdown_table,
        pass_rates,
        run_progress,
        stuck,
    )

    only = [n.strip().zfill(2) for n in args.lessons.split(",") if n.strip()] if args.lessons else None
    sources = args.paths or [ROOT / "exercises"]
    for option, target in (("--csv", args.csv), ("--markdown", args.markdown)):
        if target is not None and Path(target).is_dir():
            raise ValueError(f"{target} is a folder; give a file name for the table")
        if target is not None and Path(target).suffix == ".ipynb":  # a table must never replace a notebook
            for source in sources:
                refuse_out_over_source(source, target, "NOTEBOOK_OR_FOLDER", option)
    for folder in sources:
        if folder.is_dir() and not _notebooks_in(folder):
            raise FileNotFoundError(f"no exercise notebooks (.ipynb) found in {folder}; give a learner's exercises "
                                    "folder, a class folder, or notebooks")
    echo = None if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    reports = run_progress(args.paths or None, as_class=args.as_class, only=only, timeout=args.timeout, echo=echo)
    many = len(reports) > 1 or args.as_class
    if not args.json:
        for learner in reports:
            if not many or args.details:
                if many:
                    print(f"## {learner.name}")
                print(learner_text(learner))
        problems = [p for learner in reports for p in learner.problems]
        if problems:
            print("problems:")
            for p in problems:
                print(f"  {p}")
        if many:
            print()
            print(markdown_table(reports), end="")
            hard = stuck(reports)
            if hard:
                print("hardest: " + "; ".join(hard))
    if args.csv:
        _write(Path(args.csv), csv_table(reports))
        if not args.json:
            print(f"wrote {args.csv}")
    if args.markdown:
        _write(Path(args.markdown), markdown_table(reports))
        if not args.json:
            print(f"wrote {args.markdown}")
    if args.json:
        rates = {f"{lesson} {name}": {"passed": p, "learners": n} for (lesson, name), (p, n) in pass_rates(reports).items()}
        print(json.dumps({"learners": [dataclasses.asdict(r) for r in reports], "pass_rates": rates}))
    return 0
