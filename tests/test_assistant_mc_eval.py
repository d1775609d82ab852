"""minigpt.mc_eval: multiple choice by the log-probability of each option."""

import pytest
import torch

from minigpt.chat_template import ChatTokenizer
from minigpt.dpo import sequence_logprobs
from minigpt.mc_eval import mc_accuracy, option_scores
from minigpt.model import GPT, GPTConfig
from minigpt.sft import grow_embeddings, sft_batch
from minigpt.tasks import make_examples, to_conversation
from minigpt.tokenizer import CharTokenizer


@pytest.fixture(scope="module")
def tiny():
    tok = ChatTokenizer(CharTokenizer.from_text("abc"))
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=256, vocab_size=3, n_layer=1, n_head=2, n_embd=16))
    return grow_embeddings(model, tok.vocab_size), tok


def test_scores_are_each_options_reply_log_prob_under_the_three_normalisations(tiny):
    model, tok = tiny
    ex = make_examples(1, seed=0, tasks=["next_speaker"])[0]
    total = []
    for option in ex.options:
        x, y = sft_batch([tok.render(to_conversation(ex, answer=option))], tok.pad_id)
        total.append((sequence_logprobs(model, x, y)[0].item(), len(tok.encode(option)) + 1, len(option)))
    s = option_scores(model, tok, ex, "sum")
    torch.testing.assert_close(s, torch.tensor([t for t, _, _ in total]), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(option_scores(model, tok, ex, "mean"), torch.tensor([t / n for t, n, _ in total]),
                               rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(option_scores(model, tok, ex, "char"), torch.tensor([t / c for t, _, c in total]),
                               rtol=1e-5, atol=1e-4)


class PrefersLetter(torch.nn.Module):
    """A model that gives one token a much higher logit everywhere: it prefers options full of it."""

    def __init__(self, vocab_size, token):
        super().__init__()
        self.config = GPTConfig(block_size=256, vocab_size=vocab_size, n_layer=1, n_head=1, n_embd=8)
        self.token, self.p = token, torch.nn.Parameter(torch.zeros(1))

    def forward(self, idx, targets=None, cache=None):
        logits = torch.zeros(*idx.shape, self.config.vocab_size)
        logits[..., self.token] = 5.0
        return logits, None


def test_accuracy_counts_the_highest_scoring_option_and_the_normalisation_decides_it(tiny):
    _, tok = tiny
    exs = make_examples(40, seed=0, tasks=["is_name", "add"])
    likes_y = PrefersLetter(tok.vocab_size, tok.encode("y")[0])
    yes_share = sum(ex.answer == "yes" for ex in exs if ex.task == "is_name") / 40
    # per token: log p(y) ~ -0.5, any other token ~ -5.5. "yes"+end sums to ~ -17 and "no"+end to ~ -16.5,
    # so the sum picks the shorter "no"; per token (-4.3 vs -5.5) and per character "yes" wins.
    by_sum = mc_accuracy(likes_y, tok, exs, "sum")
    assert set(by_sum) == {"is_name"}  # free-answer tasks are skipped
    assert by_sum["is_name"] == {"accuracy": pytest.approx(1 - yes_share), "chance": pytest.approx(0.5), "n": 40}
    for normalise in ("mean", "char"):
        assert mc_accuracy(likes_y, tok, exs, normalise)["is_name"]["accuracy"] == pytest.approx(yes_share)
    assert 0.2 < yes_share < 0.8


def test_bad_requests_say_what_is_wrong(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="normalise"):
        option_scores(model, tok, make_examples(1, tasks=["is_name"])[0], "max")
    with pytest.raises(ValueError, match="not multiple choice"):
        option_scores(model, tok, make_examples(1, tasks=["add"])[0])
