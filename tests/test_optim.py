"""One home for optimisation: the schedule, AdamW's groups and Muon, shared by every trainer; Muon's
Newton-Schulz in fp32 on CPUs where bf16 is slow, equal to torch's Muon up to bf16 rounding."""

import dataclasses
import math

import pytest
import torch
from torch.optim._muon import _zeropower_via_newtonschulz

from minigpt import model as model_module
from minigpt import names_gpt, optim, precision
from minigpt import train as T
from minigpt.checkpoint import latest_step
from minigpt.model import GPT, GPTConfig
from minigpt.optim import Muon, cosine_lr, get_lr, muon_precision, newton_schulz, param_groups

pytestmark = pytest.mark.usefixtures("one_thread")
NS = (3.4445, -4.7750, 2.0315)  # torch's (Keller Jordan's) Newton-Schulz coefficients


def _gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(block_size=8, vocab_size=12, n_layer=2, n_head=2, n_embd=16))


def test_warmup_is_nanogpts_and_the_schedule_never_repeats_a_value():
    lr, w = 1e-3, 10
    assert cosine_lr(0, lr, 1e-4, w, 110) == pytest.approx(lr / (w + 1))  # (s + 1) / (w + 1)
    assert cosine_lr(w - 1, lr, 1e-4, w, 110) == pytest.approx(lr * w / (w + 1))  # below the peak
    assert cosine_lr(w, lr, 1e-4, w, 110) == pytest.approx(lr)  # the peak, once
    lrs = [cosine_lr(s, lr, 1e-4, w, 110) for s in range(111)]
    assert all(b > a for a, b in zip(lrs[:w], lrs[1:w + 1]))  # strictly rising into the peak
    assert all(b < a for a, b in zip(lrs[w:110], lrs[w + 1:111]))  # strictly falling after it
    assert cosine_lr(60, lr, 1e-4, w, 110) == pytest.approx(0.5 * (lr + 1e-4))
    assert cosine_lr(500, lr, 1e-4, w, 110) == 1e-4


def test_the_trainer_and_the_names_gpt_follow_one_schedule():
    tc = T.TrainConfig(learning_rate=3e-3, min_lr=3e-4, warmup_iters=20, max_iters=300)
    nc = names_gpt.NamesTrainConfig(learning_rate=3e-3, min_lr=3e-4, warmup_steps=20, max_steps=300)
    assert [get_lr(s, tc) for s in range(320)] == [names_gpt.lr_at(s, nc) for s in range(320)]
    lr_decay = dataclasses.replace(tc, lr_decay_iters=200)
    assert get_lr(200, lr_decay) == 3e-4 and get_lr(199, lr_decay) > 3e-4


def test_weight_decay_covers_matrices_and_both_embeddings_in_every_trainer():
    model = _gpt()
    names = {id(p): n for n, p in model.named_parameters()}
    decay, no_decay = param_groups(model.parameters(), 0.1)
    assert {names[id(p)] for p in decay["params"]} >= {"transformer.wte.weight", "transformer.wpe.weight"}
    assert all(p.dim() == 1 for p in no_decay["params"]) and no_decay["weight_decay"] == 0.0
    trainer = T.make_optimizer(model, T.TrainConfig(weight_decay=0.1), torch.device("cpu"))
    names_opt = names_gpt.make_optimizer(model, names_gpt.NamesTrainConfig(weight_decay=0.1))
    for opt in (trainer, names_opt):  # the same two groups, in the same order
        assert [[names[id(p)] for p in g["params"]] for g in opt.param_groups] == [
            [names[id(p)] for p in g["params"]] for g in (decay, no_decay)]
        assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]


def test_each_piece_lives_once_and_the_old_names_point_to_it():
    assert T.get_lr is optim.get_lr and T.make_optimizer is optim.make_optimizer
    assert T.make_optimizers is optim.make_optimizers
    assert T.flops_per_token is model_module.flops_per_token
    assert T.peak_flops is precision.peak_flops and T.estimate_mfu is precision.estimate_mfu
    assert not hasattr(T, "_latest_step") and not hasattr(T, "_enable_tf32") and not hasattr(T, "_GPU_PEAKS")


