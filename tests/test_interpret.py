"""Looking inside a GPT: statistics on a model whose attention is known, ablation that zeroes exactly
one head and leaves nothing behind, and a logit lens that ends at the model's own logits."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from minigpt.interpret import (  # noqa: E402
    ablate_heads,
    ablation_nll,
    attention,
    attention_only_gpt,
    head_means,
    head_stats,
    held_out_windows,
    induction_test,
    logit_lens,
    nll,
    repeated_random_tokens,
    train_induction_model,
)
from minigpt.model import GPT, GPTConfig  # noqa: E402
from minigpt.tokenizer import CharTokenizer  # noqa: E402
from minigpt.viz import GPTAttentionExplorer, plot_attention_grid  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
TOK = CharTokenizer(sorted(set("abcdefghijklmnopqrstuvwxyz .,:\n")))


def gpt(seed=0, block_size=16, n_layer=2, n_head=4):
    torch.manual_seed(seed)
    model = GPT(GPTConfig(block_size=block_size, vocab_size=TOK.vocab_size, n_layer=n_layer, n_head=n_head,
                          n_embd=8 * n_head))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def uniform_attention(model):
    """Zero queries and keys: every score is 0, so each token spreads its attention evenly over the past."""
    C = model.config.n_embd
    with torch.no_grad():
        for block in model.transformer.h:
            block.attn.c_attn.weight[: 2 * C] = 0
            block.attn.c_attn.bias[: 2 * C] = 0
    return model


def test_head_stats_of_uniform_attention_match_the_formulas():
    model = uniform_attention(gpt())
    T = 16
    x = torch.randint(0, TOK.vocab_size, (5, T), generator=torch.Generator().manual_seed(0))
    st = head_stats(model, x, batch_size=2)
    entropy = sum(math.log(i + 1) for i in range(T)) / T  # row i spreads over i + 1 tokens
    distance = sum(i / 2 for i in range(T)) / T  # the mean of 0..i is i / 2
    prev = sum(1 / (i + 1) for i in range(1, T)) / (T - 1)
    for key, ref in (("entropy", entropy), ("distance", distance), ("prev_token", prev)):
        assert st[key].shape == (2, 4)
        torch.testing.assert_close(st[key], torch.full((2, 4), ref), atol=1e-5, rtol=0)


def test_attention_rows_sum_to_one_and_never_look_ahead():
    model = gpt()
    x = torch.randint(0, TOK.vocab_size, (3, 10))
    w = attention(model, x)
    assert w.shape == (2, 3, 4, 10, 10)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 4, 10))
    assert (w.triu(diagonal=1) == 0).all()


def test_ablating_nothing_changes_nothing_and_hooks_are_removed():
    model = gpt()
    x = torch.randint(0, TOK.vocab_size, (2, 12))
    before = model(x)[0]
    with ablate_heads(model, []):
        torch.testing.assert_close(model(x)[0], before)
    with ablate_heads(model, [(0, 1), (1, 3)]):
        assert not torch.allclose(model(x)[0], before)
    torch.testing.assert_close(model(x)[0], before)  # the hooks are gone
    with pytest.raises(RuntimeError), ablate_heads(model, [(0, 2)]):
        raise RuntimeError("a crash inside the block")
    torch.testing.assert_close(model(x)[0], before)  # ... even after an exception
    with pytest.raises(ValueError, match=r"no head \(2, 0\)"), ablate_heads(model, [(2, 0)]):
        pass


def test_an_ablated_heads_output_really_is_zero():
    model = gpt()
    x = torch.randint(0, TOK.vocab_size, (2, 12))
    seen = {}
    hs = model.config.n_embd // model.config.n_head

    def capture(module, args):
        seen["y"] = args[0].detach().clone()

    with ablate_heads(model, [(1, 2)]):
        handle = model.transformer.h[1].attn.c_proj.register_forward_pre_hook(capture)
        model(x)
        handle.remove()
    y = seen["y"]
    assert (y[..., 2 * hs:3 * hs] == 0).all()
    assert (y[..., :2 * hs] != 0).any() and (y[..., 3 * hs:] != 0).any()
    # zeroing every head of a layer equals a layer whose attention adds only c_proj's bias
    with ablate_heads(model, [(0, h) for h in range(4)]):
        ablated = model(x)[0]
    with torch.no_grad():
        w = model.transformer.h[0].attn.c_proj.weight.clone()
        model.transformer.h[0].attn.c_proj.weight.zero_()
        zeroed = model(x)[0]
        model.transformer.h[0].attn.c_proj.weight.copy_(w)
    torch.testing.assert_close(ablated, zeroed)


def test_ablation_nll_compares_each_head_with_the_intact_model():
    model = gpt()
    x = torch.randint(0, TOK.vocab_size, (4, 12), generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, TOK.vocab_size, (4, 12), generator=torch.Generator().manual_seed(2))
    base, table = ablation_nll(model, x, y)
    assert base == pytest.approx(nll(model, x, y)) and table.shape == (2, 4)
    with ablate_heads(model, [(1, 0)]):
        assert table[1, 0].item() == pytest.approx(nll(model, x, y), abs=1e-6)


def test_logit_lens_ends_at_the_models_logits():
    model = gpt()
    x = torch.randint(0, TOK.vocab_size, (2, 9))
    lens = logit_lens(model, x)
    assert lens.shape == (3, 2, 9, TOK.vocab_size)
    torch.testing.assert_close(lens[-1], model(x)[0], atol=1e-5, rtol=0)
    tr = model.transformer
    first = model.lm_head(tr.ln_f(tr.wte(x) + tr.wpe(torch.arange(9))))
    torch.testing.assert_close(lens[0], first, atol=1e-5, rtol=0)


def test_induction_test_on_a_model_that_attends_uniformly():
    model = uniform_attention(gpt(block_size=16))
    r = induction_test(model, n_seqs=4, generator=torch.Generator().manual_seed(0))
    L = 8
    assert r["length"] == L and r["loss_by_position"].shape == (2 * L - 1,)
    ref = sum(1 / (t + 1) for t in range(L, 2 * L)) / L  # uniform rows: w[t, t - L + 1] = 1 / (t + 1)
    torch.testing.assert_close(r["score"], torch.full((2, 4), ref), atol=1e-5, rtol=0)
    assert math.isfinite(r["loss_first"]) and math.isfinite(r["loss_second"])
    with pytest.raises(ValueError, match="do not fit in block_size"):
        induction_test(model, length=9)


def test_induction_test_on_given_sequences_scores_those_sequences():
    model = uniform_attention(gpt(block_size=16))
    seqs = torch.randint(0, TOK.vocab_size, (3, 6), generator=torch.Generator().manual_seed(0))
    r = induction_test(model, sequences=seqs)
    assert r["length"] == 6 and r["loss_by_position"].shape == (11,)
    ref = sum(1 / (t + 1) for t in range(6, 12)) / 6
    torch.testing.assert_close(r["score"], torch.full((2, 4), ref), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="do not fit in block_size"):
        induction_test(model, sequences=torch.zeros(2, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(N, length\)"):
        induction_test(model, sequences=torch.zeros(9, dtype=torch.long))


def test_a_model_that_copies_passes_the_induction_test():
    """An exact copier (a hand-set 'model' that predicts the token L back) is what the test looks for."""
    class Copier(torch.nn.Module):
        config = GPTConfig(block_size=16, vocab_size=TOK.vocab_size, n_layer=1, n_head=1, n_embd=4)

        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, idx, targets=None):
            B, T = idx.shape
            logits = torch.zeros(B, T, self.config.vocab_size)
            for t in range(T):
                if t + 1 >= 8:  # the next token is the one 8 back (L = 8)
                    logits[:, t].scatter_(1, idx[:, t + 1 - 8:t + 2 - 8], 20.0)
            return logits, None

        def attention_weights(self, idx):
            B, T = idx.shape
            w = torch.zeros(B, 1, T, T)
            for t in range(T):
                w[:, 0, t, max(0, t - 7)] = 1.0
            return [w]

    r = induction_test(Copier(), n_seqs=5, generator=torch.Generator().manual_seed(0))
    assert r["loss_first"] > math.log(TOK.vocab_size) - 0.1 and r["loss_second"] < 0.01
    torch.testing.assert_close(r["score"], torch.ones(1, 1))


def test_repeated_random_tokens_repeat_with_their_own_period():
    rows = repeated_random_tokens(50, 32, 20, min_period=3, max_period=12, generator=torch.Generator().manual_seed(0))
    assert rows.shape == (50, 33) and rows.min() >= 0 and rows.max() < 20
    periods = []
    for r in rows:
        p = next(p for p in range(3, 13) if torch.equal(r[p:], r[:-p]))
        periods.append(p)
    assert len(set(periods)) > 3  # the period changes from row to row: no fixed offset can copy
    with pytest.raises(ValueError, match="periods"):
        repeated_random_tokens(2, 8, 5, min_period=6, max_period=4)


def test_an_attention_only_block_adds_only_attention():
    model = attention_only_gpt(vocab_size=20, block_size=8, n_layer=2, n_head=2, n_embd=16).eval()
    block = model.transformer.h[0]
    x = torch.randn(2, 8, 16)
    torch.testing.assert_close(block(x), x + block.attn(block.ln_1(x)))
    model2, losses = train_induction_model(steps=3, vocab_size=20, block_size=8, batch_size=4)
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses) and not model2.training


def test_mean_ablation_puts_the_heads_mean_output_in_its_place():
    model = gpt()
    x = torch.randint(0, TOK.vocab_size, (6, 12), generator=torch.Generator().manual_seed(3))
    hs = model.config.n_embd // model.config.n_head
    seen = {}

    def capture(module, args):
        seen["y"] = args[0].detach().clone()

    handle = model.transformer.h[1].attn.c_proj.register_forward_pre_hook(capture)
    model(x)
    handle.remove()
    intact = seen["y"]  # (6, 12, C): the heads' outputs side by side
    means = head_means(model, x, batch_size=4)
    torch.testing.assert_close(means[1], intact.mean((0, 1)), atol=1e-6, rtol=0)
    with ablate_heads(model, [(1, 2)], means):
        handle = model.transformer.h[1].attn.c_proj.register_forward_pre_hook(capture)  # runs after the ablation
        model(x)
        handle.remove()
    y = seen["y"]
    torch.testing.assert_close(y[..., 2 * hs:3 * hs], intact.mean((0, 1))[2 * hs:3 * hs].expand(6, 12, hs))
    torch.testing.assert_close(y[..., :2 * hs], intact[..., :2 * hs])  # the other heads are untouched
    with pytest.raises(ValueError, match="no entry for layer"), ablate_heads(model, [(0, 1)], {1: means[1]}):
        pass


def test_ablation_nll_in_mean_mode_matches_ablate_heads_with_the_means():
    model = gpt()
    x = torch.randint(0, TOK.vocab_size, (4, 12), generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, TOK.vocab_size, (4, 12), generator=torch.Generator().manual_seed(2))
    base, table = ablation_nll(model, x, y, mode="mean")
    with ablate_heads(model, [(0, 3)], head_means(model, x)):
        assert table[0, 3].item() == pytest.approx(nll(model, x, y), abs=1e-6)
    assert base == pytest.approx(nll(model, x, y))
    with pytest.raises(ValueError, match="unknown ablation 'half'"):
        ablation_nll(model, x, y, mode="half")


def test_held_out_windows_are_shifted_by_one():
    ids = torch.arange(100)
    x, y = held_out_windows(ids, 10, 5)
    assert x.shape == y.shape == (5, 10) and torch.equal(y, x + 1) and x[0, 0] == 0
    with pytest.raises(ValueError, match="need at least 12"):
        held_out_windows(torch.arange(11), 10, 2)


# --------------------------------------------------------------------------- the explorer widget

@pytest.fixture
def explorer():
    return GPTAttentionExplorer(gpt(), TOK, prompt="romeo: but soft")


def test_explorer_shows_the_models_own_attention(explorer):
    ids = torch.tensor([TOK.encode("romeo: but soft")])
    ref = explorer.model.attention_weights(ids)
    explorer.layer.value, explorer.head.value = 1, 3
    torch.testing.assert_close(explorer.weights, ref[1][0, 3])
    assert explorer.tokens == list("romeo: but soft") and explorer.query.value == 14
    torch.testing.assert_close(explorer.query_weights, ref[1][0, 3, 14])


def test_the_query_picker_highlights_where_that_token_looks(explorer):
    explorer.query.value = 4
    w = explorer.query_weights
    assert (w[5:] == 0).all() and abs(float(w.sum()) - 1) < 1e-5
    html = explorer.text_html()
    assert html.count("<span") == 15 and "outline: 2px solid red" in html
    top = int(w.argmax())
    assert f"looks most at token {top}" in explorer.info.value


def test_typing_a_prompt_recomputes_and_resets_the_query(explorer):
    explorer.prompt.value = "to be or not"
    assert explorer.tokens == list("to be or not") and explorer.query.max == 11 and explorer.query.value == 11
    assert explorer.all_weights.shape == (2, 4, 12, 12)
    explorer.prompt.value = "x" * 40  # longer than block_size 16: the last 16 characters
    assert len(explorer.tokens) == 16


def test_a_bad_prompt_is_reported_in_the_widget(explorer):
    explorer.prompt.value = "ROMEO"
    assert explorer.weights is None and "not in the vocabulary" in explorer.error
    assert "cannot use this prompt" in explorer.info.value and explorer.plot() is None
    explorer.prompt.value = "romeo"
    assert explorer.error == "" and explorer.weights is not None


def test_masked_cells_are_drawn_grey_not_as_small_weights(explorer):
    fig = explorer.plot()
    im = fig.axes[0].images[0]
    data = im.get_array()
    assert data.mask[0, 1] and not data.mask[1, 0]  # the future is masked ...
    assert tuple(im.get_cmap().get_bad()[:3]) != tuple(im.get_cmap()(0.0)[:3])  # ... and masked looks unlike 0
    assert fig.axes[0].get_xlabel().startswith("key") and "layer 0, head 0" in fig.axes[0].get_title()
    plt.close(fig)
    explorer.grid.value = True
    fig = explorer.plot()
    assert len([a for a in fig.axes if a.images]) == 8  # 2 layers x 4 heads
    plt.close(fig)
    fig = plot_attention_grid(explorer.all_weights, explorer.tokens)
    assert len(fig.axes) == 8
    plt.close(fig)
