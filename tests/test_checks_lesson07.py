"""Lesson 07's checks accept the reference answers and reject the typical mistakes, a constant among them.

The checks draw new inputs every call, so the accepting tests run each check several times."""

import math

import pytest
import torch

from minigpt import checks as check
from minigpt.checks import CheckFailed

# ---------------------------------------------------------------- the learning-rate schedule


def _decay_end(cfg):
    return getattr(cfg, "lr_decay_iters", None) or cfg.max_iters


REPEATS = range(3)


@pytest.mark.parametrize("attempt", REPEATS)
def test_lr_schedule_accepts_the_trainers_own_get_lr(attempt, capsys):
    from minigpt.train import get_lr

    check.lr_schedule(get_lr)
    assert "✓ lr_schedule" in capsys.readouterr().out


def test_lr_schedule_rejects_a_cosine_that_ends_at_zero():
    from minigpt.train import get_lr

    def to_zero(step, cfg):
        lr = get_lr(step, cfg)
        # rescale the decay so it ends at 0 instead of min_lr
        if step >= cfg.warmup_iters:
            return (lr - cfg.min_lr) * cfg.learning_rate / (cfg.learning_rate - cfg.min_lr)
        return lr

    with pytest.raises(CheckFailed, match="min_lr"):
        check.lr_schedule(to_zero)


def test_lr_schedule_rejects_a_schedule_without_warmup():
    from minigpt.train import get_lr

    def no_warmup(step, cfg):
        return cfg.learning_rate if step < cfg.warmup_iters else get_lr(step, cfg)

    with pytest.raises(CheckFailed, match="during warmup"):
        check.lr_schedule(no_warmup)


def test_lr_schedule_rejects_a_schedule_that_keeps_decaying_past_the_end():
    from minigpt.train import get_lr

    def keeps_going(step, cfg):
        end = _decay_end(cfg)
        if step <= end:
            return get_lr(step, cfg)
        ratio = (step - cfg.warmup_iters) / (end - cfg.warmup_iters)
        return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * ratio)) * (cfg.learning_rate - cfg.min_lr)

    with pytest.raises(CheckFailed, match="after the decay has ended"):
        check.lr_schedule(keeps_going)


def test_lr_schedule_rejects_ignoring_lr_decay_iters():
    def decays_to_max_iters(step, cfg):
        end = cfg.max_iters
        if step < cfg.warmup_iters:
            return cfg.learning_rate * (step + 1) / (cfg.warmup_iters + 1)
        if step >= end:
            return cfg.min_lr
        ratio = (step - cfg.warmup_iters) / (end - cfg.warmup_iters)
        return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * ratio)) * (cfg.learning_rate - cfg.min_lr)

    with pytest.raises(CheckFailed, match="decay ends at 1500"):
        check.lr_schedule(decays_to_max_iters)


def test_lr_schedule_rejects_a_constant():
    with pytest.raises(CheckFailed, match="during warmup"):
        check.lr_schedule(lambda step, cfg: 6e-4)


def test_lr_schedule_rejects_the_course_presets_numbers():
    from minigpt.train import PRESETS, get_lr

    preset = PRESETS["shakespeare-char-cpu"]
    with pytest.raises(CheckFailed, match="warmup|decay"):
        check.lr_schedule(lambda step, cfg: get_lr(step, preset))  # ignores cfg


def test_lr_schedule_reports_an_unfinished_exercise():
    def todo(step, cfg):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not implemented yet"):
        check.lr_schedule(todo)


# ---------------------------------------------------------------- tokens per optimizer step


