"""The shared trained model: loaded when a valid run exists, trained when none does, resumed when
interrupted; a run of another config, a corrupt one or an older format is never used."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

import minigpt.pretrained as pretrained
from minigpt.pretrained import course_config, inspect_run, shakespeare_gpt
from minigpt.train import train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGPT_RUNS_DIR", str(tmp_path))
    return tmp_path


def no_training(*args, **kwargs):
    raise AssertionError("training was started, but a valid checkpoint was there to load")


def test_trains_once_then_loads_the_same_weights(runs, monkeypatch, capsys):
    first = shakespeare_gpt("tiny", fast=False, device="cpu", progress=False)
    said = capsys.readouterr().out
    assert "no checkpoint in" in said and "training tiny, 50 steps" in said
    assert first.step == 50 and (runs / "tiny" / "latest.json").is_file()
    monkeypatch.setattr(pretrained, "train", no_training)
    again = shakespeare_gpt("tiny", fast=False, device="cpu", progress=False)
    said = capsys.readouterr().out
    assert said.startswith("loaded ") and "step 50, val loss" in said
    for (name, a), b in zip(first.model.state_dict().items(), again.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert not again.model.training and again.tokenizer.vocab_size == 65


def test_fast_mode_trains_its_own_run_and_never_touches_the_full_size_one(runs, capsys):
    full = course_config("tiny", fast=False)
    fast = course_config("tiny", fast=True)
    assert Path(fast.out_dir) == runs / "fast" / "tiny" and Path(full.out_dir) == runs / "tiny"
    assert fast.max_iters == 20 and dataclasses.replace(fast, max_iters=full.max_iters, warmup_iters=full.warmup_iters,
                                                        eval_interval=full.eval_interval, eval_tokens=full.eval_tokens,
                                                        sample_tokens=full.sample_tokens, out_dir=full.out_dir) == full
    ck = shakespeare_gpt("tiny", fast=True, device="cpu", progress=False)
    assert ck.step == 20 and not (runs / "tiny").exists()


def test_lesson_07s_run_is_found_by_the_later_lessons(runs, monkeypatch, capsys):
    cfg = course_config("tiny", fast=True)  # what lesson 07 trains
    train(cfg, device="cpu", progress=False)
    monkeypatch.setattr(pretrained, "train", no_training)
    assert shakespeare_gpt("tiny", fast=True, device="cpu").step == 20


def test_a_run_of_another_config_is_never_used(runs, capsys):
    cfg = course_config("tiny", fast=False)
    train(dataclasses.replace(cfg, n_embd=16, max_iters=10), device="cpu", progress=False)
    assert inspect_run(cfg) == ("unusable", "it was trained with another config: n_embd 16 instead of 32, "
                                            "max_iters 10 instead of 50")
    with pytest.raises(ValueError, match=r"cannot be used \(it was trained with another config: n_embd 16"):
        shakespeare_gpt("tiny", fast=False, device="cpu", progress=False)
    assert json.loads((runs / "tiny" / "latest.json").read_text())["step"] == 10  # left as it was
    ck = shakespeare_gpt("tiny", fast=False, device="cpu", progress=False, retrain=True)
    assert ck.step == 50 and ck.model.config.n_embd == 32


@pytest.mark.parametrize("damage, match", [
    ("truncate", "truncated or corrupt"),
    ("old-format", "format version 0"),
    ("pointer", "not valid JSON"),
])
def test_a_corrupt_or_old_checkpoint_is_an_error_at_full_size_and_retrained_in_fast_mode(runs, damage, match, capsys):
    for fast in (False, True):
        cfg = course_config("tiny", fast=fast)
        train(cfg, device="cpu", progress=False)
        run = Path(cfg.out_dir)
        ckpt = next(run.glob("ckpt-*"))
        if damage == "truncate":
            w = ckpt / "model.safetensors"
            w.write_bytes(w.read_bytes()[:-10])
        elif damage == "old-format":
            meta = json.loads((ckpt / "meta.json").read_text())
            meta["version"] = 0
            (ckpt / "meta.json").write_text(json.dumps(meta))
        else:
            (run / "latest.json").write_text("{not json")
        state, why = inspect_run(cfg)
        assert state == "unusable" and match in why
        if not fast:
            with pytest.raises(ValueError, match="cannot be used"):
                shakespeare_gpt("tiny", fast=False, device="cpu", progress=False)
        else:  # the FAST run is the suite's scratch copy: it is trained again
            ck = shakespeare_gpt("tiny", fast=True, device="cpu", progress=False)
            assert ck.step == 20 and "unusable checkpoint" in capsys.readouterr().out


def test_an_interrupted_run_is_resumed(runs, monkeypatch, capsys):
    import os
    import signal

    import minigpt.train as T
    from minigpt.train import TrainingInterrupted

    cfg = course_config("tiny", fast=False)
    real_lr = T.get_lr

    def ctrl_c_at_step_25(it, c):
        if it == 24:
            os.kill(os.getpid(), signal.SIGINT)  # as a learner pressing the stop button
        return real_lr(it, c)

    monkeypatch.setattr(T, "get_lr", ctrl_c_at_step_25)
    with pytest.raises(TrainingInterrupted, match="interrupted at step 25 of 50"):
        train(cfg, device="cpu", progress=False)
    monkeypatch.setattr(T, "get_lr", real_lr)
    assert inspect_run(cfg) == ("partial", "step 25")
    ck = shakespeare_gpt("tiny", fast=False, device="cpu", progress=False)
    assert "interrupted run (step 25 of 50): resuming it" in capsys.readouterr().out
    assert ck.step == 50


def test_the_runs_folder_is_the_checkout_s_whatever_the_working_directory(monkeypatch, tmp_path):
    from minigpt.utils import runs_dir

    monkeypatch.delenv("MINIGPT_RUNS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    root = Path(pretrained.__file__).resolve().parent.parent
    assert runs_dir() == root / "runs"
