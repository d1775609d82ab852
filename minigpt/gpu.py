"""``python -m minigpt gpu-check`` (``make gpu-check``): is this CUDA machine ready for the course?

On a machine with an NVIDIA GPU and a CUDA build of PyTorch, in under 5 minutes:
1. GPU checks: the model on the GPU matches the CPU in fp32; SDPA (flash attention) matches the
   written-out attention; generation with the KV cache equals recomputation; bf16/fp16 autocast is close to fp32; a fused AdamW step runs;
   ``torch.compile`` works (or the trainer's fallback is reported);
2. the package's model and trainer tests with ``MINIGPT_DEVICE=cuda``;
3. the GPU preset trained for a few hundred steps: tokens/s, MFU, loss.
Without CUDA it says so and exits with status 2.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from .generate import generate
from .model import GPT, GPTConfig
from .precision import enable_tf32
from .train import get_preset, train


def _line(ok: bool, text: str) -> bool:
    print(f"  {'ok  ' if ok else 'FAIL'} {text}", flush=True)
    return ok


def gpu_checks(device: torch.device) -> bool:
    """Numerical checks of the model on the GPU; prints one line each; True when all pass."""
    ok = True
    torch.manual_seed(0)
    cfg = GPTConfig(block_size=128, vocab_size=65, n_layer=2, n_head=4, n_embd=128)
    cpu_model = GPT(cfg).eval()
    gpu_model = GPT(cfg).to(device).eval()
    gpu_model.load_state_dict(cpu_model.state_dict())
    x = torch.randint(0, 65, (4, 128))
    y = torch.randint(0, 65, (4, 128))
    # fp32 on the GPU without TF32, so the comparison is with full fp32 accuracy
    enable_tf32(False)
    try:
        with torch.no_grad():
            lc, loss_c = cpu_model(x, y)
            lg, loss_g = gpu_model(x.to(device), y.to(device))
        err = float((lc - lg.cpu()).abs().max())
        ok &= _line(err < 1e-3, f"fp32 logits GPU vs CPU: max difference {err:.2e} (< 1e-3)")
        math_model = GPT(dataclasses.replace(cfg, attn_impl="math")).to(device).eval()
        math_model.load_state_dict(cpu_model.state_dict())
        with torch.no_grad():
            lm, _ = math_model(x.to(device))
        err = float((lm - lg).abs().max())
        ok &= _line(err < 1e-3, f"SDPA attention vs written-out attention on the GPU: {err:.2e} (< 1e-3)")
        start = torch.randint(0, 65, (2, 8)).to(device)
        cached = generate(gpu_model, start, 150, temperature=0, use_cache=True)
        recomputed = generate(gpu_model, start, 150, temperature=0, use_cache=False)
        ok &= _line(torch.equal(cached, recomputed),
                    "greedy generation with the KV cache equals recomputation on the GPU (150 tokens, past block_size)")
    finally:
        enable_tf32(True)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    with torch.no_grad(), torch.autocast("cuda", dtype=dtype):
        _, loss_a = gpu_model(x.to(device), y.to(device))
    diff = abs(float(loss_a) - float(loss_g))
    ok &= _line(diff < 2e-2, f"{dtype} autocast loss vs fp32: {float(loss_a):.4f} vs {float(loss_g):.4f}")
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        q = torch.randn(2, 4, 128, 64, device=device, dtype=dtype)
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True)
        _line(True, "flash attention kernel available through SDPA")
    except Exception as e:  # noqa: BLE001 - informational: older GPUs have no flash kernel
        _line(True, f"flash attention kernel not available here ({type(e).__name__}); SDPA uses another kernel")
    model = GPT(cfg).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    before = model.lm_head.weight.detach().clone()
    with torch.autocast("cuda", dtype=dtype):
        _, loss = model(x.to(device), y.to(device))
    loss.backward()
    opt.step()
    ok &= _line(not torch.equal(before, model.lm_head.weight) and bool(torch.isfinite(model.lm_head.weight).all()),
                "fused AdamW step updates the weights")
    try:
        t0 = time.perf_counter()
        compiled = torch.compile(model)
        with torch.autocast("cuda", dtype=dtype):
            _, lc2 = compiled(x.to(device), y.to(device))
        lc2.backward()
        torch.cuda.synchronize()
        _line(True, f"torch.compile works ({time.perf_counter() - t0:.1f} s to compile)")
    except Exception as e:  # noqa: BLE001 - the trainer falls back; report, do not fail
        _line(True, f"torch.compile failed here ({type(e).__name__}); the trainer falls back to eager mode")
    return ok


def run_tests(timeout: int = 150) -> bool:
    """The package's model, trainer and generation tests with MINIGPT_DEVICE=cuda (those that exist)."""
    root = Path(__file__).resolve().parent.parent
    files = [f for f in ("tests/test_model.py", "tests/test_train.py", "tests/test_generate.py") if (root / f).is_file()]
    if not files:
        return _line(True, "no test files found next to the package (installed without tests); skipped")
    env = dict(os.environ, MINIGPT_DEVICE="cuda")
    cmd = [sys.executable, "-m", "pytest", *files, "-q", "-p", "no:nbval", "-o", "addopts=", "-x"]
    try:
        p = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return _line(False, f"pytest {' '.join(files)} took over {timeout} s")
    tail = (p.stdout.strip().splitlines() or [""])[-1]
    if p.returncode != 0:
        print(p.stdout[-3000:], p.stderr[-2000:])
    return _line(p.returncode == 0, f"pytest {' '.join(files)} on cuda: {tail}")


def train_check(steps: int, device: torch.device) -> dict:
    """The GPU preset for ``steps`` steps (its schedule compressed to them); returns the summary."""
    cfg = get_preset("shakespeare-char-gpu")
    cfg = dataclasses.replace(cfg, max_iters=steps, lr_decay_iters=steps if steps < cfg.max_iters else cfg.lr_decay_iters,
                              eval_interval=max(1, min(cfg.eval_interval, steps)), sample_tokens=200,
                              out_dir=tempfile.mkdtemp(prefix="minigpt-gpu-check-"))
    result = train(cfg, device=device, progress=True)
    s = result.summary()
    print(f"  shakespeare-char-gpu, {steps} steps: val loss {s['val_loss']:.4f} (best {s['best_val_loss']:.4f}), "
          f"train loss {s['train_loss']:.4f}, "
          f"{s['tokens_per_s']:,.0f} tokens/s, MFU {100 * s['mfu']:.1f}%, {s['seconds']:.1f} s "
          f"(compile {'on' if cfg.compile is not False else 'off'})", flush=True)
    return s
