"""The settings of a training run (:class:`TrainConfig`) and the course's recipes (``PRESETS``).

Kept free of torch so the command line can list the presets and defaults in ``--help`` without
the ~4 s it takes to import torch; :mod:`minigpt.train` imports everything here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the annotation only: model.py imports torch
    from .model import GPTConfig

# The n-gram smoothings of :mod:`minigpt.ngram` (here so `ngram --help` lists them without torch).
SMOOTHINGS = ("none", "add-k", "interpolation", "kneser-ney")
# The block's options, as minigpt.model names them (repeated here, torch-free, for --help and early errors;
# tests/test_modern_block.py checks they agree with the model's).
ACTIVATIONS = ("gelu_tanh", "gelu", "relu2", "swiglu")
POSITIONS = ("learned", "rope")
NORMS = ("layernorm", "rmsnorm")
# TrainConfig fields passed to GPTConfig as they are (besides the sizes, dropout, bias and activation)
BLOCK_OPTIONS = ("positions", "rope_theta", "norm", "norm_eps", "mlp_hidden", "n_kv_head", "qk_norm",
                 "tie_embeddings")


@dataclass
class TrainConfig:
    """Everything that defines a training run. The model's sizes are fields here too."""

    # model
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64  # context length (tokens)
    dropout: float = 0.0
    bias: bool = True
    activation: str = "gelu_tanh"  # "gelu_tanh" (GPT-2's GELU), "gelu" (exact; cheaper on CPU), "relu2", "swiglu"
    # today's block, one option at a time (minigpt.model.GPTConfig; each default is GPT-2's)
    positions: str = "learned"  # "learned" (GPT-2's table) or "rope" (rotary, on queries and keys)
    rope_theta: float = 10000.0  # RoPE's base
    norm: str = "layernorm"  # "layernorm" or "rmsnorm"
    norm_eps: float = 1e-5
    mlp_hidden: int | None = None  # the MLP's hidden width; None: 4 n_embd (8/3 n_embd for swiglu: equal parameters)
    n_kv_head: int | None = None  # key/value heads (grouped-query attention); None: n_head
    qk_norm: bool = False  # RMSNorm on each head's queries and keys
    tie_embeddings: bool = True  # the output head is the token embedding (GPT-2); False: a head of its own
    # data and batch
    dataset: str = "tinyshakespeare"
    tokenizer: str = "char"  # "char" (one token per character) or "bpe" (byte-level BPE trained on the train split)
    vocab_size: int | None = None  # for "bpe": 256 bytes + merges; "char" takes the text's characters
    batch_size: int = 12  # sequences per micro-batch, per process
    grad_accum_steps: int = 1  # micro-batches per optimizer step
    # optimizer and schedule
    optimizer: str = "adamw"  # "adamw"; "muon": Muon for the blocks' weight matrices, AdamW for the rest
    max_iters: int = 2000
    learning_rate: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: int | None = None  # cosine reaches min_lr here; None: max_iters
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0 turns clipping off
    # evaluation, samples, checkpoints
    eval_interval: int = 250
    eval_tokens: int | None = None  # val tokens per evaluation (fixed windows); None: all of val
    sample_tokens: int = 200  # characters sampled at each evaluation; 0: none
    out_dir: str | None = None  # checkpoints go here; None: no checkpoints
    seed: int = 1337
    # speed
    compile: bool | None = None  # torch.compile; None: on for CUDA, off for CPU and MPS
    dtype: str = "auto"  # "auto": bf16 (else fp16) on CUDA, fp32 on MPS, on a CPU bf16 where a probe finds it faster

    def __post_init__(self):
        for name in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "grad_accum_steps",
                     "eval_interval"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {v!r}")
        if not isinstance(self.max_iters, int) or self.max_iters < 0:
            raise ValueError(f"TrainConfig.max_iters must be an integer >= 0, got {self.max_iters!r}")
        if self.warmup_iters < 0:
            raise ValueError(f"TrainConfig.warmup_iters must be >= 0, got {self.warmup_iters}")
        for name in ("learning_rate", "min_lr"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"TrainConfig.{name} must be a finite number >= 0, got {v!r}")
        if self.min_lr > self.learning_rate:
            raise ValueError(f"TrainConfig.min_lr ({self.min_lr}) is above learning_rate ({self.learning_rate})")
        if self.eval_tokens is not None and self.eval_tokens <= 0:
            raise ValueError(f"TrainConfig.eval_tokens must be positive (at least one window is used), "
                             f"or None for the whole validation split; got {self.eval_tokens}")
        if self.optimizer not in ("adamw", "muon"):
            raise ValueError(f"TrainConfig.optimizer must be 'adamw' or 'muon', got {self.optimizer!r}")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"TrainConfig.dtype must be auto, float32, bfloat16 or float16, got {self.dtype!r}")
        if self.tokenizer not in ("char", "bpe"):
            raise ValueError(f"TrainConfig.tokenizer must be 'char' or 'bpe', got {self.tokenizer!r}")
        if self.tokenizer == "bpe" and (not isinstance(self.vocab_size, int) or self.vocab_size < 256):
            raise ValueError(f"TrainConfig.vocab_size must be an integer >= 256 for a byte-level BPE (256 bytes + "
                             f"merges), got {self.vocab_size!r}")
        # the model's size checks, here without importing torch (GPTConfig checks the rest when the model is built)
        if self.n_embd % self.n_head != 0:
            lo = self.n_embd // self.n_head * self.n_head
            raise ValueError(f"TrainConfig: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}); "
                             f"e.g. n_embd={lo or self.n_head} or n_embd={lo + self.n_head}")
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise ValueError(f"TrainConfig.dropout must be in [0, 1), got {self.dropout!r}")
        for name, allowed in (("activation", ACTIVATIONS), ("positions", POSITIONS), ("norm", NORMS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"TrainConfig.{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("mlp_hidden", "n_kv_head"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
                raise ValueError(f"TrainConfig.{name} must be a positive integer or None, got {v!r}")
        if self.n_kv_head is not None and self.n_head % self.n_kv_head:
            raise ValueError(f"TrainConfig: n_head ({self.n_head}) must be a multiple of n_kv_head ({self.n_kv_head})")
        for name in ("rope_theta", "norm_eps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
                raise ValueError(f"TrainConfig.{name} must be a positive number, got {v!r}")

    def model_config(self, vocab_size: int) -> GPTConfig:
        """The :class:`GPTConfig` for a vocabulary of ``vocab_size`` tokens."""
        from .model import GPTConfig  # deferred: model.py imports torch; --help reads PRESETS

        return GPTConfig(block_size=self.block_size, vocab_size=vocab_size, n_layer=self.n_layer,
                         n_head=self.n_head, n_embd=self.n_embd, dropout=self.dropout, bias=self.bias,
                         activation=self.activation, **{name: getattr(self, name) for name in BLOCK_OPTIONS})

    @property
    def decay_iters(self) -> int:
        return self.max_iters if self.lr_decay_iters is None else self.lr_decay_iters

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"TrainConfig: unknown fields {sorted(unknown)}")
        return cls(**d)


PRESETS: dict[str, TrainConfig] = {
    # This CPU recipe: reaches val loss <= 1.75 in under 10 minutes on 2 CPU cores.
    # nanoGPT's CPU recipe (4 layers, 4 heads, 128 wide, context 64) with a 32-sequence batch,
    # a higher learning rate and 3500 steps: 7.2M training tokens instead of 1.5M. On the course's
    # 2-core CPU: val loss 1.559 in 344 s (22k tokens/s); nanoGPT's recipe gets 1.88.
    "shakespeare-char-cpu": TrainConfig(
        n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0, batch_size=32,
        max_iters=3500, learning_rate=2e-3, min_lr=2e-4, warmup_iters=100, lr_decay_iters=None,
        weight_decay=0.1, beta2=0.99, eval_interval=500, eval_tokens=None,
        out_dir="runs/shakespeare-char-cpu",
    ),
    # The 10-minute CPU recipe: val loss 1.484 in 9.1 min of training on the course's 2-core CPU
    # (15.6k tokens/s). The same model with context 128 (64 characters of context on average instead
    # of 32), trained with Muon on the blocks' matrices (AdamW for the rest). With AdamW these sizes
    # reach 1.508 in 5,600 steps and 10.3 min; a Muon step costs ~20% more (Newton-Schulz iterations
    # on every matrix), but 4,000 of them are enough.
    "shakespeare-char-cpu-10min": TrainConfig(
        n_layer=4, n_head=4, n_embd=128, block_size=128, dropout=0.0, batch_size=16, activation="gelu",
        optimizer="muon", max_iters=4000, learning_rate=3e-3, min_lr=1e-4, warmup_iters=100,
        lr_decay_iters=None, weight_decay=0.1, beta2=0.99, eval_interval=500, eval_tokens=None,
        out_dir="runs/shakespeare-char-cpu-10min",
    ),
    # Lesson 14's speedrun attempt: the 10-minute recipe with today's block, Qwen3's: rotary positions, RMSNorm,
    # SwiGLU at equal parameters, 2 key/value heads of 4, QK-norm, no biases, an untied head. In lesson 14's
    # ablation (300 steps) RoPE and QK-norm each gained ~0.22 nats and all together 0.48, but the full run is
    # NOT a record: val 1.499 after 3,600 steps (train 1.158: it overfits), against the 10-minute recipe's 1.484.
    # 3,600 steps ran in 12.1 min on the course's 2-core CPU while other programs loaded it (10.2k tokens/s).
    # On an idle machine its step takes 1.16x the 10-minute recipe's (lesson 14's ablation), ~9.7 min for 3,600 steps.
    "shakespeare-char-cpu-10min-modern": TrainConfig(
        n_layer=4, n_head=4, n_embd=128, block_size=128, dropout=0.0, batch_size=16, activation="swiglu",
        positions="rope", norm="rmsnorm", n_kv_head=2, qk_norm=True, bias=False, tie_embeddings=False,
        optimizer="muon", max_iters=3600, learning_rate=3e-3, min_lr=1e-4, warmup_iters=100,
        lr_decay_iters=None, weight_decay=0.1, beta2=0.99, eval_interval=1200, eval_tokens=None,
        out_dir="runs/shakespeare-char-cpu-10min-modern",
    ),
    # The CPU speedrun record (lesson 14): the 10-minute recipe with the block changes that paid at equal wall time
    # (rotary positions, QK-norm) and those that make a step faster (2 key/value heads of 4, an untied head, no
    # biases), LayerNorm and GELU kept (RMSNorm and SwiGLU are slower steps here), and weight decay 0.5 against the
    # overfitting: val 1.4587 after 4,000 steps in 561 s (9.3 min) on the course's idle 2-core CPU, 15.2k tokens/s.
    # The same run with weight decay 0.1 overfits (train 1.099) and ends at 1.4886.
    "shakespeare-char-cpu-10min-rope": TrainConfig(
        n_layer=4, n_head=4, n_embd=128, block_size=128, dropout=0.0, batch_size=16, activation="gelu",
        positions="rope", qk_norm=True, n_kv_head=2, tie_embeddings=False, bias=False,
        optimizer="muon", max_iters=4000, learning_rate=3e-3, min_lr=1e-4, warmup_iters=100,
        lr_decay_iters=None, weight_decay=0.5, beta2=0.99, eval_interval=500, eval_tokens=None,
        out_dir="runs/shakespeare-char-cpu-10min-rope",
    ),
    # nanoGPT's "baby GPT" (config/train_shakespeare_char.py): 10.7M parameters, ~1.47 val loss.
    "shakespeare-char-gpu": TrainConfig(
        n_layer=6, n_head=6, n_embd=384, block_size=256, dropout=0.2, batch_size=64,
        max_iters=5000, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=5000,
        weight_decay=0.1, beta2=0.99, eval_interval=250, eval_tokens=None,
        out_dir="runs/shakespeare-char-gpu",
    ),
    # Lesson 10's subword GPT: the CPU recipe's model on byte-level BPE tokens (minigpt.bpe with GPT-2's
    # pre-split, 1024 = 256 bytes + 768 merges learned from the train split: 2.26 characters per val
    # token). A context of 64 tokens covers ~145 characters; the bigger softmax halves the tokens/s, so
    # 1800 steps take about as long on this CPU as the char recipe's 3500. Dropout 0.1: the run makes
    # ~9 passes over the 411k training tokens.
    "shakespeare-bpe-cpu": TrainConfig(
        n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.1, batch_size=32,
        tokenizer="bpe", vocab_size=1024,
        max_iters=1800, learning_rate=2e-3, min_lr=2e-4, warmup_iters=100, lr_decay_iters=None,
        weight_decay=0.1, beta2=0.99, eval_interval=300, eval_tokens=None,
        out_dir="runs/shakespeare-bpe-cpu",
    ),
    # A few seconds anywhere: for tests and trying the command line.
    "tiny": TrainConfig(
        n_layer=2, n_head=2, n_embd=32, block_size=32, dropout=0.0, batch_size=8,
        max_iters=50, learning_rate=3e-3, min_lr=3e-4, warmup_iters=5, eval_interval=25,
        eval_tokens=4096, sample_tokens=50, out_dir="runs/tiny",
    ),
}


def get_preset(name: str) -> TrainConfig:
    """A copy of the preset called ``name``; unknown names raise ``ValueError`` listing the known ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
    return dataclasses.replace(PRESETS[name])
