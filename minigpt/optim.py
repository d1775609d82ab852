"""Optimisation, in one place: the learning-rate schedules, AdamW's parameter groups, and the
optimizers the trainers build (AdamW, and Muon for the blocks' weight matrices).

Two choices, both nanoGPT's (``train.py``'s ``get_lr``, ``model.py``'s ``configure_optimizers``):

- **Warmup** ``lr * (step + 1) / (warmup + 1)``: step 0 already moves (never a zero rate), and the
  last warmup step stays just below the peak, which the cosine then starts from at ``step == warmup``,
  so the schedule rises strictly and never repeats a value. (``(step + 1) / warmup`` reaches the
  peak one step early and then holds it for two steps.)
- **Weight decay on every tensor of 2 or more dimensions**: the Linear weights and both embeddings
  (``wte``, which is also the tied output head, and ``wpe``); none on biases and LayerNorm gains,
  which set offsets and scales rather than store patterns. nanoGPT: "all weight tensors in matmuls +
  embeddings decay, all biases and layernorms don't". It is also the rule the course's committed
  Shakespeare checkpoints were trained with: their saved AdamW state has exactly these two groups,
  so a changed rule would make them impossible to resume.

Muon on a CPU: ``torch.optim.Muon`` runs its Newton-Schulz iterations in bf16. On a CPU without bf16
instructions (AVX2 only, most laptops) a bf16 matrix multiply is 20-65x slower than fp32, and
training with Muon ran 6-7x slower than with AdamW there. :class:`Muon` is torch's optimizer with
the iterations in fp32 on such CPUs (:func:`muon_precision` decides and says why); elsewhere it is
torch's own step. One Muon step of the 10-minute recipe, measured on the course's CPU emulating an
AVX2-only one (``ONEDNN_MAX_CPU_ISA=AVX2``): 467 ms in bf16, 18 ms in fp32 (14 ms in native bf16).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterable

import torch

from .precision import cpu_bf16_support

SLOW_BF16 = 0.25  # with bf16 instructions, Muon still uses fp32 where a probe finds bf16 4x slower or worse

# --------------------------------------------------------------------------- schedules


def cosine_lr(step: int, learning_rate: float, min_lr: float, warmup: int, decay_steps: int) -> float:
    """Learning rate at ``step`` (0-based): linear warmup over ``warmup`` steps to ``learning_rate``,
    then cosine decay to ``min_lr`` at ``decay_steps``, then flat at ``min_lr``."""
    if step < warmup:
        return learning_rate * (step + 1) / (warmup + 1)
    if step >= decay_steps:
        return min_lr
    ratio = (step - warmup) / max(1, decay_steps - warmup)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))  # 1 -> 0
    return min_lr + coeff * (learning_rate - min_lr)


def get_lr(step: int, cfg) -> float:
    """:func:`cosine_lr` with a :class:`~minigpt.train.TrainConfig`'s settings (``lr_decay_iters``
    defaults to ``max_iters``)."""
    return cosine_lr(step, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, cfg.decay_iters)


def step_decay(lr: float = 0.1, decay_at: float = 0.5, factor: float = 0.1, steps: int = 1) -> Callable[[int], float]:
    """makemore's schedule (lesson 03's MLP): ``lr`` until ``decay_at * steps``, then ``lr * factor``."""
    cut = int(decay_at * steps)
    return lambda step: lr if step < cut else lr * factor


def set_lr(optimizers: Iterable[torch.optim.Optimizer], lr: float) -> None:
    """Give every parameter group of ``optimizers`` the learning rate ``lr``."""
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = lr


# --------------------------------------------------------------------------- AdamW


def param_groups(params: Iterable[torch.nn.Parameter], weight_decay: float) -> list[dict]:
    """AdamW's two groups: tensors of 2+ dimensions decayed by ``weight_decay``, the rest (biases,
    LayerNorm gains) not. Parameters that need no gradient are left out."""
    params = [p for p in params if p.requires_grad]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def adamw(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float, betas: tuple[float, float],
          device: torch.device | str = "cpu") -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`. The fused kernel on GPUs and CPUs: on a CPU it takes 0.5 ms
    per step instead of 2.2 ms at lesson 07's size (measured on the course's CPU)."""
    groups = param_groups(params, weight_decay)
    if torch.device(device).type in ("cuda", "cpu"):
        try:
            return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True)
        except RuntimeError:  # torch < 2.4 has no fused CPU kernel
            pass
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


def make_optimizer(model: torch.nn.Module, cfg, device: torch.device,
                   params: list | None = None) -> torch.optim.AdamW:
    """The trainer's AdamW (:func:`adamw`) with a :class:`~minigpt.train.TrainConfig`'s settings;
    ``params``: only these (default: all of the model's)."""
    return adamw(model.parameters() if params is None else params, cfg.learning_rate, cfg.weight_decay,
                 (cfg.beta1, cfg.beta2), device)


def make_optimizers(model: torch.nn.Module, cfg, device: torch.device) -> list[torch.optim.Optimizer]:
    """The run's optimizers: ``[AdamW]`` for ``cfg.optimizer == "adamw"``; for ``"muon"``, ``[AdamW, Muon]``.

    Muon (Jordan et al. 2024) updates each 2-D weight matrix inside the blocks (``c_attn``,
    ``c_proj``, ``c_fc``) with an orthogonalised momentum: every direction of the matrix moves by a
    similar amount, instead of the few that dominate the gradient. Embeddings, biases and LayerNorm
    gains stay with AdamW, as in the nanoGPT speedruns. ``adjust_lr_fn="match_rms_adamw"`` scales
    Muon's step to AdamW's size, so both follow the same learning rate and schedule.
    """
    if cfg.optimizer == "adamw":
        return [make_optimizer(model, cfg, device)]
    if not hasattr(torch.optim, "Muon"):
        raise ValueError(f"optimizer='muon' needs torch 2.9 or later (this is torch {torch.__version__}); "
                         "upgrade torch, or train with optimizer='adamw'")
    matrices = [p for p in model.transformer.h.parameters() if p.requires_grad and p.dim() == 2]
    ids = {id(p) for p in matrices}
    rest = [p for p in model.parameters() if id(p) not in ids]
    dtype, reason = muon_precision(device)
    muon = Muon(matrices, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, adjust_lr_fn="match_rms_adamw",
                ns_dtype=dtype, ns_reason=reason)
    return [make_optimizer(model, cfg, device, params=rest), muon]


