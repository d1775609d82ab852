"""Hugging Face interop: a ``minigpt`` GPT to and from ``transformers``' ``GPT2LMHeadModel``.

The parameter names are the same; only the matrices differ in layout: GPT-2 stores its linear
layers as ``Conv1D`` with weights (in, out), ``nn.Linear`` stores (out, in), so they are transposed.

- :func:`export_hf` writes a checkpoint as a folder that ``AutoModelForCausalLM``, ``AutoTokenizer``
  and ``pipeline("text-generation")`` load offline (config, safetensors weights, ``tokenizer.json``,
  generation config); :func:`hf_tokenizer` builds the tokenizer with the ``tokenizers`` library.
- :func:`load_hf` / :func:`import_hf` go back: a GPT-2 folder or Hub name to a ``minigpt`` model and
  checkpoint. Settings ``minigpt`` cannot represent are refused by :func:`check_hf_config`.

    python -m minigpt export --ckpt runs/shakespeare-char-cpu --out hf/shakespeare-char
    python -m minigpt import-hf --model hf/shakespeare-char --out runs/imported
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import torch

from .bpe import GPT2_SPLIT_PATTERN, BPETokenizer, bytes_to_unicode, gpt2_tokenizer
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .model import GPT, GPTConfig
from .tokenizer import CharTokenizer, Tokenizer
from .utils import describe_differences

_TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# GPTConfig.activation -> transformers' activation_function, and back ("gelu_new" is GPT-2's own name)
HF_ACTIVATION = {"gelu_tanh": "gelu_new", "gelu": "gelu"}
FROM_HF_ACTIVATION = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}


def hf_config(config: GPTConfig, eos_token_id: int | None = None):
    """The ``transformers.GPT2Config`` with the same architecture as ``config``.

    ``eos_token_id``: the end-of-text token, when the tokenizer has one (GPT-2's 50256); None for
    the course's Shakespeare models, whose generation then runs to its length.
    """
    from transformers import GPT2Config

    # GPT-2's block; a model with the options of the modern block exports with minigpt.llama instead
    gpt2_block = dict(positions="learned", norm="layernorm", norm_eps=1e-5, kv_heads=config.n_head, qk_norm=False,
                      tie_embeddings=True, hidden_size=4 * config.n_embd)
    have = {k: getattr(config, k) for k in gpt2_block}
    diff = (f"activation {config.activation!r} instead of a GELU" if config.activation not in HF_ACTIVATION
            else describe_differences(have, gpt2_block))
    if diff:
        raise ValueError(f"cannot export this model as GPT-2: it has {diff}; a Llama-style model exports with "
                         "minigpt.llama.export_llama")
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
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
    )


def to_hf(model: GPT, eos_token_id: int | None = None):
    """A ``GPT2LMHeadModel`` holding a copy of ``model``'s weights (zeros where ``bias=False``)."""
    from transformers import GPT2LMHeadModel

    hf = GPT2LMHeadModel(hf_config(model.config, eos_token_id)).eval()
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


def check_hf_config(c) -> None:
    """Raise a one-line ``ValueError`` naming the first setting of the HF config ``c`` that a
    ``minigpt`` GPT cannot represent (it would silently become a different model)."""
    def refuse(setting: str, why: str):
        raise ValueError(f"cannot load this model into minigpt: {setting} ({why})")

    if getattr(c, "model_type", None) != "gpt2":
        refuse(f"model_type={getattr(c, 'model_type', None)!r}", "minigpt loads GPT-2-style models, model_type 'gpt2'")
    if not getattr(c, "tie_word_embeddings", True):
        refuse("tie_word_embeddings=False", "untied input and output embeddings; minigpt's output layer is its "
               "token embedding")
    eps = getattr(c, "layer_norm_epsilon", 1e-5)
    if eps != 1e-5:
        refuse(f"layer_norm_epsilon={eps}", "minigpt's LayerNorm uses 1e-5")
    if not getattr(c, "scale_attn_weights", True):
        refuse("scale_attn_weights=False", "minigpt always divides attention scores by sqrt(head size)")
    if getattr(c, "scale_attn_by_inverse_layer_idx", False):
        refuse("scale_attn_by_inverse_layer_idx=True", "minigpt does not scale attention by 1/(layer + 1)")
    if getattr(c, "reorder_and_upcast_attn", False):
        refuse("reorder_and_upcast_attn=True", "minigpt computes attention in one order, in the model's dtype")
    if getattr(c, "add_cross_attention", False):
        refuse("add_cross_attention=True", "minigpt's blocks have no cross-attention")
    act = getattr(c, "activation_function", None)
    if act not in FROM_HF_ACTIVATION:
        refuse(f"activation_function={act!r}", f"minigpt's MLP uses GELU: one of {', '.join(sorted(FROM_HF_ACTIVATION))}")
    n_inner = c.n_inner or 4 * c.n_embd
    if n_inner != 4 * c.n_embd:
        refuse(f"n_inner={n_inner}", f"minigpt's MLP is 4 x n_embd = {4 * c.n_embd} wide")


def from_hf(hf_model, attn_impl: str = "sdpa") -> GPT:
    """A ``minigpt`` GPT with the weights of a ``GPT2LMHeadModel`` (e.g. real GPT-2 weights).

    Settings ``minigpt`` cannot represent are refused with a ``ValueError`` naming them.
    """
    c = hf_model.config
    check_hf_config(c)
    theirs = hf_model.state_dict()
    head = theirs.get("lm_head.weight")
    if head is not None and not torch.equal(head, theirs["transformer.wte.weight"]):
        raise ValueError("cannot load this model into minigpt: lm_head.weight differs from transformer.wte.weight "
                         "(untied input and output embeddings; minigpt's output layer is its token embedding)")
    config = GPTConfig(block_size=c.n_positions, vocab_size=c.vocab_size, n_layer=c.n_layer,
                       n_head=c.n_head, n_embd=c.n_embd, dropout=0.0, bias=True, attn_impl=attn_impl,
                       activation=FROM_HF_ACTIVATION[c.activation_function])
    model = GPT(config)
    with torch.no_grad():
        for name, p in model.state_dict().items():
            src = theirs[name]
            p.copy_(src.t() if name.endswith(_TRANSPOSED) else src)
    return model.eval()


# ---- tokenizers ------------------------------------------------------------------------------------
def hf_tokenizer_object(tok: Tokenizer):
    """``tok`` (a :class:`CharTokenizer` or a byte-level :class:`BPETokenizer`) as a ``tokenizers.Tokenizer``
    with the same ids: a word-level model over single characters, or a byte-level BPE."""
    from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer

    if isinstance(tok, CharTokenizer):
        t = HFTokenizer(models.WordLevel(vocab=dict(tok.stoi), unk_token=None))
        t.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every character alone
        t.decoder = decoders.Fuse()  # join the characters back without spaces
        return t
    if not isinstance(tok, BPETokenizer):
        raise ValueError(f"cannot convert a {type(tok).__name__}; give a CharTokenizer or a BPETokenizer")
    # The tokenizers library spells token bytes through GPT-2's byte-to-unicode table, as GPT-2's files do.
    b2u = bytes_to_unicode()

    def spell(b: bytes) -> str:
        return "".join(b2u[x] for x in b)

    n = 256 + len(tok.merges)
    vocab = {spell(tok.vocab[i]): i for i in range(n)}
    if len(vocab) != n:
        raise ValueError("two tokens of this BPE have the same bytes; the tokenizers library needs one id per spelling")
    vocab.update(tok.special_tokens)
    merges = [(spell(tok.vocab[a]), spell(tok.vocab[b])) for a, b in tok.merges]
    t = HFTokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    if tok.pattern == GPT2_SPLIT_PATTERN:
        t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)  # GPT-2's own split
    elif tok.pattern is None:
        t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    else:
        t.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(tok.pattern), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    t.decoder = decoders.ByteLevel()
    if tok.special_tokens:
        t.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in tok.special_tokens])
    return t


