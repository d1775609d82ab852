"""Using a trained GPT for more than next-token prediction (lesson 11).

- :func:`hidden_states` and :func:`embed`: the final hidden state of every token, and its mean over a
  text, a fixed-size vector for classification and "more like this" recommendation;
- :class:`LogisticRegression`: a linear classifier on frozen features (softmax regression, L-BFGS);
- :class:`GPTClassifier` and :func:`fine_tune_classifier`: the GPT with a classification head in place
  of the language-model head, every weight trained on labelled texts;
- :func:`continuations`: real text and the model's own continuations of the same prefixes, the data
  of the "was this written by the model?" task;
- :func:`instruction_data`: prompt/response pairs as (X, Y) rows whose loss covers only the response,
  the data of supervised instruction tuning, trained with :func:`minigpt.names_gpt.train_names_gpt`.

Texts of different lengths are batched by padding on the right: the model is causal, so padding
after a text never changes the hidden states of the text itself; a mask leaves it out of every mean.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .generate import SamplingSettings, generate, sampling_settings
from .tokenizer import Tokenizer

__all__ = ["hidden_states", "pad_batch", "embed", "LogisticRegression", "GPTClassifier", "fine_tune_classifier",
           "FineTuneResult", "predict_proba", "instruction_data", "cosine_similarity", "continuations"]


def hidden_states(model, idx: torch.Tensor) -> torch.Tensor:
    """The final hidden states (after the last LayerNorm, what ``lm_head`` reads): (B, T) -> (B, T, C)."""
    tr = model.transformer
    B, T = idx.shape
    model._check_length(T)
    pos = torch.arange(T, device=idx.device)
    x = tr.drop(tr.wte(idx) + tr.wpe(pos))  # (B, T, C)
    for block in tr.h:
        x = block(x)
    return tr.ln_f(x)


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists -> ``(idx, mask)``, both (N, longest): padded on the right with ``pad_id``; mask is
    True on real tokens."""
    if not seqs or any(len(s) == 0 for s in seqs):
        raise ValueError("pad_batch needs at least one sequence and no empty ones")
    T = max(len(s) for s in seqs)
    idx = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    mask = torch.zeros(len(seqs), T, dtype=torch.bool)
    for i, s in enumerate(seqs):
        idx[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, : len(s)] = True
    return idx, mask


def _masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(h.dtype)  # (B, T, 1)
    return (h * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, C)


@torch.no_grad()
def embed(model, tokenizer: Tokenizer, texts: Sequence[str], batch_size: int = 128) -> torch.Tensor:
    """One vector per text, (N, n_embd): the mean final hidden state over its tokens.

    A text longer than the context is cut into block_size pieces, each read from a fresh context;
    the mean is over every token of every piece.
    """
    if not texts:
        raise ValueError("embed: no texts given")
    block = model.config.block_size
    pieces, owner = [], []
    for i, t in enumerate(texts):
        ids = tokenizer.encode(t)
        if not ids:
            raise ValueError(f"text {i} is empty; every text needs at least one token")
        for s in range(0, len(ids), block):
            pieces.append(ids[s:s + block])
            owner.append(i)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums = torch.zeros(len(texts), model.config.n_embd, dtype=torch.float64)
    counts = torch.zeros(len(texts), dtype=torch.float64)
    owner = torch.tensor(owner)
    order = sorted(range(len(pieces)), key=lambda j: len(pieces[j]))  # similar lengths pad less
    for s in range(0, len(order), batch_size):
        chunk = order[s:s + batch_size]
        idx, mask = pad_batch([pieces[j] for j in chunk])
        h = hidden_states(model, idx.to(device)).double().cpu()  # (B, T, C)
        m = mask.unsqueeze(-1).double()
        sums.index_add_(0, owner[chunk], (h * m).sum(1))
        counts.index_add_(0, owner[chunk], mask.sum(1).double())
    model.train(was_training)
    return (sums / counts[:, None]).float()


