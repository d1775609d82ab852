"""minigpt.ngram: counts, smoothing invariants, NLL/perplexity, sampling and the `ngram` command."""

import json
import math
import random

import pytest
import torch

from minigpt import cli
from minigpt.ngram import (
    CHARS,
    SMOOTHINGS,
    NGramModel,
    bigram_counts,
    itos,
    shakespeare_sequences,
    stoi,
    words_of,
)

TOY_NAMES = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "ella", "anna", "liam"]
TOY_WORDS = [["the", "cat", "sat"], ["the", "dog", "sat", "down"], ["a", "cat", "ran"], ["the", "cat"],
             ["a", "dog", "sat"], ["down", "the", "road"]]
WORD_KW = dict(bos="<s>", eos="</s>", unk="<unk>")


def all_models(order):
    return [NGramModel(order, "none"), NGramModel(order, "add-k", k=0.5), NGramModel(order, "add-k", k=0.0),
            NGramModel(order, "interpolation"), NGramModel(order, "kneser-ney")]


def test_bigram_counts_match_a_hand_count():
    N = bigram_counts(["ab", "b"])
    assert N.shape == (27, 27) and N.dtype == torch.int64
    assert N[stoi["."], stoi["a"]] == 1 and N[stoi["a"], stoi["b"]] == 1
    assert N[stoi["b"], stoi["."]] == 2 and N[stoi["."], stoi["b"]] == 1
    assert int(N.sum()) == 5  # len(w) + 1 bigrams per name
    assert CHARS[0] == "." and itos[1] == "a" and len(CHARS) == 27


def test_bigram_counts_agree_with_the_model_counts():
    m = NGramModel(2, "none").fit(TOY_NAMES)
    N = bigram_counts(TOY_NAMES).double()
    P = N / N.sum(1, keepdim=True).clamp_min(1)
    for a in "aeil.":
        for b in CHARS:
            assert m.prob((a,), b) == pytest.approx(P[stoi[a], stoi[b]].item())
    assert m.vocab == CHARS[:1] + sorted(set("".join(TOY_NAMES)))


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_every_distribution_sums_to_one_including_unseen_contexts(order):
    contexts = [(), ("e",), ("e", "m"), ("z", "q", "x"), ("q",), (".", "a", "v")]
    for m in all_models(order):
        m.fit(TOY_NAMES[:7], TOY_NAMES[7:])
        for ctx in contexts:
            d = m.distribution(ctx)
            assert set(d) == set(m.vocab)
            assert math.fsum(d.values()) == pytest.approx(1.0, abs=1e-9), (m, ctx)
            assert all(p >= 0 for p in d.values())


@pytest.mark.parametrize("smoothing", SMOOTHINGS)
def test_word_distributions_sum_to_one_with_unknown_words(smoothing):
    m = NGramModel(3, smoothing, k=0.1, min_count=2, **WORD_KW).fit(TOY_WORDS[:5], TOY_WORDS[5:])
    assert "ran" not in m.vocab and "<unk>" in m.vocab and "</s>" in m.vocab and "<s>" not in m.vocab
    for ctx in [(), ("the",), ("the", "cat"), ("zebra", "unicorn"), ("<s>", "<s>")]:
        assert math.fsum(m.distribution(ctx).values()) == pytest.approx(1.0, abs=1e-9)
    # an unknown test word is scored as <unk>
    assert m.prob(("the",), "zebra") == m.prob(("the",), "<unk>")
    assert m.prob(("the",), "<s>") == m.prob(("the",), "<unk>")


def test_smoothed_models_give_every_token_positive_probability():
    for m in all_models(3)[1:]:
        if m.k == 0.0 and m.smoothing == "add-k":
            continue
        m.fit(TOY_NAMES[:7], TOY_NAMES[7:])
        assert min(m.distribution(("x", "q")).values()) > 0
        assert min(m.distribution(("e", "m")).values()) > 0
        assert math.isfinite(m.nll(["bvvlp"]))  # letters of the vocabulary in unseen orders


