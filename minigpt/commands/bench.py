"""``python -m minigpt bench train|generate``: minigpt vs transformers' GPT-2, training steps and generation."""

from __future__ import annotations

import json

from .options import integer


def add_cli(sub) -> None:
    """``python -m minigpt bench train|generate [--device D] [--json]``."""
    p = sub.add_parser("bench", help="benchmarks of minigpt vs transformers' GPT-2: training steps, generation")
    p.add_argument("what", choices=["train", "generate"],
                   help="train: tokens/s and MFU of training steps; generate: tokens/s of greedy generation")
    p.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--rounds", type=integer("--rounds", 1, 1000), default=None,
                   help="alternating timing rounds, median reported (default: 5 for train, 3 for generate)")
    p.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    p.set_defaults(func=_cli_bench)


def _cli_bench(args) -> int:
    # deferred: importing torch takes ~4 s and --help must not
    import torch

    from ..bench import bench_train, summarize_train
    from ..precision import cpu_bf16_support
    from ..train import peak_flops
    from ..utils import describe_device, get_device

    if args.rounds is None:
        args.rounds = 3 if args.what == "generate" else 5
    device = get_device(args.device)
    if args.what == "generate":
        return _cli_bench_generate(args, device)
    extra = ""
    if device.type == "cpu":
        ok, what = cpu_bf16_support()
        extra = f"; bf16 instructions: {what if ok else 'none (' + what + '), bf16 is emulated'}"
    print(f"training-step benchmark on {describe_device(device)}, torch {torch.__version__}; "
          f"peak {peak_flops(device) / 1e12:.2f} TFLOP/s for MFU{extra}; median of {args.rounds} alternating rounds")
    rows = bench_train(device, rounds=args.rounds)
    print(summarize_train(rows))
    if args.json:
        print(json.dumps({"device": str(device), "torch": torch.__version__, "results": rows}))
    return 0


def _cli_bench_generate(args, device) -> int:
    # deferred: importing torch takes ~4 s and --help must not
    import torch

    from ..bench import GENERATE_SIZES, bench_generate
    from ..utils import describe_device

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
