"""Checks for lesson 07 (training a GPT): the LR schedule, tokens per step, gradient accumulation,
gradient clipping, the 6·N·D training-time estimate, and finding a loss spike."""

from __future__ import annotations

import dataclasses
import math

import torch

from ._core import Check

__all__ = [
    "lr_schedule",
    "tokens_per_step",
    "accumulate_grads",
    "clip_global_norm",
    "training_days",
    "find_loss_spike",
]


def _phase(step: int, cfg) -> str:
    decay_end = getattr(cfg, "lr_decay_iters", None) or cfg.max_iters
    if step < cfg.warmup_iters:
        return f"during warmup (step {step}, warmup_iters={cfg.warmup_iters})"
    if step > decay_end:
        return f"after the decay has ended (step {step} > {decay_end})"
    return f"during the cosine decay (step {step}, warmup_iters={cfg.warmup_iters}, decay ends at {decay_end})"


def lr_schedule(fn):
    """``fn(step, cfg) -> float`` must match :func:`minigpt.train.get_lr` at every step."""
    from minigpt.train import PRESETS, get_lr

    c = Check("lr_schedule")
    base = PRESETS["shakespeare-char-cpu"]
    settings = [
        dict(warmup_iters=10, max_iters=100, learning_rate=1e-3, min_lr=1e-4, lr_decay_iters=None),
        dict(warmup_iters=5, max_iters=50, learning_rate=3e-3, min_lr=0.0, lr_decay_iters=None),
        # the decay may end before the last step (nanoGPT's lr_decay_iters); the rate then stays at min_lr
        dict(warmup_iters=100, max_iters=2000, learning_rate=6e-4, min_lr=6e-5, lr_decay_iters=1500),
    ]
    for s in settings:
        cfg = dataclasses.replace(base, **s)
        w, m = s["warmup_iters"], s["lr_decay_iters"] or s["max_iters"]
        steps = sorted({0, 1, w // 2, w - 1, w, w + 1, (w + m) // 2, m - 1, m, m + 10, s["max_iters"]})
        # warmup first, then the end of the schedule, then the middle: the hints get more specific
        steps.sort(key=lambda t: (0 if t < w else 1 if t >= m else 2, t))
        for step in steps:
            got = c.call(fn, step, cfg)
            ref = get_lr(step, cfg)
            c.that(isinstance(got, (int, float)) or getattr(got, "ndim", None) == 0,
                   f"return a number (a Python float), got {type(got).__name__}")
            got = float(got)
            c.that(math.isfinite(got), f"the learning rate {_phase(step, cfg)} is {got}, not a finite number")
            if not math.isclose(got, ref, rel_tol=1e-6, abs_tol=1e-12):
                if got > s["learning_rate"] * (1 + 1e-9):
                    c.fail(f"{_phase(step, cfg)} your learning rate {got:.3g} exceeds cfg.learning_rate; "
                           "the schedule never goes above its peak")
                if got < s["min_lr"] * (1 - 1e-9) and step >= w:
                    c.fail(f"{_phase(step, cfg)} your learning rate {got:.3g} is below cfg.min_lr; "
                           "the cosine should end at min_lr, not at 0")
                c.fail(f"{_phase(step, cfg)} your learning rate is {got:.6g}, which is "
                       f"{'too high' if got > ref else 'too low'}; re-read the formula for this phase")
    c.done()


def tokens_per_step(fn):
    """``fn(batch_size, block_size, grad_accum_steps, world_size) -> int`` tokens per optimizer step."""
    c = Check("tokens_per_step")
    cases = [(12, 64, 1, 1), (64, 256, 1, 1), (8, 128, 4, 1), (16, 1024, 5, 8), (1, 1, 1, 1), (4, 32, 3, 2)]
    for b, t, a, w in cases:
        got = c.call(fn, b, t, a, w)
        c.that(isinstance(got, int) and not isinstance(got, bool),
               f"return an int (a count of tokens), got {type(got).__name__}")
        ref = b * t * a * w
        if got != ref:
            if got == b * t * a:
                c.fail(f"batch_size={b}, block_size={t}, grad_accum_steps={a}, world_size={w}: each of the "
                       "world_size processes reads its own batches; count them too")
            if got == b * t * w:
                c.fail(f"batch_size={b}, block_size={t}, grad_accum_steps={a}, world_size={w}: one optimizer "
                       "step sums the gradients of grad_accum_steps micro-batches; count them too")
            c.fail(f"batch_size={b}, block_size={t}, grad_accum_steps={a}, world_size={w}: you said {got}, "
                   f"which is too {'high' if got > ref else 'low'}")
    c.done()


def _tiny_gpt(seed: int = 0):
    from minigpt.model import GPT, GPTConfig

    torch.manual_seed(seed)
    model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16))
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randint(0, 11, (8, 8), generator=g)
    y = torch.randint(0, 11, (8, 8), generator=g)
    return model, x, y


