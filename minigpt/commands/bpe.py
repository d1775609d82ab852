"""``python -m minigpt bpe train|encode|bench``: byte-level BPE from the command line."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .. import data
from ..files import refuse_out_over_source
from .options import integer

VOCAB_HINT = ("it is below 256: a byte-level BPE needs the 256 byte tokens plus the merges, so use 256 or more "
              "(e.g. 512)")


def add_cli(sub) -> None:
    """``python -m minigpt bpe train|encode|bench``."""
    p = sub.add_parser("bpe", help="byte-level BPE: train, encode, benchmark")
    bsub = p.add_subparsers(dest="bpe_command", metavar="SUBCOMMAND")

    t = bsub.add_parser("train", help="train a byte-level BPE on a data set and save it as JSON")
    t.add_argument("--data", default="tinyshakespeare",
                   help="a data set name (tinyshakespeare, names) or a UTF-8 text file")
    t.add_argument("--vocab-size", type=integer("--vocab-size", 256, 1_000_000, low_hint=VOCAB_HINT), default=512,
                   help="256 bytes + merges (default 512)")
    t.add_argument("--pattern", default="gpt4", help="pre-split: gpt4 (default), gpt2, none, or a regex")
    t.add_argument("--out", required=True, help="where to write the tokenizer (JSON)")
    t.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    t.set_defaults(func=_cli_train)

    e = bsub.add_parser("encode", help="encode text with a trained tokenizer")
    e.add_argument("--model", required=True, help="a tokenizer file written by `bpe train`")
    e.add_argument("text", help="the text to encode")
    e.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    e.set_defaults(func=_cli_encode)

    b = bsub.add_parser("bench", help="time training and encoding against the `tokenizers` library")
    b.add_argument("--data", default="tinyshakespeare", help="a data set name or a UTF-8 text file")
    b.add_argument("--vocab-size", type=integer("--vocab-size", 256, 1_000_000, low_hint=VOCAB_HINT), default=512)
    b.add_argument("--pattern", default="gpt4")
    b.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    b.set_defaults(func=_cli_bench)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def _read_data(name: str) -> str:
    # deferred: tokenizer.py imports torch (through utils), ~4 s, and --help must not
    from ..tokenizer import _os_why

    if name in data.DATASETS:
        return data.load_text(name)
    path = Path(name)
    if path.is_dir():
        raise ValueError(f"--data {name!r} is a folder; give a data set ({', '.join(sorted(data.DATASETS))}) "
                         "or a UTF-8 text file")
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"--data {name!r} is not UTF-8 text (byte {e.start}: {e.reason}); "
                             "convert it to UTF-8") from None
        except OSError as e:
            raise ValueError(f"cannot read --data {name!r}: {_os_why(e)}; check its permissions") from None
    raise ValueError(f"--data {name!r} is neither a data set ({', '.join(sorted(data.DATASETS))}) nor a file")


def _cli_train(args) -> int:
    # deferred: bpe.py imports torch (through utils), ~4 s, and --help must not
    from ..bpe import _resolve_pattern, train
    from ..tokenizer import _check_writable

    out = Path(args.out)
    if args.data not in data.DATASETS and Path(args.data).exists():
        refuse_out_over_source(args.data, out, "--data")  # the tokenizer must not replace its own text
    _check_writable(out)  # before training, which can take minutes
    text = _read_data(args.data)
    if not text:
        raise ValueError(f"--data {args.data!r} is empty; give a text to train the tokenizer on")
    _resolve_pattern(args.pattern)  # a bad --pattern fails before training too
    t0 = time.perf_counter()
    tok = train(text, args.vocab_size, pattern=args.pattern, progress=True)
    seconds = time.perf_counter() - t0
    tok.save(args.out)
    n = len(tok.encode(text))
    print(f"trained {tok} on {args.data} ({len(text):,} characters) in {seconds:.1f} s; wrote {args.out}")
    print(f"{n:,} tokens, {len(text) / n:.2f} characters per token")
    if args.json:
        print(json.dumps({"out": str(args.out), "vocab_size": tok.vocab_size, "merges": len(tok.merges),
                          "train_seconds": seconds, "tokens": n, "characters": len(text)}))
    return 0


def _cli_encode(args) -> int:
    from ..bpe import BPETokenizer, _piece  # deferred: bpe.py imports torch (through utils), ~4 s

    tok = BPETokenizer.load(args.model)
    ids = tok.encode(args.text)
    print(" ".join(str(i) for i in ids))
    print("|".join(_piece(tok.token_bytes(i)) for i in ids))
    if args.json:
        print(json.dumps({"ids": ids, "tokens": len(ids)}))
    return 0


def _cli_bench(args) -> int:
    from ..bpe import bench  # deferred: bpe.py imports torch (through utils), ~4 s, and --help must not

    result = bench(_read_data(args.data), args.vocab_size, args.pattern)
    if args.json:
        print(json.dumps(result))
    return 0
