"""Generation: the sampling strategies draw from the right distributions, the KV cache changes
nothing but the speed, streaming and stop strings, and the ``sample`` command's errors."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

import minigpt.generate as gen
from minigpt.cli import main
from minigpt.generate import (
    SamplingSettings,
    StopStrings,
    apply_temperature,
    check_sampling_args,
    frequency_penalty,
    generate,
    generate_text,
    greedy,
    next_token_probs,
    repetition_penalty,
    sample_next,
    stream,
    top_k_filter,
    top_p_filter,
)
from minigpt.model import GPT, GPTConfig, KVCache
from minigpt.tokenizer import CharTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

TOK = CharTokenizer(sorted(set("abcdefghijklmnopqrstuvwxyz .,\n")))


def tiny_gpt(attn_impl="sdpa", block_size=16, seed=0):
    torch.manual_seed(seed)
    model = GPT(GPTConfig(block_size=block_size, vocab_size=TOK.vocab_size, n_layer=2, n_head=4, n_embd=32,
                          attn_impl=attn_impl))
    with torch.no_grad():  # weights less uniform than the init, so the logits differ clearly
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def z_scores(draws: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """(observed - expected) / sd for each token's count among ``draws`` drawn from ``probs``."""
    n = draws.numel()
    counts = torch.bincount(draws.flatten(), minlength=probs.numel()).double()
    expected = n * probs.double()
    sd = (n * probs.double() * (1 - probs.double())).sqrt().clamp_min(1e-12)
    return (counts - expected) / sd


# --------------------------------------------------------------------------- distributions

@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_sampled_frequencies_match_the_softmax_at_that_temperature(temperature):
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0])
    n = 40_000
    g = torch.Generator().manual_seed(0)
    draws = sample_next(logits.expand(n, -1), temperature=temperature, generator=g)
    probs = F.softmax(logits / temperature, dim=-1)
    z = z_scores(draws, probs)
    assert z.abs().max() < 4.5, f"sampled frequencies are off the softmax at T={temperature}: z={z.tolist()}"
    # and the chi-square statistic is below its 99.99% quantile for 5 degrees of freedom (25.74)
    counts = torch.bincount(draws.flatten(), minlength=6).double()
    chi2 = ((counts - n * probs.double()) ** 2 / (n * probs.double())).sum()
    assert chi2 < 25.74


def test_temperature_sharpens_below_one_and_flattens_above():
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0]])
    entropy = lambda p: -(p * p.log()).sum().item()
    h = [entropy(next_token_probs(logits, temperature=t)[0]) for t in (0.25, 1.0, 4.0)]
    assert h[0] < h[1] < h[2] < math.log(4)
    torch.testing.assert_close(F.softmax(apply_temperature(logits, 1.0), -1), F.softmax(logits, -1))


@pytest.mark.parametrize("temperature", [1e-45, 1e-30, 1e-6])
def test_a_tiny_temperature_is_greedy_not_nan(temperature):
    logits = torch.tensor([[3.0, 1.0, 2.9, -1.0], [0.0, 0.5, 0.2, 0.1]])
    probs = next_token_probs(logits, temperature=temperature)
    assert torch.isfinite(probs).all()
    torch.testing.assert_close(probs, next_token_probs(logits, temperature=0))
    draws = sample_next(logits, temperature=temperature, generator=torch.Generator().manual_seed(0))
    assert torch.equal(draws, greedy(logits))


def reference_nucleus(probs: torch.Tensor, p: float) -> set[int]:
    """The smallest set of most likely tokens whose mass reaches p, ties broken by the lower id."""
    order = sorted(range(len(probs)), key=lambda i: (-float(probs[i]), i))
    kept, mass = set(), 0.0
    for i in order:
        kept.add(i)
        mass += float(probs[i])
        if mass >= p - 1e-12:
            break
    return kept


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9, 0.99])
def test_top_p_keeps_exactly_the_smallest_set_whose_mass_reaches_p(seed, p):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 12, generator=g) * 2
    kept = top_p_filter(logits, p) > float("-inf")
    probs = F.softmax(logits.double(), dim=-1)
    for row in range(3):
        ref = reference_nucleus(probs[row], p)
        assert set(kept[row].nonzero().flatten().tolist()) == ref
        assert probs[row][kept[row]].sum() >= p - 1e-9  # the kept mass reaches p ...
        # ... and without its least likely member it would not
        least = min(ref, key=lambda i: (float(probs[row][i]), -i))
        assert probs[row][list(ref - {least})].sum() < p


