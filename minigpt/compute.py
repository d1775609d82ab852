"""Compute: what a GPT costs to hold and to train, and how its loss scales with size.

Memory, per parameter, for training with AdamW (the accounting of the ZeRO paper, Rajbhandari et al. 2020):

    fp32:             weights 4 B + gradients 4 B + Adam moments 8 B                       = 16 B
    mixed precision:  weights 2 B + gradients 2 B + fp32 master copy 4 B + Adam moments 8 B = 16 B

Mixed precision saves activation memory and time, not optimizer state. Activations are estimated
with Korthikanti et al. 2022 (16-bit, no recomputation): per layer and sequence ``s h (34 + 5 a s / h)``
bytes for context s, width h and a heads. Training FLOPs are ``6 N D`` (Kaplan et al. 2020): 2 N per
token forward, 4 N backward, for N parameters and D tokens.

:func:`scaling_sweep` trains several sizes for the same number of tokens; :func:`fit_power_law`
fits ``loss = a N^-alpha`` to the result on log-log axes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .model import GPTConfig, count_params
from .precision import H100_BF16_PEAK  # the one data-sheet figure, shared with MFU's peak table
from .train import get_preset, train

__all__ = ["PublishedModel", "PUBLISHED", "H100_BF16_PEAK", "training_memory", "activation_bytes",
           "training_flops", "training_days", "scaling_sweep", "fit_power_law", "power_law"]



@dataclass(frozen=True)
class PublishedModel:
    """A published GPT: its shape (for the parameter count) and the tokens it was trained on."""

    name: str
    n_layer: int
    n_embd: int
    n_head: int
    block_size: int
    tokens: float  # training tokens
    vocab_size: int = 50257

    @property
    def config(self) -> GPTConfig:
        return GPTConfig(block_size=self.block_size, vocab_size=self.vocab_size, n_layer=self.n_layer,
                         n_head=self.n_head, n_embd=self.n_embd)

    @property
    def params(self) -> int:
        return count_params(self.config)


# Shapes from the GPT-2 release (Radford et al. 2019) and the GPT-3 paper (Brown et al. 2020, table 2.1).
# The GPT-3 paper trained every size, 125M to 175B, on 300B tokens; OpenAI never published GPT-2's token
# count, so its sizes get the 300B tokens of their GPT-3 counterparts (nanoGPT's GPT-2 reproduction uses ~300B too).
PUBLISHED = [
    PublishedModel("GPT-2 small", 12, 768, 12, 1024, 300e9),
    PublishedModel("GPT-2 medium", 24, 1024, 16, 1024, 300e9),
    PublishedModel("GPT-2 large", 36, 1280, 20, 1024, 300e9),
    PublishedModel("GPT-2 XL", 48, 1600, 25, 1024, 300e9),
    PublishedModel("GPT-3 175B", 96, 12288, 96, 2048, 300e9),
]


def training_memory(n_params: int, mixed_precision: bool = False) -> dict[str, int]:
    """Bytes for the weights, gradients and AdamW state of ``n_params`` parameters (activations not
    included): ``{"weights", "gradients", "optimizer", "total"}``. Mixed precision keeps 16-bit weights
    and gradients and an fp32 master copy of the weights in the optimizer."""
    w, g, opt = (2, 2, 4 + 8) if mixed_precision else (4, 4, 8)
    parts = {"weights": w * n_params, "gradients": g * n_params, "optimizer": opt * n_params}
    parts["total"] = sum(parts.values())
    return parts


def activation_bytes(config: GPTConfig, batch_size: int = 1, flash: bool = False) -> float:
    """Activation memory of one training step, in bytes (Korthikanti et al. 2022, 16-bit, no recomputation).

    ``flash=True`` drops the attention matrices (the ``5 a s / h`` term), which flash attention never stores.
    """
    s, h, a = config.block_size, config.n_embd, config.n_head
    per_layer = s * batch_size * h * (34 + (0 if flash else 5 * a * s / h))
    return config.n_layer * per_layer


def training_flops(n_params: float, n_tokens: float) -> float:
    """Training FLOPs by the 6 N D rule: forward 2 N and backward 4 N per token."""
    return 6 * n_params * n_tokens


def training_days(n_params: float, n_tokens: float, n_gpus: int = 1, peak: float = H100_BF16_PEAK,
                  mfu: float = 0.4) -> float:
    """Days to train on ``n_gpus`` devices of ``peak`` FLOP/s each, running at ``mfu`` of the peak."""
    if n_gpus <= 0 or peak <= 0 or not 0 < mfu <= 1:
        raise ValueError(f"need n_gpus > 0, peak > 0 and 0 < mfu <= 1; got {n_gpus}, {peak}, {mfu}")
    return training_flops(n_params, n_tokens) / (n_gpus * peak * mfu) / 86400


# --------------------------------------------------------------------------- the scaling sweep

def scaling_sweep(sizes, tokens: int, base=None, text: dict[str, str] | None = None, device=None,
                  progress: bool = True) -> list[dict]:
    """Train one model per entry of ``sizes`` (dicts of ``n_layer``, ``n_embd``, ``n_head``) for the same
    ``tokens`` training tokens, with ``base``'s other settings (a :class:`minigpt.train.TrainConfig`;
    default: lesson 07's CPU recipe). Returns one row per size: parameters, held-out loss, seconds, and the
    config and trained model (to train a variant with the same recipe, or to sample from)."""
    from tqdm.auto import tqdm

    base = base or get_preset("shakespeare-char-cpu")
    per_step = base.batch_size * base.block_size * base.grad_accum_steps
    steps = max(1, tokens // per_step)
    rows = []
    for size in tqdm(sizes, desc="sizes", disable=not progress):
        cfg = dataclasses.replace(base, **size, max_iters=steps, eval_interval=steps, sample_tokens=0,
                                  out_dir=None, warmup_iters=min(base.warmup_iters, steps // 10),
                                  lr_decay_iters=None)
        r = train(cfg, device=device, progress=False, text=text)
        rows.append({**size, "params": r.model.num_params(), "non_embedding": r.model.num_params(True),
                     "val_loss": r.val_loss, "train_loss": r.train_loss, "tokens": steps * per_step,
                     "seconds": r.seconds, "tokens_per_s": r.tokens_per_s, "config": cfg, "model": r.model,
                     "tokenizer": r.tokenizer})
    return rows


def fit_power_law(n, loss) -> tuple[float, float]:
    """Least-squares fit of ``loss = a * n ** -alpha`` on log-log axes; returns ``(a, alpha)``."""
    n, loss = np.asarray(n, dtype=float), np.asarray(loss, dtype=float)
    if n.shape != loss.shape or n.size < 2:
        raise ValueError(f"need two arrays of the same length >= 2, got shapes {n.shape} and {loss.shape}")
    if (n <= 0).any() or (loss <= 0).any():
        raise ValueError("a power law needs positive sizes and losses (they are fitted on log-log axes)")
    slope, intercept = np.polyfit(np.log(n), np.log(loss), 1)
    return math.exp(intercept), -slope


def power_law(n, a: float, alpha: float):
    """``a * n ** -alpha``, for arrays or numbers."""
    return a * np.asarray(n, dtype=float) ** -alpha
