"""minigpt.lora: LoRA from scratch agrees with peft's layer and the formula; merging keeps the logits."""

import copy

import pytest
import torch
import torch.nn as nn

from minigpt.lora import LoRALinear, add_lora, merge_lora, trainable_share
from minigpt.model import GPT, GPTConfig

CFG = GPTConfig(block_size=16, vocab_size=11, n_layer=2, n_head=2, n_embd=16)


def _layer(r=4, alpha=8.0, seed=0):
    torch.manual_seed(seed)
    lin = LoRALinear(nn.Linear(12, 10), r=r, alpha=alpha)
    with torch.no_grad():
        lin.lora_B.normal_()  # B starts at zero; give it values so the update shows
    return lin


def test_lora_layer_follows_the_formula():
    lin = _layer()
    x = torch.randn(3, 5, 12)
    W, b, A, B = lin.base.weight, lin.base.bias, lin.lora_A, lin.lora_B
    want = x @ W.T + b + (8.0 / 4) * (x @ A.T @ B.T)
    torch.testing.assert_close(lin(x), want)


def test_lora_layer_matches_peft_on_the_same_linear():
    peft = pytest.importorskip("peft")  # a dev dependency (pyproject.toml); skipped only if it is missing

    class Wrapper(nn.Module):
        def __init__(self, lin):
            super().__init__()
            self.lin = lin

        def forward(self, x):
            return self.lin(x)

    for r, alpha in [(4, 8.0), (2, 1.0), (8, 32.0)]:
        ours = _layer(r, alpha, seed=r)
        theirs = peft.get_peft_model(Wrapper(copy.deepcopy(ours.base)), peft.LoraConfig(
            r=r, lora_alpha=alpha, target_modules=["lin"], lora_dropout=0.0, bias="none"))
        layer = theirs.base_model.model.lin
        assert layer.scaling["default"] == pytest.approx(ours.scaling)
        with torch.no_grad():
            layer.lora_A["default"].weight.copy_(ours.lora_A)
            layer.lora_B["default"].weight.copy_(ours.lora_B)
        x = torch.randn(4, 12)
        torch.testing.assert_close(ours(x), theirs(x))


def test_a_fresh_adapter_changes_nothing_and_b_starts_at_zero():
    torch.manual_seed(0)
    model = GPT(CFG)
    idx = torch.randint(0, CFG.vocab_size, (2, 8))
    before, _ = model(idx)
    add_lora(model, r=2)
    after, _ = model(idx)
    torch.testing.assert_close(before, after)
    assert all(m.lora_B.abs().sum() == 0 for m in model.modules() if isinstance(m, LoRALinear))


def test_add_lora_freezes_the_base_and_counts_the_adapters():
    torch.manual_seed(0)
    model = add_lora(GPT(CFG), r=2)
    C = CFG.n_embd
    # per block: c_attn (C->3C), attn c_proj (C->C), c_fc (C->4C), mlp c_proj (4C->C); each adds r (in + out)
    per_block = 2 * ((C + 3 * C) + (C + C) + (C + 4 * C) + (4 * C + C))
    share = trainable_share(model)
    assert share["trainable"] == CFG.n_layer * per_block
    assert share["total"] == GPT(CFG).num_params() + share["trainable"]
    assert share["share"] == pytest.approx(share["trainable"] / share["total"])
    assert all(("lora_" in n) == p.requires_grad for n, p in model.named_parameters())


def test_only_the_named_targets_get_adapters():
    model = add_lora(GPT(CFG), targets=("c_attn",), r=2)
    wrapped = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    assert wrapped == [f"transformer.h.{i}.attn.c_attn" for i in range(CFG.n_layer)]
    with pytest.raises(ValueError, match="no nn.Linear named"):
        add_lora(GPT(CFG), targets=("q_proj",))


def test_merging_gives_the_same_logits_and_plain_linear_layers():
    torch.manual_seed(0)
    base = GPT(CFG)
    model = add_lora(copy.deepcopy(base), r=4, alpha=8.0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.normal_(std=0.1)
    idx = torch.randint(0, CFG.vocab_size, (2, 8))
    adapted, _ = model(idx)
    merge_lora(model)
    merged, _ = model(idx)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    torch.testing.assert_close(adapted, merged, rtol=1e-4, atol=1e-5)
    assert (adapted - base(idx)[0]).abs().max() > 1e-3  # the adapter did change the model


def test_bad_rank_is_refused():
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(nn.Linear(4, 4), r=0)
    with pytest.raises(ValueError, match="nn.Linear"):
        LoRALinear(nn.Conv1d(4, 4, 1))
