"""Checkpoints: round trip, resume = one straight run, atomic writes, clear errors on bad files."""

import dataclasses
import json
import pickle

import pytest
import torch

from minigpt import checkpoint as C
from minigpt.train import PRESETS, load_checkpoint, train
from minigpt.utils import sha256_file

pytestmark = pytest.mark.usefixtures("one_thread")


def cfg(out, **kw):
    base = dict(max_iters=10, eval_interval=5, eval_tokens=2048, sample_tokens=0, out_dir=str(out))
    base.update(kw)
    return dataclasses.replace(PRESETS["tiny"], **base)


@pytest.fixture(scope="module")
def run(tmp_path_factory, text):
    out = tmp_path_factory.mktemp("run")
    result = train(cfg(out), device="cpu", progress=False, text=text)
    return out, result


def test_checkpoint_round_trip(run):
    out, result = run
    ck = load_checkpoint(out)
    assert ck.step == 10 and ck.path.parent == out
    assert json.loads((out / "latest.json").read_text())["checkpoint"] == ck.path.name
    assert sorted(p.name for p in ck.path.iterdir()) == ["meta.json", "model.safetensors", "state.pt"]
    ours, theirs = result.model.state_dict(), ck.model.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k].cpu(), theirs[k]) for k in ours)
    assert ck.model.lm_head.weight is ck.model.transformer.wte.weight  # still tied
    assert ck.tokenizer.chars == result.tokenizer.chars
    assert ck.train_config["max_iters"] == 10 and len(ck.history) == 10
    assert set(ck.state) >= {"optimizer", "sampler", "rng"}
    # only one checkpoint folder is kept, and no temporary folder is left behind
    assert len(list(out.glob("ckpt-*"))) == 1 and not list(out.glob(".tmp-*"))


@pytest.mark.parametrize("dropout, optimizer", [(0.0, "adamw"), (0.1, "adamw"), (0.0, "muon")])
def test_resume_continues_the_same_run(tmp_path, text, dropout, optimizer):
    """N steps straight vs N/2, stop, resume, N/2 more: the same final loss (to 1e-6)."""
    N = 16
    c = dict(max_iters=N, lr_decay_iters=N, eval_interval=4, dropout=dropout, optimizer=optimizer)
    straight = train(cfg(tmp_path / "a", **c), device="cpu", progress=False, text=text)
    half = train(cfg(tmp_path / "b", **{**c, "max_iters": N // 2}), device="cpu", progress=False, text=text)
    assert half.steps == N // 2 and load_checkpoint(tmp_path / "b").step == N // 2
    # a fresh process would start with other RNG states; the checkpoint must restore them
    torch.manual_seed(999)
    resumed = train(cfg(tmp_path / "b", **c), device="cpu", progress=False, text=text, resume=True)
    assert resumed.steps == N and len(resumed.history) == N
    assert resumed.train_loss == pytest.approx(straight.train_loss, abs=1e-6)
    assert resumed.val_loss == pytest.approx(straight.val_loss, abs=1e-6)
    a = [h["train_loss"] for h in straight.history]
    b = [h["train_loss"] for h in resumed.history]
    assert a == pytest.approx(b, abs=1e-6)


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, text):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(cfg(tmp_path / "empty"), device="cpu", progress=False, text=text, resume=True)


def test_resume_with_another_model_is_refused(run, text):
    out, _ = run
    with pytest.raises(ValueError, match="different model"):
        train(cfg(out, n_embd=64), device="cpu", progress=False, text=text, resume=True)


def test_resume_with_another_optimizer_is_refused(run, text):
    out, _ = run
    with pytest.raises(ValueError, match="trained with optimizer='adamw', not 'muon'"):
        train(cfg(out, optimizer="muon"), device="cpu", progress=False, text=text, resume=True)


def test_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, text, monkeypatch):
    out = tmp_path / "run"
    train(cfg(out, max_iters=5), device="cpu", progress=False, text=text)
    real_save = torch.save

    def crash(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        raise KeyboardInterrupt("power cut while writing")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        train(cfg(out, max_iters=10), device="cpu", progress=False, text=text, resume=True)
    monkeypatch.setattr(torch, "save", real_save)
    ck = load_checkpoint(out)
    assert ck.step == 5
    assert not list(out.glob(".tmp-*"))


def test_half_written_checkpoint_folder_is_ignored(run, tmp_path):
    # a folder a crash left without its meta.json: latest.json still points to the good one
    out, _ = run
    (out / "ckpt-000999-xxxx").mkdir()
    (out / "ckpt-000999-xxxx" / "model.safetensors").write_bytes(b"\0" * 10)
    try:
        assert load_checkpoint(out).step == 10
    finally:
        (out / "ckpt-000999-xxxx" / "model.safetensors").unlink()
        (out / "ckpt-000999-xxxx").rmdir()


def copy_run(run, tmp_path):
    import shutil

    out, _ = run
    dst = tmp_path / "copy"
    shutil.copytree(out, dst)
    return dst, C.checkpoint_dir(dst)


def test_truncated_weights_give_a_clear_error(run, tmp_path):
    dst, ck = copy_run(run, tmp_path)
    f = ck / "model.safetensors"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(ValueError, match="model.safetensors is truncated or corrupt"):
        load_checkpoint(dst)


def test_flipped_bytes_give_a_clear_error(run, tmp_path):
    dst, ck = copy_run(run, tmp_path)
    f = ck / "state.pt"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="state.pt is corrupt"):
        load_checkpoint(dst)


def test_corrupt_pointer_and_foreign_folders(run, tmp_path):
    dst, ck = copy_run(run, tmp_path)
    (dst / "latest.json").write_text("{not json")
    with pytest.raises(ValueError, match="latest.json is corrupt"):
        load_checkpoint(dst)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "meta.json").write_text(json.dumps({"hello": "world"}))
    with pytest.raises(ValueError, match="not a minigpt checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nowhere")
    (tmp_path / "file.bin").write_bytes(b"PK\x03\x04")
    with pytest.raises(ValueError, match="is a file"):
        load_checkpoint(tmp_path / "file.bin")


class Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/minigpt-pwned-by-checkpoint",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_state_file_with_code_is_never_run(run, tmp_path):
    """A state.pt that would run code when unpickled is refused, even with a matching checksum."""
    import os

    dst, ck = copy_run(run, tmp_path)
    marker = "/tmp/minigpt-pwned-by-checkpoint"
    if os.path.exists(marker):
        os.remove(marker)
    (ck / "state.pt").write_bytes(pickle.dumps({"optimizer": Evil()}))
    meta = json.loads((ck / "meta.json").read_text())
    meta["files"]["state.pt"] = {"bytes": (ck / "state.pt").stat().st_size, "sha256": sha256_file(ck / "state.pt")}
    (ck / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="could not be loaded safely"):
        load_checkpoint(dst)
    assert not os.path.exists(marker)
    # the weights alone still load: they are safetensors
    assert load_checkpoint(dst, load_state=False).step == 10


def test_weights_file_of_another_model_is_refused(run, tmp_path):
    from safetensors.torch import save_file

    dst, ck = copy_run(run, tmp_path)
    save_file({"foo": torch.zeros(3)}, str(ck / "model.safetensors"))
    meta = json.loads((ck / "meta.json").read_text())
    f = ck / "model.safetensors"
    meta["files"]["model.safetensors"] = {"bytes": f.stat().st_size, "sha256": sha256_file(f)}
    (ck / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not match the model"):
        load_checkpoint(dst)


def test_killed_run_resumes_to_the_same_result(tmp_path):
    """SIGKILL a training process mid-run, start the same command with --resume: same final loss."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(root))

    def cmd(out, *extra):
        return [sys.executable, "-m", "minigpt", "train", "--preset", "tiny", "--max-iters", "120",
                "--eval-interval", "5", "--device", "cpu", "--out", str(out), "--quiet", "--json", *extra]

    straight = subprocess.run(cmd(tmp_path / "a"), env=env, cwd=root, capture_output=True, text=True, timeout=240)
    assert straight.returncode == 0, straight.stderr
    p = subprocess.Popen(cmd(tmp_path / "b"), env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pointer = tmp_path / "b" / "latest.json"
    deadline = time.monotonic() + 200
    while p.poll() is None and time.monotonic() < deadline:
        if pointer.is_file() and json.loads(pointer.read_text())["step"] >= 10:
            p.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    p.wait(timeout=60)
    killed_at = load_checkpoint(tmp_path / "b").step
    print("killed at step", killed_at)
    resumed = subprocess.run(cmd(tmp_path / "b", "--resume"), env=env, cwd=root, capture_output=True, text=True,
                             timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads(straight.stdout.strip().splitlines()[-1])
    b = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert killed_at >= 10 and b["steps"] == a["steps"] == 120
    assert b["val_loss"] == pytest.approx(a["val_loss"], abs=1e-6)
    assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-6)


# ---- byte-level BPE runs (lesson 10) ----------------------------------------------------------------
def test_bpe_run_saves_and_loads_its_tokenizer(tmp_path, text):
    from minigpt.bpe import BPETokenizer

    out = tmp_path / "bpe"
    result = train(cfg(out, tokenizer="bpe", vocab_size=300), device="cpu", progress=False, text=text)
    ck = load_checkpoint(out)
    assert isinstance(ck.tokenizer, BPETokenizer) and ck.tokenizer.vocab_size == 300 == ck.model_config.vocab_size
    sample = text["val"][:500] + " 语言 😀"
    assert ck.tokenizer.encode(sample) == result.tokenizer.encode(sample)
    assert ck.train_config["tokenizer"] == "bpe" and ck.train_config["vocab_size"] == 300
    # resuming a BPE run keeps its tokenizer (not retrained) and continues the same run
    more = train(dataclasses.replace(cfg(out, tokenizer="bpe", vocab_size=300), max_iters=12), device="cpu",
                 progress=False, text=text, resume=True)
    assert more.steps == 12 and more.tokenizer.to_dict() == ck.tokenizer.to_dict()


def test_checkpoints_from_before_bpe_still_load_as_char(run, tmp_path):
    """Older runs have neither tokenizer nor vocab_size in their train config; they stay char runs."""
    from minigpt.pretrained import inspect_run
    from minigpt.tokenizer import CharTokenizer
    from minigpt.train import TrainConfig

    dst, ckpt = copy_run(run, tmp_path)
    meta = json.loads((ckpt / "meta.json").read_text())
    for key in ("tokenizer", "vocab_size"):
        meta["train_config"].pop(key)
    (ckpt / "meta.json").write_text(json.dumps(meta))
    ck = load_checkpoint(dst)
    assert isinstance(ck.tokenizer, CharTokenizer)
    saved = TrainConfig.from_dict(ck.train_config)
    assert saved.tokenizer == "char" and saved.vocab_size is None
    assert inspect_run(dataclasses.replace(saved, out_dir=str(dst))) == ("done", "step 10")


def test_bpe_settings_are_checked():
    from minigpt.train import TrainConfig

    with pytest.raises(ValueError, match="vocab_size"):
        TrainConfig(tokenizer="bpe")
    with pytest.raises(ValueError, match="'char' or 'bpe'"):
        TrainConfig(tokenizer="word")