def test_top_p_with_ties_and_at_the_edges():
    ties = torch.zeros(1, 4)  # four equally likely tokens, 0.25 each
    assert (top_p_filter(ties, 0.5) > float("-inf")).tolist() == [[True, True, False, False]]
    assert (top_p_filter(ties, 0.50001) > float("-inf")).sum() == 3
    logits = torch.tensor([[1.0, 3.0, 2.0, -5.0]])
    torch.testing.assert_close(top_p_filter(logits, 1.0), logits)  # p = 1 keeps everything
    assert (top_p_filter(logits, 1e-6) > float("-inf")).tolist() == [[False, True, False, False]]


def test_top_k_keeps_the_k_largest():
    logits = torch.tensor([[0.1, 0.5, -1.0, 2.0, 0.4]])
    assert (top_k_filter(logits, 2) > float("-inf")).tolist() == [[False, True, False, True, False]]
    torch.testing.assert_close(top_k_filter(logits, 5), logits)
    torch.testing.assert_close(top_k_filter(logits, 50), logits)


@pytest.mark.parametrize("settings", [dict(top_k=3), dict(top_p=0.6), dict(top_k=4, top_p=0.5, temperature=1.5)])
def test_nothing_outside_the_allowed_set_is_ever_drawn(settings):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 20, generator=g)
    allowed = next_token_probs(logits, **settings)[0] > 0
    draws = sample_next(logits.expand(20_000, -1), generator=g, **settings)
    assert allowed[draws.flatten()].all()
    assert allowed.sum() < 20 and allowed[draws.flatten()].sum() == 20_000
    # the draws follow the renormalised distribution over the allowed set
    assert z_scores(draws, next_token_probs(logits, **settings)[0]).abs().max() < 4.5


def test_probabilities_sum_to_one_after_every_filter():
    logits = torch.randn(5, 30, generator=torch.Generator().manual_seed(2))
    for s in [dict(), dict(temperature=0), dict(temperature=0.3, top_k=7), dict(top_p=0.2), dict(top_k=1)]:
        torch.testing.assert_close(next_token_probs(logits, **s).sum(-1), torch.ones(5))


def test_top_k_one_and_temperature_zero_equal_greedy():
    model = tiny_gpt()
    idx = torch.tensor([TOK.encode("the cat"), TOK.encode("a dog. ")[:7]])
    greedy_out = generate(model, idx, 40, temperature=0)
    for s in [dict(temperature=1.0, top_k=1), dict(temperature=0.0), dict(temperature=2.0, top_k=1, top_p=0.9)]:
        out = generate(model, idx, 40, generator=torch.Generator().manual_seed(5), **s)
        assert torch.equal(out, greedy_out), s
    logits = torch.randn(4, 9)
    assert torch.equal(greedy(logits), logits.argmax(-1, keepdim=True))


@pytest.mark.parametrize("settings", [dict(temperature=1.0), dict(temperature=0.7, top_k=5),
                                      dict(top_p=0.8), dict(temperature=1.2, repetition=1.3, frequency=0.2)])
def test_a_seeded_generator_makes_every_strategy_reproducible(settings):
    model = tiny_gpt()
    idx = torch.tensor([TOK.encode("to be")])
    a = generate(model, idx, 30, generator=torch.Generator().manual_seed(7), **settings)
    b = generate(model, idx, 30, generator=torch.Generator().manual_seed(7), **settings)
    c = generate(model, idx, 30, generator=torch.Generator().manual_seed(8), **settings)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_repetition_penalty_matches_hugging_face():
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 10, generator=g) * 3
    ids = torch.tensor([[1, 1, 4, 7], [0, 2, 2, 9]])
    counts = torch.zeros(2, 10).scatter_add_(1, ids, torch.ones_like(ids, dtype=torch.float))
    ours = repetition_penalty(logits, counts, 1.5)
    theirs = RepetitionPenaltyLogitsProcessor(1.5)(ids, logits.clone())
    torch.testing.assert_close(ours, theirs)


