"""minigpt.dpo: the DPO loss against hand-computed values, sequence log-probs, pairs and the loop."""

import copy
import math
import random

import pytest
import torch
import torch.nn.functional as F

from minigpt.chat_template import ChatTokenizer
from minigpt.dpo import dpo_loss, dpo_train, preference_pairs, sequence_logprobs
from minigpt.model import GPT, GPTConfig
from minigpt.sft import grow_embeddings, sft_batch
from minigpt.tasks import is_correct, make_examples
from minigpt.tokenizer import CharTokenizer


def test_dpo_loss_matches_values_computed_by_hand():
    # pair 1: policy gains 2 nats on chosen and loses 1 on rejected vs the reference; beta 0.5
    #   rewards 0.5*2 = 1.0 and 0.5*(-1) = -0.5, margin 1.5, loss -log sigmoid(1.5) = log(1 + e^-1.5)
    # pair 2: policy prefers the rejected one: rewards 0.5*(-1) = -0.5 and 0.5*1 = 0.5, margin -1.0
    out = dpo_loss(torch.tensor([-3.0, -6.0]), torch.tensor([-6.0, -4.0]),
                   torch.tensor([-5.0, -5.0]), torch.tensor([-5.0, -5.0]), beta=0.5)
    torch.testing.assert_close(out["chosen_reward"], torch.tensor([1.0, -0.5]))
    torch.testing.assert_close(out["rejected_reward"], torch.tensor([-0.5, 0.5]))
    torch.testing.assert_close(out["margin"], torch.tensor([1.5, -1.0]))
    want = (math.log(1 + math.exp(-1.5)) + math.log(1 + math.exp(1.0))) / 2
    assert out["loss"].item() == pytest.approx(want, rel=1e-6)
    assert out["accuracy"] == 0.5


def test_dpo_loss_is_log2_when_policy_equals_reference_and_its_gradient_favours_chosen():
    chosen = torch.tensor([-4.0], requires_grad=True)
    rejected = torch.tensor([-4.0], requires_grad=True)
    out = dpo_loss(chosen, rejected, torch.tensor([-4.0]), torch.tensor([-4.0]), beta=0.1)
    assert out["loss"].item() == pytest.approx(math.log(2))
    out["loss"].backward()
    assert chosen.grad.item() == pytest.approx(-0.05) and rejected.grad.item() == pytest.approx(0.05)  # beta/2
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(chosen, rejected, chosen, rejected, beta=0.0)


@pytest.fixture(scope="module")
def tiny():
    tok = ChatTokenizer(CharTokenizer.from_text("abc"))
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=160, vocab_size=3, n_layer=1, n_head=2, n_embd=16))
    return grow_embeddings(model, tok.vocab_size), tok


def test_sequence_logprobs_sum_the_reply_tokens_only(tiny):
    model, tok = tiny
    conv = [{"role": "user", "content": "12+3"}, {"role": "assistant", "content": "15"}]
    x, y = sft_batch([tok.render(conv)], tok.pad_id)
    logp = F.log_softmax(model(x)[0], dim=-1)[0]
    ids, mask = tok.render(conv)
    want = sum(logp[i - 1, ids[i]] for i in range(1, len(ids)) if mask[i])  # '1', '5', <|end|>
    torch.testing.assert_close(sequence_logprobs(model, x, y)[0], want)
    assert sum(mask) == 3


def test_preference_pairs_share_the_prompt_and_reject_wrong_or_rambling_replies():
    exs = make_examples(10, seed=0, tasks=["add", "reverse", "is_name"])
    pairs = preference_pairs(exs, seed=0)
    rambling = wrong = 0
    for ex, (chosen, rejected) in zip(exs, pairs):
        assert chosen[:-1] == rejected[:-1] and chosen[-1]["content"] == ex.answer
        bad = rejected[-1]["content"]
        if is_correct(ex, bad):
            raise AssertionError("a rejected reply is the exact right answer")
        if ex.answer in bad and len(bad) > len(ex.answer) + 10:
            rambling += 1
        else:
            wrong += 1
    assert rambling > 0 and wrong > 0
    assert preference_pairs(exs, seed=0) == pairs and preference_pairs(exs, seed=1) != pairs


def test_dpo_training_raises_the_margin_on_its_pairs(tiny):
    model, tok = tiny
    policy, reference = copy.deepcopy(model), copy.deepcopy(model)
    pairs = preference_pairs(make_examples(16, seed=0, tasks=["add"]), seed=0)
    random.Random(0).shuffle(pairs)
    history = dpo_train(policy, reference, tok, pairs, steps=30, batch_size=8, beta=0.5, lr=3e-3, seed=0)
    assert history[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)  # policy starts as the reference
    assert history[0]["margin"] == pytest.approx(0.0, abs=1e-4)
    late = sum(h["margin"] for h in history[-5:]) / 5
    assert late > 0.5 and history[-1]["loss"] < 0.5
    assert all(not p.requires_grad for p in reference.parameters())


def test_preference_pairs_take_short_rambles_and_refuse_templates_without_the_answer():
    examples = make_examples(n_per_task=5, tasks=["reverse"])
    pairs = preference_pairs(examples, seed=0, ramble_share=1.0, rambles=("I think {a}.",))
    assert [r[-1]["content"] for _, r in pairs] == [f"I think {e.answer}." for e in examples]
    assert [c[-1]["content"] for c, _ in pairs] == [e.answer for e in examples]
    with pytest.raises(ValueError, match="contain {a}"):
        preference_pairs(examples, rambles=("no answer here",))
