"""Chinese poems: their form, their rhyme, word segmentation, and a font that draws them.

Form: a poem of ``tang-poems`` is 4 lines, each a couplet of two halves of n Han characters (n = 5 or 7,
the same in every line), the first half ending in one of ，？！； and the second in one of 。？！.
:data:`FORM_PATTERN` says so as a regular expression that :class:`minigpt.constrain.RegexConstraint` accepts.

Rhyme: a regulated poem rhymes at the end of every couplet (the even lines, 2, 4, 6, 8). We read each
last character's final in Mandarin with ``pypinyin`` and reduce it to its *rhyme* by :func:`rhyme_of`:
the medial glide (i, u, ü) before the main vowel is dropped, so 江 jiang, 光 guang and 长 chang share
``ang``; a poem rhymes when its four rhymes are the same. Modern readings drift from Tang ones (and a
character with several readings gets its most common one), so real poems score well under 100%:
compare them with :func:`shuffle_endings`, the same poems with their line endings drawn at random.

:class:`FormConstraint` holds sampling to the form; :func:`copied_share` counts couplets copied from training.

Optional dependencies (``pip install 'minigpt[chinese]'``): ``pypinyin`` for rhyme, ``jieba`` for words.
"""

from __future__ import annotations

import random
import re
import sys

from .constrain import RegexConstraint

HAN = "\u4e00-\u9fff"
_HALF = {"first": "，？！；", "second": "。？！"}
INSTALL_HINT = "pip install 'minigpt[chinese]'"


def _line(n: int) -> str:
    return f"[{HAN}]{{{n}}}[{_HALF['first']}][{HAN}]{{{n}}}[{_HALF['second']}]"


# Four lines of one length, joined by newlines; no newline after the last line.
FORM_PATTERN = "|".join(f"(?:{_line(n)}\\n){{3}}{_line(n)}" for n in (5, 7))
_FORM = re.compile(FORM_PATTERN)


def has_form(text: str) -> bool:
    """True when ``text`` (surrounding whitespace ignored) is 4 couplets of 5 or 7 characters, as in tang-poems."""
    return _FORM.fullmatch(text.strip()) is not None


def form_rate(texts: list[str]) -> float:
    """The share of ``texts`` that have the form."""
    return sum(map(has_form, texts)) / len(texts) if texts else 0.0


class FormConstraint(RegexConstraint):
    """:data:`FORM_PATTERN` as a :class:`minigpt.constrain.RegexConstraint`, fast: whether a text can still grow
    into the form depends only on which of its characters are Han, so the allowed tokens are worked out once
    per *shape* of the text (every Han character read as 字), not once per text: a few hundred shapes instead
    of one regex test per vocabulary token at every step of every sample."""

    def __init__(self, tokenizer):
        super().__init__(FORM_PATTERN, tokenizer)

    def allowed(self, text: str):
        return super().allowed(_HAN_CHAR.sub("字", text))


_HAN_CHAR = re.compile(f"[{HAN}]")


def couplets(text: str) -> list[str]:
    """The lines of a poem (each a couplet, e.g. 国破山河在，城春草木深。), blank lines dropped."""
    return [line.strip() for line in text.strip().split("\n") if line.strip()]


def copied_share(texts: list[str], train_texts: list[str]) -> float:
    """The share of the couplets of ``texts`` that occur verbatim as a couplet of ``train_texts``."""
    seen = {c for t in train_texts for c in couplets(t)}
    lines = [c for t in texts for c in couplets(t)]
    return sum(c in seen for c in lines) / len(lines) if lines else 0.0


def line_endings(text: str) -> list[str]:
    """The last Han character of each line (the even lines of the poem: each line here is a couplet)."""
    return [m[-1] for m in (re.findall(f"[{HAN}]", line) for line in text.strip().split("\n")) if m]


def _pinyin():
    # Deferred on purpose: pypinyin is an optional dependency, used only for rhyme.
    try:
        import pypinyin
    except ImportError:
        raise RuntimeError(f"rhyme needs pypinyin: {INSTALL_HINT} (or pip install pypinyin)") from None
    return pypinyin


def finals(chars: str | list[str]) -> list[str]:
    """The Mandarin final of each character (pypinyin's strict finals: 'uei' for 归, 'van' for 元)."""
    p = _pinyin()
    return [p.lazy_pinyin(ch, style=p.Style.FINALS, strict=True)[0] for ch in chars]


def rhyme_of(final: str) -> str:
    """The rhyme of a final: the medial i/u/v dropped when a vowel or n follows it; i-n, i-ng, v-n become
    en, eng, en. So iang, uang -> ang; uei -> ei; iou -> ou; in -> en; ing -> eng; i, u, v stay."""
    if len(final) > 1 and final[0] in "iuv" and final[1] in "aeon":
        final = final[1:]
        if final[0] == "n":
            final = "e" + final
    return final


