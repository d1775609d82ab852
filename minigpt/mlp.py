"""Neural character models of names: the neural bigram (lesson 02) and Bengio et al.'s MLP (lesson 03).

    neural bigram:  x (N,) -> one_hot (N, 27) @ W (27, 27) -> logits -> softmax -> cross-entropy
    MLP:            idx (B, block_size) -> wte -> concat (B, block_size * n_embd) -> tanh(hidden)
                    -> lm_head -> logits (B, 27)

Names are written as in makemore: the marker '.' pads the context at the start and ends the name,
so the vocabulary is '.' plus a-z (27 symbols) and the NLL per token counts the final '.'.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .evaluate import mean_nll
from .optim import step_decay  # noqa: F401 - lesson 03's schedule; lessons call it as mlp.step_decay

# The 27 symbols of the names models: '.' (start/end marker) is id 0, then a-z.
CHARS = "." + string.ascii_lowercase
STOI = {c: i for i, c in enumerate(CHARS)}
ITOS = dict(enumerate(CHARS))
VOCAB_SIZE = len(CHARS)


def _encode(word: str) -> list[int]:
    try:
        return [STOI[c] for c in word]
    except KeyError as e:
        raise ValueError(f"name {word!r} has the character {e.args[0]!r}; names use only a-z") from None


# ---------------------------------------------------------------------------------------------
# Lesson 02: the neural bigram
# ---------------------------------------------------------------------------------------------

def bigram_pairs(words: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """All (previous char, next char) pairs of ``.name.`` as two int64 tensors ``xs, ys`` of shape (N,)."""
    xs, ys = [], []
    for w in words:
        ids = _encode("." + w + ".")
        xs += ids[:-1]
        ys += ids[1:]
    return torch.tensor(xs, dtype=torch.long), torch.tensor(ys, dtype=torch.long)


def softmax_cross_entropy_grad(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """d(mean cross-entropy)/d(logits), by hand: ``(softmax(logits) - one_hot(targets)) / N``."""
    n = logits.shape[0]
    grad = torch.softmax(logits, dim=1)  # (N, V)
    grad[torch.arange(n), targets] -= 1.0
    return grad / n


class BigramNet(nn.Module):
    """One linear layer from a one-hot previous character to next-character logits: ``W`` is (27, 27).

    ``one_hot(x) @ W`` picks row ``x`` of ``W``, so the forward pass is a table look-up; ``exp(W)``
    plays the role of the count matrix and ``softmax(W)`` of the bigram probability table.
    """

    def __init__(self, vocab_size: int = VOCAB_SIZE, generator: torch.Generator | None = None):
        super().__init__()
        self.W = nn.Parameter(torch.randn(vocab_size, vocab_size, generator=generator) * 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.W[x]  # (N, V), the same as F.one_hot(x, V).float() @ self.W

    def probs(self) -> torch.Tensor:
        """The (27, 27) next-character probability table, each row summing to 1."""
        return torch.softmax(self.W.detach(), dim=1)


def train_bigram(model: BigramNet, xs: torch.Tensor, ys: torch.Tensor, steps: int = 300, lr: float = 50.0,
                 l2: float = 0.0, progress: bool = True) -> list[float]:
    """Full-batch gradient descent with autograd on ``mean CE + l2 * mean(W**2)``; returns the CE per step.

    The history holds the data NLL only (without the penalty), measured before each update.
    """
    from tqdm.auto import tqdm

    if steps < 0 or lr <= 0 or l2 < 0:
        raise ValueError(f"train_bigram needs steps >= 0, lr > 0 and l2 >= 0 (got {steps}, {lr}, {l2})")
    history = []
    for _ in tqdm(range(steps), desc="neural bigram", disable=not progress, leave=False):
        nll = F.cross_entropy(model(xs), ys)
        loss = nll + l2 * (model.W ** 2).mean()
        model.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
        history.append(nll.item())
    return history


# ---------------------------------------------------------------------------------------------
# Lesson 03: the MLP language model (Bengio et al. 2003)
# ---------------------------------------------------------------------------------------------

def build_context_dataset(words: Sequence[str], block_size: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (context, next char) example of the names, as in makemore.

    The context is the previous ``block_size`` characters, padded on the left with '.' (id 0);
    each name gives ``len(name) + 1`` examples, the last one predicting the end marker '.'.
    Returns ``X`` (N, block_size) and ``Y`` (N,), both int64.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    X, Y = [], []
    for w in words:
        context = [0] * block_size
        for ix in _encode(w) + [0]:
            X.append(context)
            Y.append(ix)
            context = context[1:] + [ix]
    X = torch.tensor(X, dtype=torch.long).reshape(-1, block_size)
    return X, torch.tensor(Y, dtype=torch.long)


class MLPLanguageModel(nn.Module):
    """Bengio et al. 2003: embed each context character, concatenate, one tanh hidden layer, logits.

    ``init="scaled"`` (the default) is the fix from lesson 03: Kaiming-style hidden weights
    (gain 5/3 for tanh over sqrt(fan_in)) and a near-zero output layer, so the loss at
    initialisation is about ln(27) and few tanh units start saturated. ``init="naive"`` draws every
    parameter from N(0, 1), as a first attempt would.
    """

    def __init__(self, vocab_size: int = VOCAB_SIZE, block_size: int = 3, n_embd: int = 10, n_hidden: int = 200,
                 init: str = "scaled", generator: torch.Generator | None = None):
        super().__init__()
        if min(vocab_size, block_size, n_embd, n_hidden) < 1:
            raise ValueError("MLPLanguageModel: vocab_size, block_size, n_embd and n_hidden must all be >= 1")
        self.vocab_size, self.block_size, self.n_embd, self.n_hidden = vocab_size, block_size, n_embd, n_hidden
        self.wte = nn.Embedding(vocab_size, n_embd)             # the lookup table C of the paper
        self.hidden = nn.Linear(block_size * n_embd, n_hidden)
        self.lm_head = nn.Linear(n_hidden, vocab_size)
        self.init_weights(init, generator)

    @torch.no_grad()
    def init_weights(self, init: str = "scaled", generator: torch.Generator | None = None):
        """Re-draw every parameter: ``"naive"`` (all N(0, 1)) or ``"scaled"`` (the fix)."""
        if init not in ("naive", "scaled"):
            raise ValueError(f"unknown init {init!r}; use 'naive' or 'scaled'")
        for p in self.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
        if init == "scaled":
            fan_in = self.block_size * self.n_embd
            self.hidden.weight.mul_((5 / 3) / math.sqrt(fan_in))  # keeps tanh inputs about unit size
            self.hidden.bias.mul_(0.01)
            self.lm_head.weight.mul_(0.01)  # near-uniform predictions at init: loss ~ ln(vocab)
            self.lm_head.bias.zero_()

    def hidden_preact(self, idx: torch.Tensor) -> torch.Tensor:
        """The hidden layer's input to tanh, (B, n_hidden)."""
        emb = self.wte(idx)                      # (B, T, n_embd)
        return self.hidden(emb.flatten(1))       # (B, n_hidden)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits (B, vocab) for contexts ``idx`` (B, block_size); with ``targets``, also the mean NLL."""
        if idx.dim() != 2 or idx.shape[1] != self.block_size:
            raise ValueError(f"expected contexts of shape (B, {self.block_size}), got {tuple(idx.shape)}")
        h = torch.tanh(self.hidden_preact(idx))  # (B, n_hidden)
        logits = self.lm_head(h)                 # (B, vocab)
        loss = None if targets is None else F.cross_entropy(logits, targets)
        return logits, loss


