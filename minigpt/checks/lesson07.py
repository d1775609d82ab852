"""Checks for lesson 07 (training a GPT): the LR schedule, tokens per step, gradient accumulation,
gradient clipping, the 6·N·D training-time estimate, finding a loss spike, and the training run behind
the loss-spike experiment.

Every check draws fresh inputs each call (settings, shapes, seeds), including inputs where a
common shortcut gives a different answer from the right one, so a hard-coded answer cannot pass.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from ..i18n import _
from ..model import GPT, GPTConfig
from ..train import PRESETS, get_lr
from ._core import Check, fresh_generator

__all__ = [
    "lr_schedule",
    "tokens_per_step",
    "accumulate_grads",
    "clip_global_norm",
    "training_days",
    "find_loss_spike",
    "spike_run",
]


def _phase(step: int, cfg) -> str:
    decay_end = getattr(cfg, "lr_decay_iters", None) or cfg.max_iters
    if step < cfg.warmup_iters:
        return _("during warmup (step {step}, warmup_iters={warmup_iters})").format(step=step, warmup_iters=cfg.warmup_iters)
    if step > decay_end:
        return _("after the decay has ended (step {step} > {decay_end})").format(step=step, decay_end=decay_end)
    return _("during the cosine decay (step {step}, warmup_iters={warmup_iters}, decay ends at "
             "{decay_end})").format(step=step, warmup_iters=cfg.warmup_iters, decay_end=decay_end)


def lr_schedule(fn):
    """``fn(step, cfg) -> float`` must match :func:`minigpt.train.get_lr` at every step."""
    c = Check("lr_schedule")
    base = PRESETS["shakespeare-char-cpu"]
    g = fresh_generator()
    w = int(torch.randint(3, 40, (1,), generator=g))
    m = w + int(torch.randint(20, 400, (1,), generator=g))
    peak = float(10 ** torch.empty(1).uniform_(-4, -2, generator=g))
    settings = [
        dict(warmup_iters=w, max_iters=m, learning_rate=peak, min_lr=peak * float(torch.rand(1, generator=g)) / 5,
             lr_decay_iters=None),
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
                   _("return a number (a Python float), got {type}").format(type=type(got).__name__))
            got = float(got)
            c.that(math.isfinite(got), _("the learning rate {_phase} is {got}, not a finite number").format(_phase=_phase(step, cfg), got=got))
            if not math.isclose(got, ref, rel_tol=1e-6, abs_tol=1e-12):
                if got > s["learning_rate"] * (1 + 1e-9):
                    c.fail(_("{_phase} your learning rate {got:.3g} exceeds cfg.learning_rate; the schedule never "
                             "goes above its peak").format(_phase=_phase(step, cfg), got=got))
                if got < s["min_lr"] * (1 - 1e-9) and step >= w:
                    c.fail(_("{_phase} your learning rate {got:.3g} is below cfg.min_lr; the cosine should end at "
                             "min_lr, not at 0").format(_phase=_phase(step, cfg), got=got))
                c.fail(_("{_phase} your learning rate is {got:.6g}, which is {value}; re-read the formula for "
                         "this phase").format(_phase=_phase(step, cfg), got=got, value=_("too high") if got > ref else _("too low")))
    c.done()


def tokens_per_step(fn):
    """``fn(batch_size, block_size, grad_accum_steps, world_size) -> int`` tokens per optimizer step."""
    c = Check("tokens_per_step")
    g = fresh_generator()
    drawn = [tuple(int(v) for v in torch.randint(2, 9, (4,), generator=g) * torch.tensor([4, 16, 1, 1]))
             for _i in range(3)]
    cases = [(12, 64, 1, 1), (8, 128, 4, 1), (16, 1024, 5, 8), (1, 1, 1, 1)] + drawn
    for b, t, a, w in cases:
        got = c.call(fn, b, t, a, w)
        c.that(isinstance(got, int) and not isinstance(got, bool),
               _("return an int (a count of tokens), got {type}").format(type=type(got).__name__))
        ref = b * t * a * w
        if got != ref:
            if got == b * t * a:
                c.fail(_("batch_size={b}, block_size={t}, grad_accum_steps={a}, world_size={w}: each of the "
                         "world_size processes reads its own batches; count them too").format(b=b, t=t, a=a, w=w))
            if got == b * t * w:
                c.fail(_("batch_size={b}, block_size={t}, grad_accum_steps={a}, world_size={w}: one optimizer "
                         "step sums the gradients of grad_accum_steps micro-batches; count them too").format(b=b, t=t, a=a, w=w))
            c.fail(_("batch_size={b}, block_size={t}, grad_accum_steps={a}, world_size={w}: you said {got}, "
                     "which is too {value}").format(b=b, t=t, a=a, w=w, got=got, value=_("high") if got > ref else _("low")))
    c.done()


def _tiny_gpt(seed: int = 0, batch: int = 8):
    torch.manual_seed(seed)
    model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16))
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randint(0, 11, (batch, 8), generator=g)
    y = torch.randint(0, 11, (batch, 8), generator=g)
    return model, x, y


def _grads(model):
    return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


def accumulate_grads(fn):
    """``fn(model, x, y, accum_steps) -> float``: run ``accum_steps`` micro-batches, one forward and one
    backward each, leaving the same gradients as one full-batch backward; return the mean loss."""
    c = Check("accumulate_grads")
    g = fresh_generator()
    for accum in (1, 2, 4, int(torch.randint(3, 6, (1,), generator=g))):
        micro = int(torch.randint(1, 4, (1,), generator=g))
        model, x, y = _tiny_gpt(int(torch.randint(0, 2**30, (1,), generator=g)), batch=accum * micro)
        _logits, loss = model(x, y)
        loss.backward()
        ref_grads, ref_loss = _grads(model), loss.item()
        model.zero_grad(set_to_none=True)
        # Watch the method: the rows each forward pass sees, and how many backward passes reach the weights.
        rows, backwards = [], []
        pre = model.register_forward_pre_hook(
            lambda mod, args, kwargs, rows=rows: rows.append(int((args[0] if args else kwargs["idx"]).shape[0])),
            with_kwargs=True)
        hook = model.transformer.wte.weight.register_hook(lambda grad, backwards=backwards: backwards.append(1))
        try:
            got = c.call(fn, model, x, y, accum)
        finally:
            pre.remove()
            hook.remove()
        c.that(isinstance(got, (int, float)) or getattr(got, "ndim", None) == 0,
               _("return the mean loss as a number, got {type}").format(type=type(got).__name__))
        got = float(got)
        c.that(all(p.grad is not None for p in model.parameters()),
               _("after your function some parameters have no .grad; call backward() on every micro-batch loss"))
        B = x.size(0)
        c.that(rows == [micro] * accum,
               _("with a batch of {B} rows and accum_steps={accum} your model ran {n_rows} forward "
                 "pass(es) on {rows} rows; accumulation runs accum_steps passes on equal micro-batches of "
                 "the batch, so only one micro-batch's activations are held in memory at a time").format(B=B, accum=accum, n_rows=len(rows), rows=rows))
        c.that(len(backwards) == accum,
               _("with accum_steps={accum} the gradients were computed in {n_backwards} backward "
                 "pass(es); call backward() once per micro-batch (summing the losses first keeps every "
                 "graph alive)").format(accum=accum, n_backwards=len(backwards)))
        mine = _grads(model)
        ratio = (sum(g_.norm() ** 2 for g_ in mine) / sum(g_.norm() ** 2 for g_ in ref_grads)).sqrt().item()
        if abs(ratio - accum) < 1e-3 * accum and accum > 1:
            c.fail(_("with accum_steps={accum} your gradients are {accum}x too large: backward() adds into "
                     ".grad, so each micro-batch loss must be scaled first").format(accum=accum))
        for i, (g_, r) in enumerate(zip(mine, ref_grads)):
            c.that(torch.allclose(g_, r, atol=1e-6, rtol=1e-4),
                   _("with accum_steps={accum} the gradient of parameter {i} differs from a full-batch "
                     "backward (your gradients are {ratio:.3f}x the size of the reference); split x and y "
                     "along the batch dimension into accum_steps equal micro-batches").format(accum=accum, i=i, ratio=ratio))
        if abs(got - accum * ref_loss) < 1e-4 and accum > 1:
            c.fail(_("with accum_steps={accum} the loss you return is the sum over micro-batches; return the "
                     "mean").format(accum=accum))
        c.number(got, ref_loss, _("the loss returned with accum_steps={accum}").format(accum=accum), tol=1e-4)
    c.done()


def clip_global_norm(fn):
    """``fn(parameters, max_norm) -> float`` must behave like ``torch.nn.utils.clip_grad_norm_``."""
    c = Check("clip_global_norm")
    g = fresh_generator()
    seed = int(torch.randint(0, 2**30, (1,), generator=g))
    for max_norm in (float(torch.empty(1).uniform_(0.2, 1.0, generator=g)), 1.0, 100.0):
        model, x, y = _tiny_gpt(seed=seed)
        # A large loss scale makes the gradient norm clearly larger than 0.5 and 1.0.
        _logits, loss = model(x, y)
        (loss * 20).backward()
        params = list(model.parameters())
        ref_model, _opt, _data = _tiny_gpt(seed=seed)
        for p, q in zip(ref_model.parameters(), params):
            p.grad = q.grad.detach().clone()
        ref_norm = torch.nn.utils.clip_grad_norm_(ref_model.parameters(), max_norm).item()
        before = _grads(model)
        got = c.call(fn, params, max_norm)
        c.that(got is not None, _("return the total gradient norm (measured before clipping), got None"))
        try:
            got = float(got)
        except (TypeError, ValueError):
            c.fail(_("return the total gradient norm as a number, got {type}").format(type=type(got).__name__))
        if abs(got - ref_norm) > 1e-3 * ref_norm:
            after_norm = torch.sqrt(sum(g.norm() ** 2 for g in _grads(model))).item()
            if abs(got - after_norm) < 1e-3 * max(after_norm, 1e-9) and max_norm < ref_norm:
                c.fail(_("you returned the norm after clipping; return the norm measured before clipping"))
            c.fail(_("the total norm you returned ({got:.4g}) is {value}: it is the L2 norm of all gradients "
                     "together, as if they were one long vector").format(got=got, value=_("too high") if got > ref_norm else _("too low")))
        c.count += 1
        mine = _grads(model)
        ref = _grads(ref_model)
        ok = all(torch.allclose(g, r, atol=1e-7, rtol=1e-4) for g, r in zip(mine, ref))
        if not ok:
            if max_norm >= ref_norm:
                c.fail(_("max_norm={max_norm} is above the total norm, so the gradients must stay unchanged").format(max_norm=max_norm))
            directions = all(
                torch.allclose(g / (g.norm() + 1e-12), b / (b.norm() + 1e-12), atol=1e-5)
                for g, b in zip(mine, before)
            )
            ratios = [(g.norm() / (b.norm() + 1e-12)).item() for g, b in zip(mine, before) if b.norm() > 0]
            if directions and max(ratios) - min(ratios) > 1e-4:
                c.fail(_("max_norm={max_norm}: your tensors were scaled by different factors; clip by the global "
                         "norm, one factor for all tensors, so the update keeps its direction").format(max_norm=max_norm))
            c.fail(_("max_norm={max_norm}: after clipping the gradients differ from the reference; every "
                     "gradient is multiplied by the same factor max_norm / (total_norm + 1e-6)").format(max_norm=max_norm))
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
    g = fresh_generator()
    for _i in range(2):  # numbers nobody can know in advance
        u = torch.rand(5, generator=g).tolist()
        cases.append((10 ** (6 + 4 * u[0]), 10 ** (9 + 3 * u[1]), int(1 + 63 * u[2]), 1e14 * (1 + 9 * u[3]),
                      round(0.2 + 0.4 * u[4], 3)))
    for n, d, g, peak, mfu in cases:
        got = c.call(fn, n, d, g, peak, mfu)
        ref = 6 * n * d / (g * peak * mfu) / 86400
        try:
            got = float(got)
        except (TypeError, ValueError):
            c.fail(_("return the number of days as a float, got {type}").format(type=type(got).__name__))
        desc = _("N={n:.3g}, D={d:.3g}, {g} GPUs, peak {peak:.3g} FLOP/s, MFU {mfu}").format(n=n, d=d, g=g, peak=peak, mfu=mfu)
        c.count += 1
        if not math.isclose(got, ref, rel_tol=1e-6):
            r = got / ref if ref else float("nan")
            if math.isclose(r, 1 / 3, rel_tol=1e-3):
                c.fail(_("{desc}: your estimate is 3x too small; 2·N·D is the forward pass only, training also "
                         "runs the backward pass (twice the forward's FLOPs)").format(desc=desc))
            if math.isclose(r, 86400, rel_tol=1e-3):
                c.fail(_("{desc}: that looks like seconds; return days").format(desc=desc))
            if math.isclose(r, 24, rel_tol=1e-3):
                c.fail(_("{desc}: that looks like hours; return days").format(desc=desc))
            if math.isclose(r, mfu, rel_tol=1e-3) or math.isclose(r, mfu**2, rel_tol=1e-3):
                c.fail(_("{desc}: the GPUs deliver only mfu x peak FLOP/s, so training takes longer, not shorter").format(desc=desc))
            if math.isclose(r, 1 / mfu, rel_tol=1e-3) or math.isclose(r, g, rel_tol=1e-3):
                c.fail(_("{desc}: your estimate is off by a factor of {r:.3g}; check how mfu and n_gpus enter").format(desc=desc, r=r))
            c.fail(_("{desc}: your estimate is {got:.4g} days, {value} by a factor of {value2:.3g}").format(desc=desc, got=got, value=_("too high") if got > ref else _("too low"), value2=max(r, 1 / r) if r else float('inf')))
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
    g = fresh_generator()
    for _i in range(3):
        # a slow drift: the loss falls to its lowest point, then creeps up by at most 2% a step, so
        # no window of the last ten steps ever sees a rise of `ratio`, but the lowest loss does
        ratio = round(float(torch.empty(1).uniform_(1.3, 1.6, generator=g)), 3)
        low = int(torch.randint(3, 15, (1,), generator=g))
        fall = (4.0 * torch.linspace(1, 0.5, low + 1)).tolist()
        rise = 1 + float(torch.empty(1).uniform_(0.01, 0.02, generator=g))
        n_up = int(math.log(ratio) / math.log(rise)) + int(torch.randint(2, 8, (1,), generator=g))
        losses = [round(v, 4) for v in fall + [fall[-1] * rise ** (i + 1) for i in range(n_up)]]
        cases.append((losses, ratio))
    noisy = (3 + torch.rand(int(torch.randint(10, 30, (1,), generator=g)), generator=g)).tolist()
    cases.append(([round(v, 4) for v in noisy], 1.2))  # random noise: a spike or none, wherever it falls
    for losses, ratio in cases:
        got = c.call(fn, list(losses), ratio)
        want = ref(losses, ratio)
        if got != want:
            if want is None:
                c.fail(_("losses={losses}, ratio={ratio}: you found a spike at {got!r}, but no step there is more "
                         "than {ratio}x the lowest loss seen before it; return None").format(losses=losses, ratio=ratio, got=got))
            if got is None:
                c.fail(_("losses={losses}, ratio={ratio}: you returned None, but there is a spike; compare each "
                         "loss with the lowest loss of all the steps before it, not only the previous one").format(losses=losses, ratio=ratio))
            if isinstance(got, float) and got in losses:
                c.fail(_("losses={losses}, ratio={ratio}: return the step index, not the loss value").format(losses=losses, ratio=ratio))
            c.fail(_("losses={losses}, ratio={ratio}: you returned {got!r}; compare each loss with the lowest "
                     "loss of all the steps before it (not only the previous one), and return the first such "
                     "step").format(losses=losses, ratio=ratio, got=got))
        c.count += 1
    c.done()


def _toy_text(g, vocab: int, n: int) -> torch.Tensor:
    """Token ids in which each token mostly fixes the next one: a tiny model learns it in a few steps."""
    table = torch.randint(0, vocab, (vocab,), generator=g)
    ids = [int(torch.randint(0, vocab, (1,), generator=g))]
    noise = torch.rand(n, generator=g)
    jumps = torch.randint(0, vocab, (n,), generator=g)
    for i in range(n - 1):
        ids.append(int(jumps[i]) if noise[i] < 0.2 else int(table[ids[-1]]))
    return torch.tensor(ids)


def _step_replay(model, states, batches):
    """Each step of the learner's run on its own: the model as it was at that step's forward pass, on that
    step's batch: (losses, gradient norms before clipping). Step by step, so rounding cannot pile up
    over the run (Adam turns a 1-ulp difference in a near-zero gradient into a full-size step)."""
    losses, norms = [], []
    for state, (x, y) in zip(states, batches):
        model.load_state_dict(state)
        model.zero_grad(set_to_none=True)
        _logits, loss = model(x, y)
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        norms.append(torch.sqrt(sum(g.double().norm() ** 2 for g in grads)).item())
        losses.append(loss.item())
    return losses, norms


class _Redraw(Exception):
    """This draw cannot tell clipping mistakes apart (no step's gradient exceeded max_norm): draw again."""


def spike_run(fn):
    """``fn(model, data, steps, max_norm, bad_step=None, seed=0, lr=3e-3, batch_size=16) -> (losses, norms)``:
    train ``model`` in place with AdamW, one random batch of text per step, gradients clipped to
    ``max_norm``, a batch of one repeated character at ``bad_step``; the same ``seed`` gives the same
    batches, with or without the bad step. The check runs it on a small made-up text, watches every
    forward pass and optimizer step, and replays the run itself on the batches it saw."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains fastest on one thread
    try:
        for _i in range(20):  # a draw where no step needs clipping is rare (about 1 in 10), twenty in a row never seen
            try:
                return _spike_run(fn)
            except _Redraw:
                continue
        Check("spike_run").fail(_("no draw of twenty had a step whose gradients needed clipping; run the check again"))
    finally:
        torch.set_num_threads(threads)


def _spike_run(fn):
    import copy

    from torch.optim.optimizer import register_optimizer_step_pre_hook

    c = Check("spike_run")
    g = fresh_generator()
    vocab, T = int(torch.randint(10, 20, (1,), generator=g)), int(torch.randint(6, 12, (1,), generator=g))
    data = _toy_text(g, vocab, 3000)
    torch.manual_seed(int(torch.randint(0, 2**30, (1,), generator=g)))
    model0 = GPT(GPTConfig(block_size=T, vocab_size=vocab, n_layer=1, n_head=2, n_embd=16))
    steps, bad = int(torch.randint(20, 30, (1,), generator=g)), int(torch.randint(8, 16, (1,), generator=g))
    seed, B, lr = int(torch.randint(0, 10_000, (1,), generator=g)), int(torch.randint(4, 9, (1,), generator=g)), 1e-2
    # A limit near the first gradient's norm: some steps are clipped, some are not.
    probe = copy.deepcopy(model0)
    probe(data[:T].expand(B, T), data[1:T + 1].expand(B, T))[1].backward()
    first = torch.sqrt(sum(p.grad.norm() ** 2 for p in probe.parameters() if p.grad is not None)).item()
    max_norm = round(first * float(torch.empty(1).uniform_(0.5, 0.9, generator=g)), 4)
    windows = {tuple(w.tolist()) for w in data.unfold(0, T + 1, 1)}
    where = _("(steps={steps}, max_norm={max_norm}, seed={seed}, batch_size={B}, block_size={T})").format(steps=steps, max_norm=max_norm, seed=seed, B=B, T=T)

    def run(bad_step, run_seed):
        model = copy.deepcopy(model0)
        batches, states, opt_steps = [], [], []

        def on_forward(module, args, kwargs):
            idx = args[0] if args else kwargs.get("idx")
            targets = args[1] if len(args) > 1 else kwargs.get("targets")
            if targets is not None and torch.is_grad_enabled():
                batches.append((idx.detach().clone(), targets.detach().clone()))
                states.append({k: v.detach().clone() for k, v in module.state_dict().items()})

        def on_step(opt, args, kwargs):
            mine = [p for grp in opt.param_groups for p in grp["params"]]
            if {id(p) for p in mine} & {id(p) for p in model.parameters()}:
                grads = [p.grad for p in model.parameters() if p.grad is not None]
                norm = torch.sqrt(sum(gr.norm() ** 2 for gr in grads)).item() if grads else 0.0
                grp = opt.param_groups[0]
                opt_steps.append((type(opt).__name__, grp.get("lr"), tuple(grp.get("betas", ())), norm))

        handles = [model.register_forward_pre_hook(on_forward, with_kwargs=True),
                   register_optimizer_step_pre_hook(on_step)]
        try:
            out = c.call(fn, model, data.clone(), steps, max_norm, bad_step, run_seed, lr, B)
        finally:
            for h in handles:
                h.remove()
        try:
            losses, norms = ([float(v) for v in part] for part in out)
        except (TypeError, ValueError):
            c.fail(_("return two lists of numbers, (losses, norms), got {type}").format(type=type(out).__name__))
        c.that(len(losses) == steps and len(norms) == steps,
               _("with steps={steps} return one loss and one gradient norm per step; you returned "
                 "{n_losses} losses and {n_norms} norms").format(steps=steps, n_losses=len(losses), n_norms=len(norms)))
        c.that(len(batches) == steps,
               _("with steps={steps} your function ran the model on {n_batches} training batches; run one "
                 "forward pass (with targets) per step, on the model you are given").format(steps=steps, n_batches=len(batches)))
        c.that(len(opt_steps) == steps,
               _("with steps={steps} your optimizer stepped {n_opt_steps} times; step it once per step").format(steps=steps, n_opt_steps=len(opt_steps)))
        name, opt_lr, betas, _rest = opt_steps[0]
        c.that(name == "AdamW" and opt_lr == lr and betas == (0.9, 0.99),
               _("you trained with {name}(lr={opt_lr}, betas={betas}); the exercise asks for AdamW(lr=lr, "
                 "betas=(0.9, 0.99)) with lr={lr}").format(name=name, opt_lr=opt_lr, betas=betas, lr=lr))
        return losses, norms, batches, [s[3] for s in opt_steps], states

    def is_text(x, y):
        return all(tuple(a.tolist()) + (int(b[-1]),) in windows and bool((a[1:] == b[:-1]).all())
                   for a, b in zip(x, y))

    clean = run(None, seed)
    for t, (x, y) in enumerate(clean[2]):
        c.that(tuple(x.shape) == (B, T) and tuple(y.shape) == (B, T),
               _("{where}: step {t}'s batch has shape {shape}; draw batch_size rows of "
                 "model.config.block_size tokens").format(where=where, t=t, shape=tuple(x.shape)))
        c.that(is_text(x, y), _("{where}: at step {t} without a bad step, your batch is not windows of `data` with y = x "
                                "shifted by one token; draw every clean batch from the text").format(where=where, t=t))
    again = run(None, seed)
    c.that(all(torch.equal(a[0], b[0]) for a, b in zip(clean[2], again[2])) and clean[0] == again[0],
           _("{where}: two runs with the same seed saw different batches or gave different losses; "
             "draw the batches from a generator seeded with `seed`, so that runs can be compared step "
             "by step").format(where=where))
    other = run(None, seed + 1)
    c.that(not torch.equal(clean[2][0][0], other[2][0][0]),
           _("{where}: seed={seed} and seed={value} gave the same first batch; the batches must "
             "depend on `seed`").format(where=where, seed=seed, value=seed + 1))

    spiked = run(bad, seed)
    x, y = spiked[2][bad]
    c.that(x.unique().numel() == 1 and torch.equal(x, y),
           _("{where}, bad_step={bad}: the batch at the bad step should be one character repeated, in "
             "x and y alike (a shard of one repeated byte)").format(where=where, bad=bad))
    same = [torch.equal(a[0], b[0]) for a, b in zip(clean[2], spiked[2])]
    c.that(all(same[:bad]), _("{where}, bad_step={bad}: before the bad step the run saw other batches than the run "
                              "without one; with the same seed both runs must see the same batches").format(where=where, bad=bad))
    after = [t for t in range(bad + 1, steps) if not same[t]]
    c.that(not after,
           _("{where}, bad_step={bad}: after the bad step your run saw other text batches than the "
             "run without one (first at step {value}), so a comparison of the two would mix the bad "
             "batch's effect with different data; draw the bad batch without disturbing the stream of "
             "clean batches").format(where=where, bad=bad, value=after[0] if after else ''))

    replay_model = copy.deepcopy(model0)
    ref_clean = _step_replay(replay_model, clean[4], clean[2])
    if not any(n > max_norm * (1 + 1e-3) for n in ref_clean[1]):
        raise _Redraw  # every step below max_norm: clipping mistakes would go unseen
    for label, (losses, norms, batches, step_norms, states) in ((_("without a bad step"), clean),
                                                                (_("with bad_step={bad}").format(bad=bad), spiked)):
        for t, n_step in enumerate(step_norms):
            if n_step > max_norm * (1 + 1e-4) + 1e-6:
                c.fail(_("{where}, {label}: at step {t} the gradients reached the optimizer with norm "
                         "{n_step:.4g} > max_norm; clip them after backward() and before opt.step()").format(where=where, label=label, t=t, n_step=n_step))
        ref_losses, ref_norms = _step_replay(replay_model, states, batches)
        for t in range(steps):
            if not math.isclose(losses[t], ref_losses[t], rel_tol=1e-4, abs_tol=1e-5):
                c.fail(_("{where}, {label}: your loss at step {t} is {losses:.5f}, but your model on your batch "
                         "at that step gives another; return each step's training loss, and check the order of "
                         "the steps in your loop").format(where=where, label=label, t=t, losses=losses[t]))
            c.count += 1
            if not math.isclose(norms[t], ref_norms[t], rel_tol=1e-3, abs_tol=1e-6):
                if math.isclose(norms[t], min(ref_norms[t], max_norm), rel_tol=1e-3):
                    c.fail(_("{where}, {label}: at step {t} you logged the norm after clipping ({norms:.4g}); log the "
                             "norm measured before clipping, so that the spike shows").format(where=where, label=label, t=t, norms=norms[t]))
                c.fail(_("{where}, {label}: the gradient norm you logged at step {t} ({norms:.4g}) differs from "
                         "the global norm of that step's gradients, computed afresh (zeroed first) on your model "
                         "and batch and measured before clipping").format(where=where, label=label, t=t, norms=norms[t]))
            c.count += 1
    c.done()