def test_frequency_penalty_subtracts_alpha_per_occurrence():
    logits = torch.zeros(1, 4)
    counts = torch.tensor([[0.0, 1.0, 3.0, 0.0]])
    torch.testing.assert_close(frequency_penalty(logits, counts, 0.5), torch.tensor([[0.0, -0.5, -1.5, 0.0]]))


def test_a_repetition_penalty_makes_greedy_text_repeat_less():
    model = tiny_gpt(block_size=64)
    idx = torch.tensor([TOK.encode("the ")])
    plain = TOK.decode(generate(model, idx, 60, temperature=0)[0, 4:].tolist())
    penalised = TOK.decode(generate(model, idx, 60, temperature=0, repetition=2.0)[0, 4:].tolist())
    distinct = lambda s: len({s[i:i + 3] for i in range(len(s) - 2)})
    assert distinct(penalised) > distinct(plain)


# --------------------------------------------------------------------------- the KV cache

@pytest.mark.parametrize("attn_impl", ["sdpa", "math"])
def test_cache_gives_the_same_logits_as_recomputing_at_every_step_even_past_block_size(attn_impl, monkeypatch):
    model = tiny_gpt(attn_impl, block_size=16)
    idx = torch.randint(0, TOK.vocab_size, (3, 5), generator=torch.Generator().manual_seed(0))
    seen = {True: [], False: []}
    real = gen.sample_next
    for use_cache in (True, False):
        def record(logits, *a, _store=seen[use_cache], **k):
            _store.append(logits.clone())
            return real(logits, *a, **k)

        monkeypatch.setattr(gen, "sample_next", record)
        out = generate(model, idx, 40, temperature=0, use_cache=use_cache)  # 45 tokens: past block_size 16
        monkeypatch.setattr(gen, "sample_next", real)
        seen[use_cache].append(out)
    *cached, out_cached = seen[True]
    *recomputed, out_recomputed = seen[False]
    assert len(cached) == len(recomputed) == 40
    for step, (a, b) in enumerate(zip(cached, recomputed)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0, msg=f"logits differ at step {step}")
    assert torch.equal(out_cached, out_recomputed)
    # and the recomputed logits are the model's own on the last block_size tokens (the window slides)
    window = out_recomputed[:, 44 - 16:44]
    torch.testing.assert_close(recomputed[-1], model(window)[0][:, -1], atol=1e-5, rtol=0)


def test_cache_in_chunks_equals_one_forward_and_refuses_to_overflow():
    model = tiny_gpt(block_size=16)
    x = torch.randint(0, TOK.vocab_size, (2, 16), generator=torch.Generator().manual_seed(1))
    cache = KVCache(model.config, 2)
    parts = [model(x[:, a:b], cache=cache)[0] for a, b in [(0, 3), (3, 4), (4, 11), (11, 16)]]
    torch.testing.assert_close(torch.cat(parts, 1), model(x)[0], atol=1e-5, rtol=0)
    assert cache.length == 16
    with pytest.raises(ValueError, match="KV cache holds 16 tokens"):
        model(x[:, :1], cache=cache)
    cache.reset()
    torch.testing.assert_close(model(x[:, :4], cache=cache)[0], model(x[:, :4])[0], atol=1e-5, rtol=0)


def test_future_tokens_never_change_past_logits_with_the_cache():
    model = tiny_gpt()
    x = torch.randint(0, TOK.vocab_size, (1, 10), generator=torch.Generator().manual_seed(2))
    y = x.clone()
    y[0, 7:] = (y[0, 7:] + 1) % TOK.vocab_size
    a = model(x, cache=KVCache(model.config, 1))[0]
    b = model(y, cache=KVCache(model.config, 1))[0]
    torch.testing.assert_close(a[:, :7], b[:, :7])


def test_generate_leaves_the_models_mode_as_it_was():
    model = tiny_gpt().train()
    generate(model, torch.zeros(1, 1, dtype=torch.long), 3, temperature=0)
    assert model.training


