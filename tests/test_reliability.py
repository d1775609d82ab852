"""Bad paths of training, checkpoints and the command line: one clear line, exit 2 (130 for Ctrl-C),
no traceback, and never a lost run."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import minigpt.train as T
from minigpt import checkpoint as C
from minigpt.cli import main
from minigpt.train import PRESETS, TrainingError, TrainingInterrupted, load_checkpoint, train
from minigpt.utils import sha256_file

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parent.parent


def cfg(out, **kw):
    base = dict(max_iters=10, eval_interval=5, eval_tokens=2048, sample_tokens=0, out_dir=str(out) if out else None)
    base.update(kw)
    return dataclasses.replace(PRESETS["tiny"], **base)


def run_cli(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str, match: str):
    assert err.startswith("error: ") and match in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


TRAIN = ["train", "--preset", "tiny", "--max-iters", "10", "--eval-interval", "5", "--device", "cpu", "--quiet"]


# --------------------------------------------------------------------------- an --out that cannot be written

def test_out_that_is_a_file_or_inside_a_file_fails_before_the_first_step(tmp_path, capsys, monkeypatch):
    steps = []
    real_lr = T.get_lr
    monkeypatch.setattr(T, "get_lr", lambda it, c: steps.append(it) or real_lr(it, c))
    f = tmp_path / "afile"
    f.write_text("mine")
    code, _, err = run_cli(TRAIN + ["--out", str(f)], capsys)
    assert code == 2
    one_line_error(err, "is a file, not a run folder")
    code, _, err = run_cli(TRAIN + ["--out", str(f / "run")], capsys)
    assert code == 2
    one_line_error(err, f"cannot write checkpoints to {f / 'run'}")
    assert f.read_text() == "mine" and steps == []  # nothing trained, the user's file untouched


def test_unwritable_out_fails_before_the_first_step(tmp_path, capsys, monkeypatch):
    real_open = os.open

    def read_only(path, flags, *a, **k):
        if str(path).endswith(C.LOCK):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", read_only)
    steps = []
    real_lr = T.get_lr
    monkeypatch.setattr(T, "get_lr", lambda it, c: steps.append(it) or real_lr(it, c))
    code, _, err = run_cli(TRAIN + ["--out", str(tmp_path / "ro")], capsys)
    assert code == 2 and steps == []
    one_line_error(err, "Permission denied; check its permissions")


def test_raw_os_errors_become_one_line_naming_the_path(capsys, monkeypatch):
    import minigpt.commands.data as D

    def boom(args):
        raise IsADirectoryError(21, "Is a directory", "/some/folder")

    monkeypatch.setattr(D, "_cli_data", boom)
    code, _, err = run_cli(["data"], capsys)
    assert code == 2
    one_line_error(err, "cannot use /some/folder: Is a directory; it is a folder")


# --------------------------------------------------------------------------- never lose a run

def test_a_folder_holding_a_run_is_refused_without_resume_or_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(TRAIN + ["--out", str(out)], capsys)[0] == 0
    before = sorted(p.name for p in out.iterdir())
    code, _, err = run_cli(TRAIN + ["--out", str(out), "--max-iters", "20"], capsys)
    assert code == 2
    one_line_error(err, f"{out} holds a run at step 10; continue it with --resume")
    assert sorted(p.name for p in out.iterdir()) == before and load_checkpoint(out).step == 10
    assert run_cli(TRAIN + ["--out", str(out), "--max-iters", "20", "--resume"], capsys)[0] == 0
    assert load_checkpoint(out).step == 20
    assert run_cli(TRAIN + ["--out", str(out), "--overwrite"], capsys)[0] == 0
    assert load_checkpoint(out).step == 10


def test_a_second_run_into_a_locked_folder_exits_2_naming_the_first(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / C.LOCK).write_text("1\n")  # PID 1 is always alive: another run holds the folder
    code, _, err = run_cli(TRAIN + ["--out", str(out)], capsys)
    assert code == 2
    one_line_error(err, "is being written by another training run (PID 1)")
    assert not (out / "latest.json").exists() and (out / C.LOCK).read_text() == "1\n"


def test_a_lock_left_by_a_dead_run_is_taken_over_and_released(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / C.LOCK).write_text(f"{dead_pid()}\n")
    r = train(cfg(out), device="cpu", progress=False, text=None)
    assert r.steps == 10 and not (out / C.LOCK).exists()


def test_a_save_removes_only_its_own_or_dead_processes_temporary_folders(tmp_path, text):
    out = tmp_path / "run"
    out.mkdir()
    alive = out / ".tmp-ckpt-000005-1-abcd"  # another run (PID 1) is writing this right now
    dead = out / f".tmp-ckpt-000005-{dead_pid()}-efgh"
    old_style = out / ".tmp-ckpt-000005-ijkl"
    for d in (alive, dead, old_style):
        d.mkdir()
    train(cfg(out), device="cpu", progress=False, text=text)
    assert alive.is_dir() and not dead.exists() and not old_style.exists()


def test_ctrl_c_checkpoints_the_finished_step_and_resume_is_exact(tmp_path, text, monkeypatch):
    c = dict(max_iters=16, lr_decay_iters=16, eval_interval=8)
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN when pytest was started with `&`
    straight = train(cfg(tmp_path / "a", **c), device="cpu", progress=False, text=text)
    real_lr = T.get_lr

    def ctrl_c(it, conf):
        if it == 6:  # during step 7, between two evaluations
            os.kill(os.getpid(), signal.SIGINT)
        return real_lr(it, conf)

    monkeypatch.setattr(T, "get_lr", ctrl_c)
    with pytest.raises(TrainingInterrupted, match="interrupted at step 7 of 16: checkpoint of step 7 saved"):
        train(cfg(tmp_path / "b", **c), device="cpu", progress=False, text=text)
    monkeypatch.setattr(T, "get_lr", real_lr)
    assert load_checkpoint(tmp_path / "b").step == 7 and not (tmp_path / "b" / C.LOCK).exists()
    assert signal.getsignal(signal.SIGINT) is before  # the handler is given back
    torch.manual_seed(123)  # a new process would start with other RNG states
    resumed = train(cfg(tmp_path / "b", **c), device="cpu", progress=False, text=text, resume=True)
    assert [h["train_loss"] for h in resumed.history] == pytest.approx([h["train_loss"] for h in straight.history],
                                                                       abs=1e-6)
    assert resumed.val_loss == pytest.approx(straight.val_loss, abs=1e-6)


def test_ctrl_c_on_the_command_line_exits_130_with_how_to_resume(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "minigpt", "train", "--preset", "tiny", "--max-iters", "100000",
                          "--eval-interval", "5", "--device", "cpu", "--out", str(out), "--quiet"],
                         env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / "latest.json").is_file():
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert err.startswith("interrupted: training interrupted at step") and "--resume" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    step = int(err.split("at step ")[1].split()[0])
    assert load_checkpoint(out).step == step and not (out / C.LOCK).exists()


# --------------------------------------------------------------------------- checkpoints whose metadata lies

@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("good") / "run"  # on the course's data, so the command line can resume it
    train(cfg(out, max_iters=20, eval_interval=20), device="cpu", progress=False)
    return out


def damaged(good_run, tmp_path, edit):
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(good_run, dst)
    ck = C.checkpoint_dir(dst)
    meta = json.loads((ck / "meta.json").read_text())
    edit(meta, ck, dst)
    (ck / "meta.json").write_text(json.dumps(meta))
    return dst


def set_key(key, value):
    return lambda meta, ck, dst: meta.__setitem__(key, value)


@pytest.mark.parametrize("edit, match", [
    (set_key("files", []), "files must list model.safetensors and state.pt"),
    (set_key("history", "x"), "history is not a list"),
    (set_key("step", "abc"), "step is 'abc'"),
    (set_key("step", 5), "it says step 5, but it was written at step 20"),
    (lambda meta, ck, dst: meta["files"]["state.pt"].pop("sha256"), "needs bytes (a whole number) and sha256"),
    (set_key("model_config", "big"), "model_config is str"),
    (lambda meta, ck, dst: meta["tokenizer"]["chars"].pop(), "its tokenizer has 64 tokens but the model 65"),
])
def test_edited_metadata_is_one_clear_error(good_run, tmp_path, capsys, edit, match):
    dst = damaged(good_run, tmp_path, edit)
    with pytest.raises(ValueError, match="damaged or was edited"):
        load_checkpoint(dst)
    code, _, err = run_cli(["sample", "--ckpt", str(dst), "--max-new-tokens", "5"], capsys)
    assert code == 2
    one_line_error(err, match)
    code, _, err = run_cli(TRAIN + ["--out", str(dst), "--max-iters", "30", "--resume"], capsys)
    assert code == 2
    one_line_error(err, match)


def test_an_edited_pointer_step_is_refused(good_run, tmp_path):
    dst = damaged(good_run, tmp_path, lambda meta, ck, dst: None)
    pointer = json.loads((dst / "latest.json").read_text())
    (dst / "latest.json").write_text(json.dumps({**pointer, "step": 5}))
    with pytest.raises(ValueError, match="says step 5 but points to ckpt-000020"):
        load_checkpoint(dst)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_refused_pickle_does_not_suggest_weights_only_false(good_run, tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    def plant(meta, ck, dst):
        (ck / "state.pt").write_bytes(pickle.dumps({"optimizer": Evil()}))
        meta["files"]["state.pt"] = {"bytes": (ck / "state.pt").stat().st_size, "sha256": sha256_file(ck / "state.pt")}

    dst = damaged(good_run, tmp_path, plant)
    with pytest.raises(ValueError) as e:
        load_checkpoint(dst)
    assert "could not be loaded safely" in str(e.value) and "weights_only=False" not in str(e.value)
    assert "\n" not in str(e.value)


def test_resuming_with_another_model_names_the_differences_on_one_line(good_run, tmp_path, capsys):
    dst = damaged(good_run, tmp_path, lambda meta, ck, dst: None)
    code, _, err = run_cli(TRAIN + ["--out", str(dst), "--max-iters", "30", "--resume", "--block-size", "16"],
                           capsys)
    assert code == 2
    one_line_error(err, "is for a different model (block_size 32 instead of 16)")


# --------------------------------------------------------------------------- NaN weights

def test_a_checkpoint_with_nan_weights_is_refused_on_load(good_run, tmp_path, capsys):
    ck = load_checkpoint(good_run)
    with torch.no_grad():
        ck.model.transformer.h[0].mlp.c_fc.weight[0, 0] = float("nan")
    out = tmp_path / "nan"
    C.save_checkpoint(out, ck.model, ck.tokenizer, ck.step, train_config=ck.train_config, state=ck.state,
                      history=ck.history)
    with pytest.raises(ValueError, match=r"holds NaN or infinite weights \(transformer.h.0.mlp.c_fc.weight\)"):
        load_checkpoint(out)
    code, _, err = run_cli(["sample", "--ckpt", str(out)], capsys)
    assert code == 2
    one_line_error(err, "NaN or infinite weights")
    code, _, err = run_cli(TRAIN + ["--out", str(out), "--max-iters", "30", "--resume"], capsys)
    assert code == 2
    one_line_error(err, "NaN or infinite weights")


def test_training_never_saves_non_finite_weights_as_a_good_checkpoint(tmp_path, text, monkeypatch):
    real_step = torch.optim.AdamW.step
    calls = []

    def poisoned(self, *a, **k):
        out = real_step(self, *a, **k)
        calls.append(1)
        if len(calls) == 10:  # the update of step 10, just before its evaluation and checkpoint
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("nan"))
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", poisoned)
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"weights became NaN or infinite by step 10 .*the last checkpoint "
                                            r"\(step 5\) is kept"):
        train(cfg(out), device="cpu", progress=False, text=text)
    monkeypatch.setattr(torch.optim.AdamW, "step", real_step)
    assert load_checkpoint(out).step == 5


@pytest.mark.parametrize("value, ok", [("nan", False), ("inf", False), ("1e-45", True)])
def test_sample_temperature_nan_inf_and_tiny(good_run, capsys, value, ok):
    code, out, err = run_cli(["sample", "--ckpt", str(good_run), "--temperature", value, "--max-new-tokens", "20",
                              "--json"], capsys)
    if ok:
        greedy = run_cli(["sample", "--ckpt", str(good_run), "--temperature", "0", "--max-new-tokens", "20",
                          "--json"], capsys)[1]
        assert code == 0 and json.loads(out.splitlines()[-1])["text"] == json.loads(greedy.splitlines()[-1])["text"]
    else:
        assert code == 2
        one_line_error(err, "temperature must be a number >= 0")