@pytest.mark.parametrize("attempt", REPEATS)
def test_tokens_per_step_accepts_the_product(attempt, capsys):
    check.tokens_per_step(lambda b, t, a, w: b * t * a * w)
    assert "✓ tokens_per_step" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda b, t, a, w: b * t * a, "world_size"),
        (lambda b, t, a, w: b * t * w, "grad_accum_steps"),
        (lambda b, t, a, w: b * (t - 1) * a * w, "too low"),
        (lambda b, t, a, w: float(b * t * a * w), "int"),
        (lambda b, t, a, w: 491_520, "too"),  # a constant: nanoGPT's GPT-2 recipe
    ],
)
def test_tokens_per_step_rejects_forgotten_factors(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check.tokens_per_step(wrong)


# ---------------------------------------------------------------- gradient accumulation


def _accumulate(model, x, y, accum_steps, scale=True, mean=True):
    total = 0.0
    for xb, yb in zip(x.chunk(accum_steps), y.chunk(accum_steps)):
        _, loss = model(xb, yb)
        (loss / accum_steps if scale else loss).backward()
        total += loss.item()
    return total / accum_steps if mean else total


@pytest.mark.parametrize("attempt", REPEATS)
def test_accumulate_grads_accepts_scaled_micro_batches(attempt, capsys):
    check.accumulate_grads(_accumulate)
    assert "✓ accumulate_grads" in capsys.readouterr().out


def test_accumulate_grads_rejects_unscaled_losses():
    with pytest.raises(CheckFailed, match="too large"):
        check.accumulate_grads(lambda m, x, y, a: _accumulate(m, x, y, a, scale=False))


def test_accumulate_grads_rejects_a_summed_loss():
    with pytest.raises(CheckFailed, match="sum over micro-batches"):
        check.accumulate_grads(lambda m, x, y, a: _accumulate(m, x, y, a, mean=False))


def test_accumulate_grads_rejects_only_the_first_micro_batch():
    def first_only(model, x, y, accum_steps):
        xb, yb = x.chunk(accum_steps)[0], y.chunk(accum_steps)[0]
        _, loss = model(xb, yb)
        loss.backward()
        return loss.item()

    with pytest.raises(CheckFailed, match="forward pass"):
        check.accumulate_grads(first_only)


def test_accumulate_grads_rejects_one_full_batch_backward():
    def full_batch(model, x, y, accum_steps):  # the same gradients, but none of the memory saving
        _, loss = model(x, y)
        loss.backward()
        return loss.item()

    with pytest.raises(CheckFailed, match="forward pass"):
        check.accumulate_grads(full_batch)


def test_accumulate_grads_rejects_summing_the_losses_before_one_backward():
    def one_backward(model, x, y, accum_steps):
        losses = [model(xb, yb)[1] for xb, yb in zip(x.chunk(accum_steps), y.chunk(accum_steps))]
        total = sum(losses) / accum_steps
        total.backward()
        return total.item()

    with pytest.raises(CheckFailed, match="backward pass"):
        check.accumulate_grads(one_backward)


def test_accumulate_grads_rejects_a_constant():
    def constant(model, x, y, accum_steps):
        _accumulate(model, x, y, accum_steps)
        return 2.4

    with pytest.raises(CheckFailed, match="loss returned"):
        check.accumulate_grads(constant)


# ---------------------------------------------------------------- gradient clipping


def _clip(params, max_norm, per_tensor=False, return_after=False):
    params = [p for p in params if p.grad is not None]
    total = torch.sqrt(sum((p.grad.detach() ** 2).sum() for p in params))
    for p in params:
        norm = p.grad.norm() if per_tensor else total
        coef = max_norm / (norm + 1e-6)
        if coef < 1:
            p.grad.mul_(coef)
    if return_after:
        return torch.sqrt(sum((p.grad.detach() ** 2).sum() for p in params)).item()
    return total.item()


@pytest.mark.parametrize("attempt", REPEATS)
def test_clip_global_norm_accepts_the_reference_and_torch(attempt, capsys):
    check.clip_global_norm(_clip)
    check.clip_global_norm(lambda ps, m: torch.nn.utils.clip_grad_norm_(ps, m).item())
    out = capsys.readouterr().out
    assert out.count("✓ clip_global_norm") == 2


def test_clip_global_norm_rejects_per_tensor_clipping():
    with pytest.raises(CheckFailed, match="different factors"):
        check.clip_global_norm(lambda ps, m: _clip(ps, m, per_tensor=True))


def test_clip_global_norm_rejects_the_norm_after_clipping():
    with pytest.raises(CheckFailed, match="after clipping"):
        check.clip_global_norm(lambda ps, m: _clip(ps, m, return_after=True))


def test_clip_global_norm_rejects_always_rescaling():
    def always(params, max_norm):
        params = list(params)
        total = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
        for p in params:
            p.grad.mul_(max_norm / (total + 1e-6))
        return total.item()

    with pytest.raises(CheckFailed, match="unchanged"):
        check.clip_global_norm(always)


def test_clip_global_norm_rejects_a_constant():
    with pytest.raises(CheckFailed, match="total norm"):
        check.clip_global_norm(lambda ps, m: 1.0)


# ---------------------------------------------------------------- 6·N·D


def _days(n, d, g, peak, mfu):
    return 6 * n * d / (g * peak * mfu) / 86400


@pytest.mark.parametrize("attempt", REPEATS)
def test_training_days_accepts_six_n_d(attempt, capsys):
    check.training_days(_days)
    assert "✓ training_days" in capsys.readouterr().out
    # GPT-3 on 1024 A100s at 40% MFU: about a month (Narayanan et al. 2021 estimate 34 days at 44%).
    assert 25 < _days(175e9, 300e9, 1024, 312e12, 0.4) < 32


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda n, d, g, p, m: 2 * n * d / (g * p * m) / 86400, "forward pass only"),
        (lambda n, d, g, p, m: 6 * n * d / (g * p * m), "seconds"),
        (lambda n, d, g, p, m: 6 * n * d / (g * p * m) / 3600, "hours"),
        (lambda n, d, g, p, m: 6 * n * d * m / (g * p) / 86400, "mfu"),
        (lambda n, d, g, p, m: 6 * n * d / (p * m) / 86400, "factor"),
        (lambda n, d, g, p, m: 30.0, "too"),  # a constant
    ],
)
def test_training_days_rejects_typical_slips(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check.training_days(wrong)


# ---------------------------------------------------------------- loss spikes


def _spike(losses, ratio):
    best = math.inf
    for i, v in enumerate(losses):
        if i > 0 and v > ratio * best:
            return i
        best = min(best, v)
    return None


@pytest.mark.parametrize("attempt", REPEATS)
def test_find_loss_spike_accepts_the_running_minimum(attempt, capsys):
    check.find_loss_spike(_spike)
    assert "✓ find_loss_spike" in capsys.readouterr().out


def test_find_loss_spike_rejects_comparing_with_the_previous_step_only():
    def previous_only(losses, ratio):
        for i in range(1, len(losses)):
            if losses[i] > ratio * losses[i - 1]:
                return i
        return None

    with pytest.raises(CheckFailed, match="lowest"):
        check.find_loss_spike(previous_only)


def test_find_loss_spike_rejects_returning_the_loss_value():
    def value(losses, ratio):
        i = _spike(losses, ratio)
        return None if i is None else losses[i]

    with pytest.raises(CheckFailed, match="index"):
        check.find_loss_spike(value)


def test_find_loss_spike_rejects_greater_or_equal():
    def ge(losses, ratio):
        best = math.inf
        for i, v in enumerate(losses):
            if i > 0 and v >= ratio * best:
                return i
            best = min(best, v)
        return None

    with pytest.raises(CheckFailed):
        check.find_loss_spike(ge)


@pytest.mark.parametrize("window", [3, 5, 10])
@pytest.mark.parametrize("attempt", REPEATS)
def test_find_loss_spike_rejects_comparing_with_the_last_few_steps_only(window, attempt):
    def last_few(losses, ratio):
        for i in range(1, len(losses)):
            if losses[i] > ratio * min(losses[max(0, i - window):i]):
                return i
        return None

    with pytest.raises(CheckFailed, match="lowest"):
        check.find_loss_spike(last_few)


@pytest.mark.parametrize("constant", [None, 3])
def test_find_loss_spike_rejects_a_constant(constant):
    with pytest.raises(CheckFailed):
        check.find_loss_spike(lambda losses, ratio: constant)


# ---------------------------------------------------------------- the loss-spike experiment's training run


def _spike_run(model, data, steps, max_norm, bad_step=None, seed=0, lr=3e-3, batch_size=16, *,
               junk_from_batches=False, skip_clean_draw=False, clip=True, clip_after_step=False,
               log_after_clip=False, seeded=True, use_seed=True, random_junk=False, optimizer="adamw",
               zero_grad=True):
    """The reference run; each keyword switches on one typical mistake."""
    T, V = model.config.block_size, model.config.vocab_size
    s = seed if use_seed else 0
    batches = torch.Generator().manual_seed(s) if seeded else None
    junk = batches if junk_from_batches else (torch.Generator().manual_seed(s + 1) if seeded else None)
    if optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99))
    elif optimizer == "adam-default-betas":
        opt = torch.optim.AdamW(model.parameters(), lr=lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses, norms = [], []
    for step in range(steps):
        if step == bad_step and skip_clean_draw:
            pass
        else:
            ix = torch.randint(len(data) - T, (batch_size,), generator=batches)
            x = torch.stack([data[i:i + T] for i in ix])
            y = torch.stack([data[i + 1:i + T + 1] for i in ix])
        if step == bad_step:
            if random_junk:
                x = y = torch.randint(V, (batch_size, T), generator=junk)
            else:
                x = y = torch.randint(V, (1, 1), generator=junk).expand(batch_size, T)
        _, loss = model(x, y)
        if zero_grad:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip_after_step:
            opt.step()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm if clip else math.inf).item()
        if log_after_clip:
            norm = min(norm, max_norm)
        if not clip_after_step:
            opt.step()
        norms.append(norm)
        losses.append(loss.item())
    return losses, norms


