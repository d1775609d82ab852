"""The trainer: a GPT on Tiny Shakespeare characters, on a CPU, a GPU or several GPUs.

One step of training, in order:
1. learning rate for this step: linear warmup, then cosine decay to ``min_lr`` (:func:`get_lr`);
2. ``grad_accum_steps`` micro-batches: forward (bf16/fp16 autocast on CUDA), loss / accum, backward;
3. clip the gradient norm to ``grad_clip``; one AdamW update (weight decay on matrices only).
Every ``eval_interval`` steps: the loss on a FIXED validation set (the same windows every time),
a text sample, and a checkpoint (atomic; see :mod:`minigpt.checkpoint`).

Several GPUs: ``torchrun --nproc_per_node=N -m minigpt train ...`` runs N processes with
DistributedDataParallel (NCCL on GPUs, gloo on CPUs). Every process draws the same global batch
of ``N x batch_size`` windows and takes its own slice, so N processes follow the same loss curve
as one process with N times the batch. Only rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import random
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .checkpoint import Checkpoint, acquire_lock, load_checkpoint, release_lock, save_checkpoint
from .model import GPT, GPTConfig
from .tokenizer import CharTokenizer, Tokenizer

__all__ = ["TrainConfig", "TrainResult", "PRESETS", "get_preset", "train", "get_lr", "load_checkpoint",
           "make_optimizer", "make_optimizers",
           "estimate_mfu", "peak_flops", "flops_per_token", "plot_losses", "Checkpoint"]


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
    activation: str = "gelu_tanh"  # the MLP's GELU: "gelu_tanh" (GPT-2's) or "gelu" (exact; cheaper on CPU)
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
        # the model's own checks (e.g. n_embd divisible by n_head) with a placeholder vocabulary
        self.model_config(65)

    def model_config(self, vocab_size: int) -> GPTConfig:
        """The :class:`GPTConfig` for a vocabulary of ``vocab_size`` tokens."""
        return GPTConfig(block_size=self.block_size, vocab_size=vocab_size, n_layer=self.n_layer,
                         n_head=self.n_head, n_embd=self.n_embd, dropout=self.dropout, bias=self.bias,
                         activation=self.activation)

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


def make_tokenizer(cfg: TrainConfig, text: dict[str, str]):
    """The tokenizer of a new run: the characters of the whole text (``char``), or a byte-level BPE
    with ``cfg.vocab_size`` tokens learned from the train split alone (``bpe``; seconds). The BPE
    pre-splits text as GPT-2 does, so transformers' GPT2Tokenizer reads it once exported."""
    if cfg.tokenizer == "bpe":
        from .bpe import train as train_bpe

        return train_bpe(text["train"], cfg.vocab_size, pattern="gpt2")
    return CharTokenizer.from_text(text["train"] + text["val"])


# --------------------------------------------------------------------------- schedule and FLOPs

def get_lr(step: int, cfg: TrainConfig) -> float:
    """Learning rate at ``step`` (0-based): linear warmup over ``warmup_iters``, then cosine decay
    from ``learning_rate`` to ``min_lr`` at ``lr_decay_iters`` (default ``max_iters``), then flat."""
    if step < cfg.warmup_iters:
        return cfg.learning_rate * (step + 1) / (cfg.warmup_iters + 1)
    decay = cfg.decay_iters
    if step >= decay:
        return cfg.min_lr
    ratio = (step - cfg.warmup_iters) / max(1, decay - cfg.warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))  # 1 -> 0
    return cfg.min_lr + coeff * (cfg.learning_rate - cfg.min_lr)


def flops_per_token(n_params: int, config: GPTConfig) -> float:
    """Training FLOPs per token: 6 N (forward 2 N, backward 4 N) plus attention's 12 L T C
    (the PaLM paper's appendix B estimate, as nanoGPT)."""
    L, H, Q, T = config.n_layer, config.n_head, config.n_embd // config.n_head, config.block_size
    return 6 * n_params + 12 * L * H * Q * T


# Dense bf16/fp16 tensor-core peaks (FLOP/s) of common GPUs, from their data sheets.
_GPU_PEAKS = [
    ("H200", 989e12), ("H100", 989e12), ("H800", 989e12), ("GH200", 989e12), ("B200", 2250e12),
    ("A100", 312e12), ("A800", 312e12), ("A10G", 70e12), ("A10", 125e12), ("A6000", 155e12),
    ("L40S", 362e12), ("L40", 181e12), ("L4", 121e12), ("V100", 125e12), ("T4", 65e12),
    ("4090", 165e12), ("4080", 97e12), ("3090", 71e12), ("3080", 60e12),
]


