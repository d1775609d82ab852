"""Two ``shakespeare_gpt()`` calls at once (two notebooks opened together): the second waits for the
first to finish training and loads its checkpoint, with a line saying so, and gives up after its time-out."""

import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import minigpt.pretrained as pretrained
from minigpt.checkpoint import LOCK
from minigpt.pretrained import course_config, shakespeare_gpt

CALL = textwrap.dedent("""
    import pathlib, sys, time, torch
    torch.set_num_threads(1)
    from minigpt.pretrained import shakespeare_gpt
    if len(sys.argv) > 3:  # wait, already started (torch imported), until the first process holds the lock
        while not pathlib.Path(sys.argv[3]).exists():
            time.sleep(0.01)
    ck = shakespeare_gpt("tiny", fast=False, device="cpu", progress=False, wait=float(sys.argv[1]))
    torch.save(ck.model.state_dict(), sys.argv[2])
""")


def start(runs, wait, out, after_lock=None):
    env = {**os.environ, "MINIGPT_RUNS_DIR": str(runs), "PYTHONPATH": os.pathsep.join(sys.path)}
    extra = [str(after_lock)] if after_lock else []
    return subprocess.Popen([sys.executable, "-c", CALL, str(wait), str(out), *extra], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_a_second_call_waits_for_the_first_and_loads_its_checkpoint(tmp_path):
    folder = tmp_path / "tiny"
    # the second starts at once (its start-up, importing torch, would outlast a tiny run) and calls
    # shakespeare_gpt() as soon as the first process holds the run's lock
    second = start(tmp_path, 60, tmp_path / "second.pt", after_lock=folder / LOCK)
    first = start(tmp_path, 60, tmp_path / "first.pt")
    said_first = first.communicate(timeout=120)[0]
    said_second = second.communicate(timeout=120)[0]
    assert first.returncode == 0, said_first
    assert second.returncode == 0, said_second
    assert "training tiny, 50 steps" in said_first
    assert "is being trained by another process" in said_second and "waiting for it to finish" in said_second
    assert "loaded " in said_second and "step 50" in said_second
    assert "training" not in said_second.replace("being trained", "")  # it never trained a copy of its own
    a, b = torch.load(tmp_path / "first.pt"), torch.load(tmp_path / "second.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_calls_started_together_train_once(tmp_path):
    # neither sees the other's lock at first: the one that loses the race for the folder waits and loads
    calls = [start(tmp_path, 60, tmp_path / f"{i}.pt") for i in range(2)]
    said = [p.communicate(timeout=120)[0] for p in calls]
    assert [p.returncode for p in calls] == [0, 0], said
    assert sum("training tiny, 50 steps" in s and "being trained" not in s for s in said) <= 1, said
    assert any("loaded " in s and "step 50" in s for s in said), said
    a, b = torch.load(tmp_path / "0.pt"), torch.load(tmp_path / "1.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_waiting_gives_up_after_the_time_out_with_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGPT_RUNS_DIR", str(tmp_path))
    folder = tmp_path / "tiny"
    folder.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (folder / LOCK).write_text(f"{other.pid}\n")
        monkeypatch.setattr(pretrained, "train", lambda *a, **k: pytest.fail("trained while another run held the folder"))
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match=r"still being trained by PID \d+ after \d+ s of waiting; run this cell"):
            shakespeare_gpt("tiny", fast=False, device="cpu", progress=False, wait=1.0)
        assert time.monotonic() - t0 < 5
    finally:
        other.kill()
        other.wait()


def test_a_lock_left_by_a_dead_process_is_not_waited_for(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINIGPT_RUNS_DIR", str(tmp_path))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    out = course_config("tiny", fast=False, device="cpu").out_dir
    os.makedirs(out)
    with open(os.path.join(out, LOCK), "w") as f:
        f.write(f"{gone.pid}\n")
    assert pretrained.wait_for_run(tmp_path / "tiny", wait=0.1) is False
    assert capsys.readouterr().out == ""
