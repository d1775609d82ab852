"""Check hints and widget labels in the learner's language: gettext over minigpt/locale/, the language
following the edition (zh/...) with MINIGPT_LANG to override; the catalog is complete and compiled."""

import ast
import functools
import gettext
import string

import pytest
import torch
from babel.messages.pofile import read_po

from minigpt import checks as check
from minigpt import i18n
from minigpt.checks._core import parse_failure, parse_passes, pass_line

ROOT = i18n._ROOT
PO = i18n.LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "minigpt.po"
MO = PO.with_suffix(".mo")


def _po():
    with open(PO, "rb") as f:
        return read_po(f)


@functools.cache
def _code_messages() -> frozenset[str]:
    """Every message wrapped in _() or N_() in minigpt/ (what `make locale` extracts)."""
    found = set()
    for path in sorted(i18n.LOCALE_DIR.parent.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "_(" in text:
            found |= {node.args[0].value for node in ast.walk(ast.parse(text))
                      if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("_", "N_")
                      and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)}
    return frozenset(found)


def _fields(text: str):
    return sorted((name, conv, spec) for _, name, spec, conv in string.Formatter().parse(text) if name is not None)


@pytest.fixture
def edition(monkeypatch):
    """Run as a kernel in a folder of the given edition, with MINIGPT_LANG unset."""
    monkeypatch.delenv(i18n.ENV, raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)

    def go(folder):
        folder.mkdir(parents=True, exist_ok=True)
        monkeypatch.chdir(folder)

    return go


def test_every_message_in_the_code_has_a_chinese_translation():
    po = _po()
    translated = {m.id for m in po if m.id and m.string and not m.fuzzy}
    missing = sorted(_code_messages() - translated)
    assert missing == [], f"{len(missing)} messages have no zh_CN translation (run `make locale`, translate " \
                          f"them in {PO.relative_to(ROOT)}): {missing[:5]}"


def test_the_catalog_has_no_message_the_code_no_longer_uses():
    unused = sorted({m.id for m in _po() if m.id} - _code_messages())
    assert unused == [], f"run `make locale` to drop them: {unused[:5]}"


def test_translations_keep_every_placeholder():
    bad = [m.id for m in _po() if m.id and m.string and _fields(m.id) != _fields(m.string)]
    assert bad == [], f"placeholders ({{name}}, with the same !r and :spec) differ from the English in: {bad[:5]}"


def test_the_compiled_catalog_is_up_to_date_with_the_po():
    with open(MO, "rb") as f:
        mo = gettext.GNUTranslations(f)
    po = {m.id: m.string for m in _po() if m.id and m.string and not m.fuzzy}
    compiled = {k: v for k, v in mo._catalog.items() if k}
    assert compiled == po, "minigpt.mo differs from minigpt.po: run `make locale`"


@pytest.mark.parametrize("value, lang", [("zh", "zh"), ("zh_CN", "zh"), ("zh-Hans", "zh"), ("en", "en"),
                                         ("en_US.UTF-8", "en")])
def test_the_environment_variable_overrides_the_edition(monkeypatch, edition, value, lang):
    edition(ROOT / "zh" / "notebooks")
    monkeypatch.setenv(i18n.ENV, value)
    assert i18n.language() == lang


def test_the_language_follows_the_edition(monkeypatch, edition, tmp_path):
    edition(ROOT / "zh" / "notebooks")
    assert i18n.language() == "zh"
    edition(ROOT / "notebooks")
    assert i18n.language() == "en"
    edition(tmp_path / "course" / "zh" / "exercises")  # a copied Chinese edition
    assert i18n.language() == "zh"
    edition(tmp_path / "zh" / "work")  # a folder that happens to be called zh is not an edition
    assert i18n.language() == "en"
    monkeypatch.setenv(i18n.ENV, "klingon")  # unknown: the edition decides, a check never breaks on it
    assert i18n.language() == "en"
    monkeypatch.delenv(i18n.ENV)
    monkeypatch.setenv("JPY_SESSION_NAME", str(ROOT / "zh" / "solutions" / "05_self_attention.ipynb"))
    assert i18n.language() == "zh"


def test_a_failing_check_in_the_chinese_edition_gives_a_chinese_hint(edition):
    edition(ROOT / "zh" / "exercises")
    with pytest.raises(check.CheckFailed) as e:
        check.one_hot_logits(lambda xs, W: torch.zeros(len(xs), 27))  # a constant answer
    name, hint = parse_failure(str(e.value))
    assert name == "one_hot_logits" and any("\u4e00" <= ch <= "\u9fff" for ch in hint), hint
    with pytest.raises(check.CheckFailed, match="还没有实现"):
        check.one_hot_logits(lambda xs, W: (_ for _ in ()).throw(NotImplementedError()))


def test_the_same_check_in_the_english_edition_gives_the_english_hint(edition):
    edition(ROOT / "exercises")
    with pytest.raises(check.CheckFailed, match="not implemented yet"):
        check.one_hot_logits(lambda xs, W: (_ for _ in ()).throw(NotImplementedError()))


def test_a_chinese_pass_line_is_still_read_by_progress(edition, capsys):
    edition(ROOT / "zh" / "exercises")
    line = pass_line("one_hot_logits", 7)
    assert line == "✓ one_hot_logits: 全部 7 项检查通过"
    assert parse_passes(line + "\n" + pass_line("x", 2).replace("全部 2 项检查通过", "all 2 checks passed")) == {
        "one_hot_logits": 7, "x": 2}


def test_widget_labels_follow_the_edition(edition):
    from minigpt.viz import AttentionExplorer, RandomAttention

    edition(ROOT / "zh" / "notebooks")
    explorer = AttentionExplorer(RandomAttention(n_head=2, head_size=8, n_embd=16, seed=0), ["the cat sat"])
    assert (explorer.head.description, explorer.causal.description) == ("头", "因果掩码")
    assert "平均行熵" in explorer.info.value
    edition(ROOT / "notebooks")
    assert i18n._("head") == "head"  # test_viz.py builds the English widgets


def test_progress_runs_a_chinese_edition_notebook_with_chinese_hints():
    from minigpt.progress import edition_env

    zh = {"metadata": {"minigpt_edition": {"language": "zh-CN"}}, "cells": []}
    assert edition_env(zh, {}) == {"MINIGPT_LANG": "zh"}
    assert edition_env(zh, {"MINIGPT_LANG": "en"}) == {}  # the instructor's choice wins
    assert edition_env({"metadata": {}, "cells": []}, {}) == {}