def hf_tokenizer(tok: Tokenizer, model_max_length: int | None = None):
    """``tok`` as a ``transformers.PreTrainedTokenizerFast`` (what ``AutoTokenizer`` loads back)."""
    from transformers import PreTrainedTokenizerFast

    eot = "<|endoftext|>" if "<|endoftext|>" in getattr(tok, "special_tokens", {}) else None
    kwargs = {"bos_token": eot, "eos_token": eot, "unk_token": eot} if eot else {}
    return PreTrainedTokenizerFast(tokenizer_object=hf_tokenizer_object(tok), clean_up_tokenization_spaces=False,
                                   model_max_length=model_max_length or int(1e30), **kwargs)


def tokenizer_from_hf(spec: dict) -> Tokenizer:
    """A ``minigpt`` tokenizer from a ``tokenizer.json`` (parsed): the inverse of :func:`hf_tokenizer_object`.

    Reads word-level character tokenizers and byte-level BPEs laid out like GPT-2's (ids 0-255 the
    bytes, merge ``i`` makes id ``256 + i``, special tokens after); anything else is a ``ValueError``.
    """
    model = spec.get("model") or {}
    pre = spec.get("pre_tokenizer") or {}
    kind = model.get("type")
    vocab = model.get("vocab")
    if not isinstance(vocab, dict):
        raise ValueError("tokenizer.json has no model vocabulary")
    if kind == "WordLevel":
        chars = sorted(vocab, key=vocab.get)
        if [vocab[c] for c in chars] != list(range(len(chars))) or any(len(c) != 1 for c in chars):
            raise ValueError("tokenizer.json is word-level but not one token per character with ids 0..N-1")
        return CharTokenizer(chars)
    if kind != "BPE":
        raise ValueError(f"tokenizer.json holds a {kind} model; minigpt reads character and byte-level BPE tokenizers")
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    byte_level = [s for s in steps if s.get("type") == "ByteLevel"]
    if not byte_level:
        raise ValueError("tokenizer.json is a BPE without a ByteLevel pre-tokenizer; minigpt reads byte-level BPEs")
    splits = [s for s in steps if s.get("type") == "Split"]
    if byte_level[0].get("use_regex", True) and not splits:
        pattern = GPT2_SPLIT_PATTERN
    elif splits and isinstance(splits[0].get("pattern"), dict) and "Regex" in splits[0]["pattern"]:
        pattern = splits[0]["pattern"]["Regex"]
    else:
        pattern = None
    u2b = {ch: b for b, ch in bytes_to_unicode().items()}
    specials = {a["content"]: a["id"] for a in spec.get("added_tokens", []) if a.get("special")}
    try:
        by_id = {i: bytes(u2b[ch] for ch in t) for t, i in vocab.items() if t not in specials}
    except KeyError:
        raise ValueError("tokenizer.json's vocabulary is not spelled in GPT-2's byte-to-unicode table") from None
    if sorted(by_id) != list(range(len(by_id))) or any(len(by_id[i]) != 1 for i in range(256)):
        raise ValueError("tokenizer.json's BPE is not laid out like GPT-2's (ids 0-255 the bytes, then the merges)")
    ids = {b: i for i, b in by_id.items()}
    merges = []
    for rank, m in enumerate(model.get("merges", [])):
        a, b = m.split(" ") if isinstance(m, str) else m
        a, b = bytes(u2b[c] for c in a), bytes(u2b[c] for c in b)
        if ids.get(a + b) != 256 + rank:
            raise ValueError(f"tokenizer.json's merge {rank} does not make token {256 + rank}; minigpt needs "
                             "merges in id order")
        merges.append((ids[a], ids[b]))
    return BPETokenizer(merges, pattern=pattern, special_tokens=specials,
                        byte_order=[by_id[i][0] for i in range(256)])


