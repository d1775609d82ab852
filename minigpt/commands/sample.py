"""``python -m minigpt sample ...``: text from a trained checkpoint."""

from __future__ import annotations

import json
import sys
import time

from .options import integer, real, seed

MAX_NEW_TOKENS = 1_000_000  # more would only fill the memory with text


def add_sampling_options(p, temperature: float, top_p: float | None, max_new_tokens: int, seed_default: int,
                         max_new_help: str | None = None) -> None:
    """The sampling settings ``sample`` and ``chat`` share, each checked where it is parsed."""
    p.add_argument("--max-new-tokens", type=integer("--max-new-tokens", 0, MAX_NEW_TOKENS, name="max new tokens"),
                   default=max_new_tokens, help=max_new_help)
    p.add_argument("--temperature", type=real("--temperature", 0, 1000), default=temperature,
                   help="0 = greedy; below 1 sharper, above 1 flatter")
    p.add_argument("--top-k", type=integer("--top-k", 1, 10_000_000), default=None,
                   help="keep only the k most likely tokens")
    p.add_argument("--top-p", type=real("--top-p", 0, 1, low_open=True), default=top_p,
                   help="keep the smallest set of tokens with this much probability")
    p.add_argument("--seed", type=seed(), default=seed_default)


def add_cli(sub) -> None:
    """``python -m minigpt sample ...``: text from a trained checkpoint."""
    s = sub.add_parser("sample", help="generate text from a trained checkpoint (greedy, temperature, top-k, top-p)")
    s.add_argument("--ckpt", help="a run folder written by `train` (its --out); default: the course's run "
                                  "for this device, e.g. runs/shakespeare-char-cpu")
    s.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    add_sampling_options(s, temperature=0.8, top_p=None, max_new_tokens=500, seed_default=1337)
    s.add_argument("--repetition", type=real("--repetition", 0, 100, low_open=True, name="repetition penalty"),
                   default=1.0, help="repetition penalty (CTRL), e.g. 1.2; 1 = none")
    s.add_argument("--frequency", type=real("--frequency", -100, 100, name="frequency penalty"), default=0.0,
                   help="frequency penalty per earlier occurrence; 0 = none")
    s.add_argument("--stop", action="append", default=None, help="stop at this string (may be given several times)")
    s.add_argument("--stream", action="store_true", help="print each character as soon as it is made")
    s.add_argument("--no-cache", action="store_true", help="recompute the whole context for every token")
    s.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    s.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    s.set_defaults(func=_cli_sample)


def load_for_command(ckpt, device_name):
    """The checkpoint ``--ckpt`` names (default: the course's run for this device) on ``--device``."""
    # deferred: importing torch takes ~4 s and --help must not
    from ..checkpoint import load_checkpoint
    from ..pretrained import course_config
    from ..utils import get_device

    device = get_device(device_name)
    if ckpt is None:
        ckpt = course_config(fast=False, device=device).out_dir
    return load_checkpoint(ckpt, device=device, load_state=False)


def _cli_sample(args) -> int:
    import torch  # deferred: importing torch takes ~4 s and --help must not

    from ..generate import SamplingSettings, check_max_new_tokens, stream  # deferred: imports torch

    settings = SamplingSettings.from_options(args)  # every sampling option, checked before loading
    check_max_new_tokens(args.max_new_tokens)
    ck = load_for_command(args.ckpt, args.device)
    prompt = args.prompt or "\n"
    ck.tokenizer.encode(prompt)  # an unknown character fails here, before anything is printed
    g = torch.Generator(device="cpu").manual_seed(args.seed)
    pieces = stream(ck.model, ck.tokenizer, prompt, args.max_new_tokens, stop=args.stop,
                    settings=settings, generator=g, use_cache=not args.no_cache)
    t0 = time.perf_counter()
    if args.stream:
        sys.stdout.write(prompt)
        out = []
        for piece in pieces:
            out.append(piece)
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        text = prompt + "".join(out)
    else:
        text = prompt + "".join(pieces)
        print(text)
    seconds = time.perf_counter() - t0
    if args.json:
        print(json.dumps({"text": text, "prompt": prompt, "new_characters": len(text) - len(prompt),
                          "step": ck.step, "ckpt": str(ck.path), "seconds": seconds}))
    return 0
