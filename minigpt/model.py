"""A GPT in one file, with GPT-2's parameter names so weights map one to one to Hugging Face.

    idx (B, T) -> wte + wpe -> n_layer x Block -> ln_f -> lm_head (tied to wte) -> logits (B, T, V)
    Block: x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))          (pre-LayerNorm, as in GPT-2)

Every default is GPT-2's block. Options of :class:`GPTConfig` give the block of today's open models
(Llama, Qwen, Mistral), one change at a time, so each can be measured alone:

- ``positions="rope"``: rotary position embeddings on queries and keys instead of ``wpe`` (Su et al. 2021);
- ``norm="rmsnorm"``: RMSNorm, LayerNorm without the mean and the bias (Zhang & Sennrich 2019);
- ``activation="swiglu"`` (gated, Shazeer 2020) or ``"relu2"`` (squared ReLU, So et al. 2021);
- ``n_kv_head``: fewer key/value heads than query heads, grouped-query attention (Ainslie et al. 2023;
  ``n_kv_head=1`` is multi-query attention, Shazeer 2019): the KV cache shrinks by ``n_head / n_kv_head``;
- ``qk_norm=True``: RMSNorm on each head's queries and keys before the scores (as Qwen3, OLMo 2);
- ``bias=False``: no biases; ``tie_embeddings=False``: an output head of its own.

Llama's block is :data:`LLAMA_BLOCK`, ``positions="rope", norm="rmsnorm", activation="swiglu",
bias=False, tie_embeddings=False`` (and usually ``n_kv_head < n_head``); add ``qk_norm=True`` for
Qwen3's. :mod:`minigpt.llama` converts such a model to and from ``transformers``.

Attention has two paths that compute the same thing:
- ``"sdpa"``: ``F.scaled_dot_product_attention`` (fused kernels, flash attention on GPUs);
- ``"math"``: softmax(Q K^T / sqrt(d_k)) V written out, for teaching and for returning the weights
  (:meth:`GPT.attention_weights`, whichever path the model uses otherwise).

Generation passes a :class:`KVCache` (``model.new_kv_cache(batch_size)``): each layer keeps the keys
and values of the tokens it has already seen, so a new token costs one position of work instead of
the whole context.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .generate import generate

# GPTConfig.activation -> the ``approximate`` argument of ``F.gelu`` (the two GELUs)
ACTIVATIONS = {"gelu_tanh": "tanh", "gelu": "none"}
MLP_ACTIVATIONS = (*ACTIVATIONS, "relu2", "swiglu")
POSITIONS = ("learned", "rope")
NORMS = ("layernorm", "rmsnorm")
# The options that make GPT-2's block Llama's: GPTConfig(**sizes, **LLAMA_BLOCK, n_kv_head=...);
# add qk_norm=True for Qwen3's. minigpt.llama converts such a model to and from transformers.
LLAMA_BLOCK = dict(positions="rope", norm="rmsnorm", activation="swiglu", bias=False, tie_embeddings=False)


@dataclass
class GPTConfig:
    """Sizes of a GPT. Defaults are nanoGPT's "baby GPT" for Tiny Shakespeare characters, GPT-2's block."""

    block_size: int = 256  # longest context, in tokens
    vocab_size: int = 65
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.0
    bias: bool = True  # biases in Linear and LayerNorm layers, as GPT-2 has
    attn_impl: str = "sdpa"  # "sdpa" or "math"
    # The MLP's non-linearity: "gelu_tanh" is GPT-2's tanh approximation (needed for GPT-2's weights, and
    # what every checkpoint before this field was trained with); "gelu" is the exact erf form, which a
    # model trained from scratch may use: it is cheaper on CPUs (see `python -m minigpt bench train`);
    # "relu2" is relu(x)^2; "swiglu" is Llama's gated MLP, silu(x W_gate) * (x W_up).
    activation: str = "gelu_tanh"
    # Width of the MLP's hidden layer. None: 4 x n_embd, or for "swiglu" 8/3 x n_embd rounded up to a
    # multiple of 8, so its three matrices hold as many weights as GPT-2's two (exactly when n_embd is
    # divisible by 3: 384 -> 1024, 768 -> 2048).
    mlp_hidden: int | None = None
    positions: str = "learned"  # "learned" (GPT-2's wpe table) or "rope" (rotary, on queries and keys)
    rope_theta: float = 10000.0  # RoPE's base: the slowest pair turns once in about 2 pi theta tokens
    norm: str = "layernorm"  # "layernorm" or "rmsnorm"
    norm_eps: float = 1e-5  # added to the variance in every norm, QK-norm included
    n_kv_head: int | None = None  # key/value heads; None: n_head (multi-head), 1: multi-query
    qk_norm: bool = False  # RMSNorm (with a gain per dimension) on each head's queries and keys
    tie_embeddings: bool = True  # the output head is the token embedding (Press & Wolf 2017), as GPT-2

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
        for field, allowed in (("activation", MLP_ACTIVATIONS), ("positions", POSITIONS), ("norm", NORMS)):
            if getattr(self, field) not in allowed:
                raise ValueError(f"GPTConfig.{field} must be one of {', '.join(map(repr, allowed))}, "
                                 f"got {getattr(self, field)!r}")
        for field in ("mlp_hidden", "n_kv_head"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ValueError(f"GPTConfig.{field} must be a positive integer or None, got {value!r}")
        if self.n_head % self.kv_heads != 0:
            raise ValueError(f"GPTConfig: n_head ({self.n_head}) must be a multiple of n_kv_head ({self.n_kv_head}): "
                             "each key/value head serves the same number of query heads")
        for field in ("rope_theta", "norm_eps"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"GPTConfig.{field} must be a positive number, got {value!r}")
        if self.positions == "rope" and self.head_size % 2:
            raise ValueError(f"GPTConfig: RoPE rotates pairs of dimensions, so the head size n_embd / n_head "
                             f"must be even, got {self.head_size}")

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    @property
    def kv_heads(self) -> int:
        """Key/value heads: ``n_kv_head``, or ``n_head`` when it is None."""
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    @property
    def hidden_size(self) -> int:
        """Width of the MLP's hidden layer (see ``mlp_hidden``)."""
        if self.mlp_hidden is not None:
            return self.mlp_hidden
        if self.activation == "swiglu":
            return 8 * math.ceil(8 * self.n_embd / 3 / 8)
        return 4 * self.n_embd

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        """The config saved by :meth:`to_dict`; fields it lacks (older checkpoints) take their defaults."""
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"GPTConfig: unknown fields {sorted(unknown)}; known fields are {sorted(known)}")
        return cls(**d)