# ---- export ----------------------------------------------------------------------------------------
def export_hf(ckpt, out_dir, overwrite: bool = False) -> Path:
    """Write the checkpoint ``ckpt`` (a run folder, a checkpoint folder or a loaded ``Checkpoint``) to
    ``out_dir`` in the Hugging Face format; return the folder.

    The folder holds ``config.json``, ``model.safetensors``, ``generation_config.json`` (greedy, like
    gpt2's; ``max_length`` = the model's context) and the tokenizer (``tokenizer.json``). A folder
    that is not empty is refused unless ``overwrite``.
    """

    ck = ckpt if isinstance(ckpt, Checkpoint) else load_checkpoint(ckpt, load_state=False)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; give a folder for the exported model")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{out} is not empty; choose a new folder, or pass --overwrite (overwrite=True) to "
                         "write the model's files over what is there")
    eos = getattr(ck.tokenizer, "special_tokens", {}).get("<|endoftext|>")
    return save_hf_folder(to_hf(ck.model.float().cpu(), eos_token_id=eos), ck, out, eos)


def save_hf_folder(hf, ck, out: Path, eos: int | None) -> Path:
    """Save the transformers model ``hf`` made from checkpoint ``ck`` into ``out``, with its tokenizer, a
    generation config and a note of where it came from (the GPT-2 and the Llama exports share this)."""
    from transformers import GenerationConfig  # deferred: transformers takes seconds to import
    # like gpt2's own: greedy unless asked, and no longer than the context the model was trained on
    hf.generation_config = GenerationConfig(max_length=ck.model.config.block_size, bos_token_id=eos,
                                            eos_token_id=eos, pad_token_id=eos)
    try:
        out.mkdir(parents=True, exist_ok=True)
        hf.save_pretrained(out)
        hf_tokenizer(ck.tokenizer, ck.model.config.block_size).save_pretrained(out)
        (out / "minigpt.json").write_text(json.dumps({"exported_from": str(ck.path), "step": ck.step}) + "\n",
                                          encoding="utf-8")
    except OSError as e:
        raise ValueError(f"cannot write {out}: {e.strerror or e}; choose a folder you can write to") from None
    return out


