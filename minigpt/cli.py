"""The command line: ``python -m minigpt COMMAND ...``. Thin: it parses and calls the package.

Each command lives in :mod:`minigpt.commands`: a module in ``COMMAND_MODULES`` defines
``add_cli(subparsers)``, which adds its sub-command(s), each with ``set_defaults(func=...)``.
Nothing here or in the commands' top level imports torch, so ``--help`` answers in well under a second;
the handlers import the library when they run.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .files import os_error_message

COMMAND_MODULES = ["data", "ngram", "bpe", "train", "sample", "chat", "bench", "gpu_check", "doctor", "progress",
                   "exercises", "editions", "hf"]


class UsageError(ValueError):
    """A command line argparse could not parse (unknown option, bad number, missing argument)."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become one ``error: ...`` line (exit 2), like every other bad input."""

    def error(self, message):
        head, _, rest = message.partition(": ")
        if head.startswith("argument ") and rest.startswith("-"):  # our number types already name the option
            message = rest
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m minigpt`` with every command's sub-parser."""
    parser = Parser(prog="python -m minigpt", description="minigpt: language modeling from n-gram counts to a GPT.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"minigpt.commands.{name}").add_cli(sub)
    return parser


def main(argv=None) -> int:
    """Parse ``argv`` and run the command; bad input prints one ``error:`` line and returns 2."""
    try:
        parser = build_parser()
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # name the command whose --help lists what it takes
            words = [w for w in (args.command, getattr(args, "bpe_command", None),
                                 getattr(args, "exercises_command", None),
                                 getattr(args, "editions_command", None)) if w]
            raise UsageError(f"unrecognized arguments: {' '.join(unknown)} "
                             f"(see `{' '.join([parser.prog, *words, '--help'])}`)")
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
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
