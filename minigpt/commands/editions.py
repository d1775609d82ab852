"""``python -m minigpt editions [--check] [--stale] | update``: build the Chinese edition, check it, update
its translation files.

    python -m minigpt editions                  # build zh/notebooks, zh/solutions, zh/exercises (make editions)
    python -m minigpt editions --check          # exit 1 when a translation is missing or stale, or zh/ is stale
    python -m minigpt editions --stale [05 ..]  # each missing or stale cell with its old and new English
    python -m minigpt editions update [05 ..] [--accept CELL_ID ..]   # add missing cells; accept re-translated ones
"""

from __future__ import annotations


def add_cli(sub) -> None:
    """``python -m minigpt editions [--check | --stale [NN ...]]`` and ``python -m minigpt editions update``."""
    p = sub.add_parser("editions", help="the Chinese edition (zh/): build it from the English notebooks and "
                                        "zh/translations/, check it, list the cells to translate")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true",
                       help="only report missing or stale translations and out-of-date notebooks (exit 1 if any)")
    group.add_argument("--stale", nargs="*", metavar="NN",
                       help="list every missing or stale cell (of these lessons, default all) with its English")
    p.set_defaults(func=_cli_build)
    ed = p.add_subparsers(dest="editions_command", metavar="ACTION")
    u = ed.add_parser("update", help="add an empty entry for each missing cell to the translation files "
                                     "(creating them), drop unused entries; --accept marks re-translated cells")
    u.add_argument("lessons", nargs="*", metavar="NN", help="only these lessons, e.g. 05 08 (default: all)")
    u.add_argument("--accept", nargs="+", default=[], metavar="CELL_ID",
                   help="stale cells whose \"zh\" you have updated: record the current English and its hash")
    u.set_defaults(func=_cli_update)


def _cli_build(args) -> int:
    from ..editions import (  # deferred: nbformat takes ~1.5 s to import
        ROOT,
        built_problems,
        stale_report,
        translation_problems,
        write_edition,
    )

    if args.stale is not None:
        report = stale_report(lessons=args.stale or None)
        print(report or "every translation is up to date")
        if report:
            print("\nafter editing \"zh\" of a stale cell, run `python -m minigpt editions update NN --accept CELL_ID`; "
                  "`python -m minigpt editions update NN` adds the missing cells with an empty \"zh\"")
        return 1 if report else 0
    if args.check:
        problems = translation_problems() + built_problems()
        for p in problems:
            print(p)
        if problems:
            print("`python -m minigpt editions --stale` lists the cells to translate; "
                  "`make editions` (python -m minigpt editions) rebuilds zh/")
        return 1 if problems else 0
    for path in write_edition():
        print(f"wrote {path.relative_to(ROOT)}")
    for line in translation_problems():
        print(f"not translated yet: {line}")
    return 0


def _cli_update(args) -> int:
    from ..editions import update_translations  # deferred: nbformat takes ~1.5 s to import

    changed = update_translations(lessons=args.lessons or None, accept=args.accept)
    for line in changed:
        print(line)
    if not changed:
        print("the translation files already have an entry for every English markdown cell")
    return 0
