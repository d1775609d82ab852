"""Hugging Face interop: a ``minigpt`` GPT to and from ``transformers``' ``GPT2LMHeadModel``.

The parameter names are the same; only the matrices differ in layout: GPT-2 stores its linear
layers as ``Conv1D`` with weights (in, out), ``nn.Linear`` stores (out, in), so they are transposed.
"""

from __future__ import annotations

import torch

from .model import GPT, GPTConfig

_TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# GPTConfig.activation -> transformers' activation_function, and back ("gelu_new" is GPT-2's own name)
HF_ACTIVATION = {"gelu_tanh": "gelu_new", "gelu": "gelu"}
FROM_HF_ACTIVATION = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}


def hf_config(config: GPTConfig):
    """The ``transformers.GPT2Config`` with the same architecture as ``config``."""
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.block_size,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        n_inner=4 * config.n_embd,
        activation_function=HF_ACTIVATION[config.activation],
        resid_pdrop=config.dropout,
        embd_pdrop=config.dropout,
        attn_pdrop=config.dropout,
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=True,
        bos_token_id=config.vocab_size - 1,
        eos_token_id=config.vocab_size - 1,
    )


def to_hf(model: GPT):
    """A ``GPT2LMHeadModel`` holding a copy of ``model``'s weights (zeros where ``bias=False``)."""
    from transformers import GPT2LMHeadModel

    hf = GPT2LMHeadModel(hf_config(model.config)).eval()
    ours = model.state_dict()
    with torch.no_grad():
        for name, p in hf.state_dict().items():
            if name.endswith(".attn.bias") or name.endswith(".attn.masked_bias"):
                continue  # causal-mask buffers in older transformers versions
            src = ours.get(name)
            if src is None:
                if name.endswith(".bias"):
                    p.zero_()  # our model has no biases: GPT-2's are set to zero
                    continue
                raise KeyError(f"no minigpt parameter for Hugging Face parameter {name!r}")
            src = src.t() if name.endswith(_TRANSPOSED) else src
            if src.shape != p.shape:
                raise ValueError(f"shape mismatch for {name}: minigpt {tuple(src.shape)} vs HF {tuple(p.shape)}")
            p.copy_(src)
    return hf


def from_hf(hf_model, attn_impl: str = "sdpa") -> GPT:
    """A ``minigpt`` GPT with the weights of a ``GPT2LMHeadModel`` (e.g. real GPT-2 weights)."""
    c = hf_model.config
    if c.activation_function not in FROM_HF_ACTIVATION:
        raise ValueError(f"minigpt's MLP uses GELU (tanh or exact); this model's activation_function is "
                         f"{c.activation_function!r}")
    n_inner = c.n_inner or 4 * c.n_embd
    if n_inner != 4 * c.n_embd:
        raise ValueError(f"minigpt's MLP is 4 x n_embd wide; this model's is {n_inner}")
    config = GPTConfig(block_size=c.n_positions, vocab_size=c.vocab_size, n_layer=c.n_layer,
                       n_head=c.n_head, n_embd=c.n_embd, dropout=0.0, bias=True, attn_impl=attn_impl,
                       activation=FROM_HF_ACTIVATION[c.activation_function])
    model = GPT(config)
    theirs = hf_model.state_dict()
    with torch.no_grad():
        for name, p in model.state_dict().items():
            src = theirs[name]
            p.copy_(src.t() if name.endswith(_TRANSPOSED) else src)
    return model.eval()