def train_mlp(model: nn.Module, X: torch.Tensor, Y: torch.Tensor, steps: int, batch_size: int = 32,
              lr: float | Callable[[int], float] = 0.1, generator: torch.Generator | None = None,
              progress: bool = True, desc: str = "MLP") -> list[float]:
    """Minibatch SGD: each step draws ``batch_size`` random examples; returns the minibatch loss per step.

    ``lr`` is a number or a function of the step (e.g. :func:`step_decay`). The model must return
    ``(logits, loss)`` when called with ``(X, targets)``.
    """
    from tqdm.auto import tqdm

    if steps < 0 or batch_size < 1:
        raise ValueError(f"train_mlp needs steps >= 0 and batch_size >= 1 (got {steps}, {batch_size})")
    lr_at = lr if callable(lr) else (lambda step: lr)
    params = [p for p in model.parameters() if p.requires_grad]
    history = []
    model.train()
    bar = tqdm(range(steps), desc=desc, disable=not progress, mininterval=0.5)
    for step in bar:
        ix = torch.randint(0, X.shape[0], (batch_size,), generator=generator)
        _, loss = model(X[ix], Y[ix])
        for p in params:
            p.grad = None
        loss.backward()
        rate = lr_at(step)
        with torch.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-rate)
        history.append(loss.item())
        if step % 1000 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{rate:.3g}")
    return history


