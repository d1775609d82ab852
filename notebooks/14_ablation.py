"""Lesson 14's ablation: each change of today's block alone, and all together, on lesson 07's 10-minute
CPU recipe (preset ``shakespeare-char-cpu-10min``) shortened to a fixed budget of steps.

    flock /tmp/minigpt-heavy.lock .venv/bin/python notebooks/14_ablation.py   # ~10 min on 2 cores

Writes ``notebooks/14_ablation.json``, which the lesson loads. Two comparisons per row:
- equal steps: every row trains ``STEPS`` steps with the same schedule and the same batches (seed);
- equal wall time: a row whose step time differs from the baseline's by more than ``TIME_TOLERANCE``
  trains again with the steps the baseline's time buys it (one seed); the other rows' equal-time
  figure is their equal-steps figure.
The baseline runs with 3 seeds: a difference smaller than their spread is noise.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import torch

from minigpt.config import get_preset
from minigpt.train import train

STEPS = 300  # ~40 s per run on the course's 2-core CPU (the full recipe: 4,000 steps in ~9 min)
SEEDS = (1337, 1, 2)
TIME_TOLERANCE = 0.05
ROWS = {  # row name -> the options it changes (TrainConfig fields)
    "GPT-2 block (baseline)": {},
    "RoPE": dict(positions="rope"),
    "RMSNorm": dict(norm="rmsnorm"),
    "SwiGLU (equal parameters)": dict(activation="swiglu"),
    "ReLU²": dict(activation="relu2"),
    "GQA (2 KV heads of 4)": dict(n_kv_head=2),
    "QK-norm": dict(qk_norm=True),
    "no biases": dict(bias=False),
    "untied head": dict(tie_embeddings=False),
    "all together (Qwen3-style)": dict(positions="rope", norm="rmsnorm", activation="swiglu", n_kv_head=2,
                                       qk_norm=True, bias=False, tie_embeddings=False),
}


def config(options: dict, steps: int, seed: int):
    """The 10-minute recipe with ``options``, shortened to ``steps`` steps (warmup 30, one evaluation at the end)."""
    return dataclasses.replace(get_preset("shakespeare-char-cpu-10min"), **options, max_iters=steps,
                               warmup_iters=30, eval_interval=steps, sample_tokens=0, out_dir=None, seed=seed)


def run(options: dict, steps: int, seed: int) -> dict:
    r = train(config(options, steps, seed), device="cpu", progress=False)
    s = r.summary()
    step_s = r.config.batch_size * r.config.block_size / s["tokens_per_s"]
    return {"val_loss": s["val_loss"], "steps": steps, "seed": seed, "params": s["params"],
            "seconds_per_step": step_s, "train_seconds": step_s * steps}


def main(steps: int = STEPS) -> dict:
    rows = {}
    for name, options in ROWS.items():
        seeds = SEEDS if not options else SEEDS[:1]
        runs = [run(options, steps, s) for s in seeds]
        rows[name] = {"options": options, "equal_steps": runs}
        print(f"{name:30s} " + " ".join(f"{r['val_loss']:.4f}" for r in runs)
              + f"  {runs[0]['seconds_per_step'] * 1000:.0f} ms/step", flush=True)
    base_step = sum(r["seconds_per_step"] for r in rows["GPT-2 block (baseline)"]["equal_steps"]) / len(SEEDS)
    for name, row in rows.items():
        ratio = row["equal_steps"][0]["seconds_per_step"] / base_step
        row["time_ratio"] = ratio
        if row["options"] and abs(ratio - 1) > TIME_TOLERANCE:
            row["equal_time"] = run(row["options"], round(steps / ratio), SEEDS[0])
            print(f"{name:30s} equal time: {row['equal_time']['steps']} steps, "
                  f"{row['equal_time']['val_loss']:.4f}", flush=True)
    return {"recipe": "shakespeare-char-cpu-10min", "steps": steps, "warmup_iters": 30, "seeds": list(SEEDS),
            "time_tolerance": TIME_TOLERANCE, "machine": f"{platform.processor() or platform.machine()}, "
            f"{torch.get_num_threads()} threads, torch {torch.__version__}",
            "date": time.strftime("%Y-%m-%d"), "rows": rows}


if __name__ == "__main__":
    out = Path(__file__).with_name("14_ablation.json")
    result = main(int(sys.argv[1]) if len(sys.argv) > 1 else STEPS)
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {out}")
