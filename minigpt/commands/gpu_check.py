"""``python -m minigpt gpu-check``: on a CUDA machine, GPU checks, the tests on the GPU and a short run."""

from __future__ import annotations

import json
import time

from .options import integer


def add_cli(sub) -> None:
    """``python -m minigpt gpu-check [--steps N] [--no-tests] [--json]``."""
    p = sub.add_parser("gpu-check", help="on a CUDA machine: GPU checks, tests on the GPU, a short GPU training run")
    p.add_argument("--steps", type=integer("--steps", 1, 1_000_000), default=300,
                   help="training steps of the GPU preset (default 300; 5000 = full)")
    p.add_argument("--no-tests", action="store_true", help="skip the pytest run on the GPU")
    p.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    p.set_defaults(func=_cli_gpu_check)


def _cli_gpu_check(args) -> int:
    # deferred: importing torch takes ~4 s and --help must not
    import torch

    from ..gpu import _line, gpu_checks, run_tests, train_check
    from ..train import peak_flops
    from ..utils import describe_device

    if not torch.cuda.is_available():
        raise RuntimeError(
            f"no CUDA GPU here (torch {torch.__version__}, built with CUDA {torch.version.cuda}): gpu-check needs an "
            "NVIDIA GPU and a CUDA build of PyTorch (`make setup` installs one when nvidia-smi is on PATH)")
    t0 = time.perf_counter()
    device = torch.device("cuda")
    print(f"gpu-check on {describe_device(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"{torch.cuda.device_count()} GPU(s), peak {peak_flops(device) / 1e12:.0f} TFLOP/s (bf16, for MFU)", flush=True)
    print("1. GPU checks")
    ok = gpu_checks(device)
    if not args.no_tests:
        print("2. package tests on the GPU")
        ok &= run_tests()
    print(f"3. training the GPU preset for {args.steps} steps")
    s = train_check(args.steps, device)
    # 300 steps of the baby GPT take the loss from ln(65) = 4.17 to about 2 (nanoGPT: ~2.0 at step 250)
    ok &= _line(s["val_loss"] == s["val_loss"] and s["val_loss"] < (2.6 if args.steps >= 250 else 4.0),
                f"val loss {s['val_loss']:.4f} is finite and below {2.6 if args.steps >= 250 else 4.0}")
    total = time.perf_counter() - t0
    print(f"gpu-check {'passed' if ok else 'FAILED'} in {total:.0f} s")
    if args.json:
        print(json.dumps({"ok": bool(ok), "seconds": total, "device": describe_device(device), **s}))
    return 0 if ok else 1
