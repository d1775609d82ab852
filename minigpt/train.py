"""The trainer: a GPT on Tiny Shakespeare characters, on a CPU, a GPU or several GPUs.

One step of training, in order:
1. learning rate for this step: linear warmup, then cosine decay to ``min_lr`` (:func:`minigpt.optim.get_lr`);
2. ``grad_accum_steps`` micro-batches: forward (bf16/fp16 autocast on CUDA), loss / accum, backward;
3. clip the gradient norm to ``grad_clip``; one AdamW update (weight decay on matrices only; or Muon
   for the blocks' matrices: :mod:`minigpt.optim`).
Every ``eval_interval`` steps: the loss on a FIXED validation set (the same windows every time),
a text sample, and a checkpoint (atomic; see :mod:`minigpt.checkpoint`).

Several GPUs: ``torchrun --nproc_per_node=N -m minigpt train ...`` runs N processes with
DistributedDataParallel (NCCL on GPUs, gloo on CPUs). Every process draws the same global batch
of ``N x batch_size`` windows and takes its own slice, so N processes follow the same loss curve
as one process with N times the batch. Only rank 0 writes checkpoints and logs.

:func:`_train` reads as the run's steps, each a function of its own: load the text, encode it,
build the model, set up precision, build the optimizers, resume, then :func:`_loop` (one
:func:`_train_step` per step; :func:`_evaluate`, :func:`_sample` and :func:`_save` at each evaluation)
and :func:`_finish`.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

from .bpe import train as train_bpe
from .checkpoint import Checkpoint, acquire_lock, latest_step, load_checkpoint, release_lock, save_checkpoint
from .config import PRESETS, TrainConfig, get_preset  # torch-free, so the command line's --help is fast
from .data import shakespeare_split
from .evaluate import gather, nll_sum, windows
from .model import GPT, flops_per_token
from .optim import Muon, get_lr, make_optimizer, make_optimizers, set_lr
from .precision import choose_dtype, enable_tf32, estimate_mfu, peak_flops
from .tokenizer import CharTokenizer, Tokenizer
from .utils import describe_differences, get_device

__all__ = ["TrainConfig", "TrainResult", "PRESETS", "get_preset", "train", "get_lr", "load_checkpoint",
           "make_optimizer", "make_optimizers",
           "estimate_mfu", "peak_flops", "flops_per_token", "plot_losses", "Checkpoint"]


def make_tokenizer(cfg: TrainConfig, text: dict[str, str]):
    """The tokenizer of a new run: the characters of the whole text (``char``), or a byte-level BPE
    with ``cfg.vocab_size`` tokens learned from the train split alone (``bpe``; seconds). The BPE
    pre-splits text as GPT-2 does, so transformers' GPT2Tokenizer reads it once exported."""
    if cfg.tokenizer == "bpe":
        return train_bpe(text["train"], cfg.vocab_size, pattern="gpt2")
    return CharTokenizer.from_text(text["train"] + text["val"])


# --------------------------------------------------------------------------- data

# Validation windows and batches: minigpt.evaluate.windows and .gather (one home for scoring).


# --------------------------------------------------------------------------- results

@dataclass
class TrainResult:
    """What :func:`train` returns. ``history`` has one row per optimizer step."""

    model: GPT
    tokenizer: Tokenizer
    config: TrainConfig
    history: list = field(default_factory=list)
    samples: list = field(default_factory=list)  # (step, text)
    val_loss: float | None = None  # at the last step
    best_val_loss: float | None = None  # the lowest of all evaluations
    train_loss: float | None = None
    tokens_per_s: float = 0.0
    mfu: float = 0.0
    seconds: float = 0.0
    steps: int = 0
    out_dir: str | None = None
    device: str = "cpu"
    dtype: str = "float32"  # the precision the run used ("auto" resolved)
    dtype_reason: str = ""  # and why (see minigpt.precision)

    def summary(self) -> dict:
        return {"val_loss": self.val_loss, "best_val_loss": self.best_val_loss, "train_loss": self.train_loss, "tokens_per_s": self.tokens_per_s,
                "mfu": self.mfu, "seconds": self.seconds, "steps": self.steps, "out_dir": self.out_dir,
                "device": self.device, "dtype": self.dtype, "dtype_reason": self.dtype_reason,
                "params": self.model.num_params()}


