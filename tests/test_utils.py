import pytest
import torch

from minigpt import utils


def test_fast_mode_reads_the_environment(monkeypatch, tmp_path):
    log = tmp_path / "fast.log"
    monkeypatch.setenv("MINIGPT_FAST_LOG", str(log))
    monkeypatch.setenv("MINIGPT_FAST", "1")
    assert utils.fast_mode() is True
    monkeypatch.setenv("MINIGPT_FAST", "0")
    assert utils.fast_mode() is False
    monkeypatch.delenv("MINIGPT_FAST")
    assert utils.fast_mode() is False
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["fast=1", "fast=0", "fast=0"]
    # a test process is not a notebook kernel: the suite's sentinel counts only kernel=1 lines
    assert all(line.split()[2] == "kernel=0" for line in log.read_text().splitlines())


def test_device_defaults_to_the_best_available_and_can_be_overridden(monkeypatch):
    monkeypatch.delenv("MINIGPT_DEVICE", raising=False)
    dev = utils.get_device()
    if torch.cuda.is_available():
        assert dev.type == "cuda"
    elif not torch.backends.mps.is_available():
        assert dev.type == "cpu"
    assert utils.get_device("cpu").type == "cpu"
    monkeypatch.setenv("MINIGPT_DEVICE", "cpu")
    assert utils.get_device().type == "cpu"
    assert utils.describe_device(torch.device("cpu")).startswith("cpu (")


def test_asking_for_a_missing_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA is not available here; use 'cpu'"):
        utils.get_device("cuda")


def test_seed_everything_makes_runs_repeatable():
    g = utils.seed_everything(123)
    a = torch.randn(3), torch.randn(3, generator=g)
    g = utils.seed_everything(123)
    b = torch.randn(3), torch.randn(3, generator=g)
    torch.testing.assert_close(a, b)


def test_write_json_atomic_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "state.json"
    utils.write_json_atomic(path, {"step": 1})
    with pytest.raises(TypeError):
        utils.write_json_atomic(path, {"step": object()})  # not JSON-serialisable, fails mid-write
    assert path.read_text(encoding="utf-8") == '{"step": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left behind


def test_sha256_file_matches_hashlib(tmp_path):
    import hashlib

    path = tmp_path / "x.bin"
    path.write_bytes(b"minigpt" * 1000)
    assert utils.sha256_file(path) == hashlib.sha256(b"minigpt" * 1000).hexdigest()