@pytest.mark.parametrize("shape", [(48, 16), (16, 48), (32, 32)])
def test_newton_schulz_in_bf16_is_torchs_own(shape):
    G = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    ours = newton_schulz(G, NS, 5, 1e-7, torch.bfloat16)
    assert torch.equal(ours, _zeropower_via_newtonschulz(G, NS, 5, 1e-7))


@pytest.mark.parametrize("shape", [(48, 16), (16, 48)])
def test_newton_schulz_in_fp32_matches_bf16_up_to_its_rounding(shape):
    G = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    fp32 = newton_schulz(G, NS, 5, 1e-7, torch.float32)
    bf16 = newton_schulz(G, NS, 5, 1e-7, torch.bfloat16).float()
    assert fp32.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa (relative rounding 2^-8 = 0.4%); five iterations compound it a little
    assert (fp32 - bf16).norm() / fp32.norm() < 0.03
    # and it orthogonalises: the singular values land in Muon's band around 1 (roughly 0.5-1.5)
    s = torch.linalg.svdvals(fp32)
    assert s.min() > 0.4 and s.max() < 1.5


def _muon_steps(ns_dtype, steps=4, torch_muon=False):
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(24, 8)), torch.nn.Parameter(torch.randn(8, 24))]
    kw = dict(lr=0.02, weight_decay=0.1, adjust_lr_fn="match_rms_adamw")
    opt = torch.optim.Muon(params, **kw) if torch_muon else Muon(params, ns_dtype=ns_dtype, **kw)
    start = [p.detach().clone() for p in params]
    g = torch.Generator().manual_seed(3)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()
    return start, params, opt


def test_muon_in_fp32_makes_torchs_update_up_to_bf16_rounding():
    start, ref, ref_opt = _muon_steps(None, torch_muon=True)
    _, same, same_opt = _muon_steps(torch.bfloat16)
    _, fp32, fp32_opt = _muon_steps(torch.float32)
    for r, s in zip(ref, same):
        assert torch.equal(r, s)  # ns_dtype=bf16 is torch's own step
    for p0, r, f in zip(start, ref, fp32):
        moved = (r - p0).norm()
        assert moved > 0.1  # the steps did move the weights
        assert (f - r).norm() / moved < 0.03  # the same update, but for bf16's rounding
    # the same state: a checkpoint of one resumes the other
    assert ref_opt.state_dict()["param_groups"] == fp32_opt.state_dict()["param_groups"]
    for a, b in zip(ref_opt.state_dict()["state"].values(), fp32_opt.state_dict()["state"].values()):
        assert a.keys() == b.keys()
        torch.testing.assert_close(a["momentum_buffer"], b["momentum_buffer"])  # momentum is fp32 in both


def _never(*args, **kwargs):
    raise AssertionError("the probe must not run here")


def test_muon_precision_follows_the_cpu(monkeypatch):
    monkeypatch.setattr(optim, "_probe_bf16_matmul", _never)
    assert muon_precision("cuda")[0] == torch.bfloat16
    monkeypatch.setattr(optim, "cpu_bf16_support", lambda: (False, "no AVX512-BF16, AMX or Arm BF16"))
    dtype, why = muon_precision("cpu")
    assert dtype == torch.float32 and why == "float32: no native bf16 here (no AVX512-BF16, AMX or Arm BF16)"
    monkeypatch.setattr(optim, "cpu_bf16_support", lambda: (True, "AVX512-BF16"))
    monkeypatch.setattr(optim, "_probe_bf16_matmul", lambda threads: 1 / 60)  # bf16 present but not used
    dtype, why = muon_precision("cpu")
    assert dtype == torch.float32 and why == "float32: bf16 Newton-Schulz ran 60.0x slower than fp32 in a probe"
    monkeypatch.setattr(optim, "_probe_bf16_matmul", lambda threads: 0.5)  # noise of a busy machine: keep bf16
    assert muon_precision("cpu")[0] == torch.bfloat16
    monkeypatch.setattr(optim, "_probe_bf16_matmul", lambda threads: 1.6)
    assert muon_precision("cpu") == (torch.bfloat16, "bfloat16: 1.6x as fast as fp32 in a probe (AVX512-BF16)")