@pytest.mark.parametrize("attempt", range(2))
def test_spike_run_accepts_the_reference(attempt, capsys):
    check.spike_run(_spike_run)
    assert "✓ spike_run" in capsys.readouterr().out


def test_spike_run_accepts_the_learners_own_clipping(capsys):
    """Exercise 4's clip_global_norm instead of torch's: the same run up to rounding."""

    def own_clip(model, data, steps, max_norm, bad_step=None, seed=0, lr=3e-3, batch_size=16):
        original = torch.nn.utils.clip_grad_norm_

        def clip(parameters, max_norm):
            grads = [p.grad for p in parameters if p.grad is not None]
            total = torch.sqrt(sum((g.detach() ** 2).sum() for g in grads))
            if max_norm / (total + 1e-6) < 1:
                for g in grads:
                    g.mul_(max_norm / (total + 1e-6))
            return total

        torch.nn.utils.clip_grad_norm_ = clip
        try:
            return _spike_run(model, data, steps, max_norm, bad_step, seed, lr, batch_size)
        finally:
            torch.nn.utils.clip_grad_norm_ = original

    check.spike_run(own_clip)
    assert "✓ spike_run" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, hint", [
    (dict(junk_from_batches=True), "after the bad step your run saw other text batches"),
    (dict(skip_clean_draw=True), "after the bad step your run saw other text batches"),
    (dict(clip=False), "norm .* > max_norm"),
    (dict(clip_after_step=True), "before opt.step"),
    (dict(log_after_clip=True), "norm after clipping"),
    (dict(seeded=False), "same seed saw different batches"),
    (dict(use_seed=False), "same first batch"),
    (dict(random_junk=True), "one character repeated"),
    (dict(optimizer="sgd"), "AdamW"),
    (dict(optimizer="adam-default-betas"), "betas"),
    (dict(zero_grad=False), "afresh"),
])
def test_spike_run_rejects_typical_mistakes(mistake, hint):
    def wrong(*args):
        return _spike_run(*args, **mistake)

    with pytest.raises(CheckFailed, match=hint):
        check.spike_run(wrong)


def test_spike_run_rejects_made_up_numbers():
    def made_up(model, data, steps, max_norm, bad_step=None, seed=0, lr=3e-3, batch_size=16):
        losses = [3.0 - 0.02 * t for t in range(steps)]
        if bad_step is not None:
            losses[bad_step] = 6.0
        return losses, [1.0] * steps

    with pytest.raises(CheckFailed, match="ran the model on 0 training batches"):
        check.spike_run(made_up)


def test_spike_run_rejects_a_constant():
    with pytest.raises(CheckFailed):
        check.spike_run(lambda *args: ([2.0] * 25, [1.0] * 25))


def test_spike_run_reports_an_unfinished_exercise():
    def unfinished(*args):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not implemented yet"):
        check.spike_run(unfinished)
