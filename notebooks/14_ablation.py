"""Lesson 14's ablation: each change of today's block alone, and all together, on lesson 07's 10-minute
CPU recipe (preset ``shakespeare-char-cpu-10min``) shortened to a fixed budget of steps.

    flock /tmp/minigpt-heavy.lock .venv/bin/python notebooks/14_ablation.py   # ~12 min on 2 cores
    flock /tmp/minigpt-heavy.lock .venv/bin/python notebooks/14_ablation.py --equal-time   # phases 2 and 3 too

Writes ``notebooks/14_ablation.json``, which the lesson loads, after every run: a second call goes on
where the first stopped (runs already in the file are kept). Three phases:
1. equal steps: every row trains ``STEPS`` steps with the same schedule and the same batches (seed);
   the baseline with 3 seeds, so that a difference smaller than their spread can be called noise;
2. step time: every row's training step, timed in alternating rounds (so load from other programs on the
   machine falls on every row alike), with the trainer's precision and optimizers;
3. equal wall time: a row whose step is more than ``TIME_TOLERANCE`` faster or slower than the baseline's
   trains again with the steps the baseline's time buys it (one seed); the other rows' equal-time
   figure is their equal-steps figure.
Phases 2 and 3 run only with ``--equal-time``: on the course's shared 2-core machine, loaded by other programs
(load average 16), the step times of phase 2 ranged from 0.6x to 1.4x the baseline's between rows of nearly
equal FLOPs, so the lesson compares the rows at equal steps, which here is equal compute within a few percent.
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
from minigpt.model import GPT
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
    return {"val_loss": r.val_loss, "steps": steps, "seed": seed, "params": r.model.num_params()}


def step_times(rounds: int = 6, steps_per_round: int = 4) -> dict[str, float]:
    """Seconds per training step of every row, timed in alternating rounds after two warm-up steps."""
    from minigpt.data import shakespeare_split  # the trainer's pieces: its precision and optimizers
    from minigpt.optim import make_optimizers
    from minigpt.precision import choose_dtype
    from minigpt.tokenizer import CharTokenizer

    text = shakespeare_split()["train"]
    data = torch.tensor(CharTokenizer.from_text(text).encode(text))
    contenders = {}
    for name, options in ROWS.items():
        cfg = config(options, STEPS, SEEDS[0])
        torch.manual_seed(0)
        model = GPT(cfg.model_config(65)).train()
        dtype, _ = choose_dtype(cfg.dtype, torch.device("cpu"), model, cfg.batch_size, cfg.block_size)
        contenders[name] = (model, make_optimizers(model, cfg, torch.device("cpu")), dtype, cfg)
    g = torch.Generator().manual_seed(0)

    def step(model, opts, dtype, cfg):
        starts = torch.randint(len(data) - cfg.block_size - 1, (cfg.batch_size,), generator=g)
        x = torch.stack([data[i:i + cfg.block_size] for i in starts])
        y = torch.stack([data[i + 1:i + cfg.block_size + 1] for i in starts])
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        for opt in opts:
            opt.step()
            opt.zero_grad(set_to_none=True)

    for c in contenders.values():
        for _ in range(2):
            step(*c)
    total = dict.fromkeys(contenders, 0.0)
    for _ in range(rounds):
        for name, c in contenders.items():
            t0 = time.perf_counter()
            for _ in range(steps_per_round):
                step(*c)
            total[name] += time.perf_counter() - t0
    return {name: t / (rounds * steps_per_round) for name, t in total.items()}


def main(out: Path, steps: int = STEPS, equal_time: bool = False) -> dict:
    result = json.loads(out.read_text()) if out.exists() else {}
    if result.get("steps") not in (None, steps):
        raise ValueError(f"{out} holds runs of {result['steps']} steps, not {steps}; move it away to start again")
    result.update({"recipe": "shakespeare-char-cpu-10min", "steps": steps, "warmup_iters": 30, "seeds": list(SEEDS),
                   "time_tolerance": TIME_TOLERANCE, "machine": f"{platform.processor() or platform.machine()}, "
                   f"{torch.get_num_threads()} threads, torch {torch.__version__}", "date": time.strftime("%Y-%m-%d")})
    rows = result.setdefault("rows", {})

    def save():
        out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")

    for name, options in ROWS.items():  # 1. equal steps
        row = rows.setdefault(name, {"options": options, "equal_steps": []})
        for s in (SEEDS if not options else SEEDS[:1])[len(row["equal_steps"]):]:
            row["equal_steps"].append(run(options, steps, s))
            save()
        print(f"{name:30s} " + " ".join(f"{r['val_loss']:.4f}" for r in row["equal_steps"]), flush=True)
    if not equal_time:
        save()
        return result
    if "seconds_per_step" not in rows["all together (Qwen3-style)"]:  # 2. step times
        for name, t in step_times().items():
            rows[name]["seconds_per_step"] = t
        save()
    base_step = rows["GPT-2 block (baseline)"]["seconds_per_step"]
    for name, row in rows.items():  # 3. equal wall time
        row["time_ratio"] = ratio = row["seconds_per_step"] / base_step
        print(f"{name:30s} {1000 * row['seconds_per_step']:.0f} ms/step ({ratio:.2f}x)", flush=True)
        if row["options"] and abs(ratio - 1) > TIME_TOLERANCE and "equal_time" not in row:
            row["equal_time"] = run(row["options"], round(steps / ratio), SEEDS[0])
            save()
            print(f"{name:30s} equal time: {row['equal_time']['steps']} steps, "
                  f"{row['equal_time']['val_loss']:.4f}", flush=True)
    save()
    return result


if __name__ == "__main__":
    path = Path(__file__).with_name("14_ablation.json")
    args = [a for a in sys.argv[1:] if a != "--equal-time"]
    main(path, int(args[0]) if args else STEPS, equal_time="--equal-time" in sys.argv)
    print(f"wrote {path}")
