"""Llama and Qwen3 interop: a modern-block ``minigpt`` GPT to and from ``transformers``.

A GPT with ``positions="rope", norm="rmsnorm", activation="swiglu"`` (biases and tied head as you
like, ``n_kv_head`` for grouped queries) is Llama's architecture; with ``qk_norm=True`` it is Qwen3's.
Only the names and the packing of the matrices differ:

    minigpt                          Llama / Qwen3 (model.layers.i.)
    transformer.wte                  model.embed_tokens
    h.i.ln_1, h.i.ln_2               input_layernorm, post_attention_layernorm
    h.i.attn.c_attn  (C + 2 kv, C)   self_attn.q_proj (C, C), k_proj (kv, C), v_proj (kv, C), stacked
    h.i.attn.c_proj                  self_attn.o_proj
    h.i.attn.q_norm, k_norm          self_attn.q_norm, k_norm                       (Qwen3 only)
    h.i.mlp.c_fc     (2H, C)         mlp.gate_proj (H, C) then mlp.up_proj (H, C), stacked
    h.i.mlp.c_proj                   mlp.down_proj
    transformer.ln_f, lm_head        model.norm, lm_head

RoPE pairs dimension i with i + hs/2 in both, so no matrix is permuted. Settings ``minigpt`` cannot
represent (RoPE scaling, sliding windows, biases on attention but not on the MLP, a head size that is
not hidden_size / heads, ...) are refused by name, before any weights are read.

- :func:`to_llama` / :func:`from_llama`: models in memory; :func:`llama_config`: the config alone;
- :func:`export_llama`: a checkpoint to a folder that ``AutoModelForCausalLM`` loads offline;
- :func:`load_llama` / :func:`import_llama`: a folder (or Hub name) back to a model, or to a checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from .checkpoint import Checkpoint, load_checkpoint
from .hf import read_pretrained, save_hf_folder, save_imported, tokenizer_from_hf
from .model import GPT, GPTConfig

__all__ = ["FAMILIES", "llama_family", "check_llama_exportable", "llama_config", "to_llama", "check_llama_config",
           "from_llama", "export_llama", "load_llama", "import_llama"]

# family -> (config class, model class) in transformers
FAMILIES = {"llama": ("LlamaConfig", "LlamaForCausalLM"), "qwen3": ("Qwen3Config", "Qwen3ForCausalLM")}


def _classes(family: str):
    import transformers

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; minigpt converts to {', '.join(map(repr, FAMILIES))}")
    names = FAMILIES[family]
    if not all(hasattr(transformers, n) for n in names):
        raise ValueError(f"this transformers ({transformers.__version__}) has no {names[1]}; upgrade transformers")
    return tuple(getattr(transformers, n) for n in names)


def llama_family(config: GPTConfig) -> str:
    """``"qwen3"`` for a model with QK-norm, else ``"llama"``."""
    return "qwen3" if config.qk_norm else "llama"


def check_llama_exportable(config: GPTConfig, family: str | None = None) -> str:
    """The family ``config`` exports to; a one-line ``ValueError`` naming the first option that the
    family's block does not have."""
    family = family or llama_family(config)
    _classes(family)
    name = "Qwen3" if family == "qwen3" else "Llama"

    def refuse(option: str, why: str):
        raise ValueError(f"cannot export this model as {name}: {option} ({why})")

    if config.positions != "rope":
        refuse(f"positions={config.positions!r}", f"{name} has rotary positions, no position table: positions='rope'")
    if config.norm != "rmsnorm":
        refuse(f"norm={config.norm!r}", f"{name} normalises with RMSNorm: norm='rmsnorm'")
    if config.activation != "swiglu":
        refuse(f"activation={config.activation!r}", f"{name}'s MLP is SwiGLU: activation='swiglu'")
    if family == "llama" and config.qk_norm:
        refuse("qk_norm=True", "Llama has no QK-norm; export it as family='qwen3'")
    if family == "qwen3" and not config.qk_norm:
        refuse("qk_norm=False", "Qwen3 normalises queries and keys; export it as family='llama'")
    if family == "qwen3" and config.bias:
        refuse("bias=True", "Qwen3's MLP has no biases; train with bias=False")
    return family