def test_zero_probability_gives_infinite_nll_and_perplexity_not_nan():
    m = NGramModel(2, "none").fit(TOY_NAMES)
    assert m.prob(("e",), "z") == 0.0
    assert m.nll(["ez"]) == math.inf and m.perplexity(["ez"]) == math.inf
    # an unknown token without an unk symbol is a zero-probability event too
    assert m.nll(["emm4"]) == math.inf
    assert NGramModel(2, "add-k", k=1).fit(TOY_NAMES).nll(["emm4"]) == math.inf
    assert math.isfinite(m.nll(TOY_NAMES))


def test_nll_counts_the_end_marker_and_matches_a_hand_computation():
    m = NGramModel(2, "none").fit(["ab", "ab"])
    # events .->a, a->b, b->. all have probability 1 except none: NLL 0
    assert m.nll(["ab"]) == pytest.approx(0.0)
    m = NGramModel(1, "none").fit(["ab"])  # unigram over {., a, b}: each 1/3
    assert m.nll(["ab"]) == pytest.approx(math.log(3))
    assert m.perplexity(["ab", "ba"]) == pytest.approx(3.0)
    assert len(m.log_probs(["ab", "a"])) == 3 + 2


def test_add_k_formula_and_k_zero_is_maximum_likelihood():
    m = NGramModel(2, "add-k", k=0.5).fit(TOY_NAMES)
    N = bigram_counts(TOY_NAMES).double()
    V = len(m.vocab)
    c = N[stoi["a"], stoi["m"]].item()
    assert m.prob(("a",), "m") == pytest.approx((c + 0.5) / (N[stoi["a"]].sum().item() + 0.5 * V))
    m0 = NGramModel(2, "add-k", k=0.0).fit(TOY_NAMES)
    ml = NGramModel(2, "none").fit(TOY_NAMES)
    assert m0.nll(TOY_NAMES) == pytest.approx(ml.nll(TOY_NAMES))


def test_unigram_ignores_the_context_and_long_contexts_are_cut():
    m = NGramModel(1, "add-k", k=1).fit(TOY_NAMES)
    assert m.distribution(("a",)) == m.distribution(())
    m3 = NGramModel(3, "kneser-ney").fit(TOY_NAMES)
    assert m3.prob(tuple("xxxem"), "m") == m3.prob(("e", "m"), "m")
    assert m3.prob((), "e") == m3.prob((".", "."), "e")  # short contexts are padded with the start marker


def test_interpolation_weights_are_chosen_on_dev_and_help_there():
    train, dev = TOY_NAMES[:7], TOY_NAMES[7:]
    m = NGramModel(3, "interpolation").fit(train, dev)
    assert len(m.lambdas) == 4 and sum(m.lambdas) == pytest.approx(1.0) and min(m.lambdas) > 0
    for other in ([0.25] * 4, [0.7, 0.1, 0.1, 0.1], [0.05, 0.05, 0.1, 0.8]):
        fixed = NGramModel(3, "interpolation", lambdas=other).fit(train)
        assert m.nll(dev) <= fixed.nll(dev) + 1e-9
    # without dev data the weights come from a slice of train, still a distribution
    m2 = NGramModel(3, "interpolation").fit(TOY_NAMES)
    assert sum(m2.lambdas) == pytest.approx(1.0)


def test_kneser_ney_uses_continuation_counts():
    # "francisco" is frequent but only ever after "san": its unigram continuation probability is
    # small, so after an unseen word Kneser-Ney prefers "glasses" (seen after many words).
    seqs = [["san", "francisco"]] * 8 + [[w, "glasses"] for w in ["my", "your", "his", "her", "red"]]
    kn = NGramModel(2, "kneser-ney", **WORD_KW).fit(seqs)
    ak = NGramModel(2, "add-k", k=0.01, **WORD_KW).fit(seqs)
    ml1 = NGramModel(1, "none", **WORD_KW).fit(seqs)
    assert ml1.prob((), "francisco") > ml1.prob((), "glasses")
    assert kn.prob(("reading",), "glasses") > kn.prob(("reading",), "francisco")
    assert ak.prob(("reading",), "glasses") == pytest.approx(ak.prob(("reading",), "francisco"))
    # with d -> tiny, seen contexts approach maximum likelihood
    kn_small = NGramModel(2, "kneser-ney", discount=1e-6, **WORD_KW).fit(seqs)
    assert kn_small.prob(("san",), "francisco") == pytest.approx(1.0, abs=1e-5)