def peak_flops(device=None) -> float:
    """Peak FLOP/s of ``device``, the denominator of MFU. ``MINIGPT_PEAK_FLOPS`` overrides.

    CUDA: the data sheet's dense bf16 figure (312e12 when the GPU is not in the table).
    CPU: cores x clock x FLOPs per cycle (fp32 FMA: 64 with AVX-512, 32 with AVX2, 16 otherwise).
    """
    env = os.environ.get("MINIGPT_PEAK_FLOPS")
    if env:
        return float(env)
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device.index if device.index is not None else 0)
        for key, peak in _GPU_PEAKS:
            if key in name:
                return peak
        return 312e12
    if device.type == "mps":
        return 10e12
    flags, mhz = "", 2500.0
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags") and not flags:
                    flags = line
                elif line.startswith("cpu MHz"):
                    mhz = float(line.split(":")[1])
                elif not line.strip() and flags:
                    break  # the first processor's block is enough
    except OSError:
        pass
    per_cycle = 64 if "avx512f" in flags else 32 if "avx2" in flags else 16
    return torch.get_num_threads() * mhz * 1e6 * per_cycle


@functools.lru_cache(maxsize=16)
def _peak_cached(device: str, threads: int, env: str | None) -> float:
    return peak_flops(device)


def estimate_mfu(n_params: int, config: GPTConfig, tokens_per_s: float, device=None) -> float:
    """Model FLOPs utilization: achieved training FLOP/s (from :func:`flops_per_token`) over the
    device's peak (:func:`peak_flops`). A fraction: 0.4 means 40%."""
    device = str(torch.device(device) if device is not None else torch.device("cpu"))
    peak = _peak_cached(device, torch.get_num_threads(), os.environ.get("MINIGPT_PEAK_FLOPS"))
    return flops_per_token(n_params, config) * tokens_per_s / peak


# --------------------------------------------------------------------------- data

def _windows(n_tokens: int, block_size: int, eval_tokens: int | None) -> torch.Tensor:
    """Start offsets of the fixed validation windows: non-overlapping, evenly spread, always the same."""
    n = (n_tokens - 1) // block_size  # each window needs block_size + 1 tokens (inputs and targets)
    starts = torch.arange(n) * block_size
    if eval_tokens is not None:
        k = max(1, min(n, eval_tokens // block_size))
        starts = starts[torch.linspace(0, n - 1, k).round().long()]
    return starts


def _gather(data: torch.Tensor, starts: torch.Tensor, block_size: int):
    ix = starts[:, None] + torch.arange(block_size + 1)
    chunk = data[ix]
    return chunk[:, :-1], chunk[:, 1:]


# --------------------------------------------------------------------------- results

@dataclass
class TrainResult:
    """What :func:`train` returns. ``history`` has one row per optimizer step."""

    model: GPT
    tokenizer: Tokenizer
    config: TrainConfig
    history: list = field(default_factory=list)
    samples: list = field(default_factory=list)  # (step, text)
    val_loss: float | None = None  # at the last step
    best_val_loss: float | None = None  # the lowest of all evaluations
    train_loss: float | None = None
    tokens_per_s: float = 0.0
    mfu: float = 0.0
    seconds: float = 0.0
    steps: int = 0
    out_dir: str | None = None
    device: str = "cpu"
    dtype: str = "float32"  # the precision the run used ("auto" resolved)
    dtype_reason: str = ""  # and why (see minigpt.precision)

    def summary(self) -> dict:
        return {"val_loss": self.val_loss, "best_val_loss": self.best_val_loss, "train_loss": self.train_loss, "tokens_per_s": self.tokens_per_s,
                "mfu": self.mfu, "seconds": self.seconds, "steps": self.steps, "out_dir": self.out_dir,
                "device": self.device, "dtype": self.dtype, "dtype_reason": self.dtype_reason,
                "params": self.model.num_params()}


class TrainingError(RuntimeError):
    """Training had to stop (loss not finite, out of memory); the message says why and what to do."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: the run was checkpointed at the step it had finished (when it has a
    run folder), so ``resume`` continues it exactly. The command line exits with status 130."""


class _StopOnInterrupt:
    """While installed, the first Ctrl-C (SIGINT) asks training to stop after the current step, so a
    checkpoint is never taken halfway through an update; a second Ctrl-C interrupts at once."""

    def __init__(self, enabled: bool):
        self.requested = False
        self._previous = None
        if enabled and threading.current_thread() is threading.main_thread():
            try:
                self._previous = signal.signal(signal.SIGINT, self._handle)
            except (ValueError, OSError):  # not allowed here (e.g. an embedded interpreter)
                self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


# --------------------------------------------------------------------------- distributed

def _dist_info():
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) without it."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"])
    return 0, 0, 1