# Fields that change the computation but not the weights: a checkpoint loads into any of their values.
RUNTIME_FIELDS = ("dropout", "attn_impl")


def count_params(config: GPTConfig) -> int:
    """Number of parameters from the formula (tied embeddings counted once), for every option.

    GPT-2's block: 12 C^2 weights (attention 4 C^2, MLP 8 C^2), plus 13 C for biases and LayerNorms
    (2 C without biases: the two LayerNorm gains). With options, per block: attention
    C (C + 2 kv hs) + C^2 (grouped queries: kv key/value heads of size hs), MLP 2 C H (3 C H gated),
    2 hs for QK-norm's gains; RMSNorm has a gain and no bias.
    """
    C, L, V, T = config.n_embd, config.n_layer, config.vocab_size, config.block_size
    H, kv_width = config.hidden_size, config.kv_heads * config.head_size
    gated = config.activation == "swiglu"
    norm = C if config.norm == "rmsnorm" or not config.bias else 2 * C
    attn = C * (C + 2 * kv_width) + C * C + ((C + 2 * kv_width) + C if config.bias else 0)
    mlp = (3 if gated else 2) * C * H + ((2 if gated else 1) * H + C if config.bias else 0)
    qk_norm = 2 * config.head_size if config.qk_norm else 0
    per_block = attn + mlp + qk_norm + 2 * norm
    embeddings = V * C * (1 if config.tie_embeddings else 2) + (T * C if config.positions == "learned" else 0)
    return embeddings + L * per_block + norm


