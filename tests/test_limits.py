"""Lesson 12's package code: compute estimates, the scaling fit, probes, constrained decoding, n-gram overlap."""

import math
import string

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minigpt.compute import (
    PUBLISHED,
    activation_bytes,
    fit_power_law,
    power_law,
    scaling_sweep,
    training_days,
    training_flops,
    training_memory,
)
from minigpt.constrain import (
    RegexConstraint,
    allow_only,
    ban_tokens,
    bias_tokens,
    continuation_nll,
    sample_texts,
)
from minigpt.generate import generate
from minigpt.model import GPT, GPTConfig
from minigpt.overlap import NgramIndex, extraction_rate, ngram_share, ngrams, words
from minigpt.probes import (
    cooccurrence_share,
    gender_share,
    known_share,
    planted_text,
    role_probe,
    swap_gendered_words,
    tokens_per_char,
    word_logprob,
)
from minigpt.tokenizer import CharTokenizer
from minigpt.train import TrainConfig

ALPHABET = "\n !',.:;?" + string.ascii_letters


@pytest.fixture(scope="module")
def tiny():
    """A small random GPT over a fixed alphabet, with weights large enough to prefer some characters."""
    tok = CharTokenizer(sorted(set(ALPHABET)))
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=32, vocab_size=tok.vocab_size, n_layer=2, n_head=2, n_embd=32)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model, tok


# --------------------------------------------------------------------------- compute

def test_published_parameter_counts_match_the_papers():
    counts = {m.name: m.params for m in PUBLISHED}
    assert abs(counts["GPT-2 small"] - 124.4e6) < 0.2e6  # 124M (Hugging Face's gpt2: 124,439,808)
    assert counts["GPT-2 small"] == 124_439_808
    assert abs(counts["GPT-2 XL"] - 1.558e9) < 0.01e9
    assert abs(counts["GPT-3 175B"] - 175e9) / 175e9 < 0.01


def test_gpt3_training_flops_match_the_paper():
    gpt3 = PUBLISHED[-1]
    flops = training_flops(gpt3.params, gpt3.tokens)
    assert abs(flops - 3.14e23) / 3.14e23 < 0.01  # Brown et al. 2020, table D.1


def test_training_memory_parts_and_totals():
    fp32, mixed = training_memory(1000), training_memory(1000, mixed_precision=True)
    assert fp32 == {"weights": 4000, "gradients": 4000, "optimizer": 8000, "total": 16000}
    assert mixed == {"weights": 2000, "gradients": 2000, "optimizer": 12000, "total": 16000}


def test_activation_estimate_follows_korthikanti():
    cfg = GPTConfig(block_size=1024, vocab_size=50257, n_layer=12, n_head=12, n_embd=768)
    assert activation_bytes(cfg) == 12 * 1024 * 768 * (34 + 5 * 12 * 1024 / 768)
    assert activation_bytes(cfg, batch_size=4, flash=True) == 4 * 12 * 1024 * 768 * 34


def test_training_days_scale_inversely_with_gpus_and_mfu():
    one = training_days(1e9, 1e10, n_gpus=1, peak=1e15, mfu=0.5)
    assert math.isclose(one, 6e19 / 5e14 / 86400)
    assert math.isclose(training_days(1e9, 1e10, n_gpus=8, peak=1e15, mfu=0.5), one / 8)
    with pytest.raises(ValueError, match="mfu"):
        training_days(1e9, 1e10, mfu=0)


def test_fit_power_law_recovers_exponent_and_rejects_bad_input():
    n = np.array([1e3, 1e4, 1e5, 1e6])
    a, alpha = fit_power_law(n, power_law(n, 7.0, 0.3))
    assert math.isclose(a, 7.0, rel_tol=1e-9) and math.isclose(alpha, 0.3, rel_tol=1e-9)
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([1, 10], [1.0, 0.0])
    with pytest.raises(ValueError, match="same length"):
        fit_power_law([1, 10, 100], [1.0, 2.0])


def test_scaling_sweep_trains_each_size_for_the_same_tokens(text, one_thread):
    base = TrainConfig(n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4, max_iters=1,
                       eval_tokens=512, sample_tokens=0, warmup_iters=2)
    sizes = [{"n_layer": 1, "n_embd": 8, "n_head": 2}, {"n_layer": 2, "n_embd": 32, "n_head": 2}]
    rows = scaling_sweep(sizes, tokens=640, base=base, text=text, progress=False)
    assert [r["tokens"] for r in rows] == [640, 640]  # 10 steps of 4 x 16 tokens each
    assert rows[0]["params"] < rows[1]["params"]
    assert rows[1]["params"] == rows[1]["model"].num_params()
    assert all(math.isfinite(r["val_loss"]) and r["val_loss"] < math.log(rows[0]["tokenizer"].vocab_size) + 0.5
               for r in rows)


