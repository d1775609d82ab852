"""minigpt.tasks: instruction tasks with exact answers, split by wording and by task."""

import random

import pytest

from minigpt import tasks
from minigpt.tasks import (
    HELD_OUT_TASKS,
    MAX_CHARS,
    TASKS,
    chance_levels,
    is_correct,
    make_examples,
    split,
    to_conversation,
    wrong_answer,
)


@pytest.fixture(scope="module")
def examples():
    return make_examples(60, seed=0)


def test_every_task_makes_the_asked_number_of_examples(examples):
    counts = {t: sum(ex.task == t for ex in examples) for t in TASKS}
    assert counts == {t: 60 for t in TASKS}


def test_examples_are_deterministic_for_a_seed_and_differ_across_seeds():
    assert make_examples(20, seed=3) == make_examples(20, seed=3)
    assert make_examples(20, seed=3) != make_examples(20, seed=4)


def test_answers_follow_the_rules(examples):
    for ex in examples:
        f = ex.fields
        if ex.task == "add":
            assert int(ex.answer) == f["a"] + f["b"]
        elif ex.task == "subtract":
            assert int(ex.answer) == f["a"] - f["b"] >= 0
        elif ex.task == "reverse":
            assert ex.answer == f["w"][::-1]
        elif ex.task == "count_letter":
            assert int(ex.answer) == f["w"].count(f["c"])
        elif ex.task == "first_word":
            assert ex.answer == f["s"].split()[0]
        elif ex.task == "last_word":
            assert ex.answer == f["s"].split()[-1]
        elif ex.task == "name_start":
            assert ex.answer in ex.accept
            assert all(a[0] == f["c"] and len(a) == f["n"] for a in ex.accept)
        if ex.options is not None:
            assert ex.answer in ex.options and len(set(ex.options)) == len(ex.options)
        assert ex.prompt == TASKS[ex.task].wordings[ex.wording].format(**f)


def test_real_line_asks_about_a_real_line_or_its_words_shuffled(examples):
    real = {line.lower() for line in tasks._lines()}
    by_words = {tuple(sorted(line.split())) for line in real}
    for ex in (e for e in examples if e.task == "real_line"):
        line = ex.fields["s"]
        assert (line in real) == (ex.answer == "yes")
        assert tuple(sorted(line.split())) in by_words


def test_examples_fit_the_character_budget_of_the_course_model(examples):
    assert all(len(ex.prompt) + len(ex.answer) <= MAX_CHARS for ex in examples)
    long = make_examples(5, seed=0, tasks=["first_word"], max_chars=None)
    assert make_examples(5, seed=0, tasks=["first_word"], max_chars=None) == long
    with pytest.raises(ValueError, match="max_chars"):
        make_examples(1, tasks=["first_word"], max_chars=5)


def test_split_holds_out_wordings_and_whole_tasks(examples):
    parts = split(examples)
    assert len(parts["train"]) + len(parts["held_out"]) == len(examples)
    train_wordings = {(ex.task, ex.wording) for ex in parts["train"]}
    held_wordings = {(ex.task, ex.wording) for ex in parts["held_out"]}
    assert not train_wordings & held_wordings  # no phrasing is in both
    assert {ex.task for ex in parts["train"]}.isdisjoint(HELD_OUT_TASKS)
    assert set(HELD_OUT_TASKS) <= {ex.task for ex in parts["held_out"]}
    for task in set(TASKS) - set(HELD_OUT_TASKS):  # each seen task keeps its last wording for testing
        last = len(TASKS[task].wordings) - 1
        assert (task, last) in held_wordings and (task, last) not in train_wordings


def test_chance_is_one_over_options_or_the_best_constant_answer():
    exs = make_examples(200, seed=1, tasks=["is_name", "real_line", "count_letter"])
    chance = chance_levels(exs)
    assert chance["is_name"] == pytest.approx(1 / 2)
    assert chance["real_line"] == pytest.approx(1 / 2)
    counts = [ex.answer for ex in exs if ex.task == "count_letter"]
    best = max(counts.count(a) for a in set(counts)) / len(counts)
    assert chance["count_letter"] == pytest.approx(best)
    assert 0.3 < best < 0.9  # "1" is the most common count, but not the only one


def test_is_correct_accepts_any_listed_answer_and_ignores_spaces_and_a_full_stop(examples):
    ex = next(e for e in examples if e.task == "name_start" and len(e.accept) > 1)
    assert is_correct(ex, f" {ex.accept[-1]}.") and is_correct(ex, ex.accept[0])
    assert not is_correct(ex, ex.answer + ex.answer)


def test_wrong_answers_are_wrong(examples):
    rng = random.Random(0)
    for ex in examples:
        assert not is_correct(ex, wrong_answer(ex, rng))


def test_to_conversation_with_the_tool_shows_the_call_and_its_result(examples):
    ex = next(e for e in examples if e.task == "add")
    conv = to_conversation(ex, use_tool=True)
    assert [m["role"] for m in conv] == ["user", "assistant", "tool", "assistant"]
    assert conv[1]["tool_call"] == ex.expression and conv[2]["content"] == ex.answer == conv[3]["content"]
    with pytest.raises(ValueError, match="arithmetic"):
        to_conversation(next(e for e in examples if e.task == "reverse"), use_tool=True)


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="unknown task"):
        make_examples(3, tasks=["poetry"])
    with pytest.raises(ValueError, match="positive"):
        make_examples(0)
    with pytest.raises(ValueError, match="held-out task"):
        split([], held_out_tasks=("poetry",))
