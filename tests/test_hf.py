"""minigpt's GPT is GPT-2: the same weights in transformers' GPT2LMHeadModel give the same logits."""

import pytest
import torch

from minigpt.hf import from_hf, to_hf
from minigpt.model import GPT, GPTConfig


@pytest.mark.parametrize("bias,activation", [(True, "gelu_tanh"), (False, "gelu_tanh"), (True, "gelu")])
def test_weights_copied_into_gpt2lmheadmodel_give_the_same_logits(bias, activation):
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=32, vocab_size=101, n_layer=3, n_head=4, n_embd=48, bias=bias,
                          activation=activation)).eval()
    # Make the weights less uniform than the init so every parameter matters.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    hf = to_hf(model)
    assert hf.config.activation_function == {"gelu_tanh": "gelu_new", "gelu": "gelu"}[activation]
    idx = torch.randint(0, 101, (2, 32))
    with torch.no_grad():
        ours, _ = model(idx)
        theirs = hf(idx).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("hf_activation,ours", [("gelu_new", "gelu_tanh"), ("gelu", "gelu")])
def test_a_gpt2lmheadmodel_loads_into_minigpt_with_the_same_logits(hf_activation, ours):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(1)
    cfg = GPT2Config(vocab_size=64, n_positions=24, n_embd=32, n_layer=2, n_head=2, activation_function=hf_activation,
                     resid_pdrop=0, embd_pdrop=0, attn_pdrop=0, bos_token_id=0, eos_token_id=0)
    hf = GPT2LMHeadModel(cfg).eval()  # a randomly initialised small GPT-2 stands in for the real weights
    model = from_hf(hf)
    idx = torch.randint(0, 64, (3, 24))
    with torch.no_grad():
        torch.testing.assert_close(model(idx)[0], hf(idx).logits, atol=1e-5, rtol=1e-5)
    assert model.config.n_layer == 2 and model.config.block_size == 24 and model.config.activation == ours
