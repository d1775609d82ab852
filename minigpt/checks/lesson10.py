"""Checks for lesson 10 (Hugging Face transformers): mapping ``generate``'s arguments to lesson 08's
sampler, converting a state dict to GPT-2's layout by hand, bits per character, and undoing GPT-2's
byte-to-unicode spelling.

Every check draws fresh inputs (a new seed each call): random arguments, random small models,
random byte strings, so an answer that only fits one input cannot pass.
"""

from __future__ import annotations

import math

import torch

from ..bpe import bytes_to_unicode
from ..generate import check_sampling_args, generate
from ..hf import hf_config, to_hf
from ..i18n import _
from ..model import GPT, GPTConfig
from ._core import Check, fresh_generator

__all__ = ["generate_kwargs", "hf_state_dict", "bits_per_char", "unspell"]


# ---- 1. generate's arguments -> minigpt.generate ------------------------------------------------------
def _ref_generate_kwargs(hf: dict, prompt_len: int) -> dict:
    new = hf["max_new_tokens"] if hf.get("max_new_tokens") is not None else hf["max_length"] - prompt_len
    sampling = hf.get("do_sample", False)
    top_k = hf.get("top_k", 50)  # not given: the generation config's default, 50
    top_p = hf.get("top_p")
    return {"max_new_tokens": new, "temperature": hf.get("temperature", 1.0) if sampling else 0,
            "top_k": top_k if sampling and top_k else None,
            "top_p": top_p if sampling and top_p is not None and top_p < 1 else None,
            "repetition": hf.get("repetition_penalty", 1.0)}


def _draw_generate_cases(g) -> list[tuple[dict, int, str]]:
    def r(lo, hi):
        return int(torch.randint(lo, hi, (1,), generator=g))

    p = r(3, 12)
    temp = round(0.3 + r(0, 12) / 10, 1)
    new = r(12, 40)  # with max_length below prompt + new: min(...) and max_length - prompt both differ from new
    return [
        ({"max_length": p + r(10, 40)}, p, _("greedy with max_length only")),
        ({"max_length": p + r(10, 40), "do_sample": True, "temperature": temp, "top_k": r(5, 45)}, p,
         _("sampling with temperature and top_k")),
        ({"max_length": p + r(10, 40), "do_sample": True}, p, _("do_sample=True and nothing else")),
        ({"max_new_tokens": new, "max_length": p + r(1, new - 2), "do_sample": True, "top_p": 0.9}, p,
         _("max_new_tokens and max_length both given (max_length the tighter)")),
        ({"max_new_tokens": r(5, 30), "max_length": 200, "do_sample": True, "top_k": 0, "top_p": 0.9}, p,
         _("max_new_tokens and max_length both given, top_k=0")),
        ({"max_length": p + 20, "do_sample": True, "top_k": 0, "temperature": temp}, p, _("sampling with top_k=0")),
        ({"max_length": p + 20, "temperature": temp, "top_k": 40, "repetition_penalty": 1.3}, p,
         _("temperature and top_k given without do_sample")),
    ]


def _tiny_pair(g):
    """A small random GPT in minigpt and the same weights in transformers' GPT2LMHeadModel."""
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
    ours = GPT(GPTConfig(block_size=64, vocab_size=int(torch.randint(200, 400, (1,), generator=g)), n_layer=1,
                         n_head=2, n_embd=32)).eval()
    with torch.no_grad():  # spread the logits (std about 4): near-uniform ones put float ties at top-p's edge
        ours.transformer.wte.weight.mul_(40)
    return ours, to_hf(ours).eval()


def _same_tokens(ours, theirs, hf: dict, got: dict, prompt: torch.Tensor, seed: int) -> bool:
    """transformers' generate(**hf) and minigpt's generate(**got) from one prompt and one seed: equal tokens?"""
    import warnings

    import transformers

    transformers.logging.set_verbosity_error()  # no note on max_length and max_new_tokens given together
    torch.manual_seed(seed)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "temperature is set but do_sample is False": the case tests it
        ref = theirs.generate(prompt, pad_token_id=0, **hf)
    mine = generate(ours, prompt, got["max_new_tokens"], temperature=got["temperature"], top_k=got["top_k"] or None,
                    top_p=got["top_p"], repetition=got["repetition"], generator=torch.Generator().manual_seed(seed))
    return torch.equal(ref, mine)


