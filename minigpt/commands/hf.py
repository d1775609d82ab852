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
    e.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    e.set_defaults(func=_cli_export)
    i = sub.add_parser("import-hf", help="load a GPT-2-style Hugging Face model into a minigpt checkpoint")
    i.add_argument("--model", required=True, help="a local HF model folder, or a Hub name such as gpt2 (online)")
    i.add_argument("--out", required=True, help="the run folder to write (must be new or empty, and outside --model)")
    i.add_argument("--overwrite", action="store_true", help="write into a folder that is not empty")
    i.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    i.set_defaults(func=_cli_import)


def _cli_export(args) -> int:
    # deferred: importing torch takes ~4 s and --help must not
    from ..checkpoint import load_checkpoint
    from ..hf import export_hf

    refuse_out_over_source(args.ckpt, args.out, "--ckpt")  # before loading: the run must stay whole
    ck = load_checkpoint(args.ckpt, load_state=False)
    refuse_out_over_source(ck.path, args.out, "--ckpt")  # the checkpoint folder the run points to, too
    out = export_hf(ck, args.out, overwrite=args.overwrite)
    print(f"exported {ck.path} (step {ck.step}, {ck.model.num_params():,} parameters, {ck.tokenizer}) to {out}")
    print(f"load it with AutoModelForCausalLM.from_pretrained({str(out)!r}) and AutoTokenizer.from_pretrained(...)")
    if args.json:
        print(json.dumps({"out": str(out), "step": ck.step, "files": sorted(p.name for p in out.iterdir())}))
    return 0


def _cli_import(args) -> int:
    # deferred: importing torch takes ~4 s and --help must not
    from ..checkpoint import load_checkpoint
    from ..hf import import_hf

    if Path(args.model).expanduser().exists():  # a local folder (a Hub name is not a path here)
        refuse_out_over_source(Path(args.model).expanduser(), args.out, "--model")
    out = import_hf(args.model, args.out, overwrite=args.overwrite)
    ck = load_checkpoint(out, load_state=False)
    c = ck.model_config
    print(f"imported {args.model} ({c.n_layer} layers, {c.n_embd} wide, {ck.model.num_params():,} parameters, "
          f"{ck.tokenizer}) into {out}")
    if args.json:
        print(json.dumps({"out": str(out), "params": ck.model.num_params(), "vocab_size": c.vocab_size}))
    return 0
