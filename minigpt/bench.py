"""Benchmarks of ``minigpt`` against ``transformers``' ``GPT2LMHeadModel``, same sizes and weights,
in the same run, on the same device.

- ``python -m minigpt bench train``: tokens/s and MFU of training steps (forward, cross-entropy,
  backward, AdamW update), for minigpt with tanh and exact GELU and for ``GPT2LMHeadModel``, in
  fp32 and bf16 autocast on a CPU (the choice ``TrainConfig.dtype="auto"`` makes there).
- ``python -m minigpt bench generate``: tokens/s of greedy generation at the baby-GPT size:
  minigpt recomputing the whole context, minigpt with its KV cache, and ``generate()`` of
  transformers with its own cache.

Contenders are timed in alternating rounds and the median round is reported, so a machine that is
busy with something else slows them all alike.
"""

from __future__ import annotations

import contextlib
import statistics
import time

import torch

from .generate import generate
from .hf import to_hf
from .model import GPT, GPTConfig
from .optim import make_optimizer
from .precision import estimate_mfu
from .train import TrainConfig
from .utils import get_device

# (name, model sizes, batch size on CPU, batch size on GPU)
CONFIGS = [
    ("small", dict(n_layer=4, n_head=4, n_embd=128, block_size=64), 32, 64),  # lesson 07's CPU recipe
    ("wide", dict(n_layer=4, n_head=4, n_embd=256, block_size=128), 16, 64),
    ("baby-gpt", dict(n_layer=6, n_head=6, n_embd=384, block_size=256), 4, 64),
]


def _ours_step(model, opt, x, y, autocast):
    with autocast():
        _, loss = model(x, y)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


def _hf_step(model, opt, x, y, autocast):
    # GPT2LMHeadModel computes the same next-token cross-entropy from logits; labels -> loss would
    # shift inside and drop a position, so the loss is computed here exactly as minigpt does.
    with autocast():
        logits = model(input_ids=x).logits
    loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)).float(), y.reshape(-1))
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


def _precisions(device) -> list[torch.dtype]:
    """On a CPU both fp32 and bf16 autocast (the choice ``dtype="auto"`` makes); on a GPU its autocast dtype."""
    if device.type == "cuda":
        return [torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16]
    return [torch.float32, torch.bfloat16] if device.type == "cpu" else [torch.float32]


def bench_train(device=None, configs=None, rounds: int = 5, steps_per_round: int = 3, warmup: int = 2,
                progress: bool = True, activations=("gelu_tanh", "gelu")) -> list[dict]:
    """Tokens/s and MFU of a training step at each size: minigpt with each activation and
    ``GPT2LMHeadModel`` (tanh GELU), in each precision (CPU: fp32 and bf16 autocast), same weights.

    All contenders of a size are timed in alternating rounds; returns one dict per (size, model,
    activation, precision): config, model, activation, dtype, batch_size, block_size, params,
    tokens_per_s, mfu, seconds_per_step.
    """
    device = get_device(device)
    rows = []
    opt_cfg = TrainConfig(learning_rate=1e-4, min_lr=1e-5)  # the trainer's AdamW: its groups and kernel

    def optimizer(module):
        return make_optimizer(module, opt_cfg, device, params=list(module.parameters()))

    for name, sizes, cpu_batch, gpu_batch in (configs or CONFIGS):
        batch = gpu_batch if device.type == "cuda" else cpu_batch
        torch.manual_seed(0)
        base = GPT(GPTConfig(vocab_size=65, dropout=0.0, **sizes))
        contenders = {}  # (model, activation, dtype) -> (module, optimizer, step function)
        for dtype in _precisions(device):
            for act in activations:
                m = GPT(GPTConfig(vocab_size=65, dropout=0.0, activation=act, **sizes))
                m.load_state_dict(base.state_dict())
                m.to(device).train()
                contenders[("minigpt", act, dtype)] = (m, optimizer(m), _ours_step)
            hf = to_hf(base).to(device).train()
            contenders[("transformers", "gelu_tanh", dtype)] = (
                hf, optimizer(hf), _hf_step)
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, 65, (batch, sizes["block_size"]), generator=g).to(device)
        y = torch.randint(0, 65, (batch, sizes["block_size"]), generator=g).to(device)

        def autocast_for(dtype):
            if dtype == torch.float32:
                return contextlib.nullcontext
            return lambda: torch.autocast(device.type, dtype=dtype)

        times = {k: [] for k in contenders}
        for (_, _, dtype), (m, opt, step) in contenders.items():
            for _ in range(warmup):
                step(m, opt, x, y, autocast_for(dtype))
        for _ in range(rounds):
            for key, (m, opt, step) in contenders.items():
                _sync(device)
                t0 = time.perf_counter()
                for _ in range(steps_per_round):
                    step(m, opt, x, y, autocast_for(key[2]))
                _sync(device)
                times[key].append((time.perf_counter() - t0) / steps_per_round)
        n_params = base.num_params()
        cfg = base.config
        for key in contenders:
            model_name, act, dtype = key
            sec = statistics.median(times[key])
            tps = batch * cfg.block_size / sec
            row = {"config": name, "model": model_name, "activation": act, "dtype": str(dtype).removeprefix("torch."),
                   "batch_size": batch, "block_size": cfg.block_size, "params": n_params, "tokens_per_s": tps,
                   "mfu": estimate_mfu(n_params, cfg, tps, device), "seconds_per_step": sec}
            rows.append(row)
            if progress:
                print(f"{name:<9} {model_name:<13} {act:<9} {row['dtype']:<8} {n_params / 1e6:6.2f}M params  "
                      f"batch {batch:>3} x {cfg.block_size:<4}{tps:>10,.0f} tokens/s   MFU {100 * row['mfu']:5.2f}%",
                      flush=True)
        del contenders, base
    return rows


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