# --------------------------------------------------------------------------- Muon


def newton_schulz(G: torch.Tensor, coefficients: tuple[float, float, float], steps: int, eps: float,
                  dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """Orthogonalise the matrix ``G`` (roughly U V^T of its SVD) with ``steps`` quintic Newton-Schulz
    iterations in ``dtype``: torch's ``Muon`` iteration, written once so it can also run in fp32."""
    X = G.to(dtype)
    if G.size(0) > G.size(1):  # iterate on the wide orientation: the Gram matrix is the small one
        X = X.T
    X = X / X.norm().clamp(min=eps)  # spectral norm <= Frobenius norm <= 1
    a, b, c = coefficients
    for _ in range(steps):
        A = X @ X.T
        B = torch.addmm(A, A, A, beta=b, alpha=c)  # b A + c A^2
        X = torch.addmm(X, B, X, beta=a)  # a X + B X
    return X.T if G.size(0) > G.size(1) else X


_MuonBase = getattr(torch.optim, "Muon", torch.optim.Optimizer)  # torch < 2.9 has no Muon


class Muon(_MuonBase):
    """``torch.optim.Muon`` whose Newton-Schulz iterations run in ``ns_dtype``: bf16 (torch's own
    step, unchanged) or fp32 (for CPUs where bf16 is slow). Same settings, same state dict."""

    def __init__(self, params, *args, ns_dtype: torch.dtype = torch.bfloat16, ns_reason: str = "", **kwargs):
        super().__init__(params, *args, **kwargs)
        self.ns_dtype = ns_dtype
        self.ns_reason = ns_reason or str(ns_dtype).removeprefix("torch.")  # why this precision (for logs)

    @torch.no_grad()
    def step(self, closure=None):
        """One Muon update; torch's own when ``ns_dtype`` is bf16."""
        if self.ns_dtype == torch.bfloat16:
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd, momentum = group["lr"], group["weight_decay"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad, memory_format=torch.preserve_format)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - momentum)
                update = p.grad.lerp(buf, momentum) if group["nesterov"] else buf
                update = newton_schulz(update, group["ns_coefficients"], group["ns_steps"], group["eps"],
                                       self.ns_dtype)
                p.mul_(1 - lr * wd)
                p.add_(update, alpha=-lr * _muon_lr_ratio(group["adjust_lr_fn"], p.shape))
        return loss


def _muon_lr_ratio(adjust_lr_fn: str | None, shape: torch.Size) -> float:
    """Muon's per-matrix learning-rate factor, as ``torch.optim.Muon`` computes it."""
    rows, cols = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return math.sqrt(max(1, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return 1.0


def muon_precision(device: torch.device | str) -> tuple[torch.dtype, str]:
    """The dtype of Muon's Newton-Schulz iterations on ``device``, and one line saying why.

    GPUs: bf16 (torch's choice). CPUs: fp32 where the CPU has no bf16 instructions
    (:func:`minigpt.precision.cpu_bf16_support`, which also reads an emulated AVX2 CPU's
    ``ONEDNN_MAX_CPU_ISA=AVX2``); otherwise bf16 unless a short probe finds the iterations 4x slower
    or worse in bf16 than in fp32 (bf16 instructions that this PyTorch build does not use: 20-60x
    slower). The wide margin keeps a busy machine's noise (2-3x here) from flipping the choice between
    runs, and the probe uses the 10-minute recipe's largest matrix, so every model on one machine gets
    the same answer.
    """
    if torch.device(device).type != "cpu":
        return torch.bfloat16, "bfloat16: torch's Muon precision"
    ok, what = cpu_bf16_support()
    if not ok:
        return torch.float32, f"float32: no native bf16 here ({what})"
    speedup = _probe_bf16_matmul(torch.get_num_threads())
    if speedup < SLOW_BF16:
        return torch.float32, f"float32: bf16 Newton-Schulz ran {1 / speedup:.1f}x slower than fp32 in a probe"
    return torch.bfloat16, f"bfloat16: {speedup:.1f}x as fast as fp32 in a probe ({what})"


@functools.lru_cache(maxsize=4)
def _probe_bf16_matmul(threads: int, rows: int = 512, cols: int = 128, budget_s: float = 0.3) -> float:
    """fp32 time / bf16 time of the Newton-Schulz iterations on a ``rows x cols`` matrix (the
    10-minute recipe's ``c_fc``): the fastest of alternating rounds, 3 to 20 of them within about
    ``budget_s`` seconds (a busy machine slows both alike, and one quiet round is enough)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        G = torch.randn(rows, cols)
    times = {torch.float32: math.inf, torch.bfloat16: math.inf}
    start = time.perf_counter()
    for r in range(21):
        for dtype in times:
            t0 = time.perf_counter()
            newton_schulz(G, (3.4445, -4.7750, 2.0315), 5, 1e-7, dtype)
            if r:  # round 0 warms up
                times[dtype] = min(times[dtype], time.perf_counter() - t0)
        if r >= 3 and time.perf_counter() - start > budget_s:
            break
    return times[torch.float32] / times[torch.bfloat16]
