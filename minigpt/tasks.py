"""Instruction tasks with exact answers, generated from rules and the course's own data (lesson 15).

No hub is reachable, so the instruction data is made here: arithmetic, string tasks on names
(reverse, count a letter), word tasks on Shakespeare lines (first/last word, finish the line), name
tasks on the names data, and multiple-choice tasks (is this a name, is this line from the play or shuffled, who
speaks next). Every task has several instruction wordings; :func:`split` holds out the last wording
of every task AND whole tasks (``HELD_OUT_TASKS``), so held-out accuracy measures instructions the
fine-tuned model never saw, not only new examples.

    examples = make_examples(n_per_task=200, seed=0)
    parts = split(examples)                      # {"train": [...], "held_out": [...]}
    chance_levels(parts["held_out"])             # {task: accuracy of guessing}

Chance level: for a multiple-choice task 1 / number of options; for a free answer, the accuracy of
the best single constant answer on those examples (e.g. always "2" for count_letter), which is an
upper bound for any answer that ignores the question.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

from .data import load_names, load_text
from .tools import calculate, format_number

__all__ = ["Example", "TASKS", "HELD_OUT_TASKS", "make_examples", "split", "chance_levels", "is_correct",
           "wrong_answer", "to_conversation", "task_names"]


@dataclass(frozen=True)
class Example:
    """One instruction: the user's ``prompt``, the exact ``answer``, and where it came from.

    ``accept`` lists every answer that counts as right (more than one for e.g. "a name starting with
    k"); ``options`` is set for multiple-choice tasks; ``expression`` is the calculator input for
    arithmetic tasks.
    """

    task: str
    wording: int
    prompt: str
    answer: str
    accept: tuple[str, ...] = ()
    options: tuple[str, ...] | None = None
    expression: str | None = None
    fields: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        if not self.accept:
            object.__setattr__(self, "accept", (self.answer,))


# ---- the course data the tasks draw on ----------------------------------------------------------------
@lru_cache(maxsize=1)
def _names() -> tuple[list[str], frozenset[str]]:
    names = load_names()
    return names, frozenset(names)


@lru_cache(maxsize=1)
def _speeches() -> list[tuple[str, str]]:
    """(speaker, first line of the speech) in order, from Tiny Shakespeare's script format."""
    out = []
    for block in load_text("tinyshakespeare").split("\n\n"):
        lines = block.strip("\n").split("\n")
        if len(lines) >= 2 and re.fullmatch(r"[A-Z][A-Za-z' .-]*:", lines[0]):
            out.append((lines[0][:-1], lines[1]))
    return out


@lru_cache(maxsize=1)
def _lines() -> list[str]:
    """Shakespeare lines of 4-8 words, letters and spaces only after stripping punctuation."""
    out = []
    for _, line in _speeches():
        words = re.sub(r"[^A-Za-z' ]", "", line).split()
        if 4 <= len(words) <= 8 and len({w.lower() for w in words}) > 1:
            out.append(" ".join(words))
    return out


@lru_cache(maxsize=1)
def _lower_lines() -> frozenset[str]:
    return frozenset(line.lower() for line in _lines())


def _word(rng: random.Random, lo: int = 3, hi: int = 6) -> str:
    names, _ = _names()
    while True:
        w = rng.choice(names)
        if lo <= len(w) <= hi:
            return w


def _number(rng: random.Random, digits: int) -> int:
    """A number with 1 to ``digits`` digits, each length equally likely."""
    d = rng.randint(1, digits)
    return rng.randint(0 if d == 1 else 10 ** (d - 1), 10 ** d - 1)


# ---- the tasks: each draws one example's fields, answer and (for multiple choice) options --------------
def _add(rng, digits):
    a, b = _number(rng, digits), _number(rng, digits)
    return dict(a=a, b=b), str(a + b), None, f"{a}+{b}"


def _subtract(rng, digits):
    a, b = sorted((_number(rng, digits), _number(rng, digits)), reverse=True)
    return dict(a=a, b=b), str(a - b), None, f"{a}-{b}"


def _reverse(rng, digits):
    w = _word(rng)
    return dict(w=w), w[::-1], None, None


def _count_letter(rng, digits):
    w = _word(rng, 4, 8)
    c = rng.choice(w) if rng.random() < 0.8 else rng.choice("abcdefghijklmnopqrstuvwxyz")
    return dict(w=w, c=c), str(w.count(c)), None, None


def _first_word(rng, digits):
    s = rng.choice(_lines())
    return dict(s=s), s.split()[0], None, None


def _last_word(rng, digits):
    s = rng.choice(_lines())
    return dict(s=s), s.split()[-1], None, None


def _finish_line(rng, digits):
    words = rng.choice(_lines()).split()
    k = len(words) - 2
    return dict(s=" ".join(words[:k])), " ".join(words[k:]), None, None


def _name_start(rng, digits):
    names, _ = _names()
    w = _word(rng, 3, 6)
    c, n = w[0], len(w)
    accept = tuple(sorted({x for x in names if x[0] == c and len(x) == n}))
    return dict(c=c, n=n), w, None, None, accept


def _fake_name(rng, n):
    """A string of ``n`` letters that is not in the names data (random letters, mostly unpronounceable)."""
    _, known = _names()
    while True:
        s = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n))
        if s not in known:
            return s