def test_sampling_is_reproducible_with_a_seed_and_follows_the_counts():
    m = NGramModel(2, "add-k", k=1).fit(TOY_NAMES)
    a = [m.sample(seed) for seed in range(5)]
    assert a == [m.sample(seed) for seed in range(5)] and len(set(a)) > 1
    assert all(isinstance(s, str) for s in a)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert m.sample(g1) == m.sample(g2)
    # maximum likelihood can only produce training names when every context is deterministic
    det = NGramModel(3, "none").fit(["abc"])
    assert det.sample(random.Random(0)) == "abc"
    words = NGramModel(2, "kneser-ney", **WORD_KW).fit(TOY_WORDS).sample(1, max_len=4)
    assert isinstance(words, list) and len(words) <= 4


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="order"):
        NGramModel(0)
    with pytest.raises(ValueError, match="k must be"):
        NGramModel(2, "add-k", k=-1)
    with pytest.raises(ValueError, match="unknown smoothing"):
        NGramModel(2, "laplace")
    with pytest.raises(ValueError, match="unk"):
        NGramModel(2, min_count=2)
    with pytest.raises(ValueError, match="marker"):
        NGramModel(2).fit(["a.b"])
    with pytest.raises(RuntimeError, match="fit"):
        NGramModel(2).nll(["ab"])


def test_words_of_splits_words_and_punctuation():
    assert words_of("Nay, I'll go!") == ["nay", ",", "i'll", "go", "!"]


