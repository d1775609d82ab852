"""The learner's language (English or Simplified Chinese) for check hints and widget labels: the standard
library's :mod:`gettext` over the catalogs in ``minigpt/locale/`` (``zh_CN/LC_MESSAGES/minigpt.po`` and its
compiled ``.mo``).

The language follows the edition: a notebook of the Chinese edition (``zh/notebooks``, ``zh/solutions``,
``zh/exercises``) runs with its folder as the kernel's working directory, so the hints are Chinese there and
English everywhere else. ``MINIGPT_LANG=zh`` or ``MINIGPT_LANG=en`` overrides that (set it before starting
JupyterLab, or in a cell: ``os.environ["MINIGPT_LANG"] = "zh"``).

A message is written in English in the code, wrapped in ``_()``, with named placeholders filled in *after*
the translation, so the translator can move them::

    c.fail(_("the loss at initialisation is {loss:.2f}, expected about {expected:.2f}").format(loss=l, expected=e))

The language is read at each call, so a message is in the language of the moment it is shown. A message
defined at import time (a module-level table) is marked with ``N_()`` and translated where it is shown:
``_(label)``.
"""

from __future__ import annotations

import functools
import gettext
import os
from pathlib import Path

DOMAIN = "minigpt"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
ENV = "MINIGPT_LANG"
LANGUAGES = {"en": None, "zh": "zh_CN"}  # the course's language codes -> gettext's catalog (None: the source)
EDITION_FOLDER = "zh"  # the Chinese edition's folder: zh/notebooks, zh/solutions, zh/exercises
_EDITION_SUBFOLDERS = ("notebooks", "solutions", "exercises")
_ROOT = Path(__file__).resolve().parent.parent


def _from_env(value: str) -> str | None:
    v = value.strip().lower().replace("-", "_")
    if not v:
        return None
    if v in ("zh", "zh_cn", "zh_hans", "cn", "chinese"):
        return "zh"
    if v.startswith("en") or v in ("c", "posix"):
        return "en"
    return None  # unknown: the edition decides (a check must never fail because of a typo here)


def in_chinese_edition(path: str | os.PathLike) -> bool:
    """Whether ``path`` (a folder or a notebook) is in the Chinese edition: under ``zh/`` of this checkout,
    or in a ``notebooks``/``solutions``/``exercises`` folder whose parent is named ``zh`` (a copied edition)."""
    p = Path(path).expanduser().resolve()
    if p.suffix == ".ipynb":
        p = p.parent
    try:
        p.relative_to(_ROOT / EDITION_FOLDER)
        return True
    except ValueError:
        pass
    return p.name in _EDITION_SUBFOLDERS and p.parent.name == EDITION_FOLDER


def language() -> str:
    """``"zh"`` or ``"en"``: ``MINIGPT_LANG`` when it names one, else the edition of the running notebook
    (the kernel's working directory, or the notebook path Jupyter gives in ``JPY_SESSION_NAME``)."""
    chosen = _from_env(os.environ.get(ENV, ""))
    if chosen:
        return chosen
    try:
        places = [Path.cwd()]
    except OSError:  # the working directory was deleted
        places = []
    session = os.environ.get("JPY_SESSION_NAME", "")
    if session.endswith(".ipynb"):
        places.append(Path(session))
    return "zh" if any(in_chinese_edition(p) for p in places) else "en"


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    """The catalog of ``lang`` (``"en"``: none, the messages are English)."""
    code = LANGUAGES.get(lang)
    if code is None:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[code], fallback=True)


def _(message: str) -> str:
    """``message`` in the learner's language (:func:`language`); the English when it has no translation."""
    return translations(language()).gettext(message)


def N_(message: str) -> str:
    """Marks a message for translation without translating it now (translate it where it is shown)."""
    return message
