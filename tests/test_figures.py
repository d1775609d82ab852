"""The figures README.md and INSTRUCTORS.md quote agree with where they come from: the lessons' saved
outputs and notebooks/figures.json (figures no lesson cell can measure in seconds). Issue 23."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
GUIDE = (ROOT / "INSTRUCTORS.md").read_text(encoding="utf-8")
FIGURES = json.loads((ROOT / "notebooks" / "figures.json").read_text(encoding="utf-8"))


def outputs(path: Path) -> str:
    """All text outputs of a notebook, joined."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append("".join(out["text"]))
            elif "text/plain" in out.get("data", {}):
                parts.append("".join(out["data"]["text/plain"]))
    return "\n".join(parts)


def one(pattern: str, text: str, where: str) -> re.Match:
    found = list(re.finditer(pattern, text))
    assert len(found) == 1, f"{where}: expected one match of {pattern!r}, found {len(found)}"
    return found[0]


def lesson(nn: str, folder: str = "notebooks") -> Path:
    (path,) = sorted((ROOT / folder).glob(f"{nn}_*.ipynb"))
    return path


def test_figures_file_names_a_source_for_each_group():
    for key, group in FIGURES.items():
        if isinstance(group, dict):
            assert group.get("source"), f"figures.json: {key} has no source (the command that measured it)"


def test_readme_and_guide_quote_lesson_07s_run():
    m = one(r"val loss (\d\.\d{4}) after (\d+) steps in ([\d.]+) min \(([\d,]+) tokens/s\)",
            outputs(lesson("07")), "lesson 07")
    val, minutes, tps = f"{float(m[1]):.3f}", m[3], m[4]
    row = one(r"\n\| GPT, CPU recipe [^\n]*", README, "README's ladder row of lesson 07")[0]
    assert f"{val} nats" in row and f"lesson 07, {minutes} min" in row, (val, minutes, row)
    assert f"{tps} tokens/s" in README, f"README should quote lesson 07's {tps} tokens/s"
    guide_row = one(r"\n\| 07 [^\n]*", GUIDE, "INSTRUCTORS.md's row of lesson 07")[0]
    assert f"({minutes} min)" in guide_row, (minutes, guide_row)
    quoted = re.findall(r"([\d.]+) min in lesson 07", README + GUIDE)
    assert quoted and set(quoted) == {minutes}, f"README/INSTRUCTORS quote {quoted} min for lesson 07's run; it took {minutes}"


def test_readme_quotes_lesson_04s_bpe_timing():
    m = one(r"training 512 tokens: minigpt\.bpe ([\d.]+) s, tokenizers ([\d.]+) s", outputs(lesson("04")), "lesson 04")
    quoted = one(r"512-token vocabulary on all of Tiny Shakespeare trains in ([\d.]+) s[^)]*?`tokenizers`?: ([\d.]+) s",
                 README, "README's BPE timing")
    assert (quoted[1], quoted[2]) == (m[1], m[2]), f"README quotes {quoted[1]} / {quoted[2]} s, lesson 04 shows {m[1]} / {m[2]} s"


def test_readme_and_guide_quote_the_recorded_cpu_recipes():
    runs = {r["run"]: r for r in FIGURES["cpu_recipes"]["runs"]}
    muon = next(r for r in runs.values() if r.get("preset") == "shakespeare-char-cpu-10min")
    adamw = runs["context 128, AdamW"]
    for doc, name in [(README, "README.md"), (GUIDE, "INSTRUCTORS.md")]:
        assert f"{muon['val_loss']:.3f}" in doc and f"{muon['minutes']} min" in doc, name
    assert f"{adamw['val_loss']:.3f} in {adamw['minutes']} min" in README


def test_readme_speed_table_quotes_the_benchmark():
    tps = FIGURES["bench_train"]["lesson07_size_fp32_tokens_per_s"]
    row = one(r"\n\| 4/128, 32 x 64 [^\n]*", README, "README's speed table")[0]
    assert f"| {tps:,} |" in row, row


GUIDE_ROWS = re.findall(r"\n\| (\d\d) [^|]+\| (\d+) min \| (none|(\d+) exercises)", GUIDE)


@pytest.mark.parametrize("nn,minutes,exercises,count", GUIDE_ROWS, ids=[r[0] for r in GUIDE_ROWS])
def test_guide_time_and_exercise_count_match_the_lesson(nn, minutes, exercises, count):
    title = "".join(json.loads(lesson(nn).read_text(encoding="utf-8"))["cells"][0]["source"])
    said = re.search(r"(?:Time\W*|About |about )(\d+) minutes", title)
    assert said, f"lesson {nn}: its title cell gives no time"
    assert said[1] == minutes, f"INSTRUCTORS.md gives lesson {nn} {minutes} min, the lesson says {said[1]}"
    solutions = sorted((ROOT / "solutions").glob(f"{nn}_*.ipynb"))
    n = 0
    if solutions:
        text = "\n".join("".join(c["source"]) for c in json.loads(solutions[0].read_text(encoding="utf-8"))["cells"])
        n = len(set(re.findall(r"^### Exercise (\d+)", text, flags=re.M)))
    assert n == (0 if exercises == "none" else int(count)), f"lesson {nn}: INSTRUCTORS.md says {exercises}, solutions has {n}"


def test_guide_table_was_read():
    assert len(GUIDE_ROWS) >= 13, GUIDE_ROWS
