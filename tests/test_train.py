"""The trainer: schedule, optimizer groups, accumulation, fixed evaluation, bad input, NaN and OOM."""

import dataclasses
import math

import pytest
import torch

from minigpt import train as T
from minigpt.evaluate import windows
from minigpt.model import GPT
from minigpt.train import PRESETS, TrainConfig, estimate_mfu, get_lr, get_preset, train
from minigpt.utils import get_device

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kw):
    base = dict(max_iters=20, eval_interval=10, eval_tokens=2048, sample_tokens=0, out_dir=None)
    base.update(kw)
    return dataclasses.replace(PRESETS["tiny"], **base)


def test_presets_exist_and_match_the_recipes():
    gpu = PRESETS["shakespeare-char-gpu"]
    assert (gpu.n_layer, gpu.n_head, gpu.n_embd, gpu.block_size, gpu.batch_size) == (6, 6, 384, 256, 64)
    assert (gpu.learning_rate, gpu.min_lr, gpu.warmup_iters, gpu.max_iters, gpu.dropout, gpu.beta2) == (
        1e-3, 1e-4, 100, 5000, 0.2, 0.99)
    cpu = PRESETS["shakespeare-char-cpu"]
    assert cpu.model_config(65).n_embd == cpu.n_embd
    # the 10-minute CPU recipe: lesson 07's model, context 128, Muon (val 1.484 in 9.1 min, README)
    ten = PRESETS["shakespeare-char-cpu-10min"]
    assert (ten.n_layer, ten.n_embd, ten.block_size, ten.optimizer, ten.max_iters) == (4, 128, 128, "muon", 4000)
    with pytest.raises(ValueError, match="unknown preset 'nope'.*shakespeare-char-cpu"):
        get_preset("nope")
    # a copy: editing it leaves the preset alone
    c = get_preset("tiny")
    c.max_iters = 1
    assert PRESETS["tiny"].max_iters != 1


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(learning_rate=1e-3, min_lr=1e-4, warmup_iters=10, max_iters=110)
    lrs = [get_lr(s, cfg) for s in range(130)]
    assert all(b > a for a, b in zip(lrs[:10], lrs[1:11]))  # rising during warmup
    assert lrs[0] > 0 and lrs[9] < 1e-3
    assert get_lr(10, cfg) == pytest.approx(1e-3)  # peak right after warmup
    assert all(b <= a + 1e-15 for a, b in zip(lrs[10:110], lrs[11:111]))  # then never rising
    assert get_lr(60, cfg) == pytest.approx(0.5 * (1e-3 + 1e-4))  # cosine's midpoint is the mean
    assert get_lr(110, cfg) == pytest.approx(1e-4) and get_lr(129, cfg) == pytest.approx(1e-4)


def test_weight_decay_only_on_matrices():
    cfg = TrainConfig(n_layer=2, n_head=2, n_embd=16, block_size=8)
    model = GPT(cfg.model_config(10))
    opt = T.make_optimizer(model, cfg, torch.device("cpu"))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == cfg.weight_decay and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    n = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n == model.num_params()  # every parameter once (the tied embedding too)


def test_cpu_optimizer_is_fused_and_steps_like_the_plain_one():
    """The fused CPU AdamW kernel (2% of a step faster here) makes the same update as the loop."""
    cfg = TrainConfig(n_layer=2, n_head=2, n_embd=16, block_size=8, learning_rate=1e-2)
    models = [GPT(cfg.model_config(10)) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    fused = T.make_optimizer(models[0], cfg, torch.device("cpu"))
    assert fused.defaults["fused"] is True
    decay = [p for p in models[1].parameters() if p.dim() >= 2]
    no_decay = [p for p in models[1].parameters() if p.dim() < 2]
    plain = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                               {"params": no_decay, "weight_decay": 0.0}], lr=cfg.learning_rate,
                              betas=(cfg.beta1, cfg.beta2))
    x = torch.randint(0, 10, (4, 8))
    for _ in range(5):
        for m, opt in zip(models, (fused, plain)):
            _, loss = m(x, x)
            loss.backward()
            opt.step()
            opt.zero_grad()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)  # 1% of one step of size lr


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest():
    cfg = TrainConfig(n_layer=2, n_head=2, n_embd=16, block_size=8, optimizer="muon")
    model = GPT(cfg.model_config(10))
    adamw, muon = T.make_optimizers(model, cfg, torch.device("cpu"))
    assert isinstance(adamw, torch.optim.AdamW) and isinstance(muon, torch.optim.Muon)
    names = {id(p): n for n, p in model.named_parameters()}
    in_muon = sorted(names[id(p)] for g in muon.param_groups for p in g["params"])
    assert in_muon == sorted(n for n, p in model.named_parameters() if n.startswith("transformer.h.") and p.dim() == 2)
    assert len(in_muon) == 2 * 4  # c_attn, attn.c_proj, c_fc, mlp.c_proj per block
    in_adamw = [names[id(p)] for g in adamw.param_groups for p in g["params"]]
    assert "transformer.wte.weight" in in_adamw and "transformer.wpe.weight" in in_adamw  # wte is the tied head too
    assert sorted(in_muon + in_adamw) == sorted(names.values())  # every parameter exactly once
    assert muon.defaults["adjust_lr_fn"] == "match_rms_adamw"


