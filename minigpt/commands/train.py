"""``python -m minigpt train ...``: train a GPT (checkpoints, resume, torchrun for DDP)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
from pathlib import Path

from ..config import ACTIVATIONS, NORMS, POSITIONS, PRESETS, TrainConfig, get_preset
from .options import integer, real, seed


def add_cli(sub) -> None:
    """``python -m minigpt train ...`` (``sample`` lives in :mod:`minigpt.commands.sample`)."""
    p = sub.add_parser("train", help="train a GPT on Tiny Shakespeare (checkpoints, resume, torchrun for DDP)")
    p.add_argument("--preset", default="shakespeare-char-cpu", help=f"one of: {', '.join(sorted(PRESETS))}")
    p.add_argument("--max-iters", type=integer("--max-iters", 0, 100_000_000, name="max_iters"),
                   help="optimizer steps")
    p.add_argument("--out", help="run folder for checkpoints (default: runs/PRESET at the top of the course, "
                                "where the lessons look); 'none' for no checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--overwrite", action="store_true", help="start again in an --out that already holds a run")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: the best available)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the model (--no-compile: off)")
    p.add_argument("--batch-size", type=integer("--batch-size", 1, 65_536, name="batch_size"))
    p.add_argument("--grad-accum", type=integer("--grad-accum", 1, 65_536, name="grad_accum_steps"),
                   help="micro-batches per optimizer step")
    p.add_argument("--block-size", type=integer("--block-size", 1, 1_048_576, name="block_size"))
    p.add_argument("--lr", type=real("--lr", 0, 10, low_open=True, name="learning_rate"), help="peak learning rate")
    p.add_argument("--dropout", type=real("--dropout", 0, 0.9, name="dropout"),
                   help="dropout probability in attention, MLP and embeddings (regularises a model that overfits)")
    p.add_argument("--weight-decay", type=real("--weight-decay", 0, 10, name="weight_decay"),
                   help="decoupled weight decay of the matrices (AdamW and Muon)")
    p.add_argument("--eval-interval", type=integer("--eval-interval", 1, 100_000_000, name="eval_interval"))
    p.add_argument("--eval-tokens", type=integer("--eval-tokens", 1, 10**10, name="eval_tokens"),
                   help="validation tokens per evaluation (default: all)")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"],
                   help="auto: bf16 on GPUs; on a CPU bf16 only where a short probe finds it faster")
    m = p.add_argument_group("model (the preset's unless given; defaults are GPT-2's block, see lesson 14)")
    m.add_argument("--n-layer", type=integer("--n-layer", 1, 1024, name="n_layer"), help="blocks")
    m.add_argument("--n-head", type=integer("--n-head", 1, 1024, name="n_head"), help="query heads")
    m.add_argument("--n-embd", type=integer("--n-embd", 1, 65_536, name="n_embd"), help="width of the residual stream")
    m.add_argument("--activation", choices=ACTIVATIONS,
                   help="the MLP: gelu_tanh (GPT-2's), gelu, relu2 (squared ReLU) or swiglu (gated, Llama's)")
    m.add_argument("--mlp-hidden", type=integer("--mlp-hidden", 1, 1_048_576, name="mlp_hidden"),
                   help="the MLP's hidden width (default: 4 n_embd, or 8/3 n_embd for swiglu: equal parameters)")
    m.add_argument("--positions", choices=POSITIONS, help="learned (GPT-2's table) or rope (rotary)")
    m.add_argument("--rope-theta", type=real("--rope-theta", 0, 1e9, low_open=True, name="rope_theta"),
                   help="RoPE's base (default 10000)")
    m.add_argument("--norm", choices=NORMS, help="layernorm (GPT-2's) or rmsnorm")
    m.add_argument("--n-kv-head", type=integer("--n-kv-head", 1, 1024, name="n_kv_head"),
                   help="key/value heads, a divisor of the heads (grouped-query attention; 1: multi-query)")
    m.add_argument("--qk-norm", action=argparse.BooleanOptionalAction, default=None,
                   help="RMSNorm on each head's queries and keys (Qwen3)")
    m.add_argument("--bias", action=argparse.BooleanOptionalAction, default=None, help="biases in linear layers and norms")
    m.add_argument("--tie-embeddings", action=argparse.BooleanOptionalAction, default=None,
                   help="the output head is the token embedding (GPT-2); --no-tie-embeddings: a head of its own")
    p.add_argument("--optimizer", choices=["adamw", "muon"],
                   help="adamw, or muon: Muon for the blocks' matrices and AdamW for the rest")
    p.add_argument("--seed", type=seed())
    p.add_argument("--quiet", action="store_true", help="no progress bar or samples")
    p.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    p.set_defaults(func=_cli_train)


def config_from_args(args) -> TrainConfig:
    """The preset named by ``--preset`` with the command line's overrides applied."""
    cfg = get_preset(args.preset)
    overrides = {"max_iters": args.max_iters, "compile": args.compile, "batch_size": args.batch_size,
                 "grad_accum_steps": args.grad_accum, "block_size": args.block_size, "learning_rate": args.lr,
                 "dropout": args.dropout, "weight_decay": args.weight_decay,
                 "eval_interval": args.eval_interval, "eval_tokens": args.eval_tokens, "dtype": args.dtype,
                 "activation": args.activation, "optimizer": args.optimizer,
                 "seed": args.seed, "n_layer": args.n_layer, "n_head": args.n_head, "n_embd": args.n_embd,
                 "mlp_hidden": args.mlp_hidden, "positions": args.positions, "rope_theta": args.rope_theta,
                 "norm": args.norm, "n_kv_head": args.n_kv_head, "qk_norm": args.qk_norm, "bias": args.bias,
                 "tie_embeddings": args.tie_embeddings}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.out is not None:
        overrides["out_dir"] = None if args.out.lower() == "none" else args.out
    else:  # the course's run folder, where the lessons (minigpt.pretrained) look for this preset
        from ..utils import runs_dir  # deferred: utils.py imports torch, ~4 s, and --help must not

        overrides["out_dir"] = str(runs_dir() / args.preset)
    if "learning_rate" in overrides and overrides["learning_rate"] < cfg.min_lr:
        overrides["min_lr"] = overrides["learning_rate"] / 10
    if "max_iters" in overrides and cfg.lr_decay_iters is not None and cfg.lr_decay_iters > overrides["max_iters"]:
        overrides["lr_decay_iters"] = overrides["max_iters"]
    if "max_iters" in overrides and "eval_interval" not in overrides:
        overrides["eval_interval"] = max(1, min(cfg.eval_interval, overrides["max_iters"]))
    return dataclasses.replace(cfg, **overrides)


def _cli_train(args) -> int:
    # deferred: importing torch takes ~4 s and --help must not
    from ..train import _dist_info, plot_losses, train

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