def run_cli(capsys, *argv):
    code = cli.main(["ngram", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_names_add_one_bigram_prints_json_last(capsys):
    code, out, _ = run_cli(capsys, "--data", "names", "--order", "2", "--smoothing", "add-k", "--k", "1", "--json")
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert {"train_nll", "dev_nll", "test_nll"} <= set(result)
    assert 2.43 < result["dev_nll"] < 2.50  # makemore: about 2.45 on the whole set
    assert result["dev_perplexity"] == pytest.approx(math.exp(result["dev_nll"]))


@pytest.mark.parametrize("smoothing", SMOOTHINGS)
def test_cli_every_smoothing_on_names(capsys, smoothing):
    code, out, _ = run_cli(capsys, "--order", "3", "--smoothing", smoothing, "--json")
    result = json.loads(out.strip().splitlines()[-1])
    assert code == 0
    if smoothing == "none":
        assert result["dev_nll"] is None  # infinite: some dev trigram never occurs in train
        assert "probability 0" in out
    else:
        assert 1.9 < result["dev_nll"] < 2.5 and result["train_nll"] < result["dev_nll"]


def test_shakespeare_sequences_are_the_train_val_split_line_by_line():
    text = "".join(f"Line {i}: To be, or not.\n\n" for i in range(100))  # blank lines are dropped
    seqs = shakespeare_sequences("char", text)
    cut = int(0.9 * len(text))
    assert set(seqs) == {"train", "val"}
    assert seqs["train"] == [x for x in text[:cut].splitlines() if x.strip()]
    assert seqs["val"] == [x for x in text[cut:].splitlines() if x.strip()]
    assert shakespeare_sequences("word", text)["val"][-1] == ["line", "9", "9", ":", "to", "be", ",", "or", "not", "."]


@pytest.mark.parametrize("level,order,smoothing", [("word", 2, "kneser-ney"), ("word", 1, "add-k"),
                                                   ("char", 2, "interpolation")])
def test_cli_tinyshakespeare(capsys, level, order, smoothing):
    code, out, _ = run_cli(capsys, "--data", "tinyshakespeare", "--level", level, "--order", str(order),
                           "--smoothing", smoothing, "--k", "0.1", "--json")
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert all(math.isfinite(result[f"{s}_nll"]) for s in ("train", "val"))
    assert "dev_nll" not in result and "test_nll" not in result  # Tiny Shakespeare has two splits: train and val
    assert result["vocab_size"] > (1000 if level == "word" else 60)


@pytest.mark.parametrize("argv,message", [
    (["--order", "0"], "order must be"),
    (["--k", "-1"], "k must be"),
    (["--smoothing", "witten-bell"], "unknown smoothing"),
    (["--data", "names", "--level", "word"], "character level only"),
    (["--data", "wiki"], "unknown data set"),
])
def test_cli_bad_options_give_a_clear_error(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_on_names_kneser_ney_and_interpolation_beat_add_k_at_order_four():
    from minigpt.data import names_split

    s = names_split()
    dev_nll = {sm: NGramModel(4, sm, k=0.1).fit(s["train"], s["dev"]).nll(s["dev"]) for sm in SMOOTHINGS}
    assert dev_nll["none"] == math.inf  # some dev 4-gram never occurs in train
    assert dev_nll["kneser-ney"] < dev_nll["add-k"] - 0.02 and dev_nll["interpolation"] < dev_nll["add-k"] - 0.02
    assert 2.0 < dev_nll["kneser-ney"] < 2.1


def test_cli_prints_seeded_samples(capsys):
    _, out1, _ = run_cli(capsys, "--order", "3", "--smoothing", "kneser-ney", "--samples", "4", "--seed", "7", "--json")
    _, out2, _ = run_cli(capsys, "--order", "3", "--smoothing", "kneser-ney", "--samples", "4", "--seed", "7", "--json")
    samples = json.loads(out1.strip().splitlines()[-1])["samples"]
    assert len(samples) == 4 and samples == json.loads(out2.strip().splitlines()[-1])["samples"]
    assert all(set(s) <= set(CHARS[1:]) for s in samples)


def test_kneser_ney_matches_a_hand_computation():
    # Corpus .ab. and .b. with d = 0.5. Continuation counts: a after {.}, b after {a, .}, '.' after {b}:
    # P1(a) = (1 - .5)/4 + .5 * 3/4 * 1/3 = 0.25, P1(b) = 0.5, P1(.) = 0.25.
    kn = NGramModel(2, "kneser-ney", discount=0.5).fit(["ab", "b"])
    assert [kn._kn_prob((), w, 1) for w in ".ab"] == pytest.approx([0.25, 0.25, 0.5])
    assert kn.prob(("a",), "b") == pytest.approx(0.5 / 1 + 0.5 * 1 / 1 * 0.5)  # 0.75
    assert kn.prob((".",), "b") == pytest.approx(0.5 / 2 + 0.5 * 2 / 2 * 0.5)  # 0.5
    assert kn.prob((".",), "a") == pytest.approx(0.5 / 2 + 0.5 * 2 / 2 * 0.25)  # 0.375
    # a unigram model's only level is its top level: raw counts a 1, b 2, '.' 2 -> (2 - .5)/5 + .5 * 3/5 * 1/3
    assert NGramModel(1, "kneser-ney", discount=0.5).fit(["ab", "b"]).prob((), "b") == pytest.approx(0.4)


def test_extra_vocab_gives_unseen_tokens_a_smoothed_share_and_distributions_still_sum_to_one():
    # A character never seen in training but named in vocab= gets the add-k share k / (count(h) + k V);
    # without vocab= it has probability 0 and the held-out NLL is infinite.
    m = NGramModel(order=2, smoothing="add-k", k=0.5, vocab="abcz").fit(["abca", "bca"])
    assert m.vocab == [".", "a", "b", "c", "z"] and m.V == 5
    assert m.prob("a", "z") == pytest.approx(0.5 / (3 + 0.5 * 5))  # "a" is followed 3 times in training
    assert sum(m.distribution("c").values()) == pytest.approx(1.0)
    assert math.isfinite(m.nll(["zab"]))
    assert NGramModel(order=2, smoothing="add-k", k=0.5).fit(["abca", "bca"]).nll(["zab"]) == math.inf
    kn = NGramModel(order=3, smoothing="kneser-ney", vocab="abcz").fit(["abca", "bca"])
    assert sum(kn.distribution("ab").values()) == pytest.approx(1.0) and kn.prob("ab", "z") > 0
    with pytest.raises(ValueError, match="start marker"):
        NGramModel(vocab="a.b")