def lr_sweep(model: nn.Module, X: torch.Tensor, Y: torch.Tensor, lrs: Sequence[float], batch_size: int = 32,
             generator: torch.Generator | None = None, progress: bool = True) -> list[float]:
    """The learning-rate search: one SGD step per learning rate in ``lrs`` (growing), loss before each step.

    Plot the losses against the learning rates: the good rates are where the loss falls fastest,
    just before it becomes unstable.
    """
    lrs = list(lrs)
    return train_mlp(model, X, Y, steps=len(lrs), batch_size=batch_size, lr=lambda step: lrs[step],
                     generator=generator, progress=progress, desc="LR sweep")


def evaluate_nll(model: nn.Module, X: torch.Tensor, Y: torch.Tensor, batch_size: int = 65536) -> float:
    """Mean negative log-likelihood per token (nats) of ``model`` on the examples ``X, Y``
    (:func:`minigpt.evaluate.mean_nll`, the course's one scoring loop)."""
    return mean_nll(model, X, Y, batch_size)


@torch.no_grad()
def sample_names(model: MLPLanguageModel, n: int, generator: torch.Generator | None = None,
                 max_len: int = 50) -> list[str]:
    """Sample ``n`` names: start from an all-'.' context, draw characters until '.' (or ``max_len``)."""
    was_training = model.training
    model.eval()
    names = []
    for _ in range(n):
        context = [0] * model.block_size
        out = []
        for _ in range(max_len):
            logits, _ = model(torch.tensor([context]))
            ix = torch.multinomial(torch.softmax(logits, dim=1), 1, generator=generator).item()
            if ix == 0:
                break
            out.append(ITOS[ix])
            context = context[1:] + [ix]
        names.append("".join(out))
    model.train(was_training)
    return names


def fit_names_mlp(names: dict[str, Sequence[str]], steps: int = 200_000, block_size: int = 3, n_embd: int = 10,
                  n_hidden: int = 200, batch_size: int = 32, lr: float = 0.1, seed: int = 42,
                  progress: bool = True) -> tuple[MLPLanguageModel, dict[str, float]]:
    """Lesson 03's recipe in one call: train the MLP on ``names["train"]`` with makemore's step decay.

    ``names`` is :func:`minigpt.data.names_split`'s dict. Returns the model and its NLL per token on
    every split it was given (``{"train": ..., "dev": ..., "test": ...}``), the course's yardstick.
    """
    X, Y = build_context_dataset(names["train"], block_size)
    model = MLPLanguageModel(VOCAB_SIZE, block_size, n_embd, n_hidden, generator=torch.Generator().manual_seed(seed))
    train_mlp(model, X, Y, steps=steps, batch_size=batch_size, lr=step_decay(lr, 0.5, 0.1, steps),
              generator=torch.Generator().manual_seed(seed), progress=progress)
    nll = {split: evaluate_nll(model, *build_context_dataset(words, block_size)) for split, words in names.items()}
    return model, nll