def _is_name(rng, digits):
    w = _word(rng, 4, 7)
    real = rng.random() < 0.5
    return dict(w=w if real else _fake_name(rng, len(w))), "yes" if real else "no", ("yes", "no"), None


def _real_line(rng, digits):
    line = rng.choice(_lines()).lower()  # lower case: a capital would give the real line's first word away
    if rng.random() < 0.5:
        return dict(s=line), "yes", ("yes", "no"), None
    words = line.split()
    for _ in range(100):  # a shuffle that is itself a line of the play would be a wrong "no"
        rng.shuffle(words)
        if " ".join(words) not in _lower_lines():
            break
    return dict(s=" ".join(words)), "no", ("yes", "no"), None


def _next_speaker(rng, digits):
    speeches = _speeches()
    while True:
        i = rng.randrange(len(speeches) - 1)
        a, b = speeches[i][0], speeches[i + 1][0]
        others = sorted({s for s, _ in speeches[max(0, i - 40):i + 40]} - {a, b})
        if a != b and len(others) >= 2:
            break
    options = [b, *rng.sample(others, 2)]
    rng.shuffle(options)
    return dict(a=a, opts=", ".join(options)), b, tuple(options), None


@dataclass(frozen=True)
class Task:
    """A task: its wordings (``str.format`` templates over the drawn fields) and its generator."""

    name: str
    wordings: tuple[str, ...]
    draw: object

    @property
    def multiple_choice(self) -> bool:
        return self.name in MULTIPLE_CHOICE


MULTIPLE_CHOICE = {"is_name", "real_line", "next_speaker"}
TASKS: dict[str, Task] = {t.name: t for t in [
    Task("add", ("What is {a} + {b}?", "Add {a} and {b}.", "Compute {a} plus {b}.", "Find the sum of {a} and {b}."),
         _add),
    Task("subtract", ("What is {a} - {b}?", "Subtract {b} from {a}.", "Compute {a} minus {b}.",
                      "Find the difference {a} - {b}."), _subtract),
    Task("reverse", ("Reverse the word {w}.", "Spell {w} backwards.", "Write {w} in reverse.",
                     "What is {w} read from right to left?"), _reverse),
    Task("count_letter", ("How many times does {c} appear in {w}?", "Count the letter {c} in {w}.",
                          "How many {c} are in {w}?", "In the word {w}, count how often {c} occurs."),
         _count_letter),
    Task("first_word", ("What is the first word of: {s}", "Give the first word. {s}", "First word of this line: {s}",
                        "Which word comes first in: {s}"), _first_word),
    Task("last_word", ("What is the last word of: {s}", "Give the last word. {s}", "Last word of this line: {s}",
                       "Which word comes last in: {s}"), _last_word),
    Task("finish_line", ("Finish this line: {s}", "Complete the line: {s}", "How does this line end? {s}"),
         _finish_line),
    Task("name_start", ("Give a name that starts with {c} and has {n} letters.",
                        "Name with {n} letters beginning with {c}?", "Suggest a {n}-letter name starting with {c}."),
         _name_start),
    Task("is_name", ("Is {w} a name? Answer yes or no.", "Could {w} be a person's name? yes or no",
                     "yes or no: is {w} a real name?"), _is_name),
    Task("real_line", ("Is this line from the play? {s}", "Did Shakespeare write: {s}",
                       "Real line or shuffled words? yes or no: {s}"), _real_line),
    Task("next_speaker", ("Who speaks after {a}? {opts}", "After {a}, who talks: {opts}?",
                          "Who answers {a}? One of {opts}"), _next_speaker),
]}
MAX_CHARS = 60  # prompt + answer, in characters
# Fine-tuning never sees these tasks (last_word is the mirror of first_word: does the skill transfer?).
HELD_OUT_TASKS = ("last_word",)


def task_names() -> list[str]:
    """The names of every task, in order."""
    return list(TASKS)


