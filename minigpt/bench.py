"""Benchmarks of ``minigpt`` against ``transformers``' ``GPT2LMHeadModel``, same sizes and weights,
in the same run, on the same device.

- ``python -m minigpt bench train``: tokens/s and MFU of training steps (forward, cross-entropy,
  backward, AdamW update).
- ``python -m minigpt bench generate``: tokens/s of greedy generation at the baby-GPT size:
  minigpt recomputing the whole context, minigpt with its KV cache, and ``generate()`` of
  transformers with its own cache.

Contenders are timed in alternating rounds and the median round is reported, so a machine that is
busy with something else slows them all alike.
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


# The generation benchmark's setting: nanoGPT's baby GPT, one sequence, a 16-token prompt, 240 new tokens.
GENERATE_SIZES = dict(n_layer=6, n_head=6, n_embd=384, block_size=256, vocab_size=65)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_generate(device=None, sizes: dict | None = None, prompt_len: int = 16, new_tokens: int = 240,
                   batch_size: int = 1, rounds: int = 3, progress: bool = True) -> dict:
    """Greedy generation speed of the same weights three ways; returns a dict with ``recompute``,
    ``cache`` and ``transformers`` (each with ``tokens_per_s`` and ``seconds``), ``same_tokens``
    (minigpt's cache and transformers produce identical tokens), ``cache_matches_recompute``, and
    the ratios ``cache_vs_recompute`` and ``cache_vs_transformers``."""
    from .generate import generate
    from .hf import to_hf
    from .utils import get_device

    device = get_device(device)
    sizes = dict(GENERATE_SIZES if sizes is None else sizes)
    if prompt_len + new_tokens > sizes["block_size"]:
        raise ValueError(f"prompt ({prompt_len}) + new tokens ({new_tokens}) must fit in block_size "
                         f"{sizes['block_size']}, so all three generate the same way")
    torch.manual_seed(0)
    model = GPT(GPTConfig(dropout=0.0, **sizes)).to(device).eval()
    hf = to_hf(model.cpu()).to(device).eval()
    model.to(device)
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, sizes["vocab_size"], (batch_size, prompt_len), generator=g).to(device)
    attention_mask = torch.ones_like(prompt)

    def ours(use_cache):
        return lambda: generate(model, prompt, new_tokens, temperature=0, use_cache=use_cache)

    def theirs():
        # greedy, exactly new_tokens (no stopping at an end-of-text token), transformers' own KV cache
        return hf.generate(prompt, attention_mask=attention_mask, max_new_tokens=new_tokens,
                           min_new_tokens=new_tokens, do_sample=False, num_beams=1, use_cache=True,
                           pad_token_id=0, eos_token_id=None)

    contenders = {"recompute": ours(False), "cache": ours(True), "transformers": theirs}
    outputs = {}
    with torch.inference_mode():
        for key, fn in contenders.items():  # warm-up, and the tokens each one makes
            outputs[key] = fn()
        times = {k: [] for k in contenders}
        for _ in range(rounds):
            for key, fn in contenders.items():
                _sync(device)
                t0 = time.perf_counter()
                fn()
                _sync(device)
                times[key].append(time.perf_counter() - t0)
    result = {"device": str(device), "torch": torch.__version__, "batch_size": batch_size,
              "prompt_tokens": prompt_len, "new_tokens": new_tokens, "sizes": sizes,
              "params": model.num_params()}
    for key in contenders:
        sec = statistics.median(times[key])
        result[key] = {"tokens_per_s": batch_size * new_tokens / sec, "seconds": sec}
    result["same_tokens"] = bool(torch.equal(outputs["cache"].cpu(), outputs["transformers"].cpu()))
    result["cache_matches_recompute"] = bool(torch.equal(outputs["cache"].cpu(), outputs["recompute"].cpu()))
    result["cache_vs_recompute"] = result["cache"]["tokens_per_s"] / result["recompute"]["tokens_per_s"]
    result["cache_vs_transformers"] = result["cache"]["tokens_per_s"] / result["transformers"]["tokens_per_s"]
    if progress:
        for key, label in (("recompute", "minigpt, recomputing the context"), ("cache", "minigpt, KV cache"),
                           ("transformers", "transformers generate()")):
            r = result[key]
            print(f"{label:<34} {r['tokens_per_s']:>10,.0f} tokens/s   {r['seconds']:7.3f} s for {new_tokens} tokens",
                  flush=True)
    return result


def add_cli(sub) -> None:
    """``python -m minigpt bench train|generate [--device D] [--json]``."""
    p = sub.add_parser("bench", help="benchmarks of minigpt vs transformers' GPT-2: training steps, generation")
    p.add_argument("what", choices=["train", "generate"],
                   help="train: tokens/s and MFU of training steps; generate: tokens/s of greedy generation")
    p.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--rounds", type=int, default=None,
                   help="alternating timing rounds, median reported (default: 5 for train, 3 for generate)")
    p.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    p.set_defaults(func=_cli_bench)


def _cli_bench(args) -> int:
    from .utils import describe_device, get_device

    if args.rounds is None:
        args.rounds = 3 if args.what == "generate" else 5
    if args.rounds <= 0:
        raise ValueError(f"--rounds must be a positive integer, got {args.rounds}")
    device = get_device(args.device)
    if args.what == "generate":
        return _cli_bench_generate(args, device)
    print(f"training-step benchmark on {describe_device(device)}, torch {torch.__version__}; "
          f"peak {peak_flops(device) / 1e12:.2f} TFLOP/s for MFU")
    rows = bench_train(device, rounds=args.rounds)
    for name in dict.fromkeys(r["config"] for r in rows):
        a, b = (next(r for r in rows if r["config"] == name and r["model"] == m) for m in ("minigpt", "transformers"))
        print(f"{name}: minigpt / transformers = {a['tokens_per_s'] / b['tokens_per_s']:.2f}x")
    if args.json:
        print(json.dumps({"device": str(device), "torch": torch.__version__, "results": rows}))
    return 0


def _cli_bench_generate(args, device) -> int:
    from .utils import describe_device

    s = GENERATE_SIZES
    print(f"generation benchmark on {describe_device(device)}, torch {torch.__version__}: "
          f"{s['n_layer']} layers, {s['n_head']} heads, {s['n_embd']} wide, context {s['block_size']}, "
          f"batch 1, 16-token prompt, 240 new tokens, greedy; median of {args.rounds} rounds")
    r = bench_generate(device, rounds=args.rounds)
    print(f"KV cache vs recomputing: {r['cache_vs_recompute']:.1f}x | KV cache vs transformers: "
          f"{r['cache_vs_transformers']:.2f}x | same tokens as transformers: {r['same_tokens']}")
    if args.json:
        print(json.dumps(r))
    return 0
