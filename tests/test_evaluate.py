"""minigpt.evaluate: the one scoring module. References are hand-computed cross-entropies on small random
models, and an n-gram, whose prediction depends only on its last n-1 tokens, scored token by token."""

import math
import random

import pytest
import torch
import torch.nn.functional as F

from minigpt.bpe import BPETokenizer
from minigpt.evaluate import (
    IGNORE,
    NGramScorer,
    bits_per_char,
    gather,
    mean_nll,
    nll_sum,
    score_plan,
    separate_plan,
    sliding_plan,
    windows,
)
from minigpt.mlp import CHARS, BigramNet, MLPLanguageModel, bigram_pairs, build_context_dataset
from minigpt.model import GPT, GPTConfig
from minigpt.names_gpt import block_size_for, make_dataset
from minigpt.ngram import NGramModel
from minigpt.tokenizer import CharTokenizer
from minigpt.train import TrainConfig, train

WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn", "abigail", "ella",
         "zoe", "liam", "noah", "oliver", "elijah", "james", "william", "benjamin", "lucas", "henry", "theo"]
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n") * 3


def gpt(vocab_size, block_size=16, seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(block_size=block_size, vocab_size=vocab_size, n_layer=2, n_head=2, n_embd=16)).eval()


def hand_nll(logits, y):
    """Mean -log softmax(logits)[target] over the targets that are not IGNORE, written out."""
    logp = logits.double().log_softmax(-1)
    keep = y != IGNORE
    return float(-logp[keep].gather(-1, y[keep][:, None]).sum() / keep.sum())


@pytest.fixture(scope="module")
def char_tok():
    return CharTokenizer.from_text(TEXT)


@pytest.fixture(scope="module")
def bpe_tok():
    return BPETokenizer.train(TEXT, 300)


# --------------------------------------------------------------------------- windows

def test_windows_are_fixed_non_overlapping_and_evenly_spread():
    assert windows(1000, 64).tolist() == [64 * i for i in range(15)]
    assert windows(1000, 64, 256).tolist() == [0, 320, 576, 896]
    assert len(windows(100_000, 64, 6400)) == 100
    x, y = gather(torch.arange(100), torch.tensor([0, 10]), 4)
    assert x.tolist() == [[0, 1, 2, 3], [10, 11, 12, 13]] and y.tolist() == [[1, 2, 3, 4], [11, 12, 13, 14]]


# --------------------------------------------------------------------------- NLL per token, any model

def test_mean_nll_equals_hand_cross_entropy_for_a_gpt_with_ignored_targets():
    model = gpt(27, block_size=block_size_for(WORDS))
    X, Y = make_dataset(WORDS, block_size_for(WORDS))
    assert (Y == IGNORE).any()
    with torch.no_grad():
        ref = hand_nll(model(X)[0], Y)
    assert mean_nll(model, X, Y) == pytest.approx(ref, rel=1e-5)
    assert mean_nll(model, X, Y, batch_size=3) == pytest.approx(ref, rel=1e-5)
    total, count = nll_sum(model, X, Y)
    assert count == int((Y != IGNORE).sum()) == sum(len(w) + 1 for w in WORDS)
    assert total / count == pytest.approx(ref, rel=1e-5)


def test_mean_nll_equals_hand_cross_entropy_for_the_mlp_and_the_neural_bigram():
    mlp = MLPLanguageModel(block_size=3, generator=torch.Generator().manual_seed(1))
    X, Y = build_context_dataset(WORDS, 3)
    with torch.no_grad():
        assert mean_nll(mlp, X, Y, batch_size=7) == pytest.approx(hand_nll(mlp(X)[0], Y), rel=1e-5)
    net = BigramNet(generator=torch.Generator().manual_seed(2))
    xs, ys = bigram_pairs(WORDS)
    with torch.no_grad():
        assert mean_nll(net, xs, ys) == pytest.approx(hand_nll(net(xs), ys), rel=1e-5)


