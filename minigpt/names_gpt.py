"""A GPT on names (lesson 06): the data, a training loop, per-token NLL and sampling.

Each name becomes one row, as in makemore's transformer:

    x = .  e  m  m  a  .  .  ...       ('.' = id 0 starts the name, then pads)
    y = e  m  m  a  .  -1 -1 ...       (the first '.' in y ends the name; -1 is ignored by the loss)

so the NLL per token counts the end marker, exactly like the n-gram and MLP lessons, and the
numbers on the perplexity ladder compare.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .evaluate import mean_nll
from .model import GPT, GPTConfig
from .optim import adamw, cosine_lr, set_lr
from .tokenizer import CharTokenizer

CHARS = ["."] + [chr(c) for c in range(ord("a"), ord("z") + 1)]  # '.' is id 0: start, end, padding


def names_tokenizer() -> CharTokenizer:
    """The 27-symbol tokenizer of the names lessons: '.' (id 0) then a-z."""
    return CharTokenizer(CHARS)


def block_size_for(words: list[str]) -> int:
    """Context a GPT needs for these names: the longest name plus its start marker."""
    if not words:
        raise ValueError("block_size_for: the list of names is empty")
    return max(len(w) for w in words) + 1


def make_dataset(words: list[str], block_size: int, tokenizer: CharTokenizer | None = None):
    """Names -> (X, Y), two (N, block_size) int64 tensors: '.'-started inputs, '.'-ended targets, -1 pads.

    Raises when a name does not fit: a name of length L needs ``block_size >= L + 1``.
    """
    tok = tokenizer or names_tokenizer()
    X = torch.zeros(len(words), block_size, dtype=torch.long)
    Y = torch.full((len(words), block_size), -1, dtype=torch.long)
    for i, w in enumerate(words):
        if len(w) + 1 > block_size:
            raise ValueError(
                f"name {w!r} has {len(w)} characters and needs block_size >= {len(w) + 1}, got {block_size}; "
                "use block_size_for(words)"
            )
        ix = torch.tensor(tok.encode(w), dtype=torch.long)
        X[i, 1 : 1 + len(w)] = ix
        Y[i, : len(w)] = ix
        Y[i, len(w)] = 0  # the end marker is a token the model must predict
    return X, Y


def evaluate_nll(model: GPT, X: torch.Tensor, Y: torch.Tensor, batch_size: int = 1024) -> float:
    """Mean negative log-likelihood per token (nats) over every target that is not -1
    (:func:`minigpt.evaluate.mean_nll`, the course's one scoring loop)."""
    return mean_nll(model, X, Y, batch_size)


@dataclass
class NamesTrainConfig:
    """A training recipe for a GPT on names: AdamW, linear warmup then cosine decay."""

    max_steps: int = 3000
    batch_size: int = 64
    learning_rate: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    eval_interval: int = 500  # steps between dev evaluations (and one at the end)
    keep_best: bool = False  # early stopping: end with the weights of the best dev evaluation
    seed: int = 1337


@dataclass
class NamesTrainResult:
    """What :func:`train_names_gpt` returns: the per-step losses and the dev NLL at each evaluation."""

    train_loss: list[float] = field(default_factory=list)
    dev_nll: list[tuple[int, float]] = field(default_factory=list)  # (step, nll)
    best_step: int | None = None  # with keep_best: the step whose weights the model ends with
    seconds: float = 0.0


def lr_at(step: int, cfg: NamesTrainConfig) -> float:
    """Learning rate at ``step``: the trainer's schedule (:func:`minigpt.optim.cosine_lr`), linear
    warmup to ``learning_rate`` then cosine down to ``min_lr`` at ``max_steps``."""
    return cosine_lr(step, cfg.learning_rate, cfg.min_lr, cfg.warmup_steps, cfg.max_steps)


def make_optimizer(model: GPT, cfg: NamesTrainConfig) -> torch.optim.AdamW:
    """The trainer's AdamW (:func:`minigpt.optim.adamw`): weight decay on the matrices and embeddings,
    not on biases or LayerNorm gains."""
    return adamw(model.parameters(), cfg.learning_rate, cfg.weight_decay, cfg.betas,
                 next(model.parameters()).device)


def train_names_gpt(model: GPT, train_data, dev_data=None, cfg: NamesTrainConfig | None = None,
                    progress: bool = True) -> NamesTrainResult:
    """Train ``model`` on ``train_data`` = (X, Y) with random minibatches; evaluate on ``dev_data``.

    Shows a tqdm bar with the latest loss and dev NLL. Returns the loss history. With
    ``cfg.keep_best`` (and ``dev_data``) the model ends with the weights of its best dev evaluation.
    """
    import time

    from tqdm.auto import tqdm

    cfg = cfg or NamesTrainConfig()
    X, Y = train_data
    if X.size(1) > model.config.block_size:
        raise ValueError(f"rows have {X.size(1)} tokens but the model's block_size is {model.config.block_size}")
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = make_optimizer(model, cfg)
    result = NamesTrainResult()
    best_nll, best_state = math.inf, None
    model.train()
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.max_steps), desc="training", disable=not progress)
    for step in bar:
        set_lr([opt], lr_at(step, cfg))
        ix = torch.randint(len(X), (cfg.batch_size,), generator=gen)
        _, loss = model(X[ix].to(device), Y[ix].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        result.train_loss.append(loss.item())
        last = step == cfg.max_steps - 1
        if dev_data is not None and ((step + 1) % cfg.eval_interval == 0 or last):
            nll = evaluate_nll(model, *dev_data)
            result.dev_nll.append((step + 1, nll))
            bar.set_postfix(loss=f"{loss.item():.3f}", dev=f"{nll:.3f}")
            if cfg.keep_best and nll < best_nll:
                best_nll, result.best_step = nll, step + 1
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - t0
    return result


@torch.no_grad()
def sample_names(model: GPT, n: int, generator: torch.Generator | None = None, temperature: float = 1.0,
                 tokenizer: CharTokenizer | None = None) -> list[str]:
    """Sample ``n`` names: start from '.', generate until the next '.' (or the block is full)."""
    tok = tokenizer or names_tokenizer()
    device = next(model.parameters()).device
    idx = torch.zeros(n, 1, dtype=torch.long, device=device)
    out = model.generate(idx, model.config.block_size - 1, temperature=temperature, generator=generator)
    names = []
    for row in out[:, 1:].tolist():
        if 0 in row:
            row = row[: row.index(0)]
        names.append(tok.decode(row))
    return names


def names_gpt_config(block_size: int, **overrides) -> GPTConfig:
    """A small GPT for names (27 symbols); the defaults are the lesson's full-size model."""
    kw = dict(block_size=block_size, vocab_size=len(CHARS), n_layer=4, n_head=4, n_embd=64, dropout=0.0)
    kw.update(overrides)
    return GPTConfig(**kw)