def llama_config(config: GPTConfig, family: str | None = None, eos_token_id: int | None = None):
    """The ``transformers`` config (``LlamaConfig`` or ``Qwen3Config``) with the architecture of ``config``."""
    family = check_llama_exportable(config, family)
    config_class, _ = _classes(family)
    kwargs = dict(
        vocab_size=config.vocab_size, hidden_size=config.n_embd, intermediate_size=config.hidden_size,
        num_hidden_layers=config.n_layer, num_attention_heads=config.n_head, num_key_value_heads=config.kv_heads,
        head_dim=config.head_size, hidden_act="silu", max_position_embeddings=config.block_size,
        rms_norm_eps=config.norm_eps, rope_theta=float(config.rope_theta), attention_bias=config.bias,
        attention_dropout=0.0, tie_word_embeddings=config.tie_embeddings,
        bos_token_id=eos_token_id, eos_token_id=eos_token_id, pad_token_id=None,
    )
    if family == "llama":
        kwargs["mlp_bias"] = config.bias
    else:
        kwargs.update(use_sliding_window=False, sliding_window=None)
    return config_class(**kwargs)


def _to_hf_names(model: GPT) -> dict[str, torch.Tensor]:
    """``model``'s weights under Llama's names, the stacked matrices split."""
    c = model.config
    C, kv_width, H = c.n_embd, c.kv_heads * c.head_size, c.hidden_size
    ours = model.state_dict()
    out = {"model.embed_tokens.weight": ours["transformer.wte.weight"], "model.norm.weight": ours["transformer.ln_f.weight"]}
    if not c.tie_embeddings:
        out["lm_head.weight"] = ours["lm_head.weight"]
    for i in range(c.n_layer):
        a, b = f"transformer.h.{i}.", f"model.layers.{i}."
        out[b + "input_layernorm.weight"] = ours[a + "ln_1.weight"]
        out[b + "post_attention_layernorm.weight"] = ours[a + "ln_2.weight"]
        for kind in ("weight", "bias") if c.bias else ("weight",):
            q, k, v = ours[a + f"attn.c_attn.{kind}"].split([C, kv_width, kv_width], dim=0)
            out[b + f"self_attn.q_proj.{kind}"], out[b + f"self_attn.k_proj.{kind}"] = q, k
            out[b + f"self_attn.v_proj.{kind}"] = v
            out[b + f"self_attn.o_proj.{kind}"] = ours[a + f"attn.c_proj.{kind}"]
            gate, up = ours[a + f"mlp.c_fc.{kind}"].split([H, H], dim=0)
            out[b + f"mlp.gate_proj.{kind}"], out[b + f"mlp.up_proj.{kind}"] = gate, up
            out[b + f"mlp.down_proj.{kind}"] = ours[a + f"mlp.c_proj.{kind}"]
        if c.qk_norm:
            out[b + "self_attn.q_norm.weight"] = ours[a + "attn.q_norm.weight"]
            out[b + "self_attn.k_norm.weight"] = ours[a + "attn.k_norm.weight"]
    return out


def to_llama(model: GPT, family: str | None = None, eos_token_id: int | None = None):
    """A ``LlamaForCausalLM`` (or ``Qwen3ForCausalLM`` for a model with QK-norm) holding a copy of
    ``model``'s weights, in eval mode and float32."""
    hf_config = llama_config(model.config, family, eos_token_id)
    _, model_class = _classes(llama_family(model.config) if family is None else family)
    hf = model_class(hf_config).eval()
    weights = _to_hf_names(model)
    theirs = hf.state_dict()
    missing = sorted(set(theirs) - set(weights) - ({"lm_head.weight"} if model.config.tie_embeddings else set()))
    unexpected = sorted(set(weights) - set(theirs))
    if missing or unexpected:
        raise KeyError(f"minigpt and {model_class.__name__} disagree on parameters: missing {missing[:5]}, "
                       f"unexpected {unexpected[:5]}")
    with torch.no_grad():
        for name, src in weights.items():
            if theirs[name].shape != src.shape:
                raise ValueError(f"shape mismatch for {name}: minigpt {tuple(src.shape)} vs HF {tuple(theirs[name].shape)}")
            theirs[name].copy_(src.float())
    return hf