# --------------------------------------------------------------------------- probes

def test_word_logprob_is_the_chain_rule_with_a_word_boundary(tiny):
    model, tok = tiny
    ctx, word = "I saw the king, and", " he"
    got = float(word_logprob(model, tok, [ctx], [word])[0])
    with torch.no_grad():  # by hand: one character at a time, then any non-letter
        lp, text = 0.0, ctx
        for ch in word:
            p = F.softmax(model(torch.tensor([tok.encode(text)]))[0][0, -1], -1)
            lp += math.log(p[tok.stoi[ch]])
            text += ch
        p = F.softmax(model(torch.tensor([tok.encode(text)]))[0][0, -1], -1)
        lp += math.log(sum(p[i] for c, i in tok.stoi.items() if not c.isalpha()))
    assert math.isclose(got, lp, rel_tol=1e-4)


def test_word_probabilities_sum_to_one_over_every_continuation(tiny):
    """P(a word that ends) for every one-letter word, plus P(a non-letter), plus P(longer words) = 1;
    checked at depth 1: sum over letters c of P(c, then a boundary) <= P(a letter)."""
    model, tok = tiny
    letters = [c for c in tok.chars if c.isalpha()]
    lp = word_logprob(model, tok, ["The king"] * len(letters), letters)
    with torch.no_grad():
        p = F.softmax(model(torch.tensor([tok.encode("The king")]))[0][0, -1], -1)
    assert float(lp.exp().sum()) < float(sum(p[tok.stoi[c]] for c in letters))


def test_word_logprob_batches_like_one_at_a_time_and_crops_long_contexts(tiny):
    model, tok = tiny
    contexts = ["a", "The queen is come; and", "Stay, good nurse, and let " * 5]
    words_ = [" he", " she", " her"]
    batched = word_logprob(model, tok, contexts, words_)
    single = torch.cat([word_logprob(model, tok, [c], [w]) for c, w in zip(contexts, words_)])
    assert torch.allclose(batched, single, atol=1e-5)
    cropped = word_logprob(model, tok, [contexts[2][-29:]], [" her"])
    assert torch.allclose(batched[2:], cropped, atol=1e-5)  # the window keeps the last 32 - 3 characters


def test_gender_share_is_the_male_fraction_and_role_probe_averages_templates(tiny):
    model, tok = tiny
    ctx = ["I saw the king, and", "The queen is come; and"]
    share = gender_share(model, tok, ctx)
    lp = word_logprob(model, tok, [c for c in ctx for _ in range(5)], [" he", " him", " his", " she", " her"] * 2)
    p = lp.exp().view(2, 5)
    assert torch.allclose(share, p[:, :3].sum(1) / p.sum(1), atol=1e-5)
    probe = role_probe(model, tok, ["king", "nurse"], templates=["I saw the {role}, and", "The {role} is come; and"])
    assert math.isclose(probe["king"], float(gender_share(model, tok, ["I saw the king, and",
                                                                        "The king is come; and"]).mean()), rel_tol=1e-5)


def test_cooccurrence_counts_pronouns_in_the_window_after_each_role():
    text = "The king came, and he spoke. The nurse said she would. The nurse and her son. The king."
    got = cooccurrence_share(text, ["king", "nurse", "duke"], window=3)
    assert got["king"] == (1.0, 1)  # "came and he"; the second king has nothing after it
    assert got["nurse"] == (0.0, 2)  # "said she", "and her"
    assert math.isnan(got["duke"][0]) and got["duke"][1] == 0


def test_swap_gendered_words_keeps_case_and_word_boundaries():
    assert swap_gendered_words("He gave his crown to the Queen; SHE wept.") == "She gave her crown to the King; HE wept."
    assert swap_gendered_words("the shepherd and the theme") == "the shepherd and the theme"  # 'he' inside words
    assert swap_gendered_words("her lord") == "his lady"
    text = "KING RICHARD:\nMy lord, tell him he is her brother.\n"
    assert swap_gendered_words(text) == "QUEEN RICHARD:\nMy lady, tell her she is his sister.\n"
    twice = swap_gendered_words(swap_gendered_words(text))
    assert twice == "KING RICHARD:\nMy lord, tell his he is her brother.\n"  # 'her' is ambiguous: 'him' comes back as 'his'


