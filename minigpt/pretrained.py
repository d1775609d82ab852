"""The trained Tiny Shakespeare GPT that lessons 08-12 share.

Lesson 07 trains it; every later lesson calls :func:`shakespeare_gpt`, which loads that checkpoint
when a valid one exists and trains it (once, with the trainer's progress bar) when none does:

    ck = shakespeare_gpt()       # loaded ../runs/shakespeare-char-cpu: step 3500, val loss 1.559
    model, tok = ck.model, ck.tokenizer

Runs live in :func:`minigpt.utils.runs_dir` (``runs/`` at the top of the checkout), one folder per
preset; FAST mode uses ``runs/fast/PRESET``, a few dozen steps, and never touches the full-size run.
A checkpoint of another config, a corrupt one or one in an older format is never used: FAST mode
retrains its scratch run, full size stops with a message saying what to do.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from .checkpoint import LOCK, POINTER, Checkpoint, RunLockedError, load_checkpoint, read_meta
from .train import TrainConfig, get_preset, train
from .utils import describe_differences, fast_mode, get_device, pid_alive, runs_dir

__all__ = ["course_config", "default_preset", "inspect_run", "shakespeare_gpt", "TRAINING_TIME"]

# Measured on the course's machines (lesson 07), to tell a learner what to expect before training.
TRAINING_TIME = {
    "shakespeare-char-cpu": "5-7 minutes on a 2-core CPU",
    "shakespeare-char-cpu-10min": "about 9 minutes on a 2-core CPU",
    "shakespeare-char-gpu": "about 3 minutes on an A100-class GPU",
    "shakespeare-bpe-cpu": "about 6 minutes on a 2-core CPU",
}
# Settings that change how a run is watched, not the model it produces.
_NOT_COMPARED = ("out_dir", "compile", "sample_tokens", "eval_interval", "eval_tokens")


def default_preset(device=None) -> str:
    """The recipe lesson 07 trains on this device: the GPU recipe on CUDA, the CPU recipe elsewhere."""
    return "shakespeare-char-gpu" if get_device(device).type == "cuda" else "shakespeare-char-cpu"


def course_config(preset: str | None = None, fast: bool | None = None, device=None) -> TrainConfig:
    """The :class:`TrainConfig` of the course's run of ``preset``, with its run folder.

    FAST mode (``fast`` or ``MINIGPT_FAST``) keeps the model's sizes but trains 20 steps and
    evaluates on part of the validation split, in ``runs/fast/PRESET``.
    """
    preset = preset or default_preset(device)
    fast = fast_mode() if fast is None else fast
    cfg = get_preset(preset)
    if fast:  # a few dozen steps: enough to see the loss fall, not to learn Shakespeare
        cfg = dataclasses.replace(cfg, max_iters=20, warmup_iters=5, eval_interval=10, eval_tokens=8192,
                                  sample_tokens=80)
    folder = runs_dir() / "fast" / preset if fast else runs_dir() / preset
    return dataclasses.replace(cfg, out_dir=str(folder))


def inspect_run(cfg: TrainConfig) -> tuple[str, str]:
    """What the run folder of ``cfg`` holds: ``("none", "")``, ``("done", "step N")``,
    ``("partial", "step N")`` (interrupted: can be resumed) or ``("unusable", why)``."""
    out = Path(cfg.out_dir)
    if not (out / POINTER).exists() and not any(out.glob("ckpt-*")):
        return "none", ""
    try:
        meta = read_meta(out)  # format, version and every file's SHA-256
    except (FileNotFoundError, ValueError) as e:
        return "unusable", str(e)
    saved = meta.get("train_config") or {}
    try:  # fields added since the run was saved take their defaults, as when the run is loaded
        saved = TrainConfig.from_dict(saved).to_dict()
    except (TypeError, ValueError):
        pass  # an unknown or bad field: the comparison below names what differs
    diff = describe_differences(saved, cfg.to_dict(), skip=_NOT_COMPARED)
    if diff:
        return "unusable", f"it was trained with another config: {diff}"
    step = int(meta.get("step", 0))
    return ("done" if step >= cfg.max_iters else "partial"), f"step {step}"


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)


WAIT_SECONDS = 1800.0  # how long shakespeare_gpt waits for another process training the same run


def _lock_holder(out: Path) -> int | None:
    """The PID of another live process training into ``out``, or None."""
    try:
        pid = int((out / LOCK).read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid != os.getpid() and pid_alive(pid) else None


def wait_for_run(out: Path, wait: float = WAIT_SECONDS, poll: float = 0.5) -> bool:
    """Wait while another process (another notebook) trains into ``out``; True when there was one.

    Prints a line when it starts waiting and one every 30 s; raises ``TimeoutError`` after ``wait`` s."""
    pid = _lock_holder(out)
    if pid is None:
        return False
    print(f"{_shown(out)} is being trained by another process (PID {pid}; another notebook?): "
          f"waiting for it to finish, then loading its checkpoint", flush=True)
    t0 = time.monotonic()
    said = 0
    while pid is not None:
        waited = time.monotonic() - t0
        if waited > wait:
            raise TimeoutError(f"{_shown(out)} was still being trained by PID {pid} after {waited:.0f} s of "
                               "waiting; run this cell again when that run has finished, or stop it")
        if waited >= said + 30:
            said += 30
            print(f"still waiting for PID {pid} ({said} s)", flush=True)
        time.sleep(poll)
        pid = _lock_holder(out)
    return True


def shakespeare_gpt(preset: str | None = None, *, fast: bool | None = None, device=None,
                    retrain: bool = False, progress: bool = True, wait: float = WAIT_SECONDS) -> Checkpoint:
    """The trained Tiny Shakespeare GPT of ``preset`` (default: lesson 07's recipe for this device).

    Loads the run's checkpoint when it is complete and made with this config; resumes an
    interrupted run; trains from scratch when there is none (or when ``retrain``). Prints one
    line saying which. When another process is training the same run (two notebooks opened
    together), waits up to ``wait`` seconds for it and loads its checkpoint. Returns a
    :class:`minigpt.checkpoint.Checkpoint` (``.model``, ``.tokenizer``, ``.step``, ``.history``)
    with the model in eval mode on ``device``.
    """
    device = get_device(device)
    cfg = course_config(preset, fast, device)
    name = preset or default_preset(device)
    out = Path(cfg.out_dir)
    fast = fast_mode() if fast is None else fast
    waited = False
    for attempt in range(3):
        waited = wait_for_run(out, wait) or waited
        state, detail = inspect_run(cfg)
        if waited and state == "done":
            retrain = False  # the other process has just trained it: that run is the one asked for
        if state == "unusable" and not (retrain or fast):
            raise ValueError(f"{_shown(out)} holds a checkpoint that cannot be used ({detail}); move it away, "
                             "or call shakespeare_gpt(retrain=True) to train a new one in its place")
        try:
            if retrain or state in ("none", "unusable"):
                why = {"none": "no checkpoint", "unusable": f"unusable checkpoint ({detail})"}.get(state, "retrain=True")
                took = "a few seconds (FAST mode)" if fast else TRAINING_TIME.get(name, "")
                print(f"{why} in {_shown(out)}: training {name}, {cfg.max_iters:,} steps"
                      + (f", {took}" if took else ""), flush=True)
                train(cfg, device=device, progress=progress, overwrite=True)  # asked for, or nothing usable there
            elif state == "partial":
                print(f"{_shown(out)} holds an interrupted run ({detail} of {cfg.max_iters:,}): resuming it", flush=True)
                train(cfg, device=device, progress=progress, resume=True)
        except RunLockedError:
            if attempt == 2:
                raise
            continue  # another process took the folder first: wait for it, then load its run
        break
    ck = load_checkpoint(out, device=device, load_state=False)
    vals = [h["val_loss"] for h in ck.history if h.get("val_loss") is not None]
    if state == "done" and not retrain:
        print(f"loaded {_shown(out)}: step {ck.step}" + (f", val loss {vals[-1]:.3f}" if vals else ""))
    return ck