def _rope_settings(c) -> tuple[dict, float]:
    """``(rope_parameters, rope_theta)`` of an HF config, in transformers 5 (``rope_parameters``) or 4
    (``rope_theta`` and ``rope_scaling``)."""
    params = getattr(c, "rope_parameters", None)
    if not isinstance(params, dict):
        params = dict(getattr(c, "rope_scaling", None) or {})
    theta = params.get("rope_theta", getattr(c, "rope_theta", 10000.0))
    return params, theta


def check_llama_config(c) -> None:
    """Raise a one-line ``ValueError`` naming the first setting of the Llama or Qwen3 config ``c`` that
    a ``minigpt`` GPT cannot represent (it would silently become a different model)."""
    def refuse(setting: str, why: str):
        raise ValueError(f"cannot load this model into minigpt: {setting} ({why})")

    model_type = getattr(c, "model_type", None)
    if model_type not in FAMILIES:
        refuse(f"model_type={model_type!r}", f"minigpt.llama loads {', '.join(map(repr, FAMILIES))}; "
               "GPT-2-style models load with minigpt.hf.load_hf")
    act = getattr(c, "hidden_act", "silu")
    if act != "silu":
        refuse(f"hidden_act={act!r}", "minigpt's SwiGLU gates with silu")
    params, _ = _rope_settings(c)
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type != "default":
        refuse(f"rope_scaling (rope_type={rope_type!r})", "minigpt's RoPE has no scaling of its frequencies")
    if params.get("partial_rotary_factor", getattr(c, "partial_rotary_factor", 1.0)) != 1.0:
        refuse("partial_rotary_factor", "minigpt rotates every dimension of a head")
    heads, kv = c.num_attention_heads, getattr(c, "num_key_value_heads", None) or c.num_attention_heads
    if c.hidden_size % heads:
        refuse(f"hidden_size={c.hidden_size} with num_attention_heads={heads}", "minigpt needs heads that divide the width")
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // heads
    if head_dim != c.hidden_size // heads:
        refuse(f"head_dim={head_dim}", f"minigpt's heads are hidden_size / num_attention_heads = {c.hidden_size // heads} wide")
    if heads % kv:
        refuse(f"num_key_value_heads={kv}", f"it must divide num_attention_heads={heads}")
    attention_bias = bool(getattr(c, "attention_bias", False))
    mlp_bias = bool(getattr(c, "mlp_bias", False))  # Qwen3's MLP never has biases
    if attention_bias != mlp_bias:
        setting = "attention_bias=True" if attention_bias else "mlp_bias=True"
        refuse(setting, "minigpt has biases everywhere or nowhere (bias=True or False), not on one of "
               "attention and MLP alone")
    if getattr(c, "use_sliding_window", False) or (getattr(c, "sliding_window", None) and model_type != "qwen3"):
        refuse(f"sliding_window={getattr(c, 'sliding_window', None)}", "minigpt attends to the whole context")
    layer_types = getattr(c, "layer_types", None) or []
    if any(t != "full_attention" for t in layer_types):
        refuse(f"layer_types={sorted(set(layer_types))}", "minigpt attends to the whole context in every layer")