def test_swap_balances_the_pronoun_counts_of_text_plus_its_counterfactual():
    text = "he said that his horse saw him. she saw her. he ran."
    both = words(text + " " + swap_gendered_words(text))
    male = sum(w in ("he", "him", "his") for w in both)
    female = sum(w in ("she", "her") for w in both)
    assert male == female == 6


def test_tokens_per_char_and_known_share():
    tok = CharTokenizer(list("abc "))
    assert tokens_per_char(lambda s: list(s.encode("utf-8")), "héllo") == 6 / 5
    assert known_share(tok, "ab 中文") == 3 / 5
    with pytest.raises(ValueError, match="empty"):
        tokens_per_char(list, "")


def test_char_tokenizer_unknown_characters_error_or_explicit_replacement():
    tok = CharTokenizer(list("abc ?"))
    with pytest.raises(ValueError, match=r"'中' \(U\+4E2D\) at position 2 .*unknown="):
        tok.encode("ab中")
    assert tok.encode("ab中", unknown="?") == tok.encode("ab?")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("ab", unknown="#")


# --------------------------------------------------------------------------- constrained decoding

def test_logit_edits_ban_bias_and_allow():
    logits = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert ban_tokens(logits, [1, 3]).isinf().tolist() == [[False, True, False, True]]
    assert bias_tokens(logits, {0: 5.0}).tolist() == [[6.0, 2.0, 3.0, 4.0]]
    assert logits.tolist() == [[1.0, 2.0, 3.0, 4.0]]  # unchanged
    allowed = torch.tensor([True, False, True, False])
    assert F.softmax(allow_only(logits, allowed), -1)[0, 1::2].tolist() == [0.0, 0.0]


def test_a_banned_token_is_never_sampled_in_10000_draws(tiny):
    model, tok = tiny
    e = tok.stoi["e"]
    gen = torch.Generator().manual_seed(0)
    free = sample_texts(model, tok, "The ", 500, 20, generator=gen)
    assert sum(t.count("e") for t in free) > 100  # without the ban the model writes plenty of e's
    banned = sample_texts(model, tok, "The ", 500, 20, logits_fn=lambda lg: ban_tokens(lg, [e]),
                          generator=torch.Generator().manual_seed(0))
    assert sum(len(t) for t in banned) == 10_000
    assert not any("e" in t for t in banned)


def test_sample_texts_without_controls_draws_what_generate_draws(tiny):
    model, tok = tiny
    ids = torch.tensor([tok.encode("The king")])
    ref = generate(model, ids, 45, generator=torch.Generator().manual_seed(3))  # past block_size: the window slides
    got = sample_texts(model, tok, "The king", 1, 45, generator=torch.Generator().manual_seed(3))
    assert got[0] == tok.decode(ref[0, ids.size(1):].tolist())


def test_stop_strings_end_each_sample_and_are_cut(tiny):
    model, tok = tiny
    free = sample_texts(model, tok, "a", 200, 30, generator=torch.Generator().manual_seed(1))
    stopped = sample_texts(model, tok, "a", 200, 30, stop=" ", generator=torch.Generator().manual_seed(1))
    assert any(" " in t for t in free)
    assert not any(" " in t for t in stopped)
    assert stopped == [t.split(" ")[0] for t in free]  # same draws, cut at the stop string


def test_regex_constraint_holds_in_every_sample(tiny):
    model, tok = tiny
    fmt = RegexConstraint(r"[A-Z][a-z]{1,4}: [a-z ]{1,6}[.!?]\n", tok)
    assert fmt.allowed("").tolist() == [c.isupper() for c in tok.chars]
    assert fmt.complete("Ka: oh no.\n") and not fmt.complete("Ka: oh no.")
    texts = sample_texts(model, tok, "\n", 100, 30, constraint=fmt, generator=torch.Generator().manual_seed(0))
    free = sample_texts(model, tok, "\n", 100, 30, generator=torch.Generator().manual_seed(0))
    assert all(fmt.complete(t) for t in texts)  # the format is bounded, so every sample completes it, then stops
    assert sum(fmt.complete(t.split("\n")[0] + "\n") for t in free) < 5


