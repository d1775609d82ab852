"""``python -m minigpt export`` and ``python -m minigpt import-hf``: minigpt checkpoints <-> Hugging Face folders."""

from __future__ import annotations

import json
from pathlib import Path

from ..files import refuse_out_over_source


def add_cli(sub) -> None:
    """``python -m minigpt export`` and ``python -m minigpt import-hf``."""
    e = sub.add_parser("export", help="write a minigpt checkpoint as a Hugging Face model folder")
    e.add_argument("--ckpt", required=True, help="a run folder written by `train` (or one checkpoint folder)")
    e.add_argument("--out", required=True, help="the folder to write (must be new or empty, and outside --ckpt)")
    e.add_argument("--overwrite", action="store_true", help="write into a folder that is not empty")
    e.add_argument("--format", choices=["auto", "gpt2", "llama", "qwen3"], default="auto",
                   help="auto (default): gpt2 for GPT-2's block, llama or qwen3 (with QK-norm) for a RoPE model")
    e.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    e.set_defaults(func=_cli_export)
    i = sub.add_parser("import-hf", help="load a GPT-2, Llama or Qwen3 Hugging Face model into a minigpt checkpoint")
    i.add_argument("--model", required=True, help="a local HF model folder, or a Hub name such as gpt2 (online)")
    i.add_argument("--out", required=True, help="the run folder to write (must be new or empty, and outside --model)")
    i.add_argument("--overwrite", action="store_true", help="write into a folder that is not empty")
    i.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    i.set_defaults(func=_cli_import)


def _cli_export(args) -> int:
    # deferred: importing torch takes ~4 s and --help must not
    from ..checkpoint import load_checkpoint
    from ..hf import export_hf
    from ..llama import export_llama, llama_family

    refuse_out_over_source(args.ckpt, args.out, "--ckpt")  # before loading: the run must stay whole
    ck = load_checkpoint(args.ckpt, load_state=False)
    refuse_out_over_source(ck.path, args.out, "--ckpt")  # the checkpoint folder the run points to, too
    fmt = args.format
    if fmt == "auto":
        fmt = "gpt2" if ck.model_config.positions == "learned" else llama_family(ck.model_config)
    if fmt == "gpt2":
        out = export_hf(ck, args.out, overwrite=args.overwrite)
    else:  # refuses, by name, an option the family's block does not have
        out = export_llama(ck, args.out, family=fmt, overwrite=args.overwrite)
    print(f"exported {ck.path} (step {ck.step}, {ck.model.num_params():,} parameters, {ck.tokenizer}) to {out}")
    print(f"load it with AutoModelForCausalLM.from_pretrained({str(out)!r}) and AutoTokenizer.from_pretrained(...)")
    if args.json:
        print(json.dumps({"out": str(out), "step": ck.step, "files": sorted(p.name for p in out.iterdir())}))
    return 0


def _cli_import(args) -> int:
    # deferred: importing torch takes ~4 s and --help must not
    from ..checkpoint import load_checkpoint
    from ..hf import import_hf
    from ..llama import import_llama

    local = Path(args.model).expanduser()
    if local.exists():  # a local folder (a Hub name is not a path here)
        refuse_out_over_source(local, args.out, "--model")
    model_type = None
    if (local / "config.json").is_file():
        try:
            model_type = json.loads((local / "config.json").read_text(encoding="utf-8")).get("model_type")
        except (ValueError, OSError, AttributeError):
            model_type = None  # import_hf reports the damaged config in one line
    if model_type in ("llama", "qwen3"):
        out = import_llama(args.model, args.out, overwrite=args.overwrite)
    else:
        out = import_hf(args.model, args.out, overwrite=args.overwrite)
    ck = load_checkpoint(out, load_state=False)
    c = ck.model_config
    print(f"imported {args.model} ({c.n_layer} layers, {c.n_embd} wide, {ck.model.num_params():,} parameters, "
          f"{ck.tokenizer}) into {out}")
    if args.json:
        print(json.dumps({"out": str(out), "params": ck.model.num_params(), "vocab_size": c.vocab_size}))
    return 0
