"""Multiple-choice evaluation by log-probability (lesson 15), as nanochat's evals and HellaSwag do it.

Instead of generating an answer and parsing it, each option is appended to the prompt as the
assistant's reply (its text and end-of-turn token) and scored by the model's log-probability of
those tokens; the highest score is the model's choice. Longer options have more tokens and so
lower sums, hence three normalisations:

- ``"sum"``: the total log-probability (the probability of the whole reply);
- ``"mean"``: divided by the number of scored tokens (per token, as nanochat's CORE evaluation
  compares mean losses);
- ``"char"``: divided by the number of characters of the option (lm-eval's ``acc_norm``), which
  compares char and BPE tokenizers fairly.

Chance is 1 / number of options.
"""

from __future__ import annotations

import torch

from .dpo import sequence_logprobs
from .sft import sft_batch
from .tasks import Example, to_conversation

__all__ = ["option_scores", "mc_accuracy", "NORMALISATIONS"]

NORMALISATIONS = ("sum", "mean", "char")


@torch.no_grad()
def option_scores(model, tok, example: Example, normalise: str = "sum") -> torch.Tensor:
    """Scores (n_options,) of each option of a multiple-choice ``example`` as the assistant's reply."""
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}")
    if not example.options:
        raise ValueError(f"task {example.task!r} is not multiple choice; its examples have no options")
    device = next(model.parameters()).device
    rendered = [tok.render(to_conversation(example, answer=o)) for o in example.options]
    x, y = sft_batch(rendered, tok.pad_id, True, model.config.block_size)
    was_training = model.training
    model.eval()
    scores = sequence_logprobs(model, x.to(device), y.to(device)).cpu()
    model.train(was_training)
    if normalise == "mean":
        scores = scores / (y != -1).sum(dim=1)
    elif normalise == "char":
        scores = scores / torch.tensor([len(o) for o in example.options], dtype=scores.dtype)
    return scores


def mc_accuracy(model, tok, examples: list[Example], normalise: str = "sum") -> dict:
    """Per multiple-choice task: ``{"accuracy", "chance", "n"}`` (other tasks are skipped)."""
    out: dict[str, dict] = {}
    for ex in examples:
        if not ex.options:
            continue
        pick = ex.options[int(option_scores(model, tok, ex, normalise).argmax())]
        row = out.setdefault(ex.task, {"hits": 0, "chance": 0.0, "n": 0})
        row["hits"] += pick == ex.answer
        row["chance"] += 1 / len(ex.options)
        row["n"] += 1
    return {t: {"accuracy": r["hits"] / r["n"], "chance": r["chance"] / r["n"], "n": r["n"]} for t, r in out.items()}
