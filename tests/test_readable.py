"""minigpt.readable, the plain GPT lessons 05 and 06 print, computes what minigpt.model computes."""

import pytest
import torch

from minigpt.model import GPT, CausalSelfAttention, GPTConfig
from minigpt.readable import ReadableGPT, SelfAttention


@pytest.fixture
def config():
    return GPTConfig(block_size=16, vocab_size=27, n_layer=2, n_head=4, n_embd=32)


def test_readable_gpt_takes_the_model_weights_and_gives_the_same_logits(config):
    torch.manual_seed(0)
    gpt = GPT(config).eval()
    readable = ReadableGPT(config)
    readable.load_state_dict(gpt.state_dict())  # strict: every name and shape matches
    idx = torch.randint(config.vocab_size, (3, 11))
    with torch.no_grad():
        assert torch.allclose(readable(idx), gpt(idx)[0], atol=1e-5)


def test_readable_attention_matches_the_model_and_returns_causal_weights(config):
    torch.manual_seed(1)
    attn = CausalSelfAttention(config).eval()
    plain = SelfAttention(config.n_embd, config.n_head, config.block_size)
    plain.load_state_dict(attn.state_dict())
    x = torch.randn(2, 9, config.n_embd)
    with torch.no_grad():
        y, w = plain(x)
        assert torch.allclose(y, attn(x), atol=1e-5)
    assert w.shape == (2, config.n_head, 9, 9)
    assert torch.allclose(w.sum(-1), torch.ones(2, config.n_head, 9))
    assert torch.all(w.triu(diagonal=1) == 0)  # no weight on the future


def test_readable_weights_differ_from_a_fresh_model_so_the_comparison_can_fail(config):
    # the positive control for the test above: two differently initialised models disagree
    torch.manual_seed(0)
    a = GPT(config).eval()
    torch.manual_seed(1)
    b = ReadableGPT(config)
    b.load_state_dict(GPT(config).state_dict())
    idx = torch.randint(config.vocab_size, (1, 8))
    with torch.no_grad():
        assert not torch.allclose(b(idx), a(idx)[0], atol=1e-5)
