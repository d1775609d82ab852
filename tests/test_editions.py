"""The Chinese edition (zh/) is built from the English notebooks and zh/translations/, and cannot drift."""

import json

import nbformat
import pytest

from minigpt import editions
from minigpt.cli import main


def _course(tmp_path, markdown=("# Title", "Some prose.")):
    """A course with notebooks/01_x.ipynb and solutions/01_x.ipynb (one exercise)."""
    for d in ("notebooks", "solutions"):
        (tmp_path / d).mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(markdown[0]),
                nbformat.v4.new_code_cell("x = 1", execution_count=1,
                                          outputs=[nbformat.v4.new_output("stream", text="out\n")]),
                nbformat.v4.new_markdown_cell(markdown[1])]
    nbformat.write(nb, tmp_path / "notebooks" / "01_x.ipynb")
    sol = nbformat.v4.new_notebook()
    sol.cells = [nbformat.v4.new_markdown_cell("Explain.\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION"),
                 nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION")]
    nbformat.write(sol, tmp_path / "solutions" / "01_x.ipynb")
    return nb, sol


def _translate(tmp_path, source, zh_texts):
    nb = nbformat.read(tmp_path / source, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "markdown"]
    obj = {"source": source, "cells": [{"id": c.id, "en_sha256": editions.en_sha256(c.source), "en": c.source,
                                        "zh": z} for c, z in zip(cells, zh_texts)]}
    path = editions.translation_path(tmp_path / source, tmp_path)
    editions.write_translation(path, obj)
    return path


def _translate_all(tmp_path):
    _translate(tmp_path, "notebooks/01_x.ipynb", ["# 标题", "一些正文。"])
    _translate(tmp_path, "solutions/01_x.ipynb", ["解释。\n### BEGIN SOLUTION\n因为。\n### END SOLUTION"])


def test_a_translated_course_builds_with_the_same_code_and_outputs(tmp_path):
    nb, _ = _course(tmp_path)
    _translate_all(tmp_path)
    assert editions.translation_problems(tmp_path) == []
    assert len(editions.write_edition(tmp_path)) == 4  # 3 notebooks and start.ipynb
    assert editions.built_problems(tmp_path) == []
    zh = nbformat.read(tmp_path / "zh" / "notebooks" / "01_x.ipynb", as_version=4)
    assert [c.source for c in zh.cells] == ["# 标题", "x = 1", "一些正文。"]
    assert zh.cells[1] == nb.cells[1]  # the code cell, its id and its saved output
    assert [c.id for c in zh.cells] == [c.id for c in nb.cells]
    assert zh.metadata["minigpt_edition"]["language"] == "zh-CN"
    ex = nbformat.read(tmp_path / "zh" / "exercises" / "01_x.ipynb", as_version=4)
    assert ex.cells[0].source == "解释。\n*在这里写下你的答案。*"
    assert ex.cells[1].source == "def f():\n    # 在这里写你的代码\n    raise NotImplementedError()"
    start = nbformat.read(tmp_path / "start.ipynb", as_version=4).cells[0].source
    assert "| 01 | [标题](zh/notebooks/01_x.ipynb) · [练习](zh/exercises/01_x.ipynb) | [Title](notebooks/01_x.ipynb) |" in start


def test_a_missing_translation_is_reported_and_built_in_english(tmp_path):
    _course(tmp_path)
    _translate(tmp_path, "notebooks/01_x.ipynb", ["# 标题", ""])  # the second cell not translated yet
    assert editions.translation_problems(tmp_path) == [
        "zh/translations/notebooks/01_x.json: 1 missing (of 2 markdown cells)",
        "zh/translations/solutions/01_x.json: no translation file (1 markdown cells of solutions/01_x.ipynb)"]
    nb = editions.build_notebook(nbformat.read(tmp_path / "notebooks/01_x.ipynb", as_version=4),
                                 json.loads(editions.translation_path(tmp_path / "notebooks/01_x.ipynb", tmp_path)
                                            .read_text()), "notebooks/01_x.ipynb")
    assert nb.cells[2].source == "Some prose." and nb.cells[2].metadata["minigpt_edition"] == {"untranslated": "missing"}
    assert "Some prose." in editions.stale_report(tmp_path)


def test_a_stale_translation_fails_and_the_report_shows_old_and_new_english(tmp_path):
    _course(tmp_path)
    _translate_all(tmp_path)
    editions.write_edition(tmp_path)
    nb = nbformat.read(tmp_path / "notebooks/01_x.ipynb", as_version=4)
    nb.cells[2].source = "Some prose, now with 3 numbers."  # the English changes after it was translated
    nbformat.write(nb, tmp_path / "notebooks/01_x.ipynb")

    assert editions.translation_problems(tmp_path) == ["zh/translations/notebooks/01_x.json: 1 stale (of 2 markdown cells)"]
    assert editions.built_problems(tmp_path) == ["zh/notebooks/01_x.ipynb is out of date"]
    report = editions.stale_report(tmp_path)
    assert "stale cell" in report and "| Some prose." in report and "| Some prose, now with 3 numbers." in report
    # the translator updates "zh", then accepts: the entry now records the new English
    path = tmp_path / "zh/translations/notebooks/01_x.json"
    obj = json.loads(path.read_text())
    obj["cells"][1]["zh"] = "一些正文，现在有 3 个数字。"
    editions.write_translation(path, obj)
    with pytest.raises(ValueError, match="no stale cell"):
        editions.update_translations(tmp_path, accept=["nope"])
    editions.update_translations(tmp_path, lessons=["1"], accept=[nb.cells[2].id])
    assert editions.translation_problems(tmp_path) == []
    editions.write_edition(tmp_path)
    assert editions.built_problems(tmp_path) == []


def test_update_adds_missing_cells_keeps_translations_and_drops_unused_entries(tmp_path):
    _course(tmp_path)
    path = _translate(tmp_path, "notebooks/01_x.ipynb", ["# 标题", "一些正文。"])
    obj = json.loads(path.read_text())
    obj["cells"] = obj["cells"][:1] + [{"id": "gone", "en_sha256": "0", "en": "old", "zh": "旧"}]
    editions.write_translation(path, obj)
    assert "unused" in editions.stale_report(tmp_path)
    lines = editions.update_translations(tmp_path)
    assert any("1 added" in ln and "unused dropped (gone)" in ln for ln in lines)
    new = json.loads(path.read_text())
    assert [e["zh"] for e in new["cells"]] == ["# 标题", ""]
    assert path.read_text().endswith("}\n") and "标题" in path.read_text()  # ensure_ascii=False, trailing newline
    assert (tmp_path / "zh/translations/solutions/01_x.json").exists()  # skeleton written


def test_a_translation_must_keep_the_solution_markers(tmp_path):
    _course(tmp_path)
    _translate(tmp_path, "solutions/01_x.ipynb", ["解释。因为。"])
    assert "1 markers" in "\n".join(editions.translation_problems(tmp_path))


@pytest.mark.parametrize("text, message", [("{", "not valid JSON"), ('{"cells": []}', "source"),
                                           ('{"source": "x", "cells": [{"id": "a"}]}', "needs the strings")])
def test_a_malformed_translation_file_is_a_one_line_error(tmp_path, text, message):
    _course(tmp_path)
    path = editions.translation_path(tmp_path / "notebooks/01_x.ipynb", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        editions.translation_problems(tmp_path)


def test_orphans_are_reported(tmp_path):
    _course(tmp_path)
    _translate_all(tmp_path)
    editions.write_edition(tmp_path)
    (tmp_path / "zh/notebooks/99_old.ipynb").write_text("{}")
    editions.write_translation(tmp_path / "zh/translations/notebooks/98_gone.json", {"source": "x", "cells": []})
    problems = editions.built_problems(tmp_path)
    assert "zh/notebooks/99_old.ipynb has no translation file or no English source" in problems
    assert any(p.startswith("zh/translations/notebooks/98_gone.json translates") for p in problems)


# ---------------------------------------------------------------- the repository itself

def test_the_repository_edition_is_built_from_the_current_sources():
    assert editions.built_problems() == [], "run `make editions` (python -m minigpt editions) to rebuild zh/"


def test_every_english_markdown_cell_has_a_current_translation():
    """Honest on purpose: fails until every lesson, solutions notebook included, is translated."""
    problems = editions.translation_problems()
    assert problems == [], ("translations missing or stale (python -m minigpt editions --stale lists them):\n"
                            + "\n".join(problems))


def test_translation_files_follow_the_fixed_format():
    for path in sorted((editions.ROOT / "zh" / "translations").glob("*/*.json")):
        text = path.read_text(encoding="utf-8")
        obj = editions.read_translation(path)
        assert text == json.dumps(obj, ensure_ascii=False, indent=1) + "\n", f"{path}: not in the fixed layout"
        assert obj["source"] == f"{path.parent.name}/{path.stem}.ipynb"
        for e in obj["cells"]:
            assert e["en_sha256"] == editions.en_sha256(e["en"]), f"{path}: cell {e['id']} en_sha256 is not sha256(en)"


def test_the_command_reports_the_cells_to_translate(capsys):
    assert main(["editions", "--stale", "00"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["editions", "update", "x"]) == 2
    assert "not a lesson number" in capsys.readouterr().err


def test_the_start_page_links_only_to_files_that_exist():
    import re

    root = editions.ROOT
    text = nbformat.read(root / "start.ipynb", as_version=4).cells[0].source
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert "zh/notebooks/00_setup.ipynb" in links and "notebooks/00_setup.ipynb" in links
    assert [link for link in links if not (root / link).is_file()] == []


def test_both_readmes_link_each_other_and_the_glossary():
    root = editions.ROOT
    en, zh = (root / "README.md").read_text(encoding="utf-8"), (root / "README.zh-CN.md").read_text(encoding="utf-8")
    assert "README.zh-CN.md" in en.split("\n## ")[0] and "README.md" in zh.split("\n## ")[0]
    assert "zh/glossary.md" in en and "zh/glossary.md" in zh


def test_reset_in_the_chinese_edition_restores_the_built_chinese_exercise(tmp_path):
    from minigpt.exercises import reset

    _course(tmp_path)
    _translate_all(tmp_path)
    editions.write_edition(tmp_path)
    built = (tmp_path / "zh/exercises/01_x.ipynb").read_text()
    name, clean = editions.chinese_exercise("1", tmp_path)
    assert (name, clean) == ("01_x.ipynb", built)
    target = tmp_path / "zh/exercises/01_x.ipynb"
    target.write_text(built.replace("在这里写你的代码", "my work"))
    assert reset("01", target.parent, root=tmp_path, clean=clean)[0] == target
    assert target.read_text() == built and "my work" in next((target.parent / "backups").glob("*.ipynb")).read_text()
    editions.translation_path(tmp_path / "solutions/01_x.ipynb", tmp_path).unlink()
    with pytest.raises(ValueError, match="no Chinese exercise notebook yet"):
        editions.chinese_exercise("01", tmp_path)
