"""Supervised fine-tuning with loss masking (lesson 15), as LLMs-from-scratch ch. 7 and nanochat do it.

A rendered conversation is ids t_0 .. t_n with a mask m_0 .. m_n (1 on the assistant's tokens).
The model reads t_0 .. t_{n-1} and predicts t_1 .. t_n, so the target at position i is t_{i+1},
kept when m_{i+1} is 1 and set to -1 (the cross-entropy's ``ignore_index``) otherwise: the first
kept target is the assistant's first token, predicted from the ``<|assistant|>`` header. Padding
is ``-1`` too. ``mask_loss=False`` keeps every real token's target (the comparison: the model
also learns to write the user's questions).

The base model's vocabulary lacks the special tokens, so :func:`grow_embeddings` adds rows for
them, initialised to the mean embedding (the tied output layer grows with it).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn

from .generate import generate_tokens
from .tasks import Example, is_correct, to_conversation
from .tools import generate_with_tools

__all__ = ["grow_embeddings", "sft_batch", "finetune", "reply", "evaluate"]


@torch.no_grad()
def grow_embeddings(model, vocab_size: int, noise: float = 0.0, generator: torch.Generator | None = None):
    """Grow ``model``'s token embedding (and tied output layer) to ``vocab_size`` rows, in place.

    Existing rows are kept; new rows start at the mean of the old ones, so a new token's logit starts
    at an average value instead of a random one (as transformers' ``resize_token_embeddings`` does).
    Identical rows are indistinguishable to the model until training separates them: ``noise`` adds
    ``noise`` x each dimension's standard deviation of the old rows, at random (e.g. 0.5 when many
    new ordinary characters are added, not only the special tokens).
    """
    old = model.transformer.wte.weight
    n, dim = old.shape
    if vocab_size < n:
        raise ValueError(f"the model already has {n} token rows; vocab_size {vocab_size} would drop some")
    if vocab_size == n:
        return model
    wte = nn.Embedding(vocab_size, dim, device=old.device, dtype=old.dtype)
    wte.weight[:n] = old
    wte.weight[n:] = old.mean(dim=0)
    if noise:
        z = torch.randn(vocab_size - n, dim, generator=generator).to(old.device, old.dtype)
        wte.weight[n:] += noise * old.std(dim=0) * z
    model.transformer.wte = wte
    model.lm_head = nn.Linear(dim, vocab_size, bias=False, device=old.device, dtype=old.dtype)
    model.lm_head.weight = wte.weight  # keep the tie
    model.config = dataclasses.replace(model.config, vocab_size=vocab_size)
    return model


def sft_batch(rendered: list[tuple[list[int], list[int]]], pad_id: int, mask_loss: bool = True,
              block_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets (B, T) for rendered conversations ``[(ids, mask), ...]``, padded to the longest.

    ``targets[b, i] = ids[i + 1]`` where ``mask[i + 1]`` is 1 (every real token when
    ``mask_loss=False``), else -1; padding positions are ``pad_id`` in the inputs and -1 in the targets.
    """
    if not rendered:
        raise ValueError("sft_batch needs at least one rendered conversation")
    T = max(len(ids) for ids, _ in rendered) - 1
    if block_size is not None and T > block_size:
        raise ValueError(f"a conversation has {T + 1} tokens, more than block_size + 1 = {block_size + 1}; "
                         "drop it or use shorter prompts")
    x = torch.full((len(rendered), T), pad_id, dtype=torch.long)
    y = torch.full((len(rendered), T), -1, dtype=torch.long)
    for b, (ids, mask) in enumerate(rendered):
        if len(ids) != len(mask) or len(ids) < 2:
            raise ValueError(f"conversation {b}: ids and mask must have the same length, at least 2")
        ids_t, mask_t = torch.tensor(ids), torch.tensor(mask, dtype=torch.bool)
        n = len(ids) - 1
        x[b, :n] = ids_t[:-1]
        keep = mask_t[1:] if mask_loss else torch.ones(n, dtype=torch.bool)
        y[b, :n] = torch.where(keep, ids_t[1:], torch.full_like(ids_t[1:], -1))
    return x, y


def finetune(model, tok, conversations: list[list[dict]], steps: int = 300, batch_size: int = 16,
             lr: float = 1e-3, weight_decay: float = 0.0, mask_loss: bool = True, seed: int = 0,
             progress: bool = False) -> list[float]:
    """Fine-tune ``model`` on chat ``conversations`` with AdamW; return the loss of every step.

    Only parameters with ``requires_grad`` are trained (so LoRA adapters alone after
    :func:`minigpt.lora.add_lora`). Batches are drawn at random with a generator seeded by ``seed``.
    """
    if not conversations:
        raise ValueError("finetune needs at least one conversation")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    if model.config.vocab_size < tok.vocab_size:
        raise ValueError(f"the model has {model.config.vocab_size} token rows but the chat tokenizer needs "
                         f"{tok.vocab_size}; call minigpt.sft.grow_embeddings(model, tok.vocab_size) first")
    device = next(model.parameters()).device
    rendered = [tok.render(c) for c in conversations]
    block = model.config.block_size
    too_long = sum(len(ids) > block + 1 for ids, _ in rendered)
    if too_long:
        raise ValueError(f"{too_long} of {len(rendered)} conversations are longer than block_size + 1 = {block + 1} "
                         "tokens; make shorter examples (minigpt.tasks.make_examples(max_chars=...)) or drop them")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    from tqdm.auto import tqdm

    was_training = model.training
    model.train()
    for _ in tqdm(range(steps), desc="fine-tuning", disable=not progress):
        pick = torch.randint(len(rendered), (batch_size,), generator=gen).tolist()
        x, y = sft_batch([rendered[i] for i in pick], tok.pad_id, mask_loss, model.config.block_size)
        _, loss = model(x.to(device), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.train(was_training)
    return losses


@torch.no_grad()
def reply(model, tok, conversation: list[dict], max_new_tokens: int = 32) -> str:
    """The assistant's greedy reply to ``conversation``, up to its end-of-turn (no tools)."""
    device = next(model.parameters()).device
    idx = torch.tensor([tok.render_prompt(conversation)], dtype=torch.long, device=device)
    end, out = tok.special["<|end|>"], []
    for t in generate_tokens(model, idx, max_new_tokens, temperature=0.0):
        t = int(t[0, 0])
        if t == end:
            break
        out.append(t)
    return tok.decode(out)


def evaluate(model, tok, examples: list[Example], use_tool: bool = False, max_new_tokens: int = 32) -> dict:
    """Accuracy per task of greedy replies (exact answers, :func:`minigpt.tasks.is_correct`).

    With ``use_tool`` replies come from :func:`minigpt.tools.generate_with_tools` (calculator on).
    Returns ``{task: {"accuracy", "mean_length", "n"}}`` (mean_length: characters per reply).
    """
    hits: dict[str, list[bool]] = {}
    lengths: dict[str, list[int]] = {}
    for ex in examples:
        conv = to_conversation(ex)[:-1]  # the prompt: everything before the assistant's answer
        if use_tool:
            text = generate_with_tools(model, tok, conv, max_new_tokens=max_new_tokens)[-1]["content"]
        else:
            text = reply(model, tok, conv, max_new_tokens)
        hits.setdefault(ex.task, []).append(is_correct(ex, text))
        lengths.setdefault(ex.task, []).append(len(text))
    return {task: {"accuracy": sum(h) / len(h), "mean_length": sum(lengths[task]) / len(h), "n": len(h)}
            for task, h in hits.items()}