def test_muon_run_learns_and_follows_the_schedule(text):
    cfg = tiny(max_iters=40, eval_interval=20, optimizer="muon")
    result = train(cfg, device="cpu", progress=False, text=text)
    evals = [h["val_loss"] for h in result.history if h["val_loss"] is not None]
    assert evals[-1] < evals[0] < math.log(len(result.tokenizer.chars))
    assert [h["lr"] for h in result.history] == pytest.approx([get_lr(i, cfg) for i in range(40)])


def test_muon_on_a_torch_without_it_is_a_clear_error(monkeypatch):
    monkeypatch.delattr(torch.optim, "Muon")
    cfg = TrainConfig(n_layer=2, n_head=2, n_embd=16, block_size=8, optimizer="muon")
    with pytest.raises(ValueError, match=r"needs torch 2.9 or later .* optimizer='adamw'"):
        T.make_optimizers(GPT(cfg.model_config(10)), cfg, torch.device("cpu"))


@pytest.mark.parametrize("bad, match", [
    (dict(batch_size=0), "batch_size must be a positive integer"),
    (dict(grad_accum_steps=0), "grad_accum_steps"),
    (dict(n_embd=30, n_head=4), "divisible"),
    (dict(learning_rate=float("nan")), "learning_rate"),
    (dict(min_lr=1.0, learning_rate=0.1), "min_lr"),
    (dict(dtype="float8"), "dtype"),
    (dict(optimizer="sgd"), "optimizer must be .adamw. or .muon."),
])
def test_bad_config_is_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(PRESETS["tiny"], **bad)


def test_context_longer_than_the_data_is_refused(text):
    small = {"train": text["train"], "val": text["val"][:100]}
    with pytest.raises(ValueError, match="block_size 128 is longer than the validation text"):
        train(tiny(block_size=128), device="cpu", progress=False, text=small)


def test_training_lowers_the_loss_and_reports_speed(text):
    device = get_device()
    r = train(tiny(max_iters=60, eval_interval=30, compile=False), device=device, progress=False, text=text)
    assert len(r.history) == 60 and [h["step"] for h in r.history] == list(range(1, 61))
    assert [h["step"] for h in r.history if h["val_loss"] is not None] == [30, 60]
    assert r.val_loss == r.history[-1]["val_loss"]
    assert r.best_val_loss == min(h["val_loss"] for h in r.history if h["val_loss"] is not None)
    assert r.val_loss < math.log(r.tokenizer.vocab_size) - 0.5  # well below uniform guessing
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"] - 0.5
    assert r.tokens_per_s > 0 and 0 < r.mfu < 1 and r.seconds > 0
    assert all(h["lr"] == pytest.approx(get_lr(h["step"] - 1, r.config)) for h in r.history)


def test_evaluation_uses_a_fixed_split(text):
    # the same model evaluated twice gives the same number; the windows cover val without overlap
    starts = windows(1000, 64, None)
    assert starts.tolist() == [64 * i for i in range(15)]
    assert windows(1000, 64, 256).tolist() == windows(1000, 64, 256).tolist()
    assert len(windows(100_000, 64, 6400)) == 100
    a = train(tiny(max_iters=5, eval_interval=5), device="cpu", progress=False, text=text)
    b = train(tiny(max_iters=5, eval_interval=5), device="cpu", progress=False, text=text)
    assert a.val_loss == b.val_loss  # same seed, same windows: identical


def test_gradient_accumulation_matches_one_big_batch(text):
    # 8 sequences at once vs 2 micro-batches of 4: the same windows, the same mean gradient
    a = train(tiny(batch_size=8, grad_accum_steps=1, max_iters=10), device="cpu", progress=False, text=text)
    b = train(tiny(batch_size=4, grad_accum_steps=2, max_iters=10), device="cpu", progress=False, text=text)
    la = [h["train_loss"] for h in a.history]
    lb = [h["train_loss"] for h in b.history]
    assert la == pytest.approx(lb, abs=1e-5)
    assert a.val_loss == pytest.approx(b.val_loss, abs=1e-5)
    # and not what one micro-batch of 4 alone gives
    c = train(tiny(batch_size=4, grad_accum_steps=1, max_iters=10), device="cpu", progress=False, text=text)
    assert abs(c.history[-1]["train_loss"] - la[-1]) > 1e-3