def test_mean_nll_leaves_the_model_in_its_mode_and_refuses_nothing_to_score():
    model = gpt(27).train()
    x = torch.zeros(2, 4, dtype=torch.long)
    mean_nll(model, x, torch.ones(2, 4, dtype=torch.long))
    assert model.training
    with pytest.raises(ValueError, match="no targets"):
        mean_nll(model, x, torch.full((2, 4), IGNORE))


@pytest.mark.parametrize("order", [1, 2, 3])
def test_ngram_scorer_equals_the_ngrams_own_nll(order):
    ngram = NGramModel(order, "add-k", k=0.5).fit(WORDS[:15])
    test = WORDS[15:]
    X, Y = make_dataset(test, block_size_for(test))  # a GPT's windows: '.' then the name, targets shifted
    assert mean_nll(NGramScorer(ngram, CHARS), X, Y) == pytest.approx(ngram.nll(test), rel=1e-9)
    if order > 1:  # the MLP's data sets: one context of n-1 characters per target
        X, Y = build_context_dataset(test, order - 1)
        assert mean_nll(NGramScorer(ngram, CHARS), X, Y) == pytest.approx(ngram.nll(test), rel=1e-9)


# --------------------------------------------------------------------------- plans: each token once

@pytest.mark.parametrize("seed", range(5))
def test_every_scored_token_is_counted_once_and_sliding_gives_the_context_asked(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 4) for _ in range(rng.randint(2, 300))]  # characters per token, as a BPE has
    cum = [0]
    for n in lengths:
        cum.append(cum[-1] + n)
    n_tokens, B = len(lengths), rng.randint(4, 20)
    context = rng.randint(1, B)  # characters: at most a window's worth of the shortest tokens
    for plan, want in [(sliding_plan(n_tokens, B, cum, context), list(range(1, n_tokens))),
                       (separate_plan(n_tokens, B), None)]:
        scored = [s + 1 + k for s, length, first in plan for k in range(first, length)]
        assert len(scored) == len(set(scored))  # no token twice
        assert all(length <= B for _, length, _ in plan)
        if want is not None:
            assert sorted(scored) == want  # sliding: every token after the first
            assert all(s == 0 or cum[j] - cum[s] >= context  # at least `context` characters before each
                       for s, length, first in plan for j in range(s + 1 + first, s + 1 + length))
        else:
            assert sorted(scored) == list(range(1, (n_tokens - 1) // B * B + 1)) or len(plan) == 1


def test_sliding_gives_the_whole_window_where_the_context_does_not_fit():
    plan = sliding_plan(100, 8, list(range(101)), 9)  # 9 characters wanted, 8 tokens of 1 character fit
    assert plan[1] == (1, 8, 7)  # target 9 with the 8 characters before it, then one new target per window
    assert sorted(s + 1 + k for s, n, f in plan for k in range(f, n)) == list(range(1, 100))


# --------------------------------------------------------------------------- bits per character

def test_separate_policy_on_a_char_model_is_the_trainers_windows(char_tok):
    model = gpt(char_tok.vocab_size)
    ids = torch.tensor(char_tok.encode(TEXT))
    x, y = gather(ids, windows(len(ids), 16), 16)
    with torch.no_grad():
        ref = hand_nll(model(x)[0], y)
    got = bits_per_char(model, char_tok, TEXT)
    assert got["policy"] == "separate" and got["tokens"] == got["characters"] == y.numel()
    assert got["nats_per_token"] == pytest.approx(ref, rel=1e-5)
    assert got["bits_per_char"] == pytest.approx(ref / math.log(2), rel=1e-5)


def test_sliding_policy_on_a_char_model_gives_every_character_its_context(char_tok):
    model = gpt(char_tok.vocab_size)
    ids = char_tok.encode(TEXT)
    got = bits_per_char(model, char_tok, TEXT, policy="sliding", context=10)
    per_token = []  # written out: each target j after the first window sees exactly the 10 characters before it
    with torch.no_grad():
        plan = sliding_plan(len(ids), 16, list(range(len(ids) + 1)), 10)
        for s, length, first in plan:
            logits = model(torch.tensor([ids[s:s + length]]))[0][0]
            per_token += [-logits[k].double().log_softmax(-1)[ids[s + 1 + k]] for k in range(first, length)]
    assert got["tokens"] == got["characters"] == len(ids) - 1 == len(per_token)
    assert got["nats_per_token"] == pytest.approx(float(torch.stack(per_token).mean()), rel=1e-5)
    assert plan[1] == (7, 16, 9)  # target 17 is scored first, from the window that starts 10 characters before it


def test_sliding_with_the_least_context_equals_separate_windows(char_tok, bpe_tok):
    for tok in (char_tok, bpe_tok):
        model = gpt(tok.vocab_size if tok is char_tok else 300, block_size=8)
        ids = tok.encode(TEXT)
        text = tok.decode(ids[:8 * (len(ids) // 8 - 1) + 1])  # whole windows only: both policies score the same
        assert len(tok.encode(text)) % 8 == 1
        sep = bits_per_char(model, tok, text, policy="separate")
        slide = bits_per_char(model, tok, text, policy="sliding", context=1)
        assert slide["tokens"] == sep["tokens"] and slide["characters"] == sep["characters"]
        assert slide["bits_per_char"] == pytest.approx(sep["bits_per_char"], rel=1e-6)


def test_policies_agree_when_the_window_holds_the_whole_text(char_tok, bpe_tok):
    for tok, V in ((char_tok, char_tok.vocab_size), (bpe_tok, 300)):
        text = TEXT[:60]
        n = len(tok.encode(text))
        model = gpt(V, block_size=n)
        a = bits_per_char(model, tok, text)
        b = bits_per_char(model, tok, text, policy="sliding", context=30)
        assert a["characters"] == b["characters"] == len(text) - len(tok.decode(tok.encode(text)[:1]))
        assert a["bits_per_char"] == pytest.approx(b["bits_per_char"], rel=1e-6)


def test_bpe_bits_are_summed_token_nlls_over_characters(bpe_tok):
    model = gpt(300, block_size=12)
    ids = torch.tensor(bpe_tok.encode(TEXT))
    x, y = gather(ids, windows(len(ids), 12), 12)
    with torch.no_grad():
        nats = F.cross_entropy(model(x)[0].flatten(0, 1).double(), y.flatten(), reduction="sum").item()
    chars = sum(len(bpe_tok.decode(row.tolist())) for row in y)
    got = bits_per_char(model, bpe_tok, TEXT)
    assert got["characters"] == chars and got["tokens"] == y.numel() and got["characters"] > got["tokens"]
    assert got["bits_per_char"] == pytest.approx(nats / (chars * math.log(2)), rel=1e-5)
    # equal context in characters: separate windows of at most 20 characters hold fewer tokens than 12
    short = bits_per_char(model, bpe_tok, TEXT, context=20)
    plan = separate_plan(len(ids), 12, [len(bpe_tok.decode(ids[:i].tolist())) for i in range(len(ids) + 1)], 20)
    assert short["windows"] == len(plan) > got["windows"]
    assert all(len(bpe_tok.decode(ids[s:s + length].tolist())) <= 20 for s, length, _ in plan)
    slide = bits_per_char(model, bpe_tok, TEXT, policy="sliding", context=20)
    assert 0 < slide["short_context"] < slide["tokens"]  # runs of one-character tokens: 12 of them span < 20 characters
    assert bits_per_char(model, bpe_tok, TEXT, policy="sliding", context=12)["short_context"] == 0  # 12 tokens >= 12 chars
    assert slide["tokens"] == len(ids) - 1 and slide["characters"] == len(TEXT) - len(bpe_tok.decode(ids[:1].tolist()))


def test_sliding_bits_of_an_ngram_equal_its_own_nll_token_by_token(char_tok):
    # An order-3 n-gram sees only 2 characters; with >= 2 characters of context every prediction is the
    # n-gram's own, so the sliding score is the n-gram's NLL of the text (less its first character and end).
    ngram = NGramModel(3, "add-k", k=0.1, bos="<s>", eos="</s>").fit([TEXT[:200]])
    scorer = NGramScorer(ngram, [char_tok.decode([i]) for i in range(char_tok.vocab_size)])
    text = TEXT[200:400]
    got = bits_per_char(scorer, char_tok, text, policy="sliding", context=2, block_size=8)
    ref = -sum(math.log(ngram.prob(text[:j], text[j])) for j in range(1, len(text))) / (len(text) - 1)
    assert got["nats_per_token"] == pytest.approx(ref, rel=1e-6)


def test_score_plan_does_not_depend_on_batching(bpe_tok):
    model = gpt(300, block_size=10)
    seqs = [torch.tensor(bpe_tok.encode(t)) for t in (TEXT[:90], TEXT[90:300])]
    plan = [(q, *w) for q, ids in enumerate(seqs) for w in sliding_plan(len(ids), 10, list(range(len(ids) + 1)), 4)]
    a, b = score_plan(model, seqs, plan, batch_size=64), score_plan(model, seqs, plan, batch_size=1)
    assert all(torch.allclose(u, v, rtol=1e-5, atol=1e-6) for u, v in zip(a, b))
    assert all(bool((u[1:] > 0).all()) and float(u[0]) == 0.0 for u in a)  # every target once, never the first


def test_bad_input_gets_a_clear_error(char_tok):
    model = gpt(char_tok.vocab_size)
    with pytest.raises(ValueError, match="unknown policy"):
        bits_per_char(model, char_tok, TEXT, policy="overlap")
    with pytest.raises(ValueError, match="needs context"):
        bits_per_char(model, char_tok, TEXT, policy="sliding")
    with pytest.raises(ValueError, match="characters >= 1"):
        bits_per_char(model, char_tok, TEXT, policy="sliding", context=0)
    with pytest.raises(ValueError, match="at least 2"):
        bits_per_char(model, char_tok, "F")


def test_the_trainer_reports_the_separate_policy(char_tok):
    cfg = TrainConfig(n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4, max_iters=3, warmup_iters=1,
                      eval_interval=3, eval_tokens=None, compile=False, sample_tokens=0)
    text = {"train": TEXT * 2, "val": TEXT}
    r = train(cfg, device="cpu", progress=False, text=text)
    got = bits_per_char(r.model, r.tokenizer, TEXT)
    assert r.val_loss == pytest.approx(got["nats_per_token"], rel=1e-5)


def test_bits_per_char_counts_characters_not_byte_pieces_when_bpe_tokens_split_a_character():
    # A byte-level BPE with few merges cuts rare Chinese characters into byte tokens; a token that ends inside a
    # character spells no whole character, so the count must come from the bytes, not from decoding each token.
    poem = "国破山河在，城春草木深。\n感时花溅泪，恨别鸟惊心。\n烽火连三月，家书抵万金。\n白头搔更短，浑欲不胜簪。\n\n"
    tok = BPETokenizer.train(poem * 3, 300)
    text = poem * 2 + "风急天高猿啸哀"  # characters the BPE never merged: one token per byte
    ids = tok.encode(text)
    assert any(len(tok.decode_bytes([t])) == 1 and tok.decode_bytes([t])[0] >= 0x80 for t in ids)
    model = gpt(tok.vocab_size, block_size=16)
    slide = bits_per_char(model, tok, text, policy="sliding", context=8)
    assert slide["tokens"] == len(ids) - 1
    first = len(tok.decode_bytes(ids[:1]).decode("utf-8", "ignore"))
    assert slide["characters"] == len(text) - first
    sep = bits_per_char(model, tok, text, context=10)
    assert sep["characters"] <= len(text) and sep["bits_per_char"] > 0