# ---- import ----------------------------------------------------------------------------------------
def _looks_like_path(name: str) -> bool:
    """A folder here, or something only a path looks like; else a Hub name ("gpt2", "org/name")."""
    return (Path(name).expanduser().exists() or name.startswith((".", "/", "~")) or name.count("/") > 1
            or (os.sep != "/" and os.sep in name))


def load_hf(name_or_dir, attn_impl: str = "sdpa"):
    """``(model, tokenizer)``: a ``minigpt`` GPT with the weights of a GPT-2-style HF model, from a
    local folder (``save_pretrained`` or :func:`export_hf`) or a Hub name such as ``"gpt2"`` (online).

    The config is checked (:func:`check_hf_config`) before any weights are read. The tokenizer comes
    from the folder's ``tokenizer.json`` (None when there is none and it is not GPT-2's vocabulary).
    """
    from transformers import GPT2LMHeadModel  # deferred: transformers takes seconds to import

    name = str(name_or_dir)
    local = _looks_like_path(name)
    if local:
        path = Path(name).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"no model folder at {path}; give a folder written by save_pretrained or "
                                    "`python -m minigpt export`")
        if not path.is_dir():
            raise ValueError(f"{path} is a file; give the folder that holds config.json and the weights")
        if not (path / "config.json").is_file():
            hint = " (a minigpt run folder: it is already a minigpt checkpoint)" if (path / "latest.json").exists() else ""
            raise ValueError(f"{path} is not a Hugging Face model folder: it has no config.json{hint}")
    hf, config = read_pretrained(name, local, GPT2LMHeadModel, check_hf_config)
    model = from_hf(hf, attn_impl=attn_impl)
    return model, _hf_tokenizer_for(name, local, config.vocab_size)