def from_llama(hf_model, attn_impl: str = "sdpa", block_size: int | None = None) -> GPT:
    """A ``minigpt`` GPT with the weights of a ``LlamaForCausalLM`` or ``Qwen3ForCausalLM``.

    ``block_size`` defaults to the model's ``max_position_embeddings``; give a smaller one for a big
    model (each layer holds a block_size x block_size causal mask). Settings minigpt cannot represent
    are refused by name (:func:`check_llama_config`).
    """
    c = hf_model.config
    check_llama_config(c)
    _, theta = _rope_settings(c)
    config = GPTConfig(
        block_size=block_size or c.max_position_embeddings, vocab_size=c.vocab_size, n_layer=c.num_hidden_layers,
        n_head=c.num_attention_heads, n_embd=c.hidden_size, dropout=0.0, bias=bool(getattr(c, "attention_bias", False)),
        attn_impl=attn_impl, activation="swiglu", mlp_hidden=c.intermediate_size, positions="rope",
        rope_theta=float(theta), norm="rmsnorm", norm_eps=float(c.rms_norm_eps),
        n_kv_head=getattr(c, "num_key_value_heads", None) or c.num_attention_heads,
        qk_norm=c.model_type == "qwen3", tie_embeddings=bool(getattr(c, "tie_word_embeddings", False)),
    )
    # the defaults where they say the same, so a round trip gives back an equal config
    if replace(config, mlp_hidden=None).hidden_size == config.mlp_hidden:
        config = replace(config, mlp_hidden=None)
    if config.n_kv_head == config.n_head:
        config = replace(config, n_kv_head=None)
    model = GPT(config)
    theirs = hf_model.state_dict()
    if config.tie_embeddings and "lm_head.weight" in theirs \
            and not torch.equal(theirs["lm_head.weight"], theirs["model.embed_tokens.weight"]):
        raise ValueError("cannot load this model into minigpt: tie_word_embeddings=True but lm_head.weight differs "
                         "from model.embed_tokens.weight")
    names = _to_hf_names(model)  # views into model's own tensors, under Llama's names
    with torch.no_grad():
        for name, dst in names.items():
            src = theirs.get(name)
            if src is None or src.shape != dst.shape:
                raise ValueError(f"cannot load this model into minigpt: {name} is "
                                 f"{'missing' if src is None else tuple(src.shape)}, minigpt expects {tuple(dst.shape)}")
            dst.copy_(src)
    return model.eval()


# ---- folders ---------------------------------------------------------------------------------------
def export_llama(ckpt, out_dir, family: str | None = None, overwrite: bool = False) -> Path:
    """Write the checkpoint ``ckpt`` (a run folder, a checkpoint folder or a loaded ``Checkpoint``) as a
    Llama (or Qwen3) model folder: ``config.json``, ``model.safetensors``, ``generation_config.json``
    and ``tokenizer.json``. A folder that is not empty is refused unless ``overwrite``."""

    ck = ckpt if isinstance(ckpt, Checkpoint) else load_checkpoint(ckpt, load_state=False)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; give a folder for the exported model")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{out} is not empty; choose a new folder, or pass overwrite=True")
    eos = getattr(ck.tokenizer, "special_tokens", {}).get("<|endoftext|>")
    return save_hf_folder(to_llama(ck.model.float().cpu(), family, eos_token_id=eos), ck, out, eos)


def load_llama(name_or_dir, attn_impl: str = "sdpa", block_size: int | None = None):
    """``(model, tokenizer)`` from a Llama or Qwen3 folder (``save_pretrained``, :func:`export_llama`) or
    Hub name. The config is checked before any weights are read; the tokenizer is the folder's
    ``tokenizer.json`` when minigpt can read it (characters, or a GPT-2-style byte-level BPE), else None."""
    from transformers import AutoModelForCausalLM  # deferred: transformers takes seconds to import

    name = str(name_or_dir)
    path = Path(name).expanduser()
    local = path.exists()
    if local and not (path / "config.json").is_file():
        raise ValueError(f"{path} is not a Hugging Face model folder: it has no config.json")
    hf, config = read_pretrained(name, local, AutoModelForCausalLM, check_llama_config)
    hf = hf.float()
    model = from_llama(hf, attn_impl=attn_impl, block_size=block_size)
    tokenizer = None
    if local and (path / "tokenizer.json").is_file():
        try:
            tokenizer = tokenizer_from_hf(json.loads((path / "tokenizer.json").read_text(encoding="utf-8")))
        except ValueError:
            tokenizer = None  # e.g. SentencePiece-style vocabularies, which minigpt's tokenizers cannot hold
    return model, tokenizer


def import_llama(name_or_dir, out_dir, overwrite: bool = False, block_size: int | None = None) -> Path:
    """Load a Llama or Qwen3 model (:func:`load_llama`) and save it as a ``minigpt`` checkpoint in
    ``out_dir`` (step 0, no optimizer state)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; give a folder for the minigpt checkpoint")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{out} is not empty; choose a new folder, or pass overwrite=True")
    model, tok = load_llama(name_or_dir, block_size=block_size)
    return save_imported(model, tok, name_or_dir, out, f"{name_or_dir} has no tokenizer.json that minigpt can read "
                         "(characters, or a GPT-2-style byte-level BPE), and a minigpt checkpoint carries its tokenizer")