def generate_kwargs(fn):
    """``fn(hf_kwargs, prompt_len)``: the keyword arguments of ``minigpt.generate`` (``max_new_tokens``,
    ``temperature``, ``top_k``, ``top_p``, ``repetition``) that do what ``model.generate(**hf_kwargs)`` does."""
    c = Check("generate_kwargs")
    g = fresh_generator()
    answers = []
    for hf, p, what in _draw_generate_cases(g):
        got = c.call(fn, dict(hf), p)
        c.that(isinstance(got, dict), _("return a dict of minigpt.generate's arguments, got {type}").format(type=type(got).__name__))
        ref = _ref_generate_kwargs(hf, p)
        missing = [k for k in ref if k not in got]
        c.that(not missing, _("for {what} the dict lacks {missing}; give all of {ref}").format(what=what, missing=missing, ref=list(ref)))
        try:
            check_sampling_args(got["temperature"], got["top_k"], got["top_p"], got["repetition"], 0.0,
                                got["max_new_tokens"])
        except ValueError as e:
            c.fail(_("for {what}, minigpt.generate would refuse your arguments: {e}").format(what=what, e=e))
        c.that(got["max_new_tokens"] == ref["max_new_tokens"],
               (_("for {what} max_new_tokens is {got}: max_length counts the prompt's {p} tokens too, and "
                 "max_new_tokens wins when both are given").format(what=what, got=got['max_new_tokens'], p=p) if "max_new_tokens" not in hf else _("for {what} max_new_tokens is {got}: when both are given, max_new_tokens wins").format(what=what, got=got['max_new_tokens'])))
        c.that(got["temperature"] == ref["temperature"],
               (_("for {what} temperature is {got}; without do_sample=True, generate is greedy whatever "
                 "the temperature").format(what=what, got=got['temperature']) if not hf.get("do_sample") else _("for {what} temperature is {got}; it should be generate's temperature").format(what=what, got=got['temperature'])))
        if ref["temperature"]:  # the filters matter only when sampling
            c.that(got["top_k"] != 0, _("for {what} top_k is 0; minigpt's 'no filter' is None").format(what=what))
            if "top_k" not in hf:
                c.that(got["top_k"] == ref["top_k"],
                       _("for {what} top_k is {got}; an argument not given is not 'off': it comes from the "
                         "generation config, and transformers' default top_k is 50").format(what=what, got=got["top_k"]))
            c.that((got["top_k"] or None) == ref["top_k"],
                   _("for {what} top_k is {got}; top_k=0 in transformers means no top-k filter").format(what=what, got=got["top_k"]))
            c.that((got["top_p"] if got["top_p"] is not None and got["top_p"] < 1 else None) == ref["top_p"],
                   _("for {what} top_p is {got}").format(what=what, got=got["top_p"]))
        c.that(got["repetition"] == ref["repetition"], _("for {what} repetition is {got}; it is generate's repetition_penalty (1 when not given)").format(what=what, got=got["repetition"]))
        answers.append((hf, got, p, what))
    # the proof: transformers and minigpt, on the same random weights and seed, choose the same tokens
    ours, theirs = _tiny_pair(g)
    for hf, got, p, what in answers:
        prompt = torch.randint(0, ours.config.vocab_size, (1, p), generator=g)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
        c.that(_same_tokens(ours, theirs, hf, got, prompt, seed),
               _("for {what} transformers' generate and minigpt.generate with your arguments chose different tokens").format(what=what))
    c.done()


# ---- 2. a state dict in GPT-2's layout, by hand --------------------------------------------------------
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def _random_gpt(g):
    n_head = int(torch.randint(1, 4, (1,), generator=g))
    cfg = GPTConfig(block_size=int(torch.randint(8, 24, (1,), generator=g)),
                    vocab_size=int(torch.randint(20, 90, (1,), generator=g)),
                    n_layer=int(torch.randint(1, 4, (1,), generator=g)), n_head=n_head,
                    n_embd=n_head * int(torch.randint(4, 12, (1,), generator=g)))
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
    return GPT(cfg).eval(), cfg