# The generation benchmark's setting: nanoGPT's baby GPT, one sequence, a 16-token prompt, 240 new tokens.
GENERATE_SIZES = dict(n_layer=6, n_head=6, n_embd=384, block_size=256, vocab_size=65)


def bench_generate(device=None, sizes: dict | None = None, prompt_len: int = 16, new_tokens: int = 240,
                   batch_size: int = 1, rounds: int = 3, progress: bool = True) -> dict:
    """Greedy generation speed of the same weights three ways; returns a dict with ``recompute``,
    ``cache`` and ``transformers`` (each with ``tokens_per_s`` and ``seconds``), ``same_tokens``
    (minigpt's cache and transformers produce identical tokens), ``cache_matches_recompute``, and
    the ratios ``cache_vs_recompute`` and ``cache_vs_transformers``."""
    device = get_device(device)
    sizes = dict(GENERATE_SIZES if sizes is None else sizes)
    if prompt_len + new_tokens > sizes["block_size"]:
        raise ValueError(f"prompt ({prompt_len}) + new tokens ({new_tokens}) must fit in block_size "
                         f"{sizes['block_size']}, so all three generate the same way")
    torch.manual_seed(0)
    model = GPT(GPTConfig(dropout=0.0, **sizes)).to(device).eval()
    hf = to_hf(model.cpu()).to(device).eval()
    model.to(device)
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, sizes["vocab_size"], (batch_size, prompt_len), generator=g).to(device)
    attention_mask = torch.ones_like(prompt)

    def ours(use_cache):
        return lambda: generate(model, prompt, new_tokens, temperature=0, use_cache=use_cache)

    def theirs():
        # greedy, exactly new_tokens (no stopping at an end-of-text token), transformers' own KV cache
        return hf.generate(prompt, attention_mask=attention_mask, max_new_tokens=new_tokens,
                           min_new_tokens=new_tokens, do_sample=False, num_beams=1, use_cache=True,
                           pad_token_id=0, eos_token_id=None)

    contenders = {"recompute": ours(False), "cache": ours(True), "transformers": theirs}
    outputs = {}
    with torch.inference_mode():
        for key, fn in contenders.items():  # warm-up, and the tokens each one makes
            outputs[key] = fn()
        times = {k: [] for k in contenders}
        for _ in range(rounds):
            for key, fn in contenders.items():
                _sync(device)
                t0 = time.perf_counter()
                fn()
                _sync(device)
                times[key].append(time.perf_counter() - t0)
    result = {"device": str(device), "torch": torch.__version__, "batch_size": batch_size,
              "prompt_tokens": prompt_len, "new_tokens": new_tokens, "sizes": sizes,
              "params": model.num_params()}
    for key in contenders:
        sec = statistics.median(times[key])
        result[key] = {"tokens_per_s": batch_size * new_tokens / sec, "seconds": sec}
    result["same_tokens"] = bool(torch.equal(outputs["cache"].cpu(), outputs["transformers"].cpu()))
    result["cache_matches_recompute"] = bool(torch.equal(outputs["cache"].cpu(), outputs["recompute"].cpu()))
    result["cache_vs_recompute"] = result["cache"]["tokens_per_s"] / result["recompute"]["tokens_per_s"]
    result["cache_vs_transformers"] = result["cache"]["tokens_per_s"] / result["transformers"]["tokens_per_s"]
    if progress:
        for key, label in (("recompute", "minigpt, recomputing the context"), ("cache", "minigpt, KV cache"),
                           ("transformers", "transformers generate()")):
            r = result[key]
            print(f"{label:<34} {r['tokens_per_s']:>10,.0f} tokens/s   {r['seconds']:7.3f} s for {new_tokens} tokens",
                  flush=True)
    return result


def summarize_train(rows: list[dict]) -> str:
    """Per size: minigpt vs transformers (same activation and precision), bf16 vs fp32, exact vs tanh GELU."""
    def tps(config, model, act, dtype):
        return next((r["tokens_per_s"] for r in rows if (r["config"], r["model"], r["activation"], r["dtype"])
                     == (config, model, act, dtype)), None)

    lines = []
    for name in dict.fromkeys(r["config"] for r in rows):
        dtypes = list(dict.fromkeys(r["dtype"] for r in rows if r["config"] == name))
        parts = []
        for d in dtypes:
            ours, theirs = tps(name, "minigpt", "gelu_tanh", d), tps(name, "transformers", "gelu_tanh", d)
            if ours and theirs:
                parts.append(f"minigpt/transformers {ours / theirs:.2f}x ({d})")
        if "float32" in dtypes and "bfloat16" in dtypes:
            a, b = tps(name, "minigpt", "gelu_tanh", "bfloat16"), tps(name, "minigpt", "gelu_tanh", "float32")
            if a and b:
                parts.append(f"bf16/fp32 {a / b:.2f}x")
        exact, tanh = tps(name, "minigpt", "gelu", dtypes[0]), tps(name, "minigpt", "gelu_tanh", dtypes[0])
        if exact and tanh:
            parts.append(f"exact/tanh GELU {exact / tanh:.2f}x ({dtypes[0]})")
        lines.append(f"{name}: " + ", ".join(parts))
    return "\n".join(lines)
