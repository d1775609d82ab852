"""A GPT on names: the padded rows, the NLL per token, the training loop and sampling."""

import math

import pytest
import torch
import torch.nn.functional as F

from minigpt.model import GPT
from minigpt.names_gpt import (
    CHARS,
    NamesTrainConfig,
    block_size_for,
    evaluate_nll,
    lr_at,
    make_dataset,
    make_optimizer,
    names_gpt_config,
    names_tokenizer,
    sample_names,
    train_names_gpt,
)

WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "zoe", "li"]


def tiny_model(block_size=9, seed=0, **kw):
    torch.manual_seed(seed)
    kw = {"n_layer": 1, "n_head": 2, "n_embd": 32, **kw}
    return GPT(names_gpt_config(block_size, **kw))


def test_tokenizer_has_dot_first_then_letters():
    tok = names_tokenizer()
    assert CHARS[0] == "." and tok.vocab_size == 27
    assert tok.encode(".az") == [0, 1, 26]


def test_rows_are_dot_started_dot_ended_and_padded_with_minus_one():
    X, Y = make_dataset(["emma", "li"], block_size=6)
    # e=5 m=13 a=1 l=12 i=9
    assert X.tolist() == [[0, 5, 13, 13, 1, 0], [0, 12, 9, 0, 0, 0]]
    assert Y.tolist() == [[5, 13, 13, 1, 0, -1], [12, 9, 0, -1, -1, -1]]
    # each target is the next input: y[t] == x[t+1] wherever the name continues
    assert torch.equal(Y[:, :-1][Y[:, :-1] > 0], X[:, 1:][Y[:, :-1] > 0])


def test_block_size_fits_the_longest_name_and_too_long_names_are_rejected():
    assert block_size_for(WORDS) == len("isabella") + 1
    X, Y = make_dataset(WORDS, block_size_for(WORDS))
    assert X.shape == Y.shape == (len(WORDS), 9)
    assert int((Y != -1).sum()) == sum(len(w) + 1 for w in WORDS)  # every character plus one end marker
    with pytest.raises(ValueError, match="block_size >= 9"):
        make_dataset(WORDS, block_size=8)
    with pytest.raises(ValueError, match="empty"):
        block_size_for([])


def test_nll_at_init_is_close_to_log_vocab():
    model = tiny_model()
    nll = evaluate_nll(model, *make_dataset(WORDS, 9))
    assert abs(nll - math.log(27)) < 0.05


def test_nll_is_per_token_and_independent_of_batching():
    model = tiny_model()
    X, Y = make_dataset(WORDS, 9)
    logits, loss = model(X, Y)  # the model's own mean over non-ignored targets
    ref = F.cross_entropy(logits.flatten(0, 1), Y.flatten(), ignore_index=-1).item()
    assert evaluate_nll(model, X, Y) == pytest.approx(ref, rel=1e-5)
    assert evaluate_nll(model, X, Y, batch_size=3) == pytest.approx(ref, rel=1e-5)
    assert loss.item() == pytest.approx(ref, rel=1e-5)


def test_lr_schedule_warms_up_then_decays_to_min_lr():
    cfg = NamesTrainConfig(max_steps=1000, warmup_steps=100, learning_rate=1e-3, min_lr=1e-4)
    assert lr_at(0, cfg) == pytest.approx(1e-3 / 101)  # nanoGPT's warmup, the trainer's: (s + 1) / (w + 1)
    assert lr_at(99, cfg) == pytest.approx(1e-3 * 100 / 101)
    assert lr_at(100, cfg) == pytest.approx(1e-3)
    assert lr_at(550, cfg) == pytest.approx(0.5 * (1e-3 + 1e-4))
    assert lr_at(1000, cfg) == pytest.approx(1e-4)
    lrs = [lr_at(s, cfg) for s in range(100, 1000)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_weight_decay_applies_to_matrices_only():
    model = tiny_model()
    opt = make_optimizer(model, NamesTrainConfig(weight_decay=0.1))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"])
    assert all(p.dim() == 1 for p in no_decay["params"])
    assert any(p is model.transformer.wpe.weight for p in decay["params"])  # positions decay too, as in nanoGPT
    n = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n == model.num_params()


def test_overfitting_one_name_makes_sampling_return_it():
    X, Y = make_dataset(["emma"], 9)
    model = tiny_model()
    cfg = NamesTrainConfig(max_steps=150, batch_size=4, learning_rate=1e-2, min_lr=1e-2, warmup_steps=1,
                           weight_decay=0.0)
    result = train_names_gpt(model, (X, Y), (X, Y), cfg, progress=False)
    assert result.train_loss[-1] < 0.05 < result.train_loss[0]
    assert result.dev_nll[-1][0] == 150 and result.dev_nll[-1][1] < 0.05
    assert sample_names(model, 5, torch.Generator().manual_seed(0)) == ["emma"] * 5


def test_training_on_names_beats_the_uniform_model():
    from minigpt.data import names_split

    split = names_split()
    train, dev = make_dataset(split["train"][:3000], 16), make_dataset(split["dev"][:500], 16)
    model = tiny_model(block_size=16)
    cfg = NamesTrainConfig(max_steps=300, batch_size=32, eval_interval=100, warmup_steps=20)
    result = train_names_gpt(model, train, dev, cfg, progress=False)
    assert [s for s, _ in result.dev_nll] == [100, 200, 300]
    assert result.dev_nll[-1][1] < 2.75 < math.log(27)  # unigram-ish letters already beat uniform (3.30)
    assert not model.training


def test_samples_are_reproducible_lowercase_names_that_fit_the_block():
    model = tiny_model()
    a = sample_names(model, 20, torch.Generator().manual_seed(42))
    b = sample_names(model, 20, torch.Generator().manual_seed(42))
    assert a == b and len(a) == 20
    assert all(set(n) <= set(CHARS[1:]) and len(n) <= 8 for n in a)


def test_training_rejects_rows_longer_than_the_model_context():
    X, Y = make_dataset(WORDS, 12)
    with pytest.raises(ValueError, match="block_size"):
        train_names_gpt(tiny_model(block_size=9), (X, Y), cfg=NamesTrainConfig(max_steps=1), progress=False)


def test_keep_best_ends_with_the_weights_of_the_best_dev_evaluation():
    X, Y = make_dataset(WORDS, 9)
    dev = make_dataset(["anna", "eva"], 9)
    model = tiny_model()
    # a learning rate far too high: the dev NLL gets worse after the first evaluations
    cfg = NamesTrainConfig(max_steps=60, batch_size=8, learning_rate=0.3, min_lr=0.3, warmup_steps=1,
                           eval_interval=10, keep_best=True)
    result = train_names_gpt(model, (X, Y), dev, cfg, progress=False)
    best_step, best_nll = min(result.dev_nll, key=lambda r: r[1])
    assert result.best_step == best_step
    assert evaluate_nll(model, *dev) == pytest.approx(best_nll, rel=1e-5)