def _grads(model):
    return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


def accumulate_grads(fn):
    """``fn(model, x, y, accum_steps) -> float`` must leave the same gradients as one full-batch backward."""
    c = Check("accumulate_grads")
    for accum in (1, 2, 4):
        model, x, y = _tiny_gpt()
        _, loss = model(x, y)
        loss.backward()
        ref_grads, ref_loss = _grads(model), loss.item()
        model.zero_grad(set_to_none=True)
        got = c.call(fn, model, x, y, accum)
        c.that(isinstance(got, (int, float)) or getattr(got, "ndim", None) == 0,
               f"return the mean loss as a number, got {type(got).__name__}")
        got = float(got)
        c.that(all(p.grad is not None for p in model.parameters()),
               "after your function some parameters have no .grad; call backward() on every micro-batch loss")
        mine = _grads(model)
        ratio = (sum(g.norm() ** 2 for g in mine) / sum(g.norm() ** 2 for g in ref_grads)).sqrt().item()
        if abs(ratio - accum) < 1e-3 * accum and accum > 1:
            c.fail(f"with accum_steps={accum} your gradients are {accum}x too large: backward() adds into .grad, "
                   "so each micro-batch loss must be scaled first")
        for i, (g, r) in enumerate(zip(mine, ref_grads)):
            c.that(torch.allclose(g, r, atol=1e-6, rtol=1e-4),
                   f"with accum_steps={accum} the gradient of parameter {i} differs from a full-batch backward "
                   f"(your gradients are {ratio:.3f}x the size of the reference); split x and y along the batch "
                   "dimension into accum_steps equal micro-batches")
        if abs(got - accum * ref_loss) < 1e-4 and accum > 1:
            c.fail(f"with accum_steps={accum} the loss you return is the sum over micro-batches; return the mean")
        c.number(got, ref_loss, f"the loss returned with accum_steps={accum}", tol=1e-4)
    c.done()


def clip_global_norm(fn):
    """``fn(parameters, max_norm) -> float`` must behave like ``torch.nn.utils.clip_grad_norm_``."""
    c = Check("clip_global_norm")
    for max_norm in (0.5, 1.0, 100.0):
        model, x, y = _tiny_gpt(seed=3)
        # A large loss scale makes the gradient norm clearly larger than 0.5 and 1.0.
        _, loss = model(x, y)
        (loss * 20).backward()
        params = list(model.parameters())
        ref_model, _, _ = _tiny_gpt(seed=3)
        for p, q in zip(ref_model.parameters(), params):
            p.grad = q.grad.detach().clone()
        ref_norm = torch.nn.utils.clip_grad_norm_(ref_model.parameters(), max_norm).item()
        before = _grads(model)
        got = c.call(fn, params, max_norm)
        c.that(got is not None, "return the total gradient norm (measured before clipping), got None")
        try:
            got = float(got)
        except (TypeError, ValueError):
            c.fail(f"return the total gradient norm as a number, got {type(got).__name__}")
        if abs(got - ref_norm) > 1e-3 * ref_norm:
            after_norm = torch.sqrt(sum(g.norm() ** 2 for g in _grads(model))).item()
            if abs(got - after_norm) < 1e-3 * max(after_norm, 1e-9) and max_norm < ref_norm:
                c.fail("you returned the norm after clipping; return the norm measured before clipping")
            c.fail(f"the total norm you returned ({got:.4g}) is {'too high' if got > ref_norm else 'too low'}: "
                   "it is the L2 norm of all gradients together, as if they were one long vector")
        c.count += 1
        mine = _grads(model)
        ref = _grads(ref_model)
        ok = all(torch.allclose(g, r, atol=1e-7, rtol=1e-4) for g, r in zip(mine, ref))
        if not ok:
            if max_norm >= ref_norm:
                c.fail(f"max_norm={max_norm} is above the total norm, so the gradients must stay unchanged")
            directions = all(
                torch.allclose(g / (g.norm() + 1e-12), b / (b.norm() + 1e-12), atol=1e-5)
                for g, b in zip(mine, before)
            )
            ratios = [(g.norm() / (b.norm() + 1e-12)).item() for g, b in zip(mine, before) if b.norm() > 0]
            if directions and max(ratios) - min(ratios) > 1e-4:
                c.fail(f"max_norm={max_norm}: your tensors were scaled by different factors; clip by the "
                       "global norm, one factor for all tensors, so the update keeps its direction")
            c.fail(f"max_norm={max_norm}: after clipping the gradients differ from the reference; every "
                   "gradient is multiplied by the same factor max_norm / (total_norm + 1e-6)")
    c.done()