def test_continuation_nll_matches_cross_entropy_and_slides_past_the_window(tiny):
    model, tok = tiny
    prompt, texts = "The ", ["king is come.", "", "a" * 70]
    got = continuation_nll(model, tok, prompt, texts)
    ids = torch.tensor([tok.encode(prompt + texts[0])])
    with torch.no_grad():
        logits, _ = model(ids[:, :-1])
    ref = F.cross_entropy(logits[0, len(prompt) - 1:], ids[0, len(prompt):])
    assert math.isclose(float(got[0]), float(ref), rel_tol=1e-5)
    assert math.isnan(float(got[1]))
    long_ids = tok.encode(prompt + texts[2])  # 74 tokens > 32: scored in windows with >= 16 tokens of context
    with torch.no_grad():
        per_token = []
        for t in range(len(prompt), len(long_ids)):
            lo = 0 if t <= 32 else ((t - 33) // 16 + 1) * 16
            ctx = torch.tensor([long_ids[lo:t]])
            per_token.append(-F.log_softmax(model(ctx)[0][0, -1], -1)[long_ids[t]])
    assert math.isclose(float(got[2]), float(torch.stack(per_token).mean()), rel_tol=1e-4)


# --------------------------------------------------------------------------- n-gram overlap

def test_words_and_ngrams():
    assert words("To be, or NOT to be:\nthat's it") == ["to", "be", "or", "not", "to", "be", "that's", "it"]
    assert ngrams([1, 2, 3, 4], 2) == [(1, 2), (2, 3), (3, 4)]
    assert ngrams([1, 2], 3) == []


def test_ngram_share_counts_every_occurrence_on_a_text_with_known_repeats():
    reference = words("the cat sat on the mat")
    generated = words("the cat sat on the dog the cat sat")
    # 3-grams of generated: (the cat sat) x2 found, (cat sat on), (sat on the) found, others not: 4 of 7
    assert ngram_share(generated, reference, 3) == 4 / 7
    assert ngram_share(generated, reference, 1) == 8 / 9  # every word but "dog"
    assert math.isnan(ngram_share(["a"], reference, 2))


def test_longest_span_finds_the_longest_verbatim_run():
    index = NgramIndex(words("a b c d e f g h. x y z. b c d e q"))
    assert index.longest_span(words("z b c d e f g q x y")) == ["b", "c", "d", "e", "f", "g"]
    assert index.longest_span(words("nothing here")) == []
    assert ("x", "y", "z") in index and ("z", "x") not in index


def test_share_of_several_texts_pools_their_ngrams_without_crossing():
    index = NgramIndex(words("a b c d"))
    assert index.counts(["a", "b", "x"], 2) == (1, 2)
    assert index.share([["a", "b"], ["c", "d"]], 2) == 1.0  # ("b", "c") across the two is not counted
    assert index.share([["a", "b", "x"], ["c", "d"]], 2) == 2 / 3
    assert math.isnan(index.share([["a"], ["b"]], 2))


def test_planted_text_holds_each_role_at_its_planted_share():
    shares = {"king": 0.9, "nurse": 0.5, "queen": 0.1}
    text = planted_text(shares, 3000, seed=1)
    counted = cooccurrence_share(text, list(shares), window=6)
    for role, share in shares.items():
        assert counted[role][0] == pytest.approx(share, abs=0.05), role
    assert planted_text(shares, 50, seed=3) == planted_text(shares, 50, seed=3)
    with pytest.raises(ValueError, match="probabilities"):
        planted_text({"king": 1.5}, 10)


def test_extraction_rate_finds_a_memorised_text_and_not_another(one_thread):
    tok = CharTokenizer(sorted(set(ALPHABET)))
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=tok.vocab_size, n_layer=1, n_head=2, n_embd=48))
    memorised = "the king is dead; long live the queen! " * 3
    other = "Where is the nurse? Go, bid her come hither now, quickly."
    ids = torch.tensor(tok.encode(memorised))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(300):
        i = torch.randint(0, len(ids) - 16, (32,))
        x, y = ids[i[:, None] + torch.arange(16)], ids[i[:, None] + torch.arange(1, 17)]
        loss = F.cross_entropy(model(x)[0].transpose(1, 2), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    seen = extraction_rate(model, tok, memorised, n=40, prefix=8, length=8)
    unseen = extraction_rate(model, tok, other, n=40, prefix=8, length=8)
    assert seen["exact"] > 0.6 and unseen["exact"] < 0.1
    assert 0 <= unseen["matched"] < seen["matched"] <= 8
    with pytest.raises(ValueError, match="window"):
        extraction_rate(model, tok, memorised, prefix=10, length=10)