def make_examples(n_per_task: int, seed: int = 0, tasks=None, digits: int = 2,
                  max_chars: int | None = MAX_CHARS) -> list[Example]:
    """``n_per_task`` examples of each task (all tasks by default), wording drawn uniformly.

    Deterministic: each task has its own ``random.Random`` seeded from ``seed`` and the task name.
    ``digits`` is the longest number in arithmetic tasks (the tool lesson asks for longer ones).
    Examples whose prompt and answer together pass ``max_chars`` characters are drawn again (the
    default fits the course's character model: 60 characters + 4 chat tokens = its block_size 64).
    """
    tasks = list(TASKS) if tasks is None else list(tasks)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; the tasks are {list(TASKS)}")
    if not isinstance(n_per_task, int) or n_per_task < 1 or not isinstance(digits, int) or digits < 1:
        raise ValueError(f"n_per_task and digits must be positive integers, got {n_per_task!r} and {digits!r}")
    out = []
    for name in tasks:
        task = TASKS[name]
        rng = random.Random(f"{seed}-{name}")
        for _ in range(n_per_task):
            for _ in range(1000):
                drawn = task.draw(rng, digits)
                fields, answer, options, expression = drawn[:4]
                accept = drawn[4] if len(drawn) > 4 else ()
                wording = rng.randrange(len(task.wordings))
                prompt = task.wordings[wording].format(**fields)
                if max_chars is None or len(prompt) + len(answer) <= max_chars:
                    break
            else:
                raise ValueError(f"task {name!r} found no example of at most max_chars={max_chars} characters; "
                                 "raise max_chars")
            out.append(Example(name, wording, prompt, answer, accept, options, expression, fields))
    return out


def split(examples: list[Example], held_out_tasks=HELD_OUT_TASKS, held_out_wordings: int = 1) -> dict:
    """``{"train", "held_out"}``: held out are the tasks in ``held_out_tasks`` (every wording) and, for
    the other tasks, the last ``held_out_wordings`` wordings. Fine-tuning sees neither."""
    unknown = [t for t in held_out_tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown held-out task(s) {unknown}; the tasks are {list(TASKS)}")
    out = {"train": [], "held_out": []}
    for ex in examples:
        n = len(TASKS[ex.task].wordings)
        if not 0 < held_out_wordings < n:
            raise ValueError(f"held_out_wordings must be between 1 and {n - 1} for task {ex.task!r}")
        held = ex.task in held_out_tasks or ex.wording >= n - held_out_wordings
        out["held_out" if held else "train"].append(ex)
    return out


def normalise(reply: str) -> str:
    """The reply as compared with the answer: surrounding spaces and a final full stop removed."""
    return reply.strip().rstrip(".").strip()


def is_correct(example: Example, reply: str) -> bool:
    """Whether ``reply`` is one of the example's accepted answers (exact after :func:`normalise`)."""
    return normalise(reply) in example.accept


def chance_levels(examples: list[Example]) -> dict[str, float]:
    """Chance accuracy per task: 1/options for multiple choice, else the best constant answer's accuracy."""
    by_task: dict[str, list[Example]] = {}
    for ex in examples:
        by_task.setdefault(ex.task, []).append(ex)
    out = {}
    for name, exs in by_task.items():
        if exs[0].options is not None:
            out[name] = sum(1 / len(ex.options) for ex in exs) / len(exs)
        else:
            counts = Counter(a for ex in exs for a in set(ex.accept))
            out[name] = counts.most_common(1)[0][1] / len(exs)
    return out


def wrong_answer(example: Example, rng: random.Random) -> str:
    """A plausible but wrong answer (for DPO's rejected replies): another option, a near-miss number,
    or the answer's letters scrambled."""
    if example.options is not None:
        return rng.choice([o for o in example.options if o != example.answer])
    if example.answer.lstrip("-").isdigit():
        return str(int(example.answer) + rng.choice([-2, -1, 1, 2, 10]))
    letters = list(example.answer)
    for _ in range(20):
        rng.shuffle(letters)
        if "".join(letters) not in example.accept:
            return "".join(letters)
    return example.answer + example.answer[-1]


def to_conversation(example: Example, answer: str | None = None, use_tool: bool = False,
                    system: str | None = None) -> list[dict]:
    """The example as a chat: user prompt, assistant answer (``answer`` overrides the right one).

    With ``use_tool`` an arithmetic example's assistant first calls the calculator, the tool turn
    gives the result, and the assistant then answers with it.
    """
    conv = [{"role": "system", "content": system}] if system else []
    conv.append({"role": "user", "content": example.prompt})
    answer = example.answer if answer is None else answer
    if use_tool:
        if example.expression is None:
            raise ValueError(f"task {example.task!r} has no calculator expression; use_tool needs an arithmetic task")

        conv.append({"role": "assistant", "tool_call": example.expression})
        conv.append({"role": "tool", "content": format_number(calculate(example.expression))})
    conv.append({"role": "assistant", "content": answer})
    return conv