def training_days(fn):
    """``fn(n_params, n_tokens, n_gpus, peak_flops, mfu) -> float`` days, from C = 6·N·D."""
    c = Check("training_days")
    cases = [
        (10.65e6, 1e9, 1, 312e12, 0.4),
        (124e6, 300e9, 8, 312e12, 0.5),
        (175e9, 300e9, 1024, 312e12, 0.4),
        (1e6, 1e6, 2, 1e11, 0.1),
    ]
    for n, d, g, peak, mfu in cases:
        got = c.call(fn, n, d, g, peak, mfu)
        ref = 6 * n * d / (g * peak * mfu) / 86400
        try:
            got = float(got)
        except (TypeError, ValueError):
            c.fail(f"return the number of days as a float, got {type(got).__name__}")
        desc = f"N={n:.3g}, D={d:.3g}, {g} GPUs, peak {peak:.3g} FLOP/s, MFU {mfu}"
        c.count += 1
        if not math.isclose(got, ref, rel_tol=1e-6):
            r = got / ref if ref else float("nan")
            if math.isclose(r, 1 / 3, rel_tol=1e-3):
                c.fail(f"{desc}: your estimate is 3x too small; 2·N·D is the forward pass only, "
                       "training also runs the backward pass (twice the forward's FLOPs)")
            if math.isclose(r, 86400, rel_tol=1e-3):
                c.fail(f"{desc}: that looks like seconds; return days")
            if math.isclose(r, 24, rel_tol=1e-3):
                c.fail(f"{desc}: that looks like hours; return days")
            if math.isclose(r, mfu, rel_tol=1e-3) or math.isclose(r, mfu**2, rel_tol=1e-3):
                c.fail(f"{desc}: the GPUs deliver only mfu x peak FLOP/s, so training takes longer, not shorter")
            if math.isclose(r, 1 / mfu, rel_tol=1e-3) or math.isclose(r, g, rel_tol=1e-3):
                c.fail(f"{desc}: your estimate is off by a factor of {r:.3g}; check how mfu and n_gpus enter")
            c.fail(f"{desc}: your estimate is {got:.4g} days, {'too high' if got > ref else 'too low'} "
                   f"by a factor of {max(r, 1 / r) if r else float('inf'):.3g}")
    c.done()


def find_loss_spike(fn):
    """``fn(losses, ratio) -> int | None``: first step whose loss exceeds ``ratio`` x the best loss before it."""
    c = Check("find_loss_spike")

    def ref(losses, ratio):
        best = math.inf
        for i, v in enumerate(losses):
            if i > 0 and v > ratio * best:
                return i
            best = min(best, v)
        return None

    cases = [
        ([4.2, 3.5, 3.0, 2.7, 2.5, 2.4], 1.5),           # smooth: no spike
        ([4.2, 3.5, 3.0, 6.0, 3.1, 2.9], 1.5),           # one spike at 3
        ([4.2, 2.0, 2.5, 2.9, 3.2, 2.1], 1.5),           # slow drift: only the running best catches step 4
        ([4.0, 3.0, 2.0, 3.0, 3.1, 2.0], 1.5),           # exactly at 1.5x is not a spike, above is
        ([2.0, 2.1, 1.9, 3.0, 9.0], 1.5),                # first of two spikes
        ([5.0, 9.0, 2.0], 1.5),                          # step 1 can spike already
        ([3.0], 1.5),                                    # a single value has nothing to compare with
        ([3.0, 2.0, 2.9, 2.95, 3.05], 1.5),              # 3.05 > 1.5 * 2.0
    ]
    for losses, ratio in cases:
        got = c.call(fn, list(losses), ratio)
        want = ref(losses, ratio)
        if got != want:
            if want is None:
                c.fail(f"losses={losses}, ratio={ratio}: you found a spike at {got!r}, but no step there is "
                       f"more than {ratio}x the lowest loss seen before it; return None")
            if got is None:
                c.fail(f"losses={losses}, ratio={ratio}: you returned None, but there is a spike; compare each "
                       "loss with the lowest loss of all the steps before it, not only the previous one")
            if isinstance(got, float) and got in losses:
                c.fail(f"losses={losses}, ratio={ratio}: return the step index, not the loss value")
            c.fail(f"losses={losses}, ratio={ratio}: you returned {got!r}; compare each loss with the lowest "
                   "loss of all the steps before it (not only the previous one), and return the first such step")
        c.count += 1
    c.done()