def _all_reduce_sum(t: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


# --------------------------------------------------------------------------- RNG states

def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(Exception):
            torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- the trainer

def _resolve_dtype(cfg: TrainConfig, device: torch.device, model: GPT | None = None) -> tuple[torch.dtype, str]:
    """The run's dtype and why (see :mod:`minigpt.precision`: on a CPU "auto" probes bf16)."""
    from .precision import choose_dtype

    return choose_dtype(cfg.dtype, device, model, batch_size=cfg.batch_size, block_size=cfg.block_size)


def _enable_tf32(on: bool = True) -> None:
    """TF32 matmuls on Ampere and newer GPUs (fp32 accuracy is not needed for training a GPT).

    Uses PyTorch's newer ``fp32_precision`` switches where they exist (mixing them with the older
    ``allow_tf32`` flags is an error in recent versions), else the older flags.
    """
    try:
        torch.backends.cuda.matmul.fp32_precision = "tf32" if on else "ieee"
        torch.backends.cudnn.conv.fp32_precision = "tf32" if on else "ieee"
    except (AttributeError, TypeError, ValueError, RuntimeError):
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on


def make_optimizer(model: GPT, cfg: TrainConfig, device: torch.device,
                   params: list | None = None) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (Linear weights, embeddings) only, not on biases and
    LayerNorm gains; ``params``: only these (default: all of the model's). The fused kernel on GPUs
    and CPUs: on a CPU it takes 0.5 ms per step instead of 2.2 ms at lesson 07's size (measured here)."""
    params = [p for p in (model.parameters() if params is None else params) if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if device.type in ("cuda", "cpu"):
        try:
            return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2), fused=True)
        except RuntimeError:  # torch < 2.4 has no fused CPU kernel
            pass
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2))


def make_optimizers(model: GPT, cfg: TrainConfig, device: torch.device) -> list[torch.optim.Optimizer]:
    """The run's optimizers: ``[AdamW]`` for ``optimizer="adamw"``; for ``"muon"``, ``[AdamW, Muon]``.

    Muon (Jordan et al. 2024, ``torch.optim.Muon``) updates each 2-D weight matrix inside the blocks
    (``c_attn``, ``c_proj``, ``c_fc``) with an orthogonalised momentum: every direction of the matrix
    moves by a similar amount, instead of the few that dominate the gradient. Embeddings, biases and
    LayerNorm gains stay with AdamW, as in the nanoGPT speedruns. ``adjust_lr_fn="match_rms_adamw"``
    scales Muon's step to AdamW's size, so both follow the same learning rate and schedule.
    """
    if cfg.optimizer == "adamw":
        return [make_optimizer(model, cfg, device)]
    if not hasattr(torch.optim, "Muon"):
        raise ValueError(f"optimizer='muon' needs torch 2.9 or later (this is torch {torch.__version__}); "
                         "upgrade torch, or train with optimizer='adamw'")
    matrices = [p for p in model.transformer.h.parameters() if p.requires_grad and p.dim() == 2]
    ids = {id(p) for p in matrices}
    rest = [p for p in model.parameters() if id(p) not in ids]
    muon = torch.optim.Muon(matrices, lr=cfg.learning_rate, weight_decay=cfg.weight_decay,
                            adjust_lr_fn="match_rms_adamw")
    return [make_optimizer(model, cfg, device, params=rest), muon]


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