def read_pretrained(name: str, local: bool, model_class, check_config):
    """``(model, config)`` of the transformers folder or Hub name ``name``: the config first, checked by
    ``check_config`` before any weights are read, then the weights in eval mode. Every failure is one
    line; a weights file that is a pickle able to run code is refused, never loaded (GPT-2 and Llama)."""
    from transformers import AutoConfig  # deferred: transformers takes seconds to import

    try:
        config = AutoConfig.from_pretrained(name, local_files_only=local)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"cannot read the config of {name!r}: {first}") from None
    check_config(config)
    try:
        hf = model_class.from_pretrained(name, local_files_only=local).eval()
    except Exception as e:  # noqa: BLE001 - a damaged or unsafe weights file: one line that names it
        if isinstance(e, (OSError, ValueError)) and not _refused_pickle(e):
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"cannot load the weights of {name!r}: {first}") from None
        raise ValueError(_bad_weights_message(name, local, e)) from None
    return hf, config


def _refused_pickle(e: Exception) -> bool:
    """True when torch's safe loader refused a pickle (``torch.load(weights_only=True)``)."""
    return isinstance(e, pickle.UnpicklingError) or "weights_only" in str(e) or "Weights only" in str(e)


def _bad_weights_message(name: str, local: bool, e: Exception) -> str:
    """Which weights file could not be read, and what to do. A pickle that would run code is refused by
    ``torch.load(weights_only=True)``; the message never suggests turning that protection off."""
    folder = Path(name).expanduser() if local else None
    if _refused_pickle(e):
        found = sorted(folder.glob("*.bin")) if folder else []
        file = found[0] if found else f"the pytorch_model.bin of {name!r}"
        return (f"{file} was refused: it is a pickle that would run code when loaded, which weights never need; "
                "get the weights as model.safetensors from a source you trust")
    found = sorted(folder.glob("*.safetensors")) if folder else []
    file = found[0] if found else f"the weights file of {name!r}"
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return (f"{file} cannot be read ({type(e).__name__}: {first}); it is damaged or incomplete: "
            "download or export the model again")


def _hf_tokenizer_for(name: str, local: bool, vocab_size: int):
    spec = None
    if local:
        f = Path(name).expanduser() / "tokenizer.json"
        if f.is_file():
            spec = json.loads(f.read_text(encoding="utf-8"))
    else:
        try:
            from transformers import AutoTokenizer

            spec = json.loads(AutoTokenizer.from_pretrained(name).backend_tokenizer.to_str())
        except Exception:  # noqa: BLE001 - no fast tokenizer on the Hub: fall through
            spec = None
    if spec is not None:
        return tokenizer_from_hf(spec)
    if vocab_size == 50257:  # GPT-2's vocabulary, from the course's copy of its files
        return gpt2_tokenizer()
    return None


def import_hf(name_or_dir, out_dir, overwrite: bool = False) -> Path:
    """Load a GPT-2-style HF model (:func:`load_hf`) and save it as a ``minigpt`` checkpoint in ``out_dir``
    (step 0, no optimizer state), which ``load_checkpoint`` and ``python -m minigpt sample`` read."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; give a folder for the minigpt checkpoint")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{out} is not empty; choose a new folder, or pass --overwrite (overwrite=True)")
    model, tok = load_hf(name_or_dir)
    return save_imported(model, tok, name_or_dir, out, f"{name_or_dir} has no tokenizer.json, and a minigpt "
                         "checkpoint carries its tokenizer; save the tokenizer into the folder (tokenizer.save_pretrained)")


def save_imported(model, tok, name_or_dir, out: Path, no_tokenizer: str) -> Path:
    """Write an imported model and its tokenizer as a minigpt checkpoint in ``out`` (GPT-2 and Llama imports);
    ``no_tokenizer`` is the one-line error when there is no tokenizer minigpt can read."""
    if tok is None:
        raise ValueError(no_tokenizer)
    if tok.vocab_size != model.config.vocab_size:
        raise ValueError(f"the tokenizer of {name_or_dir} has {tok.vocab_size} tokens but the model "
                         f"{model.config.vocab_size}; minigpt needs them equal")
    save_checkpoint(out, model, tok, 0, train_config={}, extra={"imported_from": str(name_or_dir)})
    return out


def hub_reachable(timeout: float = 3.0, host: str = "huggingface.co") -> bool:
    """True when the Hugging Face Hub answers within ``timeout`` seconds (and HF_HUB_OFFLINE is not set)."""
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False
