"""minigpt.sft: loss-masked batches, growing the embedding for special tokens, and a short SFT run."""

import pytest
import torch
import torch.nn.functional as F

from minigpt.chat_template import ChatTokenizer
from minigpt.model import GPT, GPTConfig
from minigpt.sft import evaluate, finetune, grow_embeddings, reply, sft_batch
from minigpt.tasks import chance_levels, make_examples, split, to_conversation
from minigpt.tokenizer import CharTokenizer

CONV = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
        {"role": "user", "content": "and 3+3?"}, {"role": "assistant", "content": "6"}]


@pytest.fixture(scope="module")
def tok():
    return ChatTokenizer(CharTokenizer.from_text("abc"))


def _tiny(tok, block_size=64, seed=0):
    torch.manual_seed(seed)
    model = GPT(GPTConfig(block_size=block_size, vocab_size=tok.ordinary.vocab_size, n_layer=1, n_head=2, n_embd=16))
    return grow_embeddings(model, tok.vocab_size)


def test_targets_are_the_next_token_only_where_the_assistant_writes(tok):
    ids, mask = tok.render(CONV)
    short = tok.render(CONV[:2])
    x, y = sft_batch([(ids, mask), short], tok.pad_id)
    assert x.shape == y.shape == (2, len(ids) - 1)
    assert x[0].tolist() == ids[:-1]
    end, header = tok.special["<|end|>"], tok.special["<|assistant|>"]
    kept = [(x[0, i].item(), y[0, i].item()) for i in range(len(ids) - 1) if y[0, i] != -1]
    # each answer's first token is predicted from the header, its end-of-turn from the answer
    assert kept == [(header, tok.encode("4")[0]), (tok.encode("4")[0], end),
                    (header, tok.encode("6")[0]), (tok.encode("6")[0], end)]
    n = len(short[0]) - 1  # the shorter row: padding is pad_id in, -1 out
    assert (x[1, n:] == tok.pad_id).all() and (y[1, n:] == -1).all()
    assert y[1, :n].tolist() == y[0, :n].tolist()


def test_without_masking_every_real_token_is_a_target_but_padding_never(tok):
    ids, mask = tok.render(CONV)
    short = tok.render(CONV[:2])
    _, y = sft_batch([(ids, mask), short], tok.pad_id, mask_loss=False)
    assert y[0].tolist() == ids[1:]
    n = len(short[0]) - 1
    assert y[1, :n].tolist() == short[0][1:] and (y[1, n:] == -1).all()


def test_masked_loss_is_the_mean_cross_entropy_over_the_assistant_tokens(tok):
    model = _tiny(tok)
    ids, mask = tok.render(CONV)
    x, y = sft_batch([(ids, mask)], tok.pad_id)
    logits, loss = model(x, y)
    picked = [i for i in range(1, len(ids)) if mask[i]]
    want = F.cross_entropy(logits[0, [i - 1 for i in picked]], torch.tensor([ids[i] for i in picked]))
    torch.testing.assert_close(loss, want)


def test_too_long_or_malformed_conversations_say_what_is_wrong(tok):
    with pytest.raises(ValueError, match="block_size"):
        sft_batch([tok.render(CONV)], tok.pad_id, block_size=8)
    with pytest.raises(ValueError, match="same length"):
        sft_batch([([1, 2, 3], [0, 1])], tok.pad_id)
    with pytest.raises(ValueError, match="at least one"):
        sft_batch([], tok.pad_id)
    with pytest.raises(ValueError, match="1 of 2 conversations are longer than block_size"):
        finetune(_tiny(tok, block_size=12), tok, [CONV, CONV[:2]], steps=1)


def test_growing_the_embedding_keeps_old_logits_and_starts_new_rows_at_the_mean(tok):
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=tok.base_vocab_size, n_layer=1, n_head=2, n_embd=16))
    old_rows = model.transformer.wte.weight.detach().clone()
    idx = torch.randint(0, tok.base_vocab_size, (2, 8))
    before, _ = model(idx)
    grow_embeddings(model, tok.vocab_size)
    after, _ = model(idx)
    torch.testing.assert_close(after[..., :tok.base_vocab_size], before)
    wte = model.transformer.wte.weight
    assert wte.shape == (tok.vocab_size, 16) and model.config.vocab_size == tok.vocab_size
    torch.testing.assert_close(wte[tok.base_vocab_size:], old_rows.mean(0).expand(tok.vocab_size - 3, 16))
    assert model.lm_head.weight is wte  # still tied
    with pytest.raises(ValueError, match="drop"):
        grow_embeddings(model, 5)


def test_finetune_refuses_a_model_without_rows_for_the_special_tokens(tok):
    model = GPT(GPTConfig(block_size=64, vocab_size=3, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(ValueError, match="grow_embeddings"):
        finetune(model, tok, [CONV], steps=1)


def test_finetune_trains_only_the_assistant_tokens(tok):
    model = _tiny(tok)
    finetune(model, tok, [CONV], steps=40, batch_size=2, lr=1e-2)
    assert reply(model, tok, CONV[:1]) == "4"  # it learned the reply it was shown
    ex = make_examples(1, seed=0, tasks=["add"])[0]
    assert evaluate(model, tok, [ex], max_new_tokens=4)["add"] == {
        "accuracy": float(reply(model, tok, to_conversation(ex)[:-1], 4).strip() == ex.answer),
        "mean_length": len(reply(model, tok, to_conversation(ex)[:-1], 4)), "n": 1}


def test_a_short_sft_run_learns_is_name_above_chance_on_new_examples_and_a_new_wording(tok, one_thread):
    # is this a name (yes/no): real names against random letter strings; chance is 1/2
    train = split(make_examples(300, seed=0, tasks=["is_name"]))["train"]
    test = split(make_examples(80, seed=1, tasks=["is_name"]))
    torch.manual_seed(0)
    # a 'base model' that knows every ordinary character; only the special tokens' rows are new
    model = GPT(GPTConfig(block_size=128, vocab_size=tok.ordinary.vocab_size, n_layer=1, n_head=4, n_embd=64))
    grow_embeddings(model, tok.vocab_size)
    losses = finetune(model, tok, [to_conversation(e) for e in train], steps=200, batch_size=16, lr=3e-3, seed=0)
    assert sum(losses[-20:]) / 20 < losses[0] / 10
    seen = evaluate(model, tok, test["train"], max_new_tokens=6)["is_name"]["accuracy"]
    new_wording = evaluate(model, tok, test["held_out"], max_new_tokens=6)["is_name"]["accuracy"]
    assert chance_levels(test["train"])["is_name"] == 0.5
    # measured on one CPU: 0.91 on new examples with seen wordings, 0.77 with the held-out wording
    assert 0.7 <= seen <= 1.0, f"new examples, seen wordings: {seen:.2f} (chance 0.5)"
    assert new_wording >= 0.55, f"held-out wording: {new_wording:.2f} (chance 0.5)"


def test_noise_makes_new_rows_distinct_around_the_mean(tok):
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=tok.base_vocab_size, n_layer=1, n_head=2, n_embd=16))
    old = model.transformer.wte.weight.detach().clone()
    grow_embeddings(model, tok.vocab_size, noise=0.5, generator=torch.Generator().manual_seed(0))
    new = model.transformer.wte.weight[tok.base_vocab_size:].detach()
    assert torch.cdist(new, new).add(torch.eye(len(new)) * 1e9).min() > 0  # no two rows alike
    spread = (new - old.mean(0)) / old.std(0)  # about N(0, 0.5^2) in every dimension
    assert 0.4 < spread.std().item() < 0.6 and abs(spread.mean().item()) < 0.05