def _oom_message(cfg: TrainConfig, device: torch.device, step: int) -> str:
    smaller = max(1, cfg.batch_size // 2)
    return (f"out of memory on {device} at step {step} with batch_size={cfg.batch_size}, block_size="
            f"{cfg.block_size}: use a smaller batch, e.g. --batch-size {smaller} --grad-accum "
            f"{cfg.grad_accum_steps * 2} (same tokens per step), or a smaller model")


def train(cfg: TrainConfig, device=None, progress: bool = True, resume: bool = False,
          text: dict[str, str] | None = None, overwrite: bool = False) -> TrainResult:
    """Train a GPT as ``cfg`` says and return a :class:`TrainResult`.

    ``device``: a name or ``torch.device``; None picks CUDA, then MPS, then CPU
    (``MINIGPT_DEVICE`` overrides). ``resume``: continue from the checkpoint in ``cfg.out_dir``
    (same run: weights, optimizer, RNG states and data sampler restored). ``text``: a dict with
    ``train`` and ``val`` strings instead of Tiny Shakespeare's fixed split. A run folder that
    already holds a run is refused unless ``resume`` or ``overwrite``; while training, the folder is
    locked against a second run. Ctrl-C stops after the current step, writes a checkpoint and raises
    :class:`TrainingInterrupted`. Under ``torchrun`` this runs data-parallel (DDP) across the processes.
    """

    rank, local_rank, world = _dist_info()
    lock = None
    if cfg.out_dir and rank == 0:
        step = _latest_step(cfg.out_dir)
        if step is not None and not resume and not overwrite:
            raise ValueError(f"{cfg.out_dir} holds a run at step {step}; continue it with --resume (resume=True) "
                             "or start again with --overwrite (overwrite=True)")
        lock = acquire_lock(cfg.out_dir)  # also proves the folder is writable, before any training
    try:
        return _train_locked(cfg, device, progress, resume, text, rank, local_rank, world)
    finally:
        release_lock(lock)


def _train_locked(cfg, device, progress, resume, text, rank, local_rank, world) -> TrainResult:
    from .utils import get_device

    ddp = world > 1
    if ddp:
        import torch.distributed as dist

        if device is None and not os.environ.get("MINIGPT_DEVICE") and torch.cuda.is_available():
            device = f"cuda:{local_rank}"
        device = get_device(device if device is None or not isinstance(device, torch.device) else str(device))
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    else:
        device = get_device(str(device) if isinstance(device, torch.device) else device)
    master = rank == 0
    try:
        result = _train(cfg, device, progress and master, resume, text, rank, world)
        if ddp:
            # Wait for rank 0 to finish writing before anyone tears down the process group: a rank that
            # destroys gloo while its peer is still busy can abort ("terminate called without an active
            # exception").
            import torch.distributed as dist

            dist.barrier()
        return result
    finally:
        if ddp:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def _train(cfg, device, progress, resume, text, rank, world) -> TrainResult:
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    master = rank == 0
    ddp = world > 1

    # ---- data: the fixed split, encoded once
    if text is None:
        from .data import shakespeare_split

        if cfg.dataset != "tinyshakespeare":
            raise ValueError(f"unknown dataset {cfg.dataset!r}; the trainer knows 'tinyshakespeare'")
        text = shakespeare_split()
    ckpt = None
    if resume:
        if not cfg.out_dir:
            raise ValueError("resume needs an out_dir to resume from")
        ckpt = load_checkpoint(cfg.out_dir, device="cpu")
        tokenizer = ckpt.tokenizer
    else:
        tokenizer = make_tokenizer(cfg, text)
    train_data = torch.tensor(tokenizer.encode(text["train"]), dtype=torch.long)
    val_data = torch.tensor(tokenizer.encode(text["val"]), dtype=torch.long)
    for name, d in (("training", train_data), ("validation", val_data)):
        if len(d) < cfg.block_size + 1:
            raise ValueError(f"block_size {cfg.block_size} is longer than the {name} text ({len(d)} tokens); "
                             f"use a block_size below {len(d)}")
    val_starts = _windows(len(val_data), cfg.block_size, cfg.eval_tokens)

    # ---- model, optimizer, precision
    mconf = cfg.model_config(tokenizer.vocab_size)
    if ckpt is not None and ckpt.model_config.to_dict() != mconf.to_dict():
        from .utils import describe_differences

        diff = describe_differences(ckpt.model_config.to_dict(), mconf.to_dict())
        raise ValueError(f"the checkpoint in {cfg.out_dir} is for a different model ({diff}); "
                         "resume with the same preset and sizes, or use another --out")
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank (DDP also broadcasts them)
    random.seed(cfg.seed + rank)
    np.random.seed(cfg.seed + rank)
    model = GPT(mconf)
    if ckpt is not None:
        model.load_state_dict(ckpt.model.state_dict())
    model.to(device)
    torch.manual_seed(cfg.seed + rank)  # dropout differs across ranks, as with one big batch
    dtype, dtype_reason = _resolve_dtype(cfg, device, model)
    if world > 1 and cfg.dtype == "auto" and device.type == "cpu":  # every process must agree
        votes = _all_reduce_sum(torch.tensor(float(dtype == torch.bfloat16)), world)
        if dtype == torch.bfloat16 and int(votes) < world:
            dtype, dtype_reason = torch.float32, "float32: not every process found bf16 faster"
    if progress and master:
        print(f"precision: {dtype_reason}", flush=True)
    if device.type == "cuda":
        _enable_tf32()
    autocast = (torch.autocast(device_type=device.type, dtype=dtype) if dtype != torch.float32
                else contextlib.nullcontext())
    # fp16 needs loss scaling so small gradients do not underflow; bf16 and fp32 do not
    scaler = torch.amp.GradScaler("cuda" if device.type == "cuda" else "cpu",
                                  enabled=(dtype == torch.float16 and device.type == "cuda"))
    optimizers = make_optimizers(model, cfg, device)
    sampler = torch.Generator().manual_seed(cfg.seed)  # draws the training batches; same on all ranks
    start_step, history = 0, []
    if ckpt is not None:
        state = ckpt.state
        was = ckpt.train_config.get("optimizer", "adamw")
        if was != cfg.optimizer:
            raise ValueError(f"the checkpoint in {cfg.out_dir} was trained with optimizer={was!r}, not "
                             f"{cfg.optimizer!r}; resume with the same optimizer, or start again with --overwrite")
        try:
            saved = state["optimizer"] if isinstance(state["optimizer"], list) else [state["optimizer"]]
            if len(saved) != len(optimizers):
                raise ValueError(f"{len(saved)} optimizer states for {len(optimizers)} optimizers")
            for opt, opt_state in zip(optimizers, saved):
                opt.load_state_dict(opt_state)
            sampler.set_state(state["sampler"])
            rngs = state["rng"]
            _set_rng_state(rngs[rank] if len(rngs) == world else rngs[0])
            if "scaler" in state and scaler.is_enabled():
                scaler.load_state_dict(state["scaler"])
        except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"the checkpoint in {cfg.out_dir} has no usable trainer state ({first}); "
                             "resume with the same preset, or start again with --overwrite") from None
        start_step, history = ckpt.step, list(ckpt.history)
        if start_step > cfg.max_iters:
            raise ValueError(f"the checkpoint is at step {start_step}, past max_iters={cfg.max_iters}; "
                             "raise --max-iters to train further")

    compile_on = cfg.compile if cfg.compile is not None else device.type == "cuda"
    if compile_on and device.type == "mps":
        warnings.warn("torch.compile is not used on MPS; training without it", stacklevel=2)
        compile_on = False
    runner = model
    if compile_on:
        runner = _compiled_or_plain(model, val_data, val_starts, cfg, device, autocast)
    if ddp:
        from torch.nn.parallel import DistributedDataParallel as DDP

        runner = DDP(runner, device_ids=[device.index] if device.type == "cuda" else None)

    n_params = model.num_params()
    tokens_per_step = cfg.batch_size * cfg.block_size * cfg.grad_accum_steps * world
    pin = device.type == "cuda"

    def batch_for(offsets):
        x, y = _gather(train_data, offsets, cfg.block_size)
        if pin:
            x, y = x.pin_memory(), y.pin_memory()
        return x.to(device, non_blocking=pin), y.to(device, non_blocking=pin)

    @torch.no_grad()
    def evaluate() -> float:
        model.eval()
        mine = val_starts[rank::world]
        total = torch.zeros(2, dtype=torch.float64, device=device)
        bs = max(cfg.batch_size, 8) * 4
        for i in range(0, len(mine), bs):
            x, y = _gather(val_data, mine[i:i + bs], cfg.block_size)
            x, y = x.to(device), y.to(device)
            with autocast:
                _, loss = model(x, y)
            total[0] += loss.double() * y.numel()
            total[1] += y.numel()
        _all_reduce_sum(total, world)
        model.train()
        return float(total[0] / total[1])

    def sample(step) -> str | None:
        if not cfg.sample_tokens or not master:
            return None
        model.eval()
        g = torch.Generator(device="cpu").manual_seed(cfg.seed)  # its own generator: training RNG untouched
        start = "\n" if not isinstance(tokenizer, CharTokenizer) or "\n" in tokenizer.stoi else tokenizer.chars[0]
        idx = torch.tensor([tokenizer.encode(start)], dtype=torch.long, device=device)
        out = model.generate(idx, cfg.sample_tokens, temperature=0.8, top_k=None, generator=g)
        model.train()
        return tokenizer.decode(out[0, 1:].tolist())

    def checkpoint(step, extra=None):
        if not cfg.out_dir:
            return
        broken = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
        if broken:  # never let a broken model become the "last good checkpoint"
            kept = _latest_step(cfg.out_dir)
            raise TrainingError(f"weights became NaN or infinite by step {step} ({', '.join(broken[:3])}); "
                                f"nothing was saved, the last checkpoint (step {kept}) is kept in {cfg.out_dir}. "
                                f"Try a lower learning rate (now {cfg.learning_rate})")
        rngs = [_rng_state()]
        if ddp:
            import torch.distributed as dist

            rngs = [None] * world
            dist.all_gather_object(rngs, _rng_state())
        if master:
            opt_states = [opt.state_dict() for opt in optimizers]
            state = {"optimizer": opt_states[0] if len(opt_states) == 1 else opt_states,
                     "sampler": sampler.get_state(), "rng": rngs}
            if scaler.is_enabled():
                state["scaler"] = scaler.state_dict()
            save_checkpoint(cfg.out_dir, model, tokenizer, step, train_config=cfg.to_dict(), state=state,
                            history=history, extra={"dtype": result.dtype, "dtype_reason": dtype_reason,
                                                    **(extra or {})})

    result = TrainResult(model=model, tokenizer=tokenizer, config=cfg, history=history,
                         out_dir=cfg.out_dir, device=str(device), steps=start_step,
                         dtype=str(dtype).removeprefix("torch."), dtype_reason=dtype_reason)
    bar = tqdm(total=cfg.max_iters, initial=start_step, desc="train", disable=not progress,
               dynamic_ncols=True, file=sys.stdout)
    model.train()
    train_time, train_tokens, tps_ema = 0.0, 0, None
    last_loss = None
    stop = _StopOnInterrupt(enabled=world == 1)  # with DDP every rank would have to agree on the step
    try:
        for it in range(start_step, cfg.max_iters):
            step = it + 1
            lr = get_lr(it, cfg)
            for opt in optimizers:
                for group in opt.param_groups:
                    group["lr"] = lr
            t0 = time.perf_counter()
            # the global batch: (accum, world, batch) windows, the same draw on every rank
            offsets = torch.randint(len(train_data) - cfg.block_size,
                                    (cfg.grad_accum_steps, world, cfg.batch_size), generator=sampler)
            loss_sum = torch.zeros((), device=device)
            for micro in range(cfg.grad_accum_steps):
                x, y = batch_for(offsets[micro, rank])
                sync = (not ddp) or micro == cfg.grad_accum_steps - 1
                ctx = contextlib.nullcontext() if sync else runner.no_sync()
                with ctx:
                    with autocast:
                        _, loss = runner(x, y)
                    loss = loss / cfg.grad_accum_steps  # so the summed gradient is the mean's
                    scaler.scale(loss).backward()
                loss_sum += loss.detach()
            grad_norm = None
            if cfg.grad_clip > 0:
                for opt in optimizers:
                    scaler.unscale_(opt)
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            # a non-finite loss: stop before the update, so the weights stay the last good ones
            loss_all = _all_reduce_sum(loss_sum.detach().clone(), world) / world
            loss_value = float(loss_all)
            bad_grad = grad_norm is not None and not scaler.is_enabled() and not math.isfinite(float(grad_norm))
            if not math.isfinite(loss_value) or bad_grad:
                what = (f"loss became {loss_value}" if not math.isfinite(loss_value)
                        else f"gradient norm became {float(grad_norm)}")
                where = (f"the last good checkpoint (step {_latest_step(cfg.out_dir)}) is kept in {cfg.out_dir}"
                         if cfg.out_dir and _latest_step(cfg.out_dir) is not None else "no checkpoint was written")
                raise TrainingError(f"{what} at step {step}; training stopped and {where}. "
                                    f"Try a lower learning rate (now {cfg.learning_rate}) or gradient "
                                    "clipping (grad_clip)")
            for opt in optimizers:
                scaler.step(opt)
            scaler.update()
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            dt = time.perf_counter() - t0
            if it > start_step or cfg.max_iters - start_step == 1:  # the first step pays for warm-up/compile
                train_time += dt
                train_tokens += tokens_per_step
            tps = tokens_per_step / max(dt, 1e-9)
            tps_ema = tps if tps_ema is None else 0.9 * tps_ema + 0.1 * tps
            mfu = estimate_mfu(n_params, mconf, tps_ema, device)
            last_loss = loss_value
            row = {"step": step, "train_loss": loss_value, "val_loss": None, "lr": lr,
                   "tokens_per_s": tps_ema, "mfu": mfu}
            if step % cfg.eval_interval == 0 or step == cfg.max_iters:
                row["val_loss"] = evaluate()
                result.val_loss = row["val_loss"]
                text_sample = sample(step)
                if text_sample is not None:
                    result.samples.append((step, text_sample))
                    if progress:
                        bar.write(f"--- step {step}: val loss {row['val_loss']:.4f}\n{text_sample}\n---")
                history.append(row)
                checkpoint(step)
            else:
                history.append(row)
            result.steps = step
            bar.set_postfix_str(f"loss {loss_value:.4f}, {tps_ema:,.0f} tok/s, MFU {100 * mfu:.1f}%", refresh=False)
            bar.update(1)
            if stop.requested and step < cfg.max_iters:
                if cfg.out_dir and _latest_step(cfg.out_dir) != step:
                    checkpoint(step)
                saved = (f"checkpoint of step {step} saved in {cfg.out_dir}; continue with --resume "
                         "(train(..., resume=True))" if cfg.out_dir else "no run folder, so nothing was saved")
                raise TrainingInterrupted(f"training interrupted at step {step} of {cfg.max_iters}: {saved}")
    except RuntimeError as e:  # out of memory: in a step, an evaluation or a sample
        if _is_oom(e) and not isinstance(e, TrainingError):
            raise TrainingError(_oom_message(cfg, device, result.steps + 1)) from None
        raise
    finally:
        stop.restore()
        bar.close()

    if result.val_loss is None:  # no step ran (max_iters reached already): last evaluation, or one now
        result.val_loss = next((h["val_loss"] for h in reversed(history) if h["val_loss"] is not None), None)
        if result.val_loss is None:
            result.val_loss = evaluate()
    vals = [h["val_loss"] for h in history if h["val_loss"] is not None]
    result.best_val_loss = min(vals) if vals else result.val_loss
    result.train_loss = last_loss if last_loss is not None else (history[-1]["train_loss"] if history else None)
    result.tokens_per_s = train_tokens / train_time if train_time > 0 else (tps_ema or 0.0)
    result.mfu = estimate_mfu(n_params, mconf, result.tokens_per_s, device)
    result.seconds = time.perf_counter() - t_start
    model.eval()
    return result


