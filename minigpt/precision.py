"""Which precision a training run uses: ``TrainConfig.dtype = "auto"`` decides, and says why.

- CUDA: bf16 autocast where the GPU supports it, else fp16 (with loss scaling).
- Apple MPS: fp32.
- CPU: bf16 autocast only where it is faster for *this* model on *this* machine. bf16 halves the
  bytes each matrix multiply reads and, on CPUs with bf16 matrix units (Intel AMX, AVX512-BF16),
  doubles or more the arithmetic rate; but autocast also converts weights and activations at every
  step, which a small model does not earn back. Measured (median of alternating rounds, one process):

  ======================  ==================  =======================
  model (layers/width)    Xeon with AMX       AMD EPYC, AVX512-BF16
  ======================  ==================  =======================
  4/128, T64, B32         0.80x               1.05x
  4/256, T128, B16        1.41x               1.3x
  6/384, T256, B4         1.67x               1.6x
  ======================  ==================  =======================

  So: no bf16 instructions -> fp32; a model at most 128 wide -> fp32 without probing (too small to
  gain); otherwise a probe of a few seconds times forward+backward of the run's own model and batch
  in both precisions and picks bf16 when it is at least 10% faster (bf16 rounds, so it must pay).

The device's other numbers live here too: its peak FLOP/s (the denominator of MFU) and the TF32
switch of CUDA GPUs. Muon's own precision on a CPU is :func:`minigpt.optim.muon_precision`.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch

from .model import GPTConfig, flops_per_token

SMALL_WIDTH = 128  # at or below this n_embd bf16 autocast does not pay on a CPU (table above)
MIN_SPEEDUP = 1.10  # bf16 must be this much faster than fp32 to be chosen


@functools.lru_cache(maxsize=1)
def cpu_bf16_support() -> tuple[bool, str]:
    """``(True, "AMX-BF16")``-like: whether this CPU has bf16 instructions that PyTorch uses, and which.

    ``ONEDNN_MAX_CPU_ISA`` set to an instruction set without bf16 (``AVX2``: how an AVX2-only laptop
    is emulated) keeps oneDNN, which runs PyTorch's CPU matrix multiplies, from using them.
    """
    limit = onednn_isa_limit()
    if limit:
        return False, f"ONEDNN_MAX_CPU_ISA={limit} rules out bf16 instructions"
    system, machine = platform.system(), platform.machine().lower()
    if system == "Linux":
        try:
            return bf16_from_cpuinfo(Path("/proc/cpuinfo").read_text(errors="replace"))
        except OSError:
            return False, "unknown (no /proc/cpuinfo)"
    if system == "Darwin" and machine in ("arm64", "aarch64"):
        try:
            out = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True, text=True,
                                 timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        return (out == "1"), ("Arm BF16" if out == "1" else "no Arm BF16")
    return False, f"bf16 support unknown on {system} {machine}"


def onednn_isa_limit(value: str | None = None) -> str | None:
    """The value of ``ONEDNN_MAX_CPU_ISA`` when it caps oneDNN below bf16 (e.g. ``AVX2``), else None."""
    value = (os.environ.get("ONEDNN_MAX_CPU_ISA", "") if value is None else value).strip()
    if not value or value.upper() in ("ALL", "DEFAULT") or "BF16" in value.upper() or "AMX" in value.upper():
        return None
    return value


def bf16_from_cpuinfo(cpuinfo: str) -> tuple[bool, str]:
    """Read bf16 support from the text of Linux's ``/proc/cpuinfo`` (x86 ``flags``, Arm ``Features``)."""
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    if "amx_bf16" in flags:
        return True, "AMX-BF16"
    if "avx512_bf16" in flags:
        return True, "AVX512-BF16"
    if "bf16" in flags:  # Arm (FEAT_BF16)
        return True, "Arm BF16"
    return False, "no AVX512-BF16, AMX or Arm BF16"


