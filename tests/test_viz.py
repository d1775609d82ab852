"""The attention explorer, driven through its widgets' state: set a control, check what it computes."""

import math

import matplotlib
import numpy as np

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from minigpt.model import GPT, GPTConfig  # noqa: E402
from minigpt.names_gpt import names_tokenizer  # noqa: E402
from minigpt.viz import AttentionExplorer, RandomAttention, attention_from_qk, gpt_attention  # noqa: E402

SENTENCES = ["the cat sat on the mat", "a dog ran", "one"]


@pytest.fixture
def explorer():
    return AttentionExplorer(RandomAttention(n_head=4, head_size=16, n_embd=32, seed=0), SENTENCES)


def reference_weights(attn: RandomAttention, tokens, head, causal, scaled):
    """softmax(q k^T / sqrt(d)) written out independently of attention_from_qk."""
    x = attn.embed(tokens)
    q, k = x @ attn.W_q[head], x @ attn.W_k[head]
    s = q @ k.T
    if scaled:
        s = s / math.sqrt(attn.head_size)
    if causal:
        T = len(tokens)
        s = s.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool)), float("-inf"))
    return torch.softmax(s, dim=-1)


def test_attention_from_qk_matches_scaled_dot_product_attention():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8, generator=g) for _ in range(3))
    w = attention_from_qk(q, k, causal=True, scaled=True)
    torch.testing.assert_close(w @ v, F.scaled_dot_product_attention(q, k, v, is_causal=True))
    w = attention_from_qk(q, k, causal=False, scaled=True)
    torch.testing.assert_close(w @ v, F.scaled_dot_product_attention(q, k, v))


def test_initial_state_shows_first_sentence_head_zero(explorer):
    assert explorer.sentence.value == SENTENCES[0]
    assert explorer.tokens == SENTENCES[0].split()
    assert explorer.head.value == 0 and explorer.head.max == 3
    assert explorer.layer.disabled  # one layer: nothing to pick
    assert explorer.all_weights.shape == (1, 4, 6, 6)
    assert explorer.weights.shape == (6, 6)


def test_setting_head_selects_that_heads_weights(explorer):
    explorer.head.value = 2
    ref = reference_weights(explorer.compute, explorer.tokens, head=2, causal=True, scaled=True)
    torch.testing.assert_close(explorer.weights, ref)
    assert not torch.allclose(explorer.weights, explorer.all_weights[0, 0])


def test_every_row_is_a_distribution(explorer):
    for causal in (True, False):
        for scaled in (True, False):
            explorer.causal.value, explorer.scaled.value = causal, scaled
            w = explorer.all_weights
            assert (w >= 0).all()
            torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))


def test_causal_mask_hides_the_future_and_toggling_reveals_it(explorer):
    assert torch.equal(torch.triu(explorer.weights, diagonal=1), torch.zeros(6, 6))
    assert explorer.weights[0, 0] == 1.0  # the first token can only look at itself
    explorer.causal.value = False
    assert (torch.triu(explorer.weights, diagonal=1) > 0).any()
    ref = reference_weights(explorer.compute, explorer.tokens, head=0, causal=False, scaled=True)
    torch.testing.assert_close(explorer.weights, ref)


def test_turning_scaling_off_makes_rows_peakier(explorer):
    def mean_entropy(w):
        return -(w * w.clamp_min(1e-12).log()).sum(-1).mean().item()

    explorer.causal.value = False
    scaled = explorer.all_weights
    explorer.scaled.value = False
    unscaled = explorer.all_weights
    ref = reference_weights(explorer.compute, explorer.tokens, head=1, causal=False, scaled=False)
    torch.testing.assert_close(unscaled[0, 1], ref)
    # scores with variance d_k=16 instead of 1: softmax saturates, rows carry less entropy
    assert mean_entropy(unscaled) < mean_entropy(scaled) - 0.2


def test_changing_sentence_changes_tokens_and_shape(explorer):
    explorer.sentence.value = "a dog ran"
    assert explorer.tokens == ["a", "dog", "ran"]
    assert explorer.weights.shape == (3, 3)
    explorer.sentence.value = "one"
    assert explorer.weights.shape == (1, 1) and explorer.weights.item() == pytest.approx(1.0)


def test_same_word_gets_same_embedding_apart_from_position():
    attn = RandomAttention(n_head=2, seed=3)
    a = attn.embed(["the", "cat"])
    b = attn.embed(["the", "dog"])
    torch.testing.assert_close(a[0], b[0])
    assert not torch.allclose(a[1], b[1])


def test_plot_labels_rows_and_columns_with_tokens(explorer):
    explorer.head.value = 3
    explorer.scaled.value = False
    fig = explorer.plot()
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == explorer.tokens
    assert [t.get_text() for t in ax.get_yticklabels()] == explorer.tokens
    assert "head 3" in ax.get_title() and "unscaled" in ax.get_title()
    assert ax.get_xlabel() and ax.get_ylabel()
    assert torch.allclose(torch.tensor(ax.images[0].get_array()), explorer.weights)
    plt.close(fig)


def test_plot_draws_the_masked_future_apart_from_small_weights(explorer):
    fig = explorer.plot()
    shown = fig.axes[0].images[0].get_array()
    T = len(explorer.tokens)
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    assert torch.equal(torch.tensor(shown.mask), future)  # masked cells, drawn in the colormap's "bad" grey
    assert "grey = masked" in fig.axes[0].get_title()
    plt.close(fig)
    explorer.causal.value = False  # no mask: every cell is a weight and is coloured as one
    fig = explorer.plot()
    assert not np.ma.is_masked(fig.axes[0].images[0].get_array())
    plt.close(fig)


def test_info_line_follows_the_controls(explorer):
    before = explorer.info.value
    explorer.scaled.value = False
    assert explorer.info.value != before and "entropy" in explorer.info.value


def test_gpt_explorer_matches_model_attention_weights():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=27, n_layer=2, n_head=4, n_embd=32)).eval()
    tok = names_tokenizer()
    ex = AttentionExplorer.from_gpt(model, tok, [".emma", ".olivia"])
    assert ex.all_weights.shape == (2, 4, 5, 5)
    assert not ex.layer.disabled and ex.layer.max == 1
    ex.sentence.value = ".olivia"
    ex.layer.value, ex.head.value = 1, 3
    ref = model.attention_weights(torch.tensor([tok.encode(".olivia")]))[1][0, 3]
    torch.testing.assert_close(ex.weights, ref)
    ex.causal.value = False  # recomputed from the same queries and keys, without the mask
    assert (torch.triu(ex.weights, diagonal=1) > 0).any()


def test_gpt_attention_rejects_too_long_input():
    model = GPT(GPTConfig(block_size=4, vocab_size=27, n_layer=1, n_head=1, n_embd=8))
    compute = gpt_attention(model, lambda toks: names_tokenizer().encode("".join(toks)))
    with pytest.raises(ValueError, match="block_size"):
        compute(list(".abcdef"))


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="at least one sentence"):
        AttentionExplorer(RandomAttention(), [])
    with pytest.raises(ValueError, match="expected"):
        AttentionExplorer(lambda toks, causal, scaled: torch.ones(2, 3), ["a b"])


def test_toggles_can_be_locked_for_a_trained_model():
    ex = AttentionExplorer(RandomAttention(n_head=1), ["x y"], allow_toggles=False)
    assert ex.causal.disabled and ex.scaled.disabled and ex.head.disabled