# --------------------------------------------------------------------------- text, streaming, stop strings

def test_stream_yields_pieces_as_they_come_and_joins_to_generate_text():
    model = tiny_gpt(block_size=32)
    pieces = list(stream(model, TOK, "the ", 30, temperature=0))
    assert len(pieces) == 30 and all(len(p) == 1 for p in pieces)
    full = generate(model, torch.tensor([TOK.encode("the ")]), 30, temperature=0)
    assert "".join(pieces) == TOK.decode(full[0, 4:].tolist()) == generate_text(model, TOK, "the ", 30, temperature=0)


def test_stop_strings_end_the_text_before_them_and_are_never_yielded():
    model = tiny_gpt(block_size=32)
    full = generate_text(model, TOK, "the ", 60, temperature=0)
    stop = full[20:23]
    first = full.find(stop)
    pieces = list(stream(model, TOK, "the ", 60, stop=stop, temperature=0))
    assert "".join(pieces) == full[:first]
    assert all(stop not in "".join(pieces[: i + 1]) for i in range(len(pieces)))
    # several stop strings: the earliest one wins; one that never occurs changes nothing
    assert generate_text(model, TOK, "the ", 60, stop=["\x00never", stop], temperature=0) == full[:first]
    assert generate_text(model, TOK, "the ", 60, stop="zzzzzzzz", temperature=0) == full
    with pytest.raises(ValueError, match="non-empty"):
        generate_text(model, TOK, "the ", 5, stop="")


def test_stream_never_splits_a_multibyte_character(monkeypatch):
    class ByteTokenizer:  # one token per byte, like a byte-level BPE before any merge
        def encode(self, text):
            return list(text.encode("utf-8"))

        def decode(self, ids):
            return bytes(ids).decode("utf-8", errors="replace")

    seq = list("héllo wörld 日本".encode())
    monkeypatch.setattr(gen, "generate_tokens", lambda model, idx, n, **kw: (torch.tensor([[t]]) for t in seq[:n]))
    pieces = list(stream(tiny_gpt(), ByteTokenizer(), "a", len(seq)))
    assert "".join(pieces) == "héllo wörld 日本" and all("\ufffd" not in p for p in pieces)
    assert len(pieces) == len("héllo wörld 日本")  # one piece per character, each as soon as it is whole


@pytest.mark.parametrize("kwargs, match", [
    (dict(temperature=-0.1), "temperature must be a number >= 0"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(temperature=float("inf")), "temperature"),
    (dict(top_k=0), "top-k must be a positive integer"),
    (dict(top_p=0.0), r"top-p must be in \(0, 1\]"),
    (dict(top_p=1.5), r"top-p must be in \(0, 1\]"),
    (dict(repetition=0.0), "repetition penalty must be > 0"),
    (dict(max_new_tokens=-1), "max new tokens must be an integer >= 0"),
])
def test_bad_sampling_settings_are_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_sampling_args(**kwargs)
    if "max_new_tokens" not in kwargs:
        with pytest.raises(ValueError, match=match):
            generate(tiny_gpt(), torch.zeros(1, 1, dtype=torch.long), 3, **kwargs)


# --------------------------------------------------------------------------- the command line

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "run"
    assert main(["train", "--preset", "tiny", "--max-iters", "10", "--eval-interval", "10", "--out", str(out),
                 "--device", "cpu", "--quiet"]) == 0
    return out


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_sample_command_top_p_stream_and_no_cache_agree(run, capsys):
    args = ["sample", "--ckpt", str(run), "--prompt", "ROMEO:", "--max-new-tokens", "50", "--top-p", "0.9",
            "--seed", "3", "--json"]
    assert main(args) == 0
    plain = last_json(capsys)
    assert main(args + ["--stream"]) == 0
    streamed = last_json(capsys)
    assert main(args + ["--no-cache"]) == 0
    recomputed = last_json(capsys)
    assert plain["text"] == streamed["text"] == recomputed["text"]
    assert plain["text"].startswith("ROMEO:") and plain["new_characters"] == 50