def probe_bf16_speedup(model: torch.nn.Module, batch_size: int, block_size: int, rounds: int = 5,
                       steps: int = 2) -> float:
    """fp32 time / bf16 time of forward + backward of a copy of ``model`` on a random batch (CPU).

    Alternating rounds, median: a machine busy with something else slows both alike. The model,
    its gradients and every random number generator are left as they were.
    """
    probe = copy.deepcopy(model).cpu().train()
    vocab = probe.config.vocab_size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        x = torch.randint(0, vocab, (batch_size, block_size))
        y = torch.randint(0, vocab, (batch_size, block_size))
        contexts = {"fp32": contextlib.nullcontext, "bf16": lambda: torch.autocast("cpu", dtype=torch.bfloat16)}
        times = {k: [] for k in contexts}

        def run(key):
            for _ in range(steps):
                with contexts[key]():
                    _, loss = probe(x, y)
                loss.backward()
                probe.zero_grad(set_to_none=True)

        for key in contexts:  # warm-up: first calls pay for allocation and kernel selection
            run(key)
        for _ in range(rounds):
            for key in contexts:
                t0 = time.perf_counter()
                run(key)
                times[key].append(time.perf_counter() - t0)
    return statistics.median(times["fp32"]) / statistics.median(times["bf16"])


def choose_dtype(requested: str, device: torch.device, model=None, batch_size: int = 1,
                 block_size: int | None = None) -> tuple[torch.dtype, str]:
    """The dtype for a run and one line saying why. ``requested`` is ``TrainConfig.dtype``."""
    if requested != "auto":
        dtype = getattr(torch, requested)
        if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise ValueError("dtype bfloat16 was asked for, but this GPU does not support it; use float16")
        return dtype, f"{requested}: asked for"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "bfloat16: this GPU supports it"
        return torch.float16, "float16 with loss scaling: this GPU has no bf16"
    if device.type != "cpu":
        return torch.float32, f"float32: the default on {device.type}"
    ok, what = cpu_bf16_support()
    if not ok:
        return torch.float32, f"float32: this CPU has no bf16 instructions ({what})"
    if model is None:
        return torch.float32, "float32: no model to probe"
    width = model.config.n_embd
    if width <= SMALL_WIDTH:
        return torch.float32, (f"float32: a {width}-wide model is too small for bf16 to pay on a CPU "
                               f"(measured crossover above {SMALL_WIDTH})")
    speedup = probe_bf16_speedup(model, batch_size, block_size or model.config.block_size)
    if speedup >= MIN_SPEEDUP:
        return torch.bfloat16, f"bfloat16: {speedup:.2f}x faster than float32 in a short probe ({what})"
    return torch.float32, f"float32: bf16 was {speedup:.2f}x as fast in a short probe (needs {MIN_SPEEDUP:.2f}x)"


# --------------------------------------------------------------------------- TF32 and peak FLOP/s

def enable_tf32(on: bool = True) -> None:
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


# NVIDIA's data sheet: H100 SXM (and H200, the same chip with more memory), dense BF16 tensor cores.
H100_BF16_PEAK = 989e12
# Dense bf16/fp16 tensor-core peaks (FLOP/s) of common GPUs, from their data sheets.
_GPU_PEAKS = [
    ("H200", H100_BF16_PEAK), ("H100", H100_BF16_PEAK), ("H800", H100_BF16_PEAK), ("GH200", H100_BF16_PEAK),
    ("B200", 2250e12),
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
    """Model FLOPs utilization: achieved training FLOP/s (from :func:`~minigpt.model.flops_per_token`)
    over the device's peak (:func:`peak_flops`). A fraction: 0.4 means 40%."""
    device = str(torch.device(device) if device is not None else torch.device("cpu"))
    peak = _peak_cached(device, torch.get_num_threads(), os.environ.get("MINIGPT_PEAK_FLOPS"))
    return flops_per_token(n_params, config) * tokens_per_s / peak
