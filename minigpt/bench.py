"""Benchmarks: ``python -m minigpt bench train`` times training steps of ``minigpt``'s GPT and of
``transformers``' ``GPT2LMHeadModel`` with the same sizes and weights, in the same run, on the same
device, and prints tokens/s and MFU for each.

A training step is what the trainer does: forward, cross-entropy loss, backward, AdamW update.
The two models are timed in alternating rounds and the median round is reported, so a machine
that is busy with something else slows both alike.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time

import torch

from .model import GPT, GPTConfig
from .train import estimate_mfu, peak_flops

# (name, model sizes, batch size on CPU, batch size on GPU)
CONFIGS = [
    ("small", dict(n_layer=4, n_head=4, n_embd=128, block_size=64), 12, 64),
    ("baby-gpt", dict(n_layer=6, n_head=6, n_embd=384, block_size=256), 4, 64),
]


def _ours_step(model, opt, x, y, autocast):
    with autocast:
        _, loss = model(x, y)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


def _hf_step(model, opt, x, y, autocast):
    # GPT2LMHeadModel computes the same next-token cross-entropy from logits; labels -> loss would
    # shift inside and drop a position, so the loss is computed here exactly as minigpt does.
    with autocast:
        logits = model(input_ids=x).logits
    loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)).float(), y.reshape(-1))
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


def bench_train(device=None, configs=None, rounds: int = 5, steps_per_round: int = 3, warmup: int = 2,
                progress: bool = True) -> list[dict]:
    """Tokens/s and MFU of a training step for minigpt and GPT2LMHeadModel at each size.

    Returns one dict per (size, model): config, model, batch_size, block_size, params,
    tokens_per_s, mfu, seconds_per_step.
    """
    from .hf import to_hf
    from .utils import get_device

    device = get_device(device)
    rows = []
    dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if device.type == "cuda" \
        else torch.float32
    autocast = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
    for name, sizes, cpu_batch, gpu_batch in (configs or CONFIGS):
        batch = gpu_batch if device.type == "cuda" else cpu_batch
        torch.manual_seed(0)
        cfg = GPTConfig(vocab_size=65, dropout=0.0, **sizes)
        ours = GPT(cfg)
        hf = to_hf(ours)
        ours.to(device).train()
        hf.to(device).train()
        fused = {"fused": True} if device.type == "cuda" else {}
        models = {
            "minigpt": (ours, torch.optim.AdamW(ours.parameters(), lr=1e-4, **fused), _ours_step),
            "transformers": (hf, torch.optim.AdamW(hf.parameters(), lr=1e-4, **fused), _hf_step),
        }
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, cfg.vocab_size, (batch, cfg.block_size), generator=g).to(device)
        y = torch.randint(0, cfg.vocab_size, (batch, cfg.block_size), generator=g).to(device)
        times = {k: [] for k in models}
        for m, opt, step in models.values():
            for _ in range(warmup):
                step(m, opt, x, y, autocast)
        for _ in range(rounds):
            for key, (m, opt, step) in models.items():
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(steps_per_round):
                    step(m, opt, x, y, autocast)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times[key].append((time.perf_counter() - t0) / steps_per_round)
        n_params = ours.num_params()
        for key in models:
            sec = statistics.median(times[key])
            tps = batch * cfg.block_size / sec
            row = {"config": name, "model": key, "batch_size": batch, "block_size": cfg.block_size,
                   "params": n_params, "tokens_per_s": tps, "mfu": estimate_mfu(n_params, cfg, tps, device),
                   "seconds_per_step": sec}
            rows.append(row)
            if progress:
                print(f"{name:<9} {key:<13} {n_params / 1e6:6.2f}M params  batch {batch:>3} x {cfg.block_size:<4}"
                      f"{tps:>12,.0f} tokens/s   MFU {100 * row['mfu']:5.2f}%   {1000 * sec:8.1f} ms/step",
                      flush=True)
        del models, ours, hf
    return rows


def add_cli(sub) -> None:
    """``python -m minigpt bench train [--device D] [--json]``."""
    p = sub.add_parser("bench", help="benchmarks: `bench train` times minigpt vs transformers' GPT-2")
    p.add_argument("what", choices=["train"], help="train: tokens/s and MFU of training steps")
    p.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--rounds", type=int, default=5, help="alternating timing rounds (median reported)")
    p.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    p.set_defaults(func=_cli_bench)


def _cli_bench(args) -> int:
    from .utils import describe_device, get_device

    if args.rounds <= 0:
        raise ValueError(f"--rounds must be a positive integer, got {args.rounds}")
    device = get_device(args.device)
    print(f"training-step benchmark on {describe_device(device)}, torch {torch.__version__}; "
          f"peak {peak_flops(device) / 1e12:.2f} TFLOP/s for MFU")
    rows = bench_train(device, rounds=args.rounds)
    for name in dict.fromkeys(r["config"] for r in rows):
        a, b = (next(r for r in rows if r["config"] == name and r["model"] == m) for m in ("minigpt", "transformers"))
        print(f"{name}: minigpt / transformers = {a['tokens_per_s'] / b['tokens_per_s']:.2f}x")
    if args.json:
        print(json.dumps({"device": str(device), "torch": torch.__version__, "results": rows}))
    return 0