def cosine_similarity(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """(N, M) cosine similarities between the rows of ``a`` (N, D) and ``b`` (M, D) (default: ``a``)."""
    a = F.normalize(a.double(), dim=-1)
    b = a if b is None else F.normalize(b.double(), dim=-1)
    return a @ b.T


class LogisticRegression:
    """Softmax regression on fixed features: minimise mean cross-entropy + ``l2``/2 ||W||^2 (bias not
    penalised) with L-BFGS. The same objective as scikit-learn's ``LogisticRegression(C=1/(l2 N))``.

        clf = LogisticRegression(l2=1e-3).fit(X_train, y_train)
        clf.predict(X_test), clf.predict_proba(X_test)
    """

    def __init__(self, l2: float = 1e-3, max_iter: int = 500):
        if not l2 >= 0:
            raise ValueError(f"l2 must be >= 0, got {l2}")
        self.l2, self.max_iter = float(l2), int(max_iter)
        self.W = self.b = None

    def fit(self, X, y, n_classes: int | None = None) -> LogisticRegression:
        X = torch.as_tensor(X, dtype=torch.float64)
        y = torch.as_tensor(y, dtype=torch.long)
        if X.dim() != 2 or len(X) != len(y):
            raise ValueError(f"X must be (N, D) with one label per row, got {tuple(X.shape)} and {len(y)} labels")
        K = int(y.max()) + 1 if n_classes is None else n_classes
        W = torch.zeros(X.size(1), K, dtype=torch.float64, requires_grad=True)
        b = torch.zeros(K, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=self.max_iter, tolerance_grad=1e-9,
                                tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(X @ W + b, y) + 0.5 * self.l2 * (W * W).sum()
            loss.backward()
            return loss

        opt.step(closure)
        self.W, self.b = W.detach(), b.detach()
        return self

    def predict_proba(self, X) -> torch.Tensor:
        """(N, K) class probabilities."""
        if self.W is None:
            raise RuntimeError("call fit() before predict_proba()")
        return F.softmax(torch.as_tensor(X, dtype=torch.float64) @ self.W + self.b, dim=-1)

    def predict(self, X) -> torch.Tensor:
        return self.predict_proba(X).argmax(-1)


class GPTClassifier(nn.Module):
    """A GPT body with a classification head: mean final hidden state -> linear -> K logits.

    The body is the language model's own module (fine-tuning changes its weights in place: pass a
    copy to keep the original). Its ``lm_head`` is left unused.
    """

    def __init__(self, gpt, n_classes: int):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
        self.gpt = gpt
        self.head = nn.Linear(gpt.config.n_embd, n_classes)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, idx: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, K) for token ids (B, T) whose real tokens are marked by ``mask`` (default: all)."""
        h = hidden_states(self.gpt, idx)  # (B, T, C)
        mask = torch.ones_like(idx, dtype=torch.bool) if mask is None else mask
        return self.head(_masked_mean(h, mask))  # (B, K)


@dataclass
class FineTuneResult:
    """Per-step training losses, the dev accuracy at each evaluation (step, accuracy), and the time taken."""

    train_loss: list[float] = field(default_factory=list)
    dev_accuracy: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0


@torch.no_grad()
def predict_proba(clf: GPTClassifier, idx: torch.Tensor, mask: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """(N, K) class probabilities of a :class:`GPTClassifier`, in eval mode."""
    was_training = clf.training
    clf.eval()
    device = next(clf.parameters()).device
    out = [F.softmax(clf(idx[i:i + batch_size].to(device), mask[i:i + batch_size].to(device)).float(), -1).cpu()
           for i in range(0, len(idx), batch_size)]
    clf.train(was_training)
    return torch.cat(out)


def fine_tune_classifier(clf: GPTClassifier, train: tuple, dev: tuple | None = None, steps: int = 200,
                         batch_size: int = 32, lr: float = 3e-4, head_lr: float = 3e-3, weight_decay: float = 0.01,
                         eval_interval: int = 50, seed: int = 1337, progress: bool = True) -> FineTuneResult:
    """Train every weight of ``clf`` on ``train`` = (idx, mask, labels) with AdamW and cross-entropy.

    The new head starts from nothing, so it gets a larger learning rate (``head_lr``) than the
    pretrained body (``lr``), which should move only a little; both decay linearly to 0.
    """
    from tqdm.auto import tqdm

    idx, mask, y = train
    if not (len(idx) == len(mask) == len(y)):
        raise ValueError("train must be (idx, mask, labels) of the same length")
    device = next(clf.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW([{"params": clf.gpt.parameters(), "lr": lr},
                             {"params": clf.head.parameters(), "lr": head_lr}], weight_decay=weight_decay)
    base = [g["lr"] for g in opt.param_groups]
    result = FineTuneResult()
    clf.train()
    t0 = time.perf_counter()
    bar = tqdm(range(steps), desc="fine-tuning", disable=not progress)
    for step in bar:
        for g, lr0 in zip(opt.param_groups, base):
            g["lr"] = lr0 * (1 - step / steps)
        ix = torch.randint(len(idx), (batch_size,), generator=gen)
        logits = clf(idx[ix].to(device), mask[ix].to(device))
        loss = F.cross_entropy(logits.float(), torch.as_tensor(y)[ix].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(clf.parameters(), 1.0)
        opt.step()
        result.train_loss.append(loss.item())
        if dev is not None and ((step + 1) % eval_interval == 0 or step == steps - 1):
            acc = float((predict_proba(clf, dev[0], dev[1]).argmax(-1) == torch.as_tensor(dev[2])).float().mean())
            result.dev_accuracy.append((step + 1, acc))
            bar.set_postfix(loss=f"{loss.item():.3f}", dev_acc=f"{acc:.3f}")
    clf.eval()
    result.seconds = time.perf_counter() - t0
    return result


def instruction_data(prompts: Sequence[str], responses: Sequence[str], tokenizer: Tokenizer,
                     block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt/response pairs -> (X, Y), (N, block_size): X the text, Y the next tokens with -1 on the
    prompt and the padding, so the loss (and all learning) is on the response only."""
    if len(prompts) != len(responses) or not prompts:
        raise ValueError("give the same number (at least one) of prompts and responses")
    X = torch.zeros(len(prompts), block_size, dtype=torch.long)
    Y = torch.full((len(prompts), block_size), -1, dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        ids, n_prompt = tokenizer.encode(p + r), len(tokenizer.encode(p))
        if len(ids) > block_size + 1:
            raise ValueError(f"example {i} has {len(ids)} tokens; at most block_size + 1 = {block_size + 1} fit")
        if n_prompt == 0 or n_prompt >= len(ids):
            raise ValueError(f"example {i} needs a non-empty prompt and a non-empty response")
        X[i, : len(ids) - 1] = torch.tensor(ids[:-1])
        Y[i, n_prompt - 1 : len(ids) - 1] = torch.tensor(ids[n_prompt:])  # predict the response tokens only
    return X, Y


@torch.no_grad()
def continuations(model, tokenizer: Tokenizer, text: str, prefix: int = 16, length: int = 48, *,
                  settings: SamplingSettings | None = None, seed: int = 0, batch_size: int = 256,
                  **options) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut ``text`` into consecutive windows of ``prefix + length`` tokens. For each window: the real
    ``length`` tokens after its ``prefix``, and ``length`` tokens the model samples after the same
    prefix with ``settings`` and any settings given by name (``temperature=0.8``, ...). Returns
    (real, generated), two (N, length) tensors of token ids."""
    settings = sampling_settings(settings, **options)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    W = prefix + length
    n = len(ids) // W
    if n == 0 or prefix < 1 or length < 1:
        raise ValueError(f"the text has {len(ids)} tokens: too short for one window of {prefix} + {length}")
    windows = ids[: n * W].view(n, W)
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    made = [generate(model, windows[i:i + batch_size, :prefix].to(device), length, settings=settings,
                     generator=g)[:, prefix:].cpu()
            for i in range(0, n, batch_size)]
    return windows[:, prefix:].clone(), torch.cat(made)
