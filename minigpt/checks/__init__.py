"""Check cells for the exercises: ``from minigpt import checks as check; check.bigram_counts(fn)``.

Each check prints one line when the answer passes, or raises :class:`CheckFailed` with a hint that
helps (expected shape, first mismatch) without giving the answer away. The checks of lesson NN
live in ``minigpt/checks/lessonNN.py``; every public name listed in a module's ``__all__`` is
re-exported here.
"""

import importlib
import pkgutil

from ._core import Check, CheckFailed

__all__ = ["Check", "CheckFailed"]

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name.startswith("lesson"):
        _module = importlib.import_module(f"{__name__}.{_info.name}")
        for _name in getattr(_module, "__all__", []):
            if _name in globals():  # two lessons' checks under one name: the later would hide the earlier
                raise ImportError(f"minigpt.checks.{_info.name}.{_name}: another lesson's check has this name")
            globals()[_name] = getattr(_module, _name)
            __all__.append(_name)
