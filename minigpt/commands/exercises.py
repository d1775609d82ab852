"""``python -m minigpt exercises [--check] | reset NN``: build the exercise notebooks, check them, reset one.

    python -m minigpt exercises            # regenerate exercises/ from solutions/ (make exercises)
    python -m minigpt exercises --check    # exit 1 when an exercise notebook is out of date (make test)
    python -m minigpt exercises reset 05   # a learner's clean start on lesson 05 (their copy kept)
    python -m minigpt exercises reset 05 --edition zh   # the same in the Chinese edition (zh/exercises/)
"""

from __future__ import annotations

from pathlib import Path

from ..files import refuse_out_over_source


def add_cli(sub) -> None:
    """``python -m minigpt exercises [--check]`` and ``python -m minigpt exercises reset NN``."""
    p = sub.add_parser("exercises", help="exercise notebooks: regenerate them from solutions/, check them, "
                                         "or reset one to a clean copy")
    p.add_argument("--check", action="store_true", help="only report stale exercise notebooks (exit 1 if any)")
    p.set_defaults(func=_cli_build)
    ex = p.add_subparsers(dest="exercises_command", metavar="ACTION")
    r = ex.add_parser("reset", help="restore a clean exercise notebook; your copy is kept as a dated backup")
    r.add_argument("lesson", help="the lesson number, e.g. 05")
    r.add_argument("--dir", type=Path, default=None,
                   help="the folder that holds your exercise notebooks (default: exercises/ of this checkout)")
    r.add_argument("--edition", choices=("en", "zh"), default=None,
                   help="en or zh (中文版, from zh/exercises/); default: zh when --dir is in the Chinese edition, else en")
    r.set_defaults(func=_cli_reset)


def _cli_build(args) -> int:
    from ..exercises import ROOT, expected_exercises, stale  # deferred: nbformat takes ~1.5 s to import

    if args.check:
        problems = stale()
        for p in problems:
            print(p)
        if problems:
            print("run `make exercises` (python -m minigpt exercises) to regenerate them")
        return 1 if problems else 0
    (ROOT / "exercises").mkdir(exist_ok=True)
    for path, text in expected_exercises().items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


def _cli_reset(args) -> int:
    from ..exercises import ROOT, reset  # deferred: nbformat takes ~1.5 s to import
    from ..i18n import in_chinese_edition

    if args.dir is not None:  # the clean copy is made from solutions/, which it must never replace
        refuse_out_over_source(ROOT / "solutions", args.dir, "solutions/", "--dir")
        refuse_out_over_source(ROOT / "zh" / "solutions", args.dir, "zh/solutions/", "--dir")
    edition = args.edition or ("zh" if args.dir is not None and in_chinese_edition(args.dir) else "en")
    folder, clean = args.dir, None
    if edition == "zh":
        from ..editions import chinese_exercise  # deferred: nbformat takes ~1.5 s to import

        clean = chinese_exercise(args.lesson)[1]
        folder = folder if folder is not None else ROOT / "zh" / "exercises"
    target, backup = reset(args.lesson, folder, clean=clean)
    if backup is None:
        print(f"{target} is a clean exercise notebook (it was missing or had no changes: nothing to back up)")
    else:
        print(f"{target}: clean exercise notebook written; your previous copy is in {backup}")
    return 0