def test_gradient_clipping_is_applied(text, monkeypatch):
    norms = []
    real = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *a, **k):
        total = real(params, max_norm, *a, **k)
        norms.append((float(total), max_norm))
        return total

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    train(tiny(max_iters=3, grad_clip=0.5), device="cpu", progress=False, text=text)
    assert len(norms) == 3 and all(m == 0.5 for _, m in norms)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(text, tmp_path, monkeypatch):
    calls = {"n": 0}

    class Exploding(GPT):
        def forward(self, idx, targets=None):
            logits, loss = super().forward(idx, targets)
            if self.training:
                calls["n"] += 1
                if calls["n"] >= 13:
                    loss = loss * float("nan")
            return logits, loss

    monkeypatch.setattr(T, "GPT", Exploding)
    cfg = tiny(max_iters=20, eval_interval=5, out_dir=str(tmp_path / "run"))
    with pytest.raises(T.TrainingError, match=r"loss became nan at step 13.*last good checkpoint \(step 10\)"):
        train(cfg, device="cpu", progress=False, text=text)
    ck = T.load_checkpoint(tmp_path / "run")
    assert ck.step == 10
    assert all(torch.isfinite(p).all() for p in ck.model.parameters())


def test_out_of_memory_says_what_to_do(text, monkeypatch):
    class Hungry(GPT):
        def forward(self, idx, targets=None):
            if self.training:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            return super().forward(idx, targets)

    monkeypatch.setattr(T, "GPT", Hungry)
    with pytest.raises(T.TrainingError, match=r"out of memory .* --batch-size 4 --grad-accum 2"):
        train(tiny(), device="cpu", progress=False, text=text)


def test_compile_failure_falls_back_with_a_warning(text, monkeypatch):
    def broken(model, *a, **k):
        def run(*args, **kwargs):
            raise RuntimeError("no C compiler found")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(UserWarning, match="torch.compile failed.*training without it"):
        r = train(tiny(max_iters=4, compile=True), device="cpu", progress=False, text=text)
    plain = train(tiny(max_iters=4, compile=False), device="cpu", progress=False, text=text)
    assert r.val_loss == plain.val_loss  # the failed try changed nothing


def test_mfu_formula():
    cfg = PRESETS["shakespeare-char-gpu"].model_config(65)
    n = GPT(cfg).num_params()
    fpt = T.flops_per_token(n, cfg)
    assert fpt == 6 * n + 12 * 6 * 6 * 64 * 256
    assert estimate_mfu(n, cfg, 1e5, "cpu") == pytest.approx(fpt * 1e5 / T.peak_flops("cpu"))


def test_mfu_peak_can_be_overridden(monkeypatch):
    monkeypatch.setenv("MINIGPT_PEAK_FLOPS", "1e12")
    cfg = PRESETS["tiny"].model_config(65)
    assert estimate_mfu(1000, cfg, 1e6, "cpu") == pytest.approx(T.flops_per_token(1000, cfg) * 1e6 / 1e12)


def test_plot_losses_has_labels(text):
    import matplotlib

    matplotlib.use("Agg")
    r = train(tiny(max_iters=10, eval_interval=5), device="cpu", progress=False, text=text)
    fig = T.plot_losses(r.history)
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() == "step" and ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "validation"]


def test_infinite_gradient_stops_too(text, monkeypatch):
    real = torch.nn.utils.clip_grad_norm_
    calls = {"n": 0}

    def blow_up(params, max_norm, *a, **k):
        calls["n"] += 1
        total = real(params, max_norm, *a, **k)
        return total * float("inf") if calls["n"] == 4 else total

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", blow_up)
    with pytest.raises(T.TrainingError, match="gradient norm became inf at step 4.*no checkpoint was written"):
        train(tiny(max_iters=10), device="cpu", progress=False, text=text)


def test_out_of_memory_in_evaluation_says_what_to_do_too(text, monkeypatch):
    class Hungry(GPT):
        def forward(self, idx, targets=None):
            if not self.training:
                raise torch.OutOfMemoryError("CUDA out of memory.")
            return super().forward(idx, targets)

    monkeypatch.setattr(T, "GPT", Hungry)
    with pytest.raises(T.TrainingError, match=r"out of memory on cpu at step 5 with batch_size=8"):
        train(tiny(max_iters=10, eval_interval=5), device="cpu", progress=False, text=text)


def test_a_given_tokenizer_is_used_instead_of_making_one(text):
    # A BPE trained on a part of the text, handed to the trainer: the model's vocabulary is that tokenizer's.
    from minigpt.bpe import BPETokenizer

    tok = BPETokenizer.train(text["train"][:5_000], 300, pattern="gpt2")
    cfg = dataclasses.replace(get_preset("tiny"), max_iters=3, eval_interval=3, sample_tokens=0, out_dir=None)
    res = train(cfg, device="cpu", progress=False, text=text, tokenizer=tok)
    assert res.tokenizer is tok and res.model.config.vocab_size == 300 and math.isfinite(res.val_loss)
