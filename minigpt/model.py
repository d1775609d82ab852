"""A GPT in one file, with GPT-2's parameter names so weights map one to one to Hugging Face.

    idx (B, T) -> wte + wpe -> n_layer x Block -> ln_f -> lm_head (tied to wte) -> logits (B, T, V)
    Block: x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))          (pre-LayerNorm, as in GPT-2)

Attention has two paths that compute the same thing:
- ``"sdpa"``: ``F.scaled_dot_product_attention`` (fused kernels, flash attention on GPUs);
- ``"math"``: softmax(Q K^T / sqrt(d_k)) V written out, for teaching and for returning the weights.

Generation passes a :class:`KVCache`: each layer keeps the keys and values of the tokens it has
already seen, so a new token costs one position of work instead of the whole context.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

# GPTConfig.activation -> the ``approximate`` argument of ``F.gelu``
ACTIVATIONS = {"gelu_tanh": "tanh", "gelu": "none"}


@dataclass
class GPTConfig:
    """Sizes of a GPT. Defaults are nanoGPT's "baby GPT" for Tiny Shakespeare characters."""

    block_size: int = 256  # longest context, in tokens
    vocab_size: int = 65
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.0
    bias: bool = True  # biases in Linear and LayerNorm layers, as GPT-2 has
    attn_impl: str = "sdpa"  # "sdpa" or "math"
    # The MLP's GELU: "gelu_tanh" is GPT-2's tanh approximation (needed for GPT-2's weights, and what
    # every checkpoint before this field was trained with); "gelu" is the exact erf form, which a model
    # trained from scratch may use: it is cheaper on CPUs (see `python -m minigpt bench train`).
    activation: str = "gelu_tanh"

    def __post_init__(self):
        for field in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"GPTConfig.{field} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head != 0:
            lo = self.n_embd // self.n_head * self.n_head
            hint = f"e.g. n_embd={lo or self.n_head} or n_embd={lo + self.n_head}"
            raise ValueError(
                f"GPTConfig: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}); {hint}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.attn_impl not in ("sdpa", "math"):
            raise ValueError(f"GPTConfig.attn_impl must be 'sdpa' or 'math', got {self.attn_impl!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"GPTConfig.activation must be one of {', '.join(map(repr, ACTIVATIONS))}, "
                             f"got {self.activation!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"GPTConfig: unknown fields {sorted(unknown)}; known fields are {sorted(known)}")
        return cls(**d)


def count_params(config: GPTConfig) -> int:
    """Number of parameters from the formula (tied embeddings counted once).

    Per block: 12 C^2 weights (attention 4 C^2, MLP 8 C^2), plus 13 C for biases and LayerNorms
    (2 C without biases: the two LayerNorm gains).
    """
    C, L, V, T = config.n_embd, config.n_layer, config.vocab_size, config.block_size
    per_block = 12 * C * C + (13 * C if config.bias else 2 * C)
    ln_f = 2 * C if config.bias else C
    return V * C + T * C + L * per_block + ln_f


def flops_per_token(n_params: int, config: GPTConfig) -> float:
    """Training FLOPs per token: 6 N (forward 2 N, backward 4 N) plus attention's 12 L T C
    (the PaLM paper's appendix B estimate, as nanoGPT)."""
    L, H, Q, T = config.n_layer, config.n_head, config.n_embd // config.n_head, config.block_size
    return 6 * n_params + 12 * L * H * Q * T


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (PyTorch's ``nn.LayerNorm`` gained ``bias=`` only in 2.1)."""

    def __init__(self, ndim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class KVCache:
    """The keys and values of the past, for every layer: (n_layer, B, nh, block_size, hs) each.

    ``model(idx, cache=cache)`` reads the cached positions ``0 .. length-1``, writes the new tokens'
    keys and values after them, and advances ``length``. The buffers are allocated once, at the
    first write, in the dtype and on the device of the keys (so autocast and GPUs just work).
    With learned absolute positions every cached key carries its position, so the cache can hold
    at most ``block_size`` tokens; see :func:`minigpt.generate.generate` for what happens beyond.
    """

    def __init__(self, config: GPTConfig, batch_size: int):
        self.config = config
        self.batch_size = batch_size
        self.length = 0  # tokens cached so far
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget every cached token (the buffers are kept and overwritten)."""
        self.length = 0

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Store ``k``, ``v`` (B, nh, T, hs) after the cached tokens; return all keys and values so far."""
        if self.k is None or self.k.dtype != k.dtype or self.k.device != k.device:
            c = self.config
            shape = (c.n_layer, self.batch_size, c.n_head, c.block_size, c.n_embd // c.n_head)
            self.k = torch.zeros(shape, dtype=k.dtype, device=k.device)
            self.v = torch.zeros(shape, dtype=v.dtype, device=v.device)
        s, T = self.length, k.size(2)
        self.k[layer, :, :, s:s + T] = k
        self.v[layer, :, :, s:s + T] = v
        return self.k[layer, :, :, :s + T], self.v[layer, :, :, :s + T]  # (B, nh, s + T, hs) views


class CausalSelfAttention(nn.Module):
    """Multi-head masked self-attention: each position attends only to itself and the past."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.attn_impl = config.attn_impl
        # Q, K and V for all heads in one matrix multiply: (C) -> (3C)
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        mask = torch.tril(torch.ones(config.block_size, config.block_size, dtype=torch.bool))
        self.register_buffer("mask", mask.view(1, 1, config.block_size, config.block_size), persistent=False)

    def forward(self, x, return_weights: bool = False, cache: KVCache | None = None, layer: int = 0):
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.update(layer, k, v)  # (B, nh, past + T, hs): the cached past, then these T
        S = k.size(2)  # positions attended to
        att = None
        if self.attn_impl == "sdpa" and not return_weights:
            if past == 0 or T == 1:
                # no past: the usual causal mask; one new token: it may see every cached position
                mask, causal = None, past == 0
            else:  # several new tokens after a cached past: query i sees keys 0 .. past + i
                mask, causal = self.mask[0, 0, past:S, :S], False
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0, is_causal=causal
            )
        else:
            # Dividing by sqrt(hs) keeps the scores' variance near 1, so softmax does not saturate.
            att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)  # (B, nh, T, S)
            att = att.masked_fill(~self.mask[:, :, past:S, :S], float("-inf"))
            att = F.softmax(att, dim=-1)
            y = self.attn_dropout(att) @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble the heads side by side
        y = self.resid_dropout(self.c_proj(y))
        return (y, att) if return_weights else y


class MLP(nn.Module):
    """Position-wise feed-forward: C -> 4C -> GELU -> C (GELU's tanh approximation, as GPT-2, or exact)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.approximate = ACTIVATIONS[config.activation]
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate=self.approximate)))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: the residual stream is only ever added to."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, return_weights: bool = False, cache: KVCache | None = None, layer: int = 0):
        if return_weights:
            a, att = self.attn(self.ln_1(x), return_weights=True, cache=cache, layer=layer)
            x = x + a
            return x + self.mlp(self.ln_2(x)), att
        x = x + self.attn(self.ln_1(x), cache=cache, layer=layer)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """A GPT-2-style language model: ``forward(idx, targets)`` gives ``(logits, loss)``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embeddings
                wpe=nn.Embedding(config.block_size, config.n_embd),  # learned positions
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying (Press & Wolf 2017): the output layer reuses the token embeddings, as GPT-2.
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        # GPT-2: residual projections are scaled by 1/sqrt(2 n_layer), because each block adds two
        # of them to the residual stream and its variance would otherwise grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameter count (tied weights once); ``non_embedding`` leaves out the position embeddings."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wpe.weight.numel()
        return n

    def _check_length(self, T: int):
        if T > self.config.block_size:
            raise ValueError(
                f"sequence of length {T} is longer than block_size {self.config.block_size}; "
                "crop the input to the last block_size tokens"
            )

    def forward(self, idx, targets=None, cache: KVCache | None = None):
        """Logits (B, T, V) for token ids (B, T); with ``targets`` (B, T) also the mean cross-entropy.

        Targets equal to -1 are ignored in the loss. With a :class:`KVCache`, ``idx`` holds only the
        new tokens: they sit at positions ``cache.length ..`` and attend to the cached past too.
        """
        B, T = idx.shape
        past = 0 if cache is None else cache.length
        if cache is not None and past + T > self.config.block_size:
            raise ValueError(f"the KV cache holds {past} tokens; {T} more would pass block_size "
                             f"{self.config.block_size}: reset the cache and start again from the last tokens")
        self._check_length(T)
        pos = torch.arange(past, past + T, device=idx.device)  # (T,)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache=cache, layer=i)
        if cache is not None:
            cache.length += T
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    @torch.no_grad()
    def attention_weights(self, idx) -> list[torch.Tensor]:
        """The attention weights of every layer for ``idx`` (B, T): a list of n_layer (B, nh, T, T)."""
        B, T = idx.shape
        self._check_length(T)
        pos = torch.arange(T, device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        weights = []
        for block in self.transformer.h:
            x, att = block(x, return_weights=True)
            weights.append(att)
        return weights

    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None, **kwargs):
        """Append ``max_new_tokens`` sampled tokens to ``idx`` (B, T); returns (B, T + max_new_tokens).

        ``temperature`` 0 means greedy; ``top_k`` keeps only the k most likely tokens. Every other
        option of :func:`minigpt.generate.generate` (``top_p``, ``use_cache``, ...) passes through.
        """
        from .generate import generate

        return generate(self, idx, max_new_tokens, temperature=temperature, top_k=top_k,
                        generator=generator, **kwargs)
