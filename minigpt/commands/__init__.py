"""The command-line layer: one module per command (or group of commands) over the library.

Each module defines ``add_cli(subparsers)`` and handlers named ``_cli_*``; :mod:`minigpt.cli` builds the
parser from them. A module's top level imports only torch-free code (argparse, :mod:`minigpt.config`,
:mod:`minigpt.data`, :mod:`.options`), so ``python -m minigpt --help`` does not load torch; each handler
imports the library it calls, with a ``# deferred:`` comment. The library never imports this package.
One module is not a sub-command: :mod:`.sandbox_launcher`, the script ``progress`` runs by path in front
of each kernel (standard library only).
"""
