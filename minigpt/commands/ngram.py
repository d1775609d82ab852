"""``python -m minigpt ngram``: fit an n-gram model and print the NLL and perplexity of every split."""

from __future__ import annotations

import json
import math
import random

from ..config import SMOOTHINGS
from .options import integer, real, seed


def add_cli(sub) -> None:
    """``python -m minigpt ngram --data names --order 2 --smoothing add-k --k 1 --json``."""
    p = sub.add_parser("ngram", help="fit an n-gram model on train; print the NLL and perplexity of every split "
                                        "(names: train/dev/test; tinyshakespeare: train/val)")
    p.add_argument("--data", default="names", help="names or tinyshakespeare (default: names)")
    p.add_argument("--level", default="char", help="char or word (word: tinyshakespeare only; default: char)")
    p.add_argument("--order", type=integer("--order", 1, 20), default=2,
                   help="n: 1 = unigram, 2 = bigram, ... up to 20 (default: 2)")
    p.add_argument("--smoothing", default="add-k", help=f"one of: {', '.join(SMOOTHINGS)} (default: add-k)")
    p.add_argument("--k", type=real("--k", 0, 1e6), default=1.0, help="add-k's pseudo-count, >= 0 (default: 1)")
    p.add_argument("--discount", type=real("--discount", 0, 1, low_open=True), default=None,
                   help="Kneser-Ney discount in (0, 1] (default: estimated per order from the counts)")
    p.add_argument("--min-count", type=integer("--min-count", 1, 10**9), default=None,
                   help="tinyshakespeare: tokens seen fewer times in train become <unk> (default: 2 words, 1 chars)")
    p.add_argument("--samples", type=integer("--samples", 0, 100_000), default=0,
                   help="also print this many sampled sequences")
    p.add_argument("--seed", type=seed(), default=42, help="seed for sampling (default: 42)")
    p.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    p.set_defaults(func=_cli_ngram)


def _cli_ngram(args) -> int:
    from ..ngram import evaluate, model_for  # deferred: importing torch takes ~4 s and --help must not

    # Build the model first so bad options fail before any data is read.
    model_for(args.data, args.level, args.order, args.smoothing, args.k, args.discount, args.min_count)
    r = evaluate(args.data, args.level, args.order, args.smoothing, args.k, args.discount, args.min_count)
    model = r.pop("model")
    print(f"{model!r} on {args.data} ({args.level} level, vocabulary {model.V})")
    for split in [key[:-4] for key in r if key.endswith("_nll")]:
        nll, ppl = r[f"{split}_nll"], r[f"{split}_perplexity"]
        note = "  (a token had probability 0)" if math.isinf(nll) else ""
        print(f"{split:<6} NLL {nll:.4f} nats/token   perplexity {ppl:.2f}{note}")
    if args.samples:
        rng = random.Random(args.seed)
        samples = [model.sample(rng) for _ in range(args.samples)]
        for s in samples:
            print("  " + (s if isinstance(s, str) else " ".join(s)))
        r["samples"] = [s if isinstance(s, str) else " ".join(s) for s in samples]
    if args.json:
        # JSON has no infinity: an infinite NLL/perplexity is written as null (see the text lines above).
        print(json.dumps({key: (None if isinstance(v, float) and math.isinf(v) else v) for key, v in r.items()}))
    return 0