def flops_per_token(n_params: int, config: GPTConfig) -> float:
    """Training FLOPs per token: 6 N (forward 2 N, backward 4 N) plus attention's 12 L T C
    (the PaLM paper's appendix B estimate, as nanoGPT)."""
    L, H, Q, T = config.n_layer, config.n_head, config.n_embd // config.n_head, config.block_size
    return 6 * n_params + 12 * L * H * Q * T


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (PyTorch's ``nn.LayerNorm`` gained ``bias=`` only in 2.1)."""

    def __init__(self, ndim: int, bias: bool, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None
        self.eps = eps

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * g: LayerNorm without subtracting the mean and without a bias.

    Computed in float32 and cast back before the gain, exactly as Llama's ``LlamaRMSNorm``.
    """

    def __init__(self, ndim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.eps = eps

    def forward(self, x):
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def make_norm(config: GPTConfig, ndim: int) -> nn.Module:
    """The norm the config asks for, over the last ``ndim`` features."""
    if config.norm == "rmsnorm":
        return RMSNorm(ndim, config.norm_eps)
    return LayerNorm(ndim, bias=config.bias, eps=config.norm_eps)


def rope_tables(length: int, head_size: int, theta: float, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (length, hs) of RoPE's angles for positions ``offset ..``: position p turns the pair
    (i, i + hs/2) by p * theta^(-2i/hs). Float32, computed as ``transformers``' Llama does."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_size, 2, dtype=torch.int64).float() / head_size))  # (hs/2,)
    pos = torch.arange(offset, offset + length, dtype=torch.int64).float()
    angles = torch.outer(pos, inv_freq)  # (length, hs/2)
    angles = torch.cat((angles, angles), dim=-1)  # (length, hs): each angle serves both halves of its pair
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, nh, T, hs) by the angles of its positions: dimension i pairs with i + hs/2 (the
    half-split layout of GPT-NeoX and ``transformers``' Llama, so their weights load unpermuted)."""
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat((-x2, x1), dim=-1)  # (x1, x2) -> (-x2, x1): a quarter turn of every pair
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


def attention_probs(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None, scaled: bool = True) -> torch.Tensor:
    """softmax(q k^T / sqrt(hs)) for q (B, nh, T, hs) and k (B, nh, S, hs): (B, nh, T, S).

    ``mask`` (T, S) is True where a query may look (None: everywhere); ``scaled=False`` skips the
    division, which only the attention explorer of lesson 06 asks for.
    """
    # Dividing by sqrt(hs) keeps the scores' variance near 1, so softmax does not saturate.
    att = q @ k.transpose(-2, -1)  # (B, nh, T, S)
    if scaled:
        att = att / math.sqrt(q.size(-1))
    if mask is not None:
        att = att.masked_fill(~mask, float("-inf"))
    return F.softmax(att, dim=-1)


class KVCache:
    """The keys and values of the past, for every layer: (n_layer, B, n_kv_head, block_size, hs) each.

    ``model(idx, cache=cache)`` reads the cached positions ``0 .. length-1``, writes the new tokens'
    keys and values after them, and advances ``length``. The buffers are allocated once, at the
    first write, in the dtype and on the device of the keys (so autocast and GPUs just work).
    Only the key/value heads are stored, so grouped-query attention needs ``n_head / n_kv_head``
    times less memory per token. Keys are stored after RoPE. The cache holds at most ``block_size``
    tokens; see :func:`minigpt.generate.generate` for what happens beyond.
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
        """Store ``k``, ``v`` (B, n_kv, T, hs) after the cached tokens; return all keys and values so far."""
        if self.k is None or self.k.dtype != k.dtype or self.k.device != k.device:
            c = self.config
            shape = (c.n_layer, self.batch_size, c.kv_heads, c.block_size, c.head_size)
            self.k = torch.zeros(shape, dtype=k.dtype, device=k.device)
            self.v = torch.zeros(shape, dtype=v.dtype, device=v.device)
        s, T = self.length, k.size(2)
        self.k[layer, :, :, s:s + T] = k
        self.v[layer, :, :, s:s + T] = v
        return self.k[layer, :, :, :s + T], self.v[layer, :, :, :s + T]  # (B, n_kv, s + T, hs) views

    def bytes_per_token(self) -> int:
        """Bytes the buffers hold per cached token of one sequence (0 before the first write)."""
        if self.k is None:
            return 0
        return (self.k.nbytes + self.v.nbytes) // (self.batch_size * self.config.block_size)


class CausalSelfAttention(nn.Module):
    """Multi-head masked self-attention: each position attends only to itself and the past.

    With ``n_kv_head < n_head`` each key/value head is shared by a group of ``n_head / n_kv_head``
    consecutive query heads (grouped-query attention).
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.n_kv_head = config.kv_heads
        self.n_embd = config.n_embd
        self.head_size = config.head_size
        self.dropout = config.dropout
        self.attn_impl = config.attn_impl
        self.rope_theta = config.rope_theta if config.positions == "rope" else None
        kv_width = self.n_kv_head * self.head_size
        # Q, K and V for all heads in one matrix multiply: (C) -> (C + 2 kv_width), 3C without GQA
        self.c_attn = nn.Linear(config.n_embd, config.n_embd + 2 * kv_width, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        if config.qk_norm:  # one gain per dimension of a head, shared by every head (as Qwen3)
            self.q_norm = RMSNorm(self.head_size, config.norm_eps)
            self.k_norm = RMSNorm(self.head_size, config.norm_eps)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        mask = torch.tril(torch.ones(config.block_size, config.block_size, dtype=torch.bool))
        self.register_buffer("mask", mask.view(1, 1, config.block_size, config.block_size), persistent=False)

    def qkv(self, x, rope=None, past: int = 0):
        """Queries (B, nh, T, hs), keys and values (B, n_kv, T, hs) of x (B, T, C), QK-norm and RoPE applied.

        ``rope``: cos and sin (T, hs) of these positions; a RoPE model called without them (a block
        on its own) computes them for positions ``past ..``.
        """
        B, T, _ = x.shape
        hs, kv_width = self.head_size, self.n_kv_head * self.head_size
        q, k, v = self.c_attn(x).split([self.n_embd, kv_width, kv_width], dim=2)
        q = q.view(B, T, self.n_head, hs)  # (B, T, nh, hs)
        k = k.view(B, T, self.n_kv_head, hs)  # (B, T, n_kv, hs)
        if hasattr(self, "q_norm"):  # each head's vectors get unit RMS, so q.k cannot grow without bound
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)  # (B, nh, T, hs), (B, n_kv, T, hs)
        v = v.view(B, T, self.n_kv_head, hs).transpose(1, 2)  # (B, n_kv, T, hs)
        if self.rope_theta is not None:
            if rope is None:
                rope = tuple(t.to(x.device) for t in rope_tables(T, hs, self.rope_theta, past))
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        return q, k, v

    def expand_kv(self, t: torch.Tensor) -> torch.Tensor:
        """(B, n_kv, S, hs) -> (B, nh, S, hs): query head h reads key/value head h // (nh / n_kv)."""
        if self.n_kv_head == self.n_head:
            return t
        return t.repeat_interleave(self.n_head // self.n_kv_head, dim=1)

    def forward(self, x, rope=None, cache: KVCache | None = None, layer: int = 0, return_weights: bool = False):
        B, T, C = x.shape
        past = 0 if cache is None else cache.length
        q, k, v = self.qkv(x, rope, past)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, n_kv, past + T, hs): the cached past, then these T
        k, v = self.expand_kv(k), self.expand_kv(v)  # (B, nh, S, hs)
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
            att = attention_probs(q, k, self.mask[0, 0, past:S, :S])  # (B, nh, T, S)
            y = self.attn_dropout(att) @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble the heads side by side
        y = self.resid_dropout(self.c_proj(y))
        return (y, att) if return_weights else y


class MLP(nn.Module):
    """Position-wise feed-forward: C -> H -> non-linearity -> C (GPT-2: H = 4C and GELU's tanh form).

    SwiGLU computes its gate and its value in one multiply (``c_fc``: C -> 2H, the gate's half
    first) and passes on silu(gate) * value.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.activation = config.activation
        hidden = config.hidden_size
        self.c_fc = nn.Linear(config.n_embd, (2 if self.activation == "swiglu" else 1) * hidden, bias=config.bias)
        self.c_proj = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        h = self.c_fc(x)  # (B, T, H), or (B, T, 2H) for SwiGLU
        if self.activation == "swiglu":
            gate, value = h.chunk(2, dim=-1)
            h = F.silu(gate) * value  # the gate decides, per unit and per token, how much passes
        elif self.activation == "relu2":
            h = F.relu(h).square()
        else:
            h = F.gelu(h, approximate=ACTIVATIONS[self.activation])
        return self.dropout(self.c_proj(h))


class Block(nn.Module):
    """Pre-norm transformer block: the residual stream is only ever added to."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = make_norm(config, config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = make_norm(config, config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x, rope=None, cache: KVCache | None = None, layer: int = 0, return_weights: bool = False):
        if return_weights:  # the explicit path, which also gives the weights (B, nh, T, S)
            a, att = self.attn(self.ln_1(x), rope=rope, cache=cache, layer=layer, return_weights=True)
            x = x + a
            return x + self.mlp(self.ln_2(x)), att
        x = x + self.attn(self.ln_1(x), rope=rope, cache=cache, layer=layer)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """A GPT-2-style language model: ``forward(idx, targets)`` gives ``(logits, loss)``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        modules = dict(wte=nn.Embedding(config.vocab_size, config.n_embd))  # token embeddings
        if config.positions == "learned":
            modules["wpe"] = nn.Embedding(config.block_size, config.n_embd)  # learned positions
        modules.update(
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=make_norm(config, config.n_embd),
        )
        self.transformer = nn.ModuleDict(modules)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            # Weight tying (Press & Wolf 2017): the output layer reuses the token embeddings, as GPT-2.
            self.transformer.wte.weight = self.lm_head.weight
        if config.positions == "rope":  # one table of angles for every layer; not saved, it is a formula
            cos, sin = rope_tables(config.block_size, config.head_size, config.rope_theta)
            self.register_buffer("rope_cos", cos, persistent=False)  # (block_size, hs)
            self.register_buffer("rope_sin", sin, persistent=False)
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
        if non_embedding and "wpe" in self.transformer:
            n -= self.transformer.wpe.weight.numel()
        return n

    def new_kv_cache(self, batch_size: int) -> KVCache:
        """An empty :class:`KVCache` for ``batch_size`` sequences, shaped for this model's key/value heads."""
        return KVCache(self.config, batch_size)

    def _check_length(self, T: int):
        if T > self.config.block_size:
            raise ValueError(
                f"sequence of length {T} is longer than block_size {self.config.block_size}; "
                "crop the input to the last block_size tokens"
            )

    def embed(self, idx, past: int = 0):
        """The residual stream before the first block, (B, T, C): token embeddings, plus learned
        position embeddings for positions ``past ..`` (RoPE models add positions inside attention)."""
        x = self.transformer.wte(idx)  # (B, T, C)
        if "wpe" in self.transformer:
            x = x + self.transformer.wpe(torch.arange(past, past + idx.size(1), device=idx.device))
        return x

    def rope(self, T: int, past: int = 0):
        """RoPE's cos and sin (T, hs) for positions ``past .. past + T - 1``; None without RoPE."""
        if self.config.positions != "rope":
            return None
        return self.rope_cos[past:past + T], self.rope_sin[past:past + T]

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
        x = self.transformer.drop(self.embed(idx, past))  # (B, T, C)
        rope = self.rope(T, past)
        for i, block in enumerate(self.transformer.h):
            x = block(x, rope=rope, cache=cache, layer=i)
        if cache is not None:
            cache.length += T
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    @torch.no_grad()
    def attention_weights(self, idx, causal: bool = True, scaled: bool = True) -> list[torch.Tensor]:
        """The attention weights of every layer for ``idx`` (B, T): a list of n_layer (B, nh, T, T).

        The blocks run their explicit path (``attn_impl="math"``), which computes the weights it
        uses; queries and keys come after QK-norm and RoPE, key heads repeated for grouped queries.
        ``causal=False`` or ``scaled=False`` show what the weights would be without the mask or
        without the 1/sqrt(hs) scaling (lesson 06's explorer), while the residual stream still flows
        through the real, masked and scaled, blocks.
        """
        B, T = idx.shape
        self._check_length(T)
        x = self.embed(idx)
        rope = self.rope(T)
        weights = []
        for block in self.transformer.h:
            x_in = x
            x, att = block(x, rope=rope, return_weights=True)
            if not (causal and scaled):  # the same queries and keys, without the mask or the scaling
                q, k, _ = block.attn.qkv(block.ln_1(x_in), rope)
                mask = block.attn.mask[0, 0, :T, :T] if causal else None
                att = attention_probs(q, block.attn.expand_kv(k), mask, scaled)
            weights.append(att)
        return weights

    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None, **kwargs):
        """Append ``max_new_tokens`` sampled tokens to ``idx`` (B, T); returns (B, T + max_new_tokens).

        ``temperature`` 0 means greedy; ``top_k`` keeps only the k most likely tokens. Every other
        option of :func:`minigpt.generate.generate` (``top_p``, ``use_cache``, ...) passes through.
        """
        return generate(self, idx, max_new_tokens, temperature=temperature, top_k=top_k,
                        generator=generator, **kwargs)