def rhymes(text: str) -> bool:
    """True when the rhymes of the last characters of the poem's even lines (its 4 couplets) all agree."""
    ends = line_endings(text)
    return len(ends) >= 2 and len({rhyme_of(f) for f in finals(ends)}) == 1


def rhyme_rate(texts: list[str]) -> float:
    """The share of ``texts`` whose even-line endings rhyme (:func:`rhymes`)."""
    return sum(map(rhymes, texts)) / len(texts) if texts else 0.0


def shuffle_endings(texts: list[str], seed: int = 0) -> list[str]:
    """The random baseline: the same poems with every line's last character swapped for one drawn
    (without replacement) from all the poems' line endings, so rhyme is left to chance."""
    ends = [e for t in texts for e in line_endings(t)]
    random.Random(seed).shuffle(ends)
    it = iter(ends)
    out = []
    for t in texts:
        lines = [re.sub(f"[{HAN}](?=[^{HAN}]*$)", lambda _: next(it), line) if re.search(f"[{HAN}]", line) else line
                 for line in t.strip().split("\n")]
        out.append("\n".join(lines))
    return out


# ----- words -------------------------------------------------------------------------------------------------
def segment(texts: list[str]) -> list[list[str]]:
    """Each text cut into words by ``jieba`` (punctuation and newlines dropped)."""
    # Deferred on purpose: jieba is an optional dependency, and it loads its dictionary (about 1 s) on import.
    try:
        import jieba
    except ImportError:
        raise RuntimeError(f"word segmentation needs jieba: {INSTALL_HINT} (or pip install jieba)") from None
    jieba.setLogLevel(60)  # its "Building prefix dict" lines are not ours to print
    han = re.compile(f"[{HAN}]")
    return [[w for w in jieba.lcut(t) if han.search(w)] for t in texts]


def word_stats(train_texts: list[str], val_texts: list[str]) -> dict[str, float]:
    """jieba words per val poem, the train word vocabulary, and the out-of-vocabulary rate of val words
    (the share of val word tokens never seen in train)."""
    train_words = segment(train_texts)
    val_words = segment(val_texts)
    vocab = {w for ws in train_words for w in ws}
    n_val = sum(map(len, val_words))
    oov = sum(w not in vocab for ws in val_words for w in ws)
    return {"words_per_poem": n_val / max(1, len(val_words)), "vocab_size": len(vocab),
            "oov_rate": oov / max(1, n_val), "val_words": n_val}


# ----- a font for Chinese text in figures --------------------------------------------------------------------
CJK_FONTS = ("Noto Sans CJK SC", "Noto Serif CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "Source Han Sans SC",
             "Source Han Sans CN", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback",
             "AR PL UMing CN", "AR PL UKai CN")  # openly licensed (OFL, Apache, GPL with font exception)
NO_FONT_MESSAGE = ("no CJK font found: Chinese text in figures will show as boxes; install one, e.g. "
                   "`apt install fonts-noto-cjk` (Debian/Ubuntu) or `conda install -c conda-forge font-ttf-noto-cjk`, "
                   "then restart the kernel")


CJK_FONT_FILES = re.compile(r"NotoSans(Mono)?CJK|NotoSerifCJK|NotoSansSC|SourceHanSans|wqy-(zenhei|microhei)|"
                            r"DroidSansFallback|uming|ukai", re.IGNORECASE)


def find_cjk_font() -> str | None:
    """The name of the first font of :data:`CJK_FONTS` that matplotlib knows, or None. A font installed after
    matplotlib cached its font list is found by scanning the system's font files for CJK ones and adding them."""
    from matplotlib import font_manager

    def known():
        installed = {f.name for f in font_manager.fontManager.ttflist}
        return next((name for name in CJK_FONTS if name in installed), None)

    if (name := known()) is None:
        for path in font_manager.findSystemFonts():
            if CJK_FONT_FILES.search(path):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):  # a file matplotlib cannot read: not ours to fix
                    continue
        name = known()
    return name


def use_cjk_font() -> str | None:
    """Put a CJK font first in matplotlib's sans-serif list so Chinese renders; print one line and return
    None when there is none."""
    import matplotlib

    name = find_cjk_font()
    if name is None:
        print(NO_FONT_MESSAGE, file=sys.stderr)
        return None
    rc = matplotlib.rcParams
    rc["font.sans-serif"] = [name] + [f for f in rc["font.sans-serif"] if f != name]
    rc["font.family"] = "sans-serif"
    return name
