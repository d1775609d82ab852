"""Low-rank adapters (LoRA, Hu et al. 2021) written from scratch (lesson 15).

A frozen linear layer ``y = x W^T + b`` gets a trainable low-rank update:

    y = x W^T + b + (alpha / r) * x A^T B^T        A: (r, in_features), B: (out_features, r)

B starts at zero, so the adapted model starts exactly where the base model is; A starts as
``nn.Linear``'s (and peft's) Kaiming-uniform init. Only A and B train: for a (C, 3C) attention
projection that is r (C + 3C) numbers instead of 3 C^2. :func:`merge_lora` folds ``(alpha/r) B A``
into W, giving a plain model with the same logits and no extra cost at inference.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = ["LoRALinear", "add_lora", "merge_lora", "trainable_share", "DEFAULT_TARGETS"]

# GPT's linear layers by GPT-2 name: attention in/out projections and the MLP's two layers
DEFAULT_TARGETS = ("c_attn", "c_proj", "c_fc")


class LoRALinear(nn.Module):
    """``base`` (a frozen ``nn.Linear``) plus ``scaling * B @ A``, with ``scaling = alpha / r``."""

    def __init__(self, base: nn.Linear, r: int = 8, alpha: float = 16.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise ValueError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if not isinstance(r, int) or r < 1:
            raise ValueError(f"the LoRA rank r must be a positive integer, got {r!r}")
        self.base, self.r, self.alpha, self.scaling = base, r, alpha, alpha / r
        for p in base.parameters():
            p.requires_grad_(False)
        kw = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, **kw))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, **kw))  # zero: starts as the base layer
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x):
        return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scaling  # (..., out)

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` with ``W + scaling * B A``: the same outputs, no adapter."""
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None,
                        device=self.base.weight.device, dtype=self.base.weight.dtype)
        out.weight.copy_(self.base.weight + self.scaling * self.lora_B @ self.lora_A)
        if self.base.bias is not None:
            out.bias.copy_(self.base.bias)
        return out

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, scaling={self.scaling:g}"


def add_lora(model: nn.Module, targets=DEFAULT_TARGETS, r: int = 8, alpha: float = 16.0) -> nn.Module:
    """Freeze every parameter of ``model`` and wrap each ``nn.Linear`` whose name ends with one of
    ``targets`` in a :class:`LoRALinear`, in place. Returns the model."""
    for p in model.parameters():
        p.requires_grad_(False)
    found = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and child_name in targets:
                setattr(module, child_name, LoRALinear(child, r, alpha))
                found.append(f"{name}.{child_name}" if name else child_name)
    if not found:
        raise ValueError(f"no nn.Linear named {tuple(targets)} in the model; GPT's are {DEFAULT_TARGETS}")
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every :class:`LoRALinear` in ``model`` by its merged ``nn.Linear``, in place."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                setattr(module, child_name, child.merged())
    return model


def trainable_share(model: nn.Module) -> dict:
    """``{"trainable", "total", "share"}``: parameters that train, all parameters (shared ones once)."""
    params = {id(p): p for p in model.parameters()}.values()
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return {"trainable": trainable, "total": total, "share": trainable / total}
