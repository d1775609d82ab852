"""The command line: ``python -m minigpt COMMAND ...``. Thin: it parses and calls the package.

Each command lives with its concept: a module in ``COMMAND_MODULES`` that defines
``add_cli(subparsers)`` adds its sub-command(s), each with ``set_defaults(func=...)``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from .utils import os_error_message

COMMAND_MODULES = ["data", "ngram", "bpe", "train", "generate", "chat", "bench", "gpu", "doctor", "progress", "exercises", "hf"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m minigpt",
        description="minigpt: language modeling from n-gram counts to a GPT.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(f"minigpt.{name}") is None:
            continue
        module = importlib.import_module(f"minigpt.{name}")
        if hasattr(module, "add_cli"):
            module.add_cli(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as e:  # Ctrl-C: training has saved a checkpoint and says how to resume
        print(f"interrupted: {e}" if str(e) else "interrupted", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, FileNotFoundError, KeyError, OSError) as e:
        # Bad input: one clear line on stderr, no traceback.
        if isinstance(e, OSError) and e.filename is not None:
            msg = os_error_message(e)  # raw errors from the OS: name the path and the fix
        else:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print("error: " + " ".join(str(msg).split("\n")), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
