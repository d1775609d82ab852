"""Direct preference optimisation (DPO, Rafailov et al. 2023) from scratch (lesson 15).

For a prompt x with a chosen reply y_w and a rejected reply y_l, a policy pi and a frozen
reference pi_ref (the SFT model), the implicit rewards are

    r_w = beta * (log pi(y_w | x) - log pi_ref(y_w | x)),   r_l = the same for y_l

and the loss is ``-log sigmoid(r_w - r_l)``: it raises the chosen reply's probability relative to the
reference more than the rejected one's, with no reward model and no sampling. ``r_w - r_l`` is the
implicit reward margin the lesson plots. Log-probabilities are sums over the reply's tokens
(including its end-of-turn token), as in the paper.

Preference pairs come from the tasks: chosen is the right answer, short; rejected is a wrong answer
or the right answer wrapped in rambling.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from .sft import sft_batch
from .tasks import Example, to_conversation, wrong_answer

__all__ = ["sequence_logprobs", "dpo_loss", "preference_pairs", "dpo_train", "RAMBLES"]

RAMBLES = ("Well, let me think about that for a moment. The answer is {a}, I believe.",
           "That is a good question! After some thought, I would say {a}.",
           "Hmm. I think it is {a}, but I am not completely sure about it.")


def sequence_logprobs(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sum of log p(target) over the positions where ``y`` is not -1: one number per row, (B,).

    ``x, y`` are :func:`minigpt.sft.sft_batch`'s inputs and targets (the reply's tokens are the targets).
    """
    logits, _ = model(x)  # (B, T, V)
    logp = F.log_softmax(logits.float(), dim=-1)
    keep = y != -1
    picked = logp.gather(-1, y.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, T)
    return (picked * keep).sum(dim=1)


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float = 0.1) -> dict:
    """DPO loss from sequence log-probs (each (B,)): ``{"loss", "chosen_reward", "rejected_reward",
    "margin", "accuracy"}``; rewards and margin are per pair, accuracy the share with margin > 0."""
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    chosen = beta * (policy_chosen - ref_chosen)
    rejected = beta * (policy_rejected - ref_rejected)
    margin = chosen - rejected
    return {"loss": -F.logsigmoid(margin).mean(), "chosen_reward": chosen.detach(),
            "rejected_reward": rejected.detach(), "margin": margin.detach(),
            "accuracy": (margin > 0).float().mean().item()}


def preference_pairs(examples: list[Example], seed: int = 0, ramble_share: float = 0.5,
                     rambles: tuple[str, ...] = RAMBLES) -> list[tuple]:
    """``[(chosen_conversation, rejected_conversation), ...]``: the right, concise answer against a
    wrong answer or (with probability ``ramble_share``) the right answer wrapped in rambling
    (``rambles``: templates with ``{a}`` for the answer; short ones fit a small model's context)."""
    if not rambles or not all("{a}" in r for r in rambles):
        raise ValueError("rambles must be a non-empty tuple of templates that contain {a}")
    rng = random.Random(seed)
    pairs = []
    for ex in examples:
        if rng.random() < ramble_share:
            bad = rng.choice(rambles).format(a=ex.answer)
        else:
            bad = wrong_answer(ex, rng)
        pairs.append((to_conversation(ex), to_conversation(ex, answer=bad)))
    return pairs


def _logps(model, tok, convs, device, block_size):
    x, y = sft_batch([tok.render(c) for c in convs], tok.pad_id, True, block_size)
    return sequence_logprobs(model, x.to(device), y.to(device))


def dpo_train(policy, reference, tok, pairs: list[tuple], steps: int = 100, batch_size: int = 8,
              beta: float = 0.1, lr: float = 1e-4, seed: int = 0, progress: bool = False) -> list[dict]:
    """Train ``policy`` with DPO against the frozen ``reference`` on ``pairs``; return every step's
    ``{"loss", "margin", "accuracy"}`` (margin: the mean implicit reward margin of the batch)."""
    from tqdm.auto import tqdm

    if not pairs:
        raise ValueError("dpo_train needs at least one preference pair")
    device = next(policy.parameters()).device
    block = policy.config.block_size
    reference.eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    history = []
    was_training = policy.training
    policy.train()
    for _ in tqdm(range(steps), desc="DPO", disable=not progress):
        batch = [pairs[i] for i in torch.randint(len(pairs), (batch_size,), generator=gen).tolist()]
        chosen, rejected = [c for c, _ in batch], [r for _, r in batch]
        with torch.no_grad():
            ref_c, ref_r = _logps(reference, tok, chosen, device, block), _logps(reference, tok, rejected, device, block)
        out = dpo_loss(_logps(policy, tok, chosen, device, block), _logps(policy, tok, rejected, device, block),
                       ref_c, ref_r, beta)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        history.append({"loss": out["loss"].item(), "margin": out["margin"].mean().item(),
                        "accuracy": out["accuracy"]})
    policy.train(was_training)
    return history