def _compiled_or_plain(model, data, starts, cfg, device, autocast):
    """``torch.compile(model)``, tried on one batch (forward and backward); on failure a warning and
    the plain model. The RNG state is left as it was, so compiling does not change the run."""
    compiled = torch.compile(model)
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            x, y = _gather(data, starts[: cfg.batch_size], cfg.block_size)
            with autocast:
                _, loss = compiled(x.to(device), y.to(device))
            loss.backward()
        model.zero_grad(set_to_none=True)
        return compiled
    except Exception as e:  # noqa: BLE001 - compilers fail in many ways
        model.zero_grad(set_to_none=True)
        if _is_oom(e):
            raise TrainingError(_oom_message(cfg, device, 0)) from None
        warnings.warn(f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); "
                      "training without it", stacklevel=3)
        return model


def _latest_step(out_dir) -> int | None:
    if not out_dir:
        return None
    try:
        return json.loads((Path(out_dir) / "latest.json").read_text(encoding="utf-8")).get("step")
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- plots

def plot_losses(history: list, ax=None, title: str = "Training and validation loss"):
    """Plot train loss (every step, lightly smoothed) and val loss (at each evaluation) vs step."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    steps = [h["step"] for h in history if h["train_loss"] is not None]
    train_l = [h["train_loss"] for h in history if h["train_loss"] is not None]
    if train_l:
        k = max(1, len(train_l) // 50)
        smooth = np.convolve(train_l, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], smooth, label=f"train (mean of {k} steps)" if k > 1 else "train")
    ev = [(h["step"], h["val_loss"]) for h in history if h["val_loss"] is not None]
    if ev:
        ax.plot(*zip(*ev), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss (nats per character)")
    ax.set_title(title)
    ax.legend()
    return ax.figure


# --------------------------------------------------------------------------- command line

def add_cli(sub) -> None:
    """``python -m minigpt train ...`` (``sample`` lives in :mod:`minigpt.generate`)."""
    p = sub.add_parser("train", help="train a GPT on Tiny Shakespeare (checkpoints, resume, torchrun for DDP)")
    p.add_argument("--preset", default="shakespeare-char-cpu", help=f"one of: {', '.join(sorted(PRESETS))}")
    p.add_argument("--max-iters", type=int, help="optimizer steps")
    p.add_argument("--out", help="run folder for checkpoints (default: runs/PRESET at the top of the course, "
                                "where the lessons look); 'none' for no checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--overwrite", action="store_true", help="start again in an --out that already holds a run")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: the best available)")
    p.add_argument("--compile", action=argparse_bool(), default=None, help="torch.compile the model (--no-compile: off)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--grad-accum", type=int, help="micro-batches per optimizer step")
    p.add_argument("--block-size", type=int)
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--eval-interval", type=int)
    p.add_argument("--eval-tokens", type=int, help="validation tokens per evaluation (default: all)")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"],
                   help="auto: bf16 on GPUs; on a CPU bf16 only where a short probe finds it faster")
    p.add_argument("--activation", choices=["gelu_tanh", "gelu"], help="the MLP's GELU (gelu_tanh: GPT-2's)")
    p.add_argument("--optimizer", choices=["adamw", "muon"],
                   help="adamw, or muon: Muon for the blocks' matrices and AdamW for the rest")
    p.add_argument("--seed", type=int)
    p.add_argument("--quiet", action="store_true", help="no progress bar or samples")
    p.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    p.set_defaults(func=_cli_train)



def argparse_bool():
    import argparse

    return argparse.BooleanOptionalAction


def config_from_args(args) -> TrainConfig:
    """The preset named by ``--preset`` with the command line's overrides applied."""
    cfg = get_preset(args.preset)
    overrides = {"max_iters": args.max_iters, "compile": args.compile, "batch_size": args.batch_size,
                 "grad_accum_steps": args.grad_accum, "block_size": args.block_size, "learning_rate": args.lr,
                 "eval_interval": args.eval_interval, "eval_tokens": args.eval_tokens, "dtype": args.dtype,
                 "activation": args.activation, "optimizer": args.optimizer,
                 "seed": args.seed}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.out is not None:
        overrides["out_dir"] = None if args.out.lower() == "none" else args.out
    else:  # the course's run folder, where the lessons (minigpt.pretrained) look for this preset
        from .utils import runs_dir

        overrides["out_dir"] = str(runs_dir() / args.preset)
    if "learning_rate" in overrides and overrides["learning_rate"] < cfg.min_lr:
        overrides["min_lr"] = overrides["learning_rate"] / 10
    if "max_iters" in overrides and cfg.lr_decay_iters is not None and cfg.lr_decay_iters > overrides["max_iters"]:
        overrides["lr_decay_iters"] = overrides["max_iters"]
    if "max_iters" in overrides and "eval_interval" not in overrides:
        overrides["eval_interval"] = max(1, min(cfg.eval_interval, overrides["max_iters"]))
    return dataclasses.replace(cfg, **overrides)


def _cli_train(args) -> int:
    cfg = config_from_args(args)
    rank, _, _ = _dist_info()
    result = train(cfg, device=args.device, progress=not args.quiet and not args.json, resume=args.resume,
                   overwrite=args.overwrite)
    if rank != 0:
        return 0
    s = result.summary()
    if cfg.out_dir and result.history:
        with contextlib.suppress(Exception):
            import matplotlib

            matplotlib.use("Agg")
            fig = plot_losses(result.history, title=f"{args.preset}: loss")
            fig.savefig(Path(cfg.out_dir) / "loss.png", dpi=100, bbox_inches="tight")
    print(f"{args.preset}: {s['steps']} steps on {s['device']}, val loss {s['val_loss']:.4f}, "
          f"{s['tokens_per_s']:,.0f} tokens/s, MFU {100 * s['mfu']:.2f}%, {s['seconds']:.1f} s"
          + (f", checkpoint in {cfg.out_dir}" if cfg.out_dir else ""))
    if args.json:
        s["preset"] = args.preset
        print(json.dumps(s))
    return 0