def test_sample_command_stops_at_a_stop_string(run, capsys):
    assert main(["sample", "--ckpt", str(run), "--max-new-tokens", "80", "--temperature", "0", "--json"]) == 0
    full = last_json(capsys)["text"]
    stop = full[30:32]
    assert main(["sample", "--ckpt", str(run), "--max-new-tokens", "80", "--temperature", "0", "--stop", stop,
                 "--json"]) == 0
    assert last_json(capsys)["text"] == full[: full.find(stop, 1)]


def test_sample_command_defaults_to_the_course_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINIGPT_RUNS_DIR", str(tmp_path))
    assert main(["sample", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no checkpoint at ") and "shakespeare-char-cpu" in err


@pytest.mark.parametrize("extra, match", [
    (["--top-p", "0"], "top-p must be in (0, 1]"),
    (["--top-p", "1.01"], "top-p must be in (0, 1]"),
    (["--temperature", "-1"], "temperature must be a number >= 0"),
    (["--max-new-tokens", "-5"], "max new tokens must be an integer >= 0"),
    (["--top-k", "0"], "top-k must be a positive integer"),
    (["--prompt", "日本"], "is not in the vocabulary"),
])
def test_sample_command_bad_values_exit_2_with_one_line(run, extra, match, capsys):
    assert main(["sample", "--ckpt", str(run), *extra]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and match in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and captured.out == ""


# --------------------------------------------------------------------------- the benchmark

def test_bench_generate_times_three_ways_that_make_the_same_tokens():
    from minigpt.bench import bench_generate

    r = bench_generate("cpu", sizes=dict(n_layer=1, n_head=2, n_embd=16, block_size=32, vocab_size=65),
                       prompt_len=4, new_tokens=20, rounds=1, progress=False)
    assert r["same_tokens"] is True and r["cache_matches_recompute"] is True
    for key in ("recompute", "cache", "transformers"):
        assert r[key]["tokens_per_s"] > 0 and r[key]["seconds"] > 0
    assert r["cache_vs_recompute"] == pytest.approx(r["cache"]["tokens_per_s"] / r["recompute"]["tokens_per_s"])
    with pytest.raises(ValueError, match="must fit in block_size"):
        bench_generate("cpu", sizes=dict(n_layer=1, n_head=2, n_embd=16, block_size=16, vocab_size=65),
                       prompt_len=4, new_tokens=20, progress=False)


def test_bench_generate_command_ends_with_one_json_object(monkeypatch, capsys):
    import minigpt.bench as bench

    monkeypatch.setattr(bench, "GENERATE_SIZES", dict(n_layer=1, n_head=2, n_embd=16, block_size=256, vocab_size=65))
    assert main(["bench", "generate", "--rounds", "1", "--json"]) == 0
    r = last_json(capsys)
    assert {"recompute", "cache", "transformers", "same_tokens"} <= set(r)
    assert all(r[k]["tokens_per_s"] > 0 for k in ("recompute", "cache", "transformers"))
    assert r["same_tokens"] is True and r["new_tokens"] == 240 and r["prompt_tokens"] == 16


def test_a_logits_processor_edits_every_draw_and_sees_the_tokens_so_far():
    """The hook lesson 12's controls use: a ban it applies is never drawn; it sees the growing sequence."""
    model = tiny_gpt()
    idx = torch.randint(0, model.config.vocab_size, (8, 3), generator=torch.Generator().manual_seed(0))
    lengths = []

    def ban_zero(logits, tokens):
        lengths.append(tokens.shape[1])
        assert torch.equal(tokens[:, :3], idx)
        return logits.masked_fill(torch.arange(logits.size(-1)) == 0, float("-inf"))

    out = torch.cat(list(gen.generate_tokens(model, idx, 40, generator=torch.Generator().manual_seed(1),
                                             logits_processor=ban_zero)), dim=1)
    assert lengths == list(range(3, 43)) and not (out == 0).any()
    plain = torch.cat(list(gen.generate_tokens(model, idx, 40, generator=torch.Generator().manual_seed(1))), dim=1)
    assert (plain == 0).any()  # without the ban token 0 does come up, so the ban did something


# --------------------------------------------------------------------------- one sampling-settings type

def test_the_settings_default_to_every_setting_off():
    s = SamplingSettings()
    assert (s.temperature, s.top_k, s.top_p, s.repetition, s.frequency) == (1.0, None, None, 1.0, 0.0)
    assert not s.is_greedy and not s.has_penalty
    assert SamplingSettings(temperature=0).is_greedy and SamplingSettings(frequency=0.1).has_penalty


@pytest.mark.parametrize("off", [dict(temperature=1.0), dict(top_k=None), dict(top_p=None), dict(top_p=1.0),
                                 dict(repetition=1.0), dict(frequency=0.0)])
def test_each_off_value_is_the_default_and_draws_the_same(off):
    assert SamplingSettings(**off) == SamplingSettings()  # top_p = 1 keeps every token: stored as None
    model = tiny_gpt()
    idx = torch.tensor([TOK.encode("to be")])
    plain = generate(model, idx, 30, generator=torch.Generator().manual_seed(3))
    assert torch.equal(generate(model, idx, 30, generator=torch.Generator().manual_seed(3), **off), plain)
    assert torch.equal(generate(model, idx, 30, settings=SamplingSettings(**off),
                                generator=torch.Generator().manual_seed(3)), plain)


@pytest.mark.parametrize("field, value, match", [
    ("temperature", -0.1, "temperature must be a number >= 0"),
    ("temperature", float("nan"), "temperature must be a number >= 0"),
    ("temperature", float("inf"), "temperature must be a number >= 0"),
    ("temperature", "hot", "temperature must be a number >= 0"),
    ("top_k", 0, r"top-k must be a positive integer \(or None for no limit\), got 0"),
    ("top_k", 2.5, "top-k must be a positive integer"),
    ("top_k", True, "top-k must be a positive integer"),
    ("top_p", 0.0, r"top-p must be in \(0, 1\] \(1 keeps every token\), got 0.0"),
    ("top_p", 1.5, r"top-p must be in \(0, 1\]"),
    ("repetition", 0.0, r"repetition penalty must be > 0 \(1 = none\)"),
    ("repetition", float("inf"), "repetition penalty must be > 0"),
    ("frequency", float("nan"), r"frequency penalty must be a finite number \(0 = none\)"),
])
def test_each_invalid_setting_is_one_clear_error(field, value, match):
    with pytest.raises(ValueError, match=match):
        SamplingSettings(**{field: value})
    with pytest.raises(ValueError, match=match):  # the same message wherever the setting is given
        check_sampling_args(**{field: value})
    with pytest.raises(ValueError, match=match):
        SamplingSettings().replace(**{field: value})
    with pytest.raises(ValueError, match=match):
        generate_text(tiny_gpt(), TOK, "a", 3, **{field: value})


def test_settings_by_name_replace_the_fields_of_settings():
    model = tiny_gpt()
    idx = torch.tensor([TOK.encode("the ")])
    s = SamplingSettings(temperature=0.7, top_k=5, repetition=1.2)
    a = generate(model, idx, 25, settings=s, generator=torch.Generator().manual_seed(1))
    b = generate(model, idx, 25, temperature=0.7, top_k=5, repetition=1.2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    c = generate(model, idx, 25, settings=s, top_k=None, generator=torch.Generator().manual_seed(1))
    d = generate(model, idx, 25, temperature=0.7, repetition=1.2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(c, d) and not torch.equal(a, c)
    with pytest.raises(TypeError, match="unknown sampling setting topk; the settings are temperature, top_k"):
        generate(model, idx, 3, topk=5)
    with pytest.raises(TypeError, match="settings must be a SamplingSettings"):
        generate(model, idx, 3, settings={"temperature": 0.5})


def test_from_options_reads_command_line_args():
    import argparse

    args = argparse.Namespace(ckpt="runs/x", temperature=0.8, top_k=None, top_p=0.9, repetition=1.0, seed=1)
    assert SamplingSettings.from_options(args) == SamplingSettings(temperature=0.8, top_p=0.9)
    assert SamplingSettings.from_options(args, top_k=40) == SamplingSettings(temperature=0.8, top_k=40, top_p=0.9)
    assert SamplingSettings.from_options({"temperature": 0}) == SamplingSettings(temperature=0)
    assert SamplingSettings.from_options() == SamplingSettings()
    with pytest.raises(ValueError, match="top-k must be a positive integer"):
        SamplingSettings.from_options(argparse.Namespace(temperature=0.8, top_k=0))


def test_generate_with_default_settings_draws_what_it_drew_before():
    """Regression: the tokens the sampler drew before the settings type existed (same seed, same draws),
    and the same as a plain softmax-and-multinomial loop over the model's logits."""
    model = tiny_gpt(block_size=16)
    idx = torch.tensor([TOK.encode("the cat "), TOK.encode("a dog.  ")])
    out = generate(model, idx, 40, generator=torch.Generator().manual_seed(7))
    assert out[:, 8:].tolist() == [
        [11, 24, 3, 20, 9, 11, 15, 15, 15, 18, 18, 8, 16, 9, 15, 11, 12, 15, 13, 2, 18, 24, 1, 20, 9, 9, 9, 10, 12,
         4, 9, 9, 24, 1, 1, 16, 28, 18, 9, 27],
        [9, 9, 16, 9, 9, 3, 9, 18, 28, 24, 24, 1, 16, 27, 27, 9, 2, 12, 15, 15, 9, 9, 12, 9, 27, 9, 28, 28, 9, 16,
         16, 24, 28, 11, 15, 9, 16, 16, 16, 27]]
    g, tokens = torch.Generator().manual_seed(7), idx
    with torch.no_grad():
        for _ in range(40):
            logits = model(tokens[:, -16:])[0][:, -1].float()
            tokens = torch.cat([tokens, torch.multinomial(F.softmax(logits - logits.amax(-1, keepdim=True), -1), 1,
                                                          generator=g)], 1)
    assert torch.equal(out, tokens)


# --------------------------------------------------------------------------- stop strings, once

def test_stop_strings_cut_at_the_earliest_and_hold_back_what_may_start_one():
    stops = StopStrings(["\n\n", "END"])
    assert stops.cut("a\nb\n\nc END") == ("a\nb", True)
    assert stops.cut("xEND\n\n") == ("x", True)
    assert stops.cut("no stop\n") == ("no stop\n", False)
    assert stops.safe("abc\n") == 3 and stops.safe("abcE") == 3 and stops.safe("abcEN") == 3
    assert stops.safe("abc") == 3 and StopStrings().safe("abc\n") == 4 and not StopStrings(None)
    for bad in ("", [""], ["a", 3]):
        with pytest.raises(ValueError, match="stop strings must be non-empty strings"):
            StopStrings(bad)


@pytest.mark.parametrize("settings", [dict(temperature=0), dict(temperature=0.9, top_k=6),
                                      dict(top_p=0.8, repetition=1.3)])
@pytest.mark.parametrize("stop", [None, "e", ["xq", "a."], "\n"])
def test_stream_equals_generate_text_and_generate_cut_at_the_stop(settings, stop):
    model = tiny_gpt(block_size=16)
    g = lambda: torch.Generator().manual_seed(11)  # noqa: E731
    pieces = list(stream(model, TOK, "the ", 40, stop=stop, generator=g(), **settings))
    text = generate_text(model, TOK, "the ", 40, stop=stop, generator=g(), **settings)
    full = TOK.decode(generate(model, torch.tensor([TOK.encode("the ")]), 40, generator=g(), **settings)[0, 4:])
    assert "".join(pieces) == text == StopStrings(stop).cut(full)[0]
    assert all(pieces)  # no empty pieces


def test_sample_texts_cuts_at_stop_strings_as_stream_does():
    from minigpt.constrain import sample_texts

    model = tiny_gpt(block_size=16)
    for stop in ("e", ["xq", "a."]):
        one = sample_texts(model, TOK, "the ", 1, 40, temperature=0.9, top_k=6, stop=stop,
                           generator=torch.Generator().manual_seed(2))[0]
        assert one == generate_text(model, TOK, "the ", 40, stop=stop, temperature=0.9, top_k=6,
                                    generator=torch.Generator().manual_seed(2))
