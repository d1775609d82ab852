"""``python -m minigpt doctor``: the pre-flight check of :mod:`minigpt.doctor` from the command line.

``python -m minigpt.commands.doctor`` runs the same report on its own, for when the main command line
cannot start; neither imports torch before the checks do, so a broken install gets a ``fail`` line.
"""

from __future__ import annotations

import json
import sys

from .. import doctor
from .options import real


def add_cli(sub) -> None:
    """``python -m minigpt doctor [--json] [--no-probe] [--probe-seconds S]``."""
    p = sub.add_parser("doctor", help="pre-flight check before a workshop: packages, device, data, folders, speed")
    p.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    p.add_argument("--no-probe", action="store_true", help="skip the timed training steps (the speed line)")
    p.add_argument("--probe-seconds", type=real("--probe-seconds", 0, 3600, must=">= 0 and at most 3600 (seconds)"),
                   default=6.0, help="about how long the speed probe trains (default 6)")
    p.set_defaults(func=_cli_doctor)


def _cli_doctor(args) -> int:
    results, probe = doctor.run_checks(0 if args.no_probe else args.probe_seconds)
    width = max(len(r.name) for r in results)
    for r in results:
        print(r.line(width), flush=True)
    summary = doctor.report(results)
    c = summary["counts"]
    verdict = ("fix the failures above before the workshop" if c[doctor.FAIL]
               else "ready; the warnings say what may slow you down" if c[doctor.WARN] else "ready for the workshop")
    print(f"doctor: {c[doctor.OK]} ok, {c[doctor.WARN]} warn, {c[doctor.FAIL]} fail: {verdict}")
    if args.json:
        summary["probe"] = probe
        print(json.dumps(summary))
    return 1 if c[doctor.FAIL] else 0


def main(argv=None) -> int:
    """``python -m minigpt.commands.doctor``: the same report, for when the main command line cannot start."""
    from ..cli import main as cli_main  # deferred: cli imports this module

    return cli_main(["doctor", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
