"""TrainConfig.dtype="auto" on a CPU: bf16 only with bf16 instructions, only where a probe finds it
faster, never for a model too small to gain; and bf16 training ends where fp32 training ends."""

import dataclasses

import pytest
import torch

from minigpt import precision
from minigpt.model import GPT, GPTConfig
from minigpt.precision import bf16_from_cpuinfo, choose_dtype, probe_bf16_speedup
from minigpt.train import get_preset, train

CPU = torch.device("cpu")


def _model(width):
    return GPT(GPTConfig(block_size=16, vocab_size=30, n_layer=1, n_head=4, n_embd=width))


def test_bf16_support_is_read_from_the_cpu_flags():
    assert bf16_from_cpuinfo("flags\t\t: fpu sse avx512f amx_bf16 amx_tile avx512_bf16\n") == (True, "AMX-BF16")
    assert bf16_from_cpuinfo("flags\t\t: fpu avx512f avx512_bf16\n") == (True, "AVX512-BF16")
    assert bf16_from_cpuinfo("Features\t: fp asimd bf16 i8mm\n") == (True, "Arm BF16")
    assert bf16_from_cpuinfo("flags\t\t: fpu sse avx2 avx512f\n")[0] is False
    assert bf16_from_cpuinfo("")[0] is False


def _no_probe(*args, **kwargs):
    raise AssertionError("the probe must not run here")


def test_auto_never_picks_bf16_on_a_cpu_without_it(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_support", lambda: (False, "no AVX512-BF16, AMX or Arm BF16"))
    monkeypatch.setattr(precision, "probe_bf16_speedup", _no_probe)
    dtype, why = choose_dtype("auto", CPU, _model(512), batch_size=4, block_size=16)
    assert dtype == torch.float32 and "no bf16 instructions" in why


def test_auto_keeps_fp32_for_a_small_model_without_probing(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_support", lambda: (True, "AMX-BF16"))
    monkeypatch.setattr(precision, "probe_bf16_speedup", _no_probe)
    dtype, why = choose_dtype("auto", CPU, _model(128), batch_size=4, block_size=16)
    assert dtype == torch.float32 and "too small" in why


@pytest.mark.parametrize("speedup,expected", [(1.5, torch.bfloat16), (1.05, torch.float32), (0.8, torch.float32)])
def test_auto_follows_the_probe_on_a_wider_model(monkeypatch, speedup, expected):
    monkeypatch.setattr(precision, "cpu_bf16_support", lambda: (True, "AVX512-BF16"))
    monkeypatch.setattr(precision, "probe_bf16_speedup", lambda *a, **k: speedup)
    dtype, why = choose_dtype("auto", CPU, _model(256), batch_size=4, block_size=16)
    assert dtype == expected and f"{speedup:.2f}x" in why


def test_an_explicit_dtype_is_used_as_asked(monkeypatch):
    monkeypatch.setattr(precision, "probe_bf16_speedup", _no_probe)
    assert choose_dtype("bfloat16", CPU, _model(32)) == (torch.bfloat16, "bfloat16: asked for")
    assert choose_dtype("float32", CPU, _model(512)) == (torch.float32, "float32: asked for")


def test_the_probe_leaves_the_model_and_the_random_state_as_they_were():
    torch.manual_seed(3)
    model = _model(32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    speedup = probe_bf16_speedup(model, batch_size=2, block_size=16, rounds=1, steps=1)
    assert speedup > 0
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_bf16_and_fp32_training_end_within_0_02_of_each_other(text):
    """Same seed, same steps: bf16 autocast rounds the matmuls but lands at the same loss."""
    base = dataclasses.replace(get_preset("tiny"), max_iters=60, eval_interval=60, out_dir=None, sample_tokens=0)
    losses = {}
    for dtype in ("float32", "bfloat16"):
        r = train(dataclasses.replace(base, dtype=dtype), device="cpu", progress=False, text=text)
        assert r.dtype == dtype and r.summary()["dtype_reason"] == f"{dtype}: asked for"
        losses[dtype] = r.val_loss
    assert abs(losses["float32"] - losses["bfloat16"]) < 0.02, losses


def test_the_run_records_what_auto_chose_and_why(text, tmp_path):
    cfg = dataclasses.replace(get_preset("tiny"), max_iters=4, eval_interval=4, out_dir=str(tmp_path / "run"),
                              sample_tokens=0)
    r = train(cfg, device="cpu", progress=False, text=text)
    assert r.dtype == "float32" and r.dtype_reason.startswith("float32: ")  # 32 wide: too small for bf16
    from minigpt.checkpoint import read_meta

    extra = read_meta(tmp_path / "run")["extra"]
    assert extra["dtype"] == "float32" and extra["dtype_reason"] == r.dtype_reason