class TrainingError(RuntimeError):
    """Training had to stop (loss not finite, out of memory); the message says why and what to do."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: the run was checkpointed at the step it had finished (when it has a
    run folder), so ``resume`` continues it exactly. The command line exits with status 130."""


class _StopOnInterrupt:
    """While installed, the first Ctrl-C (SIGINT) asks training to stop after the current step, so a
    checkpoint is never taken halfway through an update; a second Ctrl-C interrupts at once."""

    def __init__(self, enabled: bool):
        self.requested = False
        self._previous = None
        if enabled and threading.current_thread() is threading.main_thread():
            try:
                self._previous = signal.signal(signal.SIGINT, self._handle)
            except (ValueError, OSError):  # not allowed here (e.g. an embedded interpreter)
                self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


# --------------------------------------------------------------------------- distributed

def _dist_info():
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) without it."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"])
    return 0, 0, 1


def _all_reduce_sum(t: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


# --------------------------------------------------------------------------- RNG states

def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(Exception):
            torch.cuda.set_rng_state_all(state["cuda"])


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


def _oom_message(cfg: TrainConfig, device: torch.device, step: int) -> str:
    smaller = max(1, cfg.batch_size // 2)
    return (f"out of memory on {device} at step {step} with batch_size={cfg.batch_size}, block_size="
            f"{cfg.block_size}: use a smaller batch, e.g. --batch-size {smaller} --grad-accum "
            f"{cfg.grad_accum_steps * 2} (same tokens per step), or a smaller model")


def train(cfg: TrainConfig, device=None, progress: bool = True, resume: bool = False,
          text: dict[str, str] | None = None, overwrite: bool = False, tokenizer: Tokenizer | None = None) -> TrainResult:
    """Train a GPT as ``cfg`` says and return a :class:`TrainResult`.

    ``device``: a name or ``torch.device``; None picks CUDA, then MPS, then CPU
    (``MINIGPT_DEVICE`` overrides). ``resume``: continue from the checkpoint in ``cfg.out_dir``
    (same run: weights, optimizer, RNG states and data sampler restored). ``text``: a dict with
    ``train`` and ``val`` strings instead of Tiny Shakespeare's fixed split. A run folder that
    already holds a run is refused unless ``resume`` or ``overwrite``; while training, the folder is
    locked against a second run. Ctrl-C stops after the current step, writes a checkpoint and raises
    :class:`TrainingInterrupted`. Under ``torchrun`` this runs data-parallel (DDP) across the processes.
    ``tokenizer``: a ready one for a new run (e.g. a BPE trained on part of the text) instead of ``cfg.tokenizer``'s.
    """

    rank, local_rank, world = _dist_info()
    lock = None
    if cfg.out_dir and rank == 0:
        step = latest_step(cfg.out_dir)
        if step is not None and not resume and not overwrite:
            raise ValueError(f"{cfg.out_dir} holds a run at step {step}; continue it with --resume (resume=True) "
                             "or start again with --overwrite (overwrite=True)")
        lock = acquire_lock(cfg.out_dir)  # also proves the folder is writable, before any training
    try:
        return _train_locked(cfg, device, progress, resume, text, rank, local_rank, world, tokenizer)
    finally:
        release_lock(lock)


def _train_locked(cfg, device, progress, resume, text, rank, local_rank, world, tokenizer=None) -> TrainResult:
    device = _setup_device(device, local_rank, world)
    try:
        result = _train(cfg, device, progress and rank == 0, resume, text, rank, world, tokenizer)
        if world > 1:
            # Wait for rank 0 to finish writing before anyone tears down the process group: a rank that
            # destroys gloo while its peer is still busy can abort ("terminate called without an active
            # exception").
            dist.barrier()
        return result
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _setup_device(device, local_rank: int, world: int) -> torch.device:
    """The run's device (see :func:`~minigpt.utils.get_device`); under torchrun each process takes
    its own GPU (``LOCAL_RANK``) and joins the process group (NCCL on GPUs, gloo on CPUs)."""
    if world == 1:
        return get_device(str(device) if isinstance(device, torch.device) else device)
    if device is None and not os.environ.get("MINIGPT_DEVICE") and torch.cuda.is_available():
        device = f"cuda:{local_rank}"
    device = get_device(device if device is None or not isinstance(device, torch.device) else str(device))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


# --------------------------------------------------------------------------- the trainer, step by step

@dataclass
class _Run:
    """What one training run holds while it trains; the steps of :func:`_train` fill it in."""

    cfg: TrainConfig
    device: torch.device
    rank: int  # this process (0 writes checkpoints and logs)
    world: int  # processes under torchrun (1 without)
    tokenizer: CharTokenizer
    train_data: torch.Tensor  # token ids of the train split
    val_data: torch.Tensor
    val_starts: torch.Tensor  # the fixed validation windows' offsets
    model: GPT
    dtype: torch.dtype
    dtype_reason: str
    autocast: contextlib.AbstractContextManager
    scaler: torch.amp.GradScaler
    optimizers: list
    sampler: torch.Generator  # draws the training batches; the same on every rank
    runner: torch.nn.Module | None = None  # the model as trained: compiled and/or wrapped in DDP
    start_step: int = 0
    history: list = field(default_factory=list)
    train_time: float = 0.0  # seconds of the timed steps (the first one pays for warm-up)
    train_tokens: int = 0
    tps_ema: float | None = None  # tokens/s, smoothed for the progress bar
    last_loss: float | None = None

    @property
    def master(self) -> bool:
        return self.rank == 0

    @property
    def tokens_per_step(self) -> int:
        return self.cfg.batch_size * self.cfg.block_size * self.cfg.grad_accum_steps * self.world


def _train(cfg, device, progress, resume, text, rank, world, tokenizer=None) -> TrainResult:
    """One run, in the order a reader follows it: data, model, precision, optimizers, resume,
    the loop (steps, evaluations, checkpoints), the final figures."""
    t_start = time.perf_counter()
    text = _load_text(cfg, text)
    ckpt = _checkpoint_to_resume(cfg) if resume else None
    if ckpt is not None:
        tokenizer = ckpt.tokenizer
    elif tokenizer is None:
        tokenizer = make_tokenizer(cfg, text)
    train_data, val_data, val_starts = _encode_splits(cfg, tokenizer, text)
    model = _build_model(cfg, tokenizer.vocab_size, ckpt, device, rank)
    dtype, dtype_reason, autocast, scaler = _setup_precision(cfg, device, model, world, progress)
    optimizers = _build_optimizers(cfg, model, device, world, progress)
    run = _Run(cfg, device, rank, world, tokenizer, train_data, val_data, val_starts, model, dtype, dtype_reason,
               autocast, scaler, optimizers, sampler=torch.Generator().manual_seed(cfg.seed))
    if ckpt is not None:
        _restore(run, ckpt)
    run.runner = _runner(run)
    result = TrainResult(model=model, tokenizer=tokenizer, config=cfg, history=run.history,
                         out_dir=cfg.out_dir, device=str(device), steps=run.start_step,
                         dtype=str(dtype).removeprefix("torch."), dtype_reason=dtype_reason)
    _loop(run, result, progress)
    return _finish(run, result, t_start)


def _load_text(cfg: TrainConfig, text: dict[str, str] | None) -> dict[str, str]:
    """The run's text: ``text`` when given, else Tiny Shakespeare's fixed train/val split."""
    if text is None:
        if cfg.dataset != "tinyshakespeare":
            raise ValueError(f"unknown dataset {cfg.dataset!r}; the trainer knows 'tinyshakespeare'")
        text = shakespeare_split()
    return text


def _checkpoint_to_resume(cfg: TrainConfig) -> Checkpoint:
    """The latest checkpoint in ``cfg.out_dir``, with its trainer state, on the CPU."""
    if not cfg.out_dir:
        raise ValueError("resume needs an out_dir to resume from")
    return load_checkpoint(cfg.out_dir, device="cpu")


def _encode_splits(cfg: TrainConfig, tokenizer, text: dict[str, str]):
    """(train ids, val ids, validation window offsets): the split encoded once, the windows fixed."""
    train_data = torch.tensor(tokenizer.encode(text["train"]), dtype=torch.long)
    val_data = torch.tensor(tokenizer.encode(text["val"]), dtype=torch.long)
    for name, d in (("training", train_data), ("validation", val_data)):
        if len(d) < cfg.block_size + 1:
            raise ValueError(f"block_size {cfg.block_size} is longer than the {name} text ({len(d)} tokens); "
                             f"use a block_size below {len(d)}")
    return train_data, val_data, windows(len(val_data), cfg.block_size, cfg.eval_tokens)


def _build_model(cfg: TrainConfig, vocab_size: int, ckpt: Checkpoint | None, device: torch.device,
                 rank: int) -> GPT:
    """The GPT, on ``device``: seeded the same on every rank, or the checkpoint's weights."""
    mconf = cfg.model_config(vocab_size)
    if ckpt is not None and ckpt.model_config.to_dict() != mconf.to_dict():
        diff = describe_differences(ckpt.model_config.to_dict(), mconf.to_dict())
        raise ValueError(f"the checkpoint in {cfg.out_dir} is for a different model ({diff}); "
                         "resume with the same preset and sizes, or use another --out")
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank (DDP also broadcasts them)
    random.seed(cfg.seed + rank)
    np.random.seed(cfg.seed + rank)
    model = GPT(mconf)
    if ckpt is not None:
        model.load_state_dict(ckpt.model.state_dict())
    model.to(device)
    torch.manual_seed(cfg.seed + rank)  # dropout differs across ranks, as with one big batch
    return model


def _setup_precision(cfg: TrainConfig, device: torch.device, model: GPT, world: int, progress: bool):
    """(dtype, why, autocast context, gradient scaler) of the run (see :mod:`minigpt.precision`)."""
    dtype, dtype_reason = choose_dtype(cfg.dtype, device, model, batch_size=cfg.batch_size,
                                       block_size=cfg.block_size)
    if world > 1 and cfg.dtype == "auto" and device.type == "cpu":  # every process must agree
        votes = _all_reduce_sum(torch.tensor(float(dtype == torch.bfloat16)), world)
        if dtype == torch.bfloat16 and int(votes) < world:
            dtype, dtype_reason = torch.float32, "float32: not every process found bf16 faster"
    if progress:
        print(f"precision: {dtype_reason}", flush=True)
    if device.type == "cuda":
        enable_tf32()
    autocast = (torch.autocast(device_type=device.type, dtype=dtype) if dtype != torch.float32
                else contextlib.nullcontext())
    # fp16 needs loss scaling so small gradients do not underflow; bf16 and fp32 do not
    scaler = torch.amp.GradScaler("cuda" if device.type == "cuda" else "cpu",
                                  enabled=(dtype == torch.float16 and device.type == "cuda"))
    return dtype, dtype_reason, autocast, scaler


def _build_optimizers(cfg: TrainConfig, model: GPT, device: torch.device, world: int, progress: bool) -> list:
    """:func:`minigpt.optim.make_optimizers`; with Muon on CPUs every process agrees on the precision
    of its Newton-Schulz iterations (else their weights would drift apart) and the choice is shown."""
    optimizers = make_optimizers(model, cfg, device)
    for muon in (opt for opt in optimizers if isinstance(opt, Muon)):
        if world > 1 and device.type == "cpu":
            votes = _all_reduce_sum(torch.tensor(float(muon.ns_dtype == torch.bfloat16)), world)
            if muon.ns_dtype == torch.bfloat16 and int(votes) < world:
                muon.ns_dtype, muon.ns_reason = torch.float32, "float32: not every process found bf16 faster"
        if progress:
            print(f"Muon's Newton-Schulz: {muon.ns_reason}", flush=True)
    return optimizers


def _restore(run: _Run, ckpt: Checkpoint) -> None:
    """Continue ``ckpt``'s run exactly: optimizer states, data sampler, RNG states, step and history."""
    cfg, state = run.cfg, ckpt.state
    was = ckpt.train_config.get("optimizer", "adamw")
    if was != cfg.optimizer:
        raise ValueError(f"the checkpoint in {cfg.out_dir} was trained with optimizer={was!r}, not "
                         f"{cfg.optimizer!r}; resume with the same optimizer, or start again with --overwrite")
    try:
        saved = state["optimizer"] if isinstance(state["optimizer"], list) else [state["optimizer"]]
        if len(saved) != len(run.optimizers):
            raise ValueError(f"{len(saved)} optimizer states for {len(run.optimizers)} optimizers")
        for opt, opt_state in zip(run.optimizers, saved):
            opt.load_state_dict(opt_state)
        run.sampler.set_state(state["sampler"])
        rngs = state["rng"]
        _set_rng_state(rngs[run.rank] if len(rngs) == run.world else rngs[0])
        if "scaler" in state and run.scaler.is_enabled():
            run.scaler.load_state_dict(state["scaler"])
    except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"the checkpoint in {cfg.out_dir} has no usable trainer state ({first}); "
                         "resume with the same preset, or start again with --overwrite") from None
    run.start_step, run.history[:] = ckpt.step, list(ckpt.history)
    if run.start_step > cfg.max_iters:
        raise ValueError(f"the checkpoint is at step {run.start_step}, past max_iters={cfg.max_iters}; "
                         "raise --max-iters to train further")


def _runner(run: _Run) -> torch.nn.Module:
    """The module the loop calls: the model, compiled where that is on, wrapped in DDP under torchrun."""
    cfg, device = run.cfg, run.device
    compile_on = cfg.compile if cfg.compile is not None else device.type == "cuda"
    if compile_on and device.type == "mps":
        warnings.warn("torch.compile is not used on MPS; training without it", stacklevel=3)
        compile_on = False
    runner = run.model
    if compile_on:
        runner = _compiled_or_plain(run.model, run.val_data, run.val_starts, cfg, device, run.autocast)
    if run.world > 1:
        runner = DDP(runner, device_ids=[device.index] if device.type == "cuda" else None)
    return runner


def _loop(run: _Run, result: TrainResult, progress: bool) -> None:
    """Train from ``run.start_step`` to ``max_iters``: each step logged, every ``eval_interval`` steps
    an evaluation, a sample and a checkpoint. Ctrl-C stops after the current step (checkpointed)."""
    cfg = run.cfg
    bar = tqdm(total=cfg.max_iters, initial=run.start_step, desc="train", disable=not progress,
               dynamic_ncols=True, file=sys.stdout)
    run.model.train()
    stop = _StopOnInterrupt(enabled=run.world == 1)  # with DDP every rank would have to agree on the step
    n_params = run.model.num_params()
    try:
        for it in range(run.start_step, cfg.max_iters):
            step = it + 1
            lr = get_lr(it, cfg)
            set_lr(run.optimizers, lr)
            t0 = time.perf_counter()
            loss_value = _train_step(run, step)
            dt = time.perf_counter() - t0
            if it > run.start_step or cfg.max_iters - run.start_step == 1:  # the first step pays for warm-up/compile
                run.train_time += dt
                run.train_tokens += run.tokens_per_step
            tps = run.tokens_per_step / max(dt, 1e-9)
            run.tps_ema = tps if run.tps_ema is None else 0.9 * run.tps_ema + 0.1 * tps
            mfu = estimate_mfu(n_params, run.model.config, run.tps_ema, run.device)
            run.last_loss = loss_value
            row = {"step": step, "train_loss": loss_value, "val_loss": None, "lr": lr,
                   "tokens_per_s": run.tps_ema, "mfu": mfu}
            if step % cfg.eval_interval == 0 or step == cfg.max_iters:
                row["val_loss"] = _evaluate(run)
                result.val_loss = row["val_loss"]
                text_sample = _sample(run)
                if text_sample is not None:
                    result.samples.append((step, text_sample))
                    if progress:
                        bar.write(f"--- step {step}: val loss {row['val_loss']:.4f}\n{text_sample}\n---")
                run.history.append(row)
                _save(run, step)
            else:
                run.history.append(row)
            result.steps = step
            bar.set_postfix_str(f"loss {loss_value:.4f}, {run.tps_ema:,.0f} tok/s, MFU {100 * mfu:.1f}%",
                                refresh=False)
            bar.update(1)
            if stop.requested and step < cfg.max_iters:
                if cfg.out_dir and latest_step(cfg.out_dir) != step:
                    _save(run, step)
                saved = (f"checkpoint of step {step} saved in {cfg.out_dir}; continue with --resume "
                         "(train(..., resume=True))" if cfg.out_dir else "no run folder, so nothing was saved")
                raise TrainingInterrupted(f"training interrupted at step {step} of {cfg.max_iters}: {saved}")
    except RuntimeError as e:  # out of memory: in a step, an evaluation or a sample
        if _is_oom(e) and not isinstance(e, TrainingError):
            raise TrainingError(_oom_message(cfg, run.device, result.steps + 1)) from None
        raise
    finally:
        stop.restore()
        bar.close()


def _train_step(run: _Run, step: int) -> float:
    """One optimizer step (learning rate already set): ``grad_accum_steps`` micro-batches forward and
    backward, gradient clipping, the update. Returns the step's loss (the mean over all ranks)."""
    cfg, world = run.cfg, run.world
    # the global batch: (accum, world, batch) windows, the same draw on every rank
    offsets = torch.randint(len(run.train_data) - cfg.block_size,
                            (cfg.grad_accum_steps, world, cfg.batch_size), generator=run.sampler)
    loss_sum = torch.zeros((), device=run.device)
    for micro in range(cfg.grad_accum_steps):
        x, y = _batch(run, offsets[micro, run.rank])
        sync = world == 1 or micro == cfg.grad_accum_steps - 1
        with contextlib.nullcontext() if sync else run.runner.no_sync():
            with run.autocast:
                _, loss = run.runner(x, y)
            loss = loss / cfg.grad_accum_steps  # so the summed gradient is the mean's
            run.scaler.scale(loss).backward()
        loss_sum += loss.detach()
    grad_norm = None
    if cfg.grad_clip > 0:
        for opt in run.optimizers:
            run.scaler.unscale_(opt)
        grad_norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
    # a non-finite loss: stop before the update, so the weights stay the last good ones
    loss_value = float(_all_reduce_sum(loss_sum.detach().clone(), world) / world)
    bad_grad = grad_norm is not None and not run.scaler.is_enabled() and not math.isfinite(float(grad_norm))
    if not math.isfinite(loss_value) or bad_grad:
        what = (f"loss became {loss_value}" if not math.isfinite(loss_value)
                else f"gradient norm became {float(grad_norm)}")
        kept = latest_step(cfg.out_dir)
        where = (f"the last good checkpoint (step {kept}) is kept in {cfg.out_dir}"
                 if kept is not None else "no checkpoint was written")
        raise TrainingError(f"{what} at step {step}; training stopped and {where}. "
                            f"Try a lower learning rate (now {cfg.learning_rate}) or gradient "
                            "clipping (grad_clip)")
    for opt in run.optimizers:
        run.scaler.step(opt)
    run.scaler.update()
    for opt in run.optimizers:
        opt.zero_grad(set_to_none=True)
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    return loss_value


def _batch(run: _Run, offsets: torch.Tensor):
    """Training inputs and targets for the windows at ``offsets``, on the run's device."""
    x, y = gather(run.train_data, offsets, run.cfg.block_size)
    pin = run.device.type == "cuda"
    if pin:
        x, y = x.pin_memory(), y.pin_memory()
    return x.to(run.device, non_blocking=pin), y.to(run.device, non_blocking=pin)


@torch.no_grad()
def _evaluate(run: _Run) -> float:
    """Mean loss per token over the fixed validation windows (each rank scores its share)."""
    model, val_data, val_starts, cfg = run.model, run.val_data, run.val_starts, run.cfg
    device, autocast, rank, world = run.device, run.autocast, run.rank, run.world
    x, y = gather(val_data, val_starts[rank::world], cfg.block_size)
    with autocast:  # minigpt.evaluate: the course's one held-out loop (eval mode, restored after)
        nats, count = nll_sum(model, x, y, batch_size=max(cfg.batch_size, 8) * 4)
    total = torch.tensor([nats, count], dtype=torch.float64, device=device)
    _all_reduce_sum(total, world)  # this rank's share of the windows, summed over ranks
    return float(total[0] / total[1])


def _sample(run: _Run) -> str | None:
    """``sample_tokens`` characters from the model (rank 0), with a generator of its own so the
    training RNG is untouched; None when samples are off."""
    cfg, model, tokenizer = run.cfg, run.model, run.tokenizer
    if not cfg.sample_tokens or not run.master:
        return None
    model.eval()
    g = torch.Generator(device="cpu").manual_seed(cfg.seed)
    start = "\n" if not isinstance(tokenizer, CharTokenizer) or "\n" in tokenizer.stoi else tokenizer.chars[0]
    idx = torch.tensor([tokenizer.encode(start)], dtype=torch.long, device=run.device)
    out = model.generate(idx, cfg.sample_tokens, temperature=0.8, top_k=None, generator=g)
    model.train()
    return tokenizer.decode(out[0, 1:].tolist())


def _save(run: _Run, step: int) -> None:
    """Checkpoint the run at ``step`` (rank 0 writes; every rank's RNG state goes in). Refuses to
    save non-finite weights, so the last checkpoint is always a good one."""
    cfg, model = run.cfg, run.model
    if not cfg.out_dir:
        return
    broken = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    if broken:  # never let a broken model become the "last good checkpoint"
        raise TrainingError(f"weights became NaN or infinite by step {step} ({', '.join(broken[:3])}); "
                            f"nothing was saved, the last checkpoint (step {latest_step(cfg.out_dir)}) is kept in "
                            f"{cfg.out_dir}. Try a lower learning rate (now {cfg.learning_rate})")
    rngs = [_rng_state()]
    if run.world > 1:
        rngs = [None] * run.world
        dist.all_gather_object(rngs, _rng_state())
    if run.master:
        opt_states = [opt.state_dict() for opt in run.optimizers]
        state = {"optimizer": opt_states[0] if len(opt_states) == 1 else opt_states,
                 "sampler": run.sampler.get_state(), "rng": rngs}
        if run.scaler.is_enabled():
            state["scaler"] = run.scaler.state_dict()
        save_checkpoint(cfg.out_dir, model, run.tokenizer, step, train_config=cfg.to_dict(), state=state,
                        history=run.history, extra={"dtype": str(run.dtype).removeprefix("torch."),
                                                    "dtype_reason": run.dtype_reason})


def _finish(run: _Run, result: TrainResult, t_start: float) -> TrainResult:
    """The run's final figures: last and best val loss (evaluating once if no step ran), speed, MFU."""
    history = run.history
    if result.val_loss is None:  # no step ran (max_iters reached already): last evaluation, or one now
        result.val_loss = next((h["val_loss"] for h in reversed(history) if h["val_loss"] is not None), None)
        if result.val_loss is None:
            result.val_loss = _evaluate(run)
    vals = [h["val_loss"] for h in history if h["val_loss"] is not None]
    result.best_val_loss = min(vals) if vals else result.val_loss
    result.train_loss = run.last_loss if run.last_loss is not None else (history[-1]["train_loss"] if history else None)
    result.tokens_per_s = run.train_tokens / run.train_time if run.train_time > 0 else (run.tps_ema or 0.0)
    result.mfu = estimate_mfu(run.model.num_params(), run.model.config, result.tokens_per_s, run.device)
    result.seconds = time.perf_counter() - t_start
    run.model.eval()
    return result


def _compiled_or_plain(model, data, starts, cfg, device, autocast):
    """``torch.compile(model)``, tried on one batch (forward and backward); on failure a warning and
    the plain model. The RNG state is left as it was, so compiling does not change the run."""
    compiled = torch.compile(model)
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            x, y = gather(data, starts[: cfg.batch_size], cfg.block_size)
            with autocast:
                _, loss = compiled(x.to(device), y.to(device))
            loss.backward()
        model.zero_grad(set_to_none=True)
        return compiled
    except Exception as e:  # noqa: BLE001 - compilers fail in many ways
        model.zero_grad(set_to_none=True)
        if _is_oom(e):
            raise TrainingError(_oom_message(cfg, device, 0)) from None
        warnings.warn(f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); "
                      "training without it", stacklevel=3)
        return model


# --------------------------------------------------------------------------- plots

def plot_losses(history: list, ax=None, title: str = "Training and validation loss"):
    """Plot train loss (every step, lightly smoothed) and val loss (at each evaluation) vs step."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    steps = [h["step"] for h in history if h["train_loss"] is not None]
    train_l = [h["train_loss"] for h in history if h["train_loss"] is not None]
    if train_l:
        k = max(1, len(train_l) // 50)
        smooth = np.convolve(train_l, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], smooth, label=f"train (mean of {k} steps)" if k > 1 else "train")
    ev = [(h["step"], h["val_loss"]) for h in history if h["val_loss"] is not None]
    if ev:
        ax.plot(*zip(*ev), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss (nats per character)")
    ax.set_title(title)
    ax.legend()
    return ax.figure
