"""GPT-2's model in its plainest form, for reading (lessons 05 and 06).

`minigpt.model` is the model the course trains: it also has a KV cache (lesson 08), a fused attention
kernel and the modern-block options of lesson 14. This file is only what lessons 05 and 06 teach:
learned positions, LayerNorm, causal multi-head attention written out, a GELU MLP, weight tying. Its
parameters have the same names and shapes as `minigpt.model.GPT` with the default options, so
``ReadableGPT(config).load_state_dict(gpt.state_dict())`` gives a model with the same logits
(`tests/test_readable.py` checks it). Dropout is left out: it does nothing at evaluation.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["SelfAttention", "MLP", "Block", "ReadableGPT"]


class SelfAttention(nn.Module):
    """Causal multi-head self-attention: softmax(Q K^T / sqrt(hs) + mask) V for every head at once."""

    def __init__(self, n_embd: int, n_head: int, block_size: int):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)  # W_Q, W_K, W_V of all heads, side by side
        self.c_proj = nn.Linear(n_embd, n_embd)  # mixes the heads' outputs
        self.register_buffer("mask", torch.tril(torch.ones(block_size, block_size)), persistent=False)

    def forward(self, x):
        """(B, T, C) -> the output (B, T, C) and the weights (B, nh, T, T)."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        scores = q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))  # (B, nh, T, T)
        scores = scores.masked_fill(self.mask[:T, :T] == 0, float("-inf"))  # no looking ahead
        weights = F.softmax(scores, dim=-1)  # each row sums to 1
        y = (weights @ v).transpose(1, 2).reshape(B, T, C)  # the heads side by side again
        return self.c_proj(y), weights


class MLP(nn.Module):
    """The same small network at every position: C -> 4C -> GELU -> C."""

    def __init__(self, n_embd: int):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))  # GPT-2's tanh form of GELU


class Block(nn.Module):
    """Pre-LN block: x + attn(LN(x)), then x + MLP(LN(x)). The residual stream is only ever added to."""

    def __init__(self, n_embd: int, n_head: int, block_size: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = SelfAttention(n_embd, n_head, block_size)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd)

    def forward(self, x):
        a, _ = self.attn(self.ln_1(x))
        x = x + a
        return x + self.mlp(self.ln_2(x))


class ReadableGPT(nn.Module):
    """Token and position embeddings, ``n_layer`` blocks, a final LayerNorm, logits through the tied embedding."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        C = config.n_embd
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, C),  # one vector per token
            wpe=nn.Embedding(config.block_size, C),  # one vector per position
            h=nn.ModuleList([Block(C, config.n_head, config.block_size) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(C),
        ))
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # weight tying, as GPT-2

    def forward(self, idx):
        """Logits (B, T, V) for token ids (B, T)."""
        B, T = idx.shape
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(T, device=idx.device))  # (B, T, C)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))  # (B, T, V)