def hf_state_dict(fn):
    """``fn(sd)`` for a minigpt state dict: the same tensors under GPT-2's names and layout
    (the four Conv1D weights transposed), as ``GPT2LMHeadModel.load_state_dict`` wants them."""
    c = Check("hf_state_dict")
    g = fresh_generator()
    for _i in range(2):
        model, cfg = _random_gpt(g)
        sd = {k: v.clone() for k, v in model.state_dict().items()}
        got = c.call(fn, sd)
        c.that(isinstance(got, dict), _("return a dict of name -> tensor, got {type}").format(type=type(got).__name__))
        for name, v in model.state_dict().items():
            ref = v.t() if name.endswith(_CONV1D) else v
            c.that(name in got, _("{name} is missing; GPT-2 uses the same names as minigpt").format(name=name))
            t = got[name]
            c.that(isinstance(t, torch.Tensor), _("{name} should be a tensor, got {type}").format(name=name, type=type(t).__name__))
            if tuple(t.shape) != tuple(ref.shape):
                if name.endswith(_CONV1D):
                    c.fail(_("{name} has shape {shape}; GPT-2's Conv1D stores its weight as (in, out), nn.Linear as "
                             "(out, in)").format(name=name, shape=tuple(t.shape)))
                c.fail(_("{name} has shape {shape}; only the four Conv1D weights change layout (embeddings, "
                         "LayerNorms and biases stay as they are)").format(name=name, shape=tuple(t.shape)))
            c.that(torch.equal(t, ref), _("{name} has the right shape but not the right values").format(name=name)
                   + (_("; a square matrix must be transposed too") if name.endswith(_CONV1D) else ""))
        # the proof: transformers' GPT-2 with these weights gives minigpt's logits
        from transformers import GPT2LMHeadModel

        hf = GPT2LMHeadModel(hf_config(cfg)).eval()
        hf.load_state_dict({k: v for k, v in got.items() if k in hf.state_dict()}, strict=False)
        idx = torch.randint(0, cfg.vocab_size, (2, cfg.block_size), generator=g)
        with torch.no_grad():
            same = torch.allclose(hf(idx).logits, model(idx)[0], atol=1e-4)
        c.that(same, _("GPT2LMHeadModel loaded with your state dict gives other logits than minigpt"))
    c.done()


# ---- 3. bits per character -----------------------------------------------------------------------------
def bits_per_char(fn):
    """``fn(nll, n_chars)``: nll holds the per-token losses in nats of text that spells ``n_chars``
    characters; the result is bits per character, sum(nll) / (n_chars ln 2)."""
    c = Check("bits_per_char")
    g = fresh_generator()
    cases = []
    for chars_per_token, what in ((1, _("a char model (one token per character)")),
                                  (1.5 + float(torch.rand(1, generator=g)) * 2.5, _("a subword model"))):
        n = int(torch.randint(50, 400, (1,), generator=g))
        nll = torch.rand(n, generator=g, dtype=torch.float64) * 4
        cases.append((nll, round(n * chars_per_token), what))
    cases.reverse()  # the subword case first: it tells a per-token answer from a per-character one
    for nll, n_chars, what in cases:
        got = c.call(fn, nll.clone(), n_chars)
        try:
            got = float(got)
        except (TypeError, ValueError):
            c.fail(_("return one number, got {type}").format(type=type(got).__name__))
        ref = float(nll.sum()) / (n_chars * math.log(2))
        if not math.isclose(got, ref, rel_tol=1e-6):
            if math.isclose(got, ref * math.log(2), rel_tol=1e-6):
                c.fail(_("for {what} you give nats per character; one bit is ln 2 nats").format(what=what))
            if math.isclose(got, float(nll.mean()) / math.log(2), rel_tol=1e-6):
                c.fail(_("for {what} you give bits per token; divide the total by the characters, not the tokens").format(what=what))
            c.number(got, ref, _("bits per character for {what}").format(what=what), tol=1e-6 * max(1.0, ref))
        c.count += 1
    c.done()


# ---- 4. GPT-2's byte-to-unicode spelling ------------------------------------------------------------------
def unspell(fn):
    """``fn(text)`` for a token as GPT-2's files spell it (``"Ġthe"``): the token's bytes (``b" the"``)."""
    c = Check("unspell")
    g = fresh_generator()
    table = bytes_to_unicode()
    cases = [(b" the", _("a word after a space")), (b"\n\n", _("two newlines")), ("café".encode(), _("an accented word")),
             ("😀".encode()[:2], _("half of an emoji's bytes"))]
    for _i in range(3):
        n = int(torch.randint(1, 8, (1,), generator=g))
        cases.append((bytes(torch.randint(0, 256, (n,), generator=g).tolist()), _("random bytes")))
    for raw, what in cases:
        spelled = "".join(table[b] for b in raw)
        got = c.call(fn, spelled)
        c.that(isinstance(got, (bytes, bytearray)), _("return bytes, got {type}").format(type=type(got).__name__))
        if bytes(got) != raw:
            c.fail(_("for {what} spelled {spelled!r} you return {n_got} bytes, expected {n_raw}").format(what=what, spelled=spelled, n_got=len(got), n_raw=len(raw)) if len(got) != len(raw) else _("for {what} spelled {spelled!r} byte {next} is wrong; every character of the spelling "
                     "stands for one byte, through the inverse table").format(what=what, spelled=spelled, next=next(i for i in range(len(raw)) if got[i] != raw[i])))
        c.count += 1
    c.done()