def test_the_probe_compares_the_two_precisions_and_is_cached():
    optim._probe_bf16_matmul.cache_clear()
    speedup = optim._probe_bf16_matmul(1, 32, 16, 0.01)
    assert math.isfinite(speedup) and speedup > 0
    assert optim._probe_bf16_matmul(1, 32, 16, 0.01) == speedup  # asked again: the cached answer


def test_an_emulated_avx2_cpu_has_no_native_bf16(monkeypatch):
    """``ONEDNN_MAX_CPU_ISA=AVX2`` (how an AVX2-only laptop is emulated) rules bf16 out everywhere."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    precision.cpu_bf16_support.cache_clear()
    monkeypatch.setattr(optim, "cpu_bf16_support", precision.cpu_bf16_support)
    monkeypatch.setattr(optim, "_probe_bf16_matmul", _never)
    try:
        assert precision.cpu_bf16_support() == (False, "ONEDNN_MAX_CPU_ISA=AVX2 rules out bf16 instructions")
        assert muon_precision("cpu")[0] == torch.float32
        dtype, why = precision.choose_dtype("auto", torch.device("cpu"), _gpt())
        assert dtype == torch.float32 and "ONEDNN_MAX_CPU_ISA=AVX2" in why  # autocast stays in fp32 too
    finally:
        precision.cpu_bf16_support.cache_clear()
    for value, limit in (("avx2", "avx2"), ("AVX512_CORE", "AVX512_CORE"), ("AVX512_CORE_BF16", None),
                         ("AVX512_CORE_AMX", None), ("ALL", None), ("", None)):
        assert precision.onednn_isa_limit(value) == limit


def test_muon_run_without_native_bf16_trains_in_fp32_and_resumes_exactly(text, tmp_path, monkeypatch):
    monkeypatch.setattr(optim, "cpu_bf16_support", lambda: (False, "no AVX512-BF16, AMX or Arm BF16"))
    monkeypatch.setattr(optim, "_probe_bf16_matmul", _never)
    cfg = dataclasses.replace(T.PRESETS["tiny"], max_iters=20, eval_interval=10, eval_tokens=2048,
                              sample_tokens=0, optimizer="muon", out_dir=None, lr_decay_iters=20)
    straight = T.train(cfg, device="cpu", progress=False, text=text)
    muon = [o for o in T.make_optimizers(straight.model, cfg, torch.device("cpu")) if isinstance(o, Muon)][0]
    assert muon.ns_dtype == torch.float32
    evals = [h["val_loss"] for h in straight.history if h["val_loss"] is not None]
    assert evals[-1] < evals[0] < math.log(len(straight.tokenizer.chars))
    half = dataclasses.replace(cfg, max_iters=10, out_dir=str(tmp_path / "run"))  # the same schedule
    T.train(half, device="cpu", progress=False, text=text)
    assert latest_step(half.out_dir) == 10
    resumed = T.train(dataclasses.replace(half, max_iters=20), device="cpu", progress=False, text=text, resume=True)
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_latest_step_reads_the_pointer_or_says_none(tmp_path):
    assert latest_step(None) is None and latest_step(tmp_path / "missing") is None
    (tmp_path / "latest.json").write_text('{"format": "minigpt-checkpoint", "checkpoint": "ckpt-000007", "step": 7}')
    assert latest_step(tmp_path) == 7
    (tmp_path / "latest.json").write_text("not json")
    assert latest_step(tmp_path) is None
    (tmp_path / "latest.json").write_text("[1, 2]")
    assert latest_step(tmp_path) is None
