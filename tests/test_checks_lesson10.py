"""Each lesson-10 check accepts the reference answer and rejects typical mistakes, a constant among them.

The checks draw new inputs every call, so each test runs the check several times."""

import math

import pytest

from minigpt import checks as check
from minigpt.bpe import bytes_to_unicode
from minigpt.checks import CheckFailed

REPEATS = range(3)
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


# ---- generate's arguments ----------------------------------------------------------------------------
def generate_ref(hf, prompt_len):
    new = hf.get("max_new_tokens") or hf["max_length"] - prompt_len
    if not hf.get("do_sample", False):
        return {"max_new_tokens": new, "temperature": 0, "top_k": None, "top_p": None,
                "repetition": hf.get("repetition_penalty", 1.0)}
    return {"max_new_tokens": new, "temperature": hf.get("temperature", 1.0), "top_k": hf.get("top_k", 50) or None,
            "top_p": hf.get("top_p"), "repetition": hf.get("repetition_penalty", 1.0)}


def no_filter_by_default(hf, p):  # reads generate's signature, not its generation config: top_k=50 is missed
    out = generate_ref(hf, p)
    if hf.get("do_sample") and "top_k" not in hf:
        out["top_k"] = None
    return out


def forgets_prompt(hf, p):
    return {**generate_ref(hf, p), "max_new_tokens": hf.get("max_new_tokens") or hf["max_length"]}


def ignores_do_sample(hf, p):
    return {"max_new_tokens": hf.get("max_new_tokens") or hf["max_length"] - p,
            "temperature": hf.get("temperature", 1.0), "top_k": hf.get("top_k") or None, "top_p": hf.get("top_p"),
            "repetition": hf.get("repetition_penalty", 1.0)}


def keeps_top_k_zero(hf, p):
    out = generate_ref(hf, p)
    if hf.get("do_sample") and "top_k" in hf:
        out["top_k"] = hf["top_k"]
    return out


def max_length_wins(hf, p):
    return {**generate_ref(hf, p), "max_new_tokens": hf["max_length"] - p}


def tighter_limit_wins(hf, p):  # transformers lets max_new_tokens win, whichever is tighter
    new = hf.get("max_new_tokens")
    limit = hf["max_length"] - p
    return {**generate_ref(hf, p), "max_new_tokens": min(new, limit) if new else limit}


@pytest.mark.parametrize("attempt", REPEATS)
def test_generate_kwargs_accepts_reference(attempt, capsys):
    check.generate_kwargs(generate_ref)
    assert "✓ generate_kwargs" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda hf, p: {"max_new_tokens": 50, "temperature": 0, "top_k": None, "top_p": None, "repetition": 1.0},
     "max_new_tokens"),  # a constant
    (forgets_prompt, "counts the prompt"),
    (ignores_do_sample, "without do_sample=True"),
    (no_filter_by_default, "default top_k is 50"),
    (keeps_top_k_zero, "would refuse"),
    (max_length_wins, "max_new_tokens wins"),
    (tighter_limit_wins, "max_new_tokens wins"),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_generate_kwargs_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.generate_kwargs(wrong)


# ---- a state dict in GPT-2's layout ------------------------------------------------------------------
def state_ref(sd):
    return {k: (v.t() if k.endswith(CONV1D) else v) for k, v in sd.items()}


@pytest.mark.parametrize("attempt", REPEATS)
def test_hf_state_dict_accepts_reference(attempt, capsys):
    check.hf_state_dict(state_ref)
    assert "✓ hf_state_dict" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda sd: {}, "missing"),  # a constant
    (lambda sd: dict(sd), "Conv1D stores"),  # nothing transposed
    (lambda sd: {k: (v.t() if v.dim() == 2 else v) for k, v in sd.items()}, "only the four Conv1D|wte.weight has the right shape"),  # a square wte: either hint
    (lambda sd: {k: (v.t() if k.endswith(("c_attn.weight", "c_fc.weight")) else v) for k, v in sd.items()},
     "square matrix"),  # the (C, C) projections forgotten: right shape, wrong values
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_hf_state_dict_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.hf_state_dict(wrong)


# ---- bits per character ------------------------------------------------------------------------------
@pytest.mark.parametrize("attempt", REPEATS)
def test_bits_per_char_accepts_reference(attempt, capsys):
    check.bits_per_char(lambda nll, n_chars: nll.sum() / (n_chars * math.log(2)))
    assert "✓ bits_per_char" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda nll, n_chars: 2.25, "bits per character"),  # a constant (lesson 07's model's figure)
    (lambda nll, n_chars: nll.sum() / n_chars, "nats per character"),
    (lambda nll, n_chars: nll.mean() / math.log(2), "bits per token"),
    (lambda nll, n_chars: nll.sum() / (n_chars * math.log(10)), "bits per character"),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_bits_per_char_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.bits_per_char(wrong)


# ---- GPT-2's byte-to-unicode spelling ------------------------------------------------------------------
INVERSE = {ch: b for b, ch in bytes_to_unicode().items()}


@pytest.mark.parametrize("attempt", REPEATS)
def test_unspell_accepts_reference(attempt, capsys):
    check.unspell(lambda text: bytes(INVERSE[ch] for ch in text))
    assert "✓ unspell" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda text: b" the", "expected|wrong"),  # a constant
    (lambda text: text.encode("utf-8"), "expected|wrong"),
    (lambda text: text.replace("Ġ", " ").encode("utf-8"), "expected|wrong"),
    (lambda text: text.encode("latin-1"), "raised UnicodeEncodeError"),
])
@pytest.mark.parametrize("attempt", REPEATS)
def test_unspell_rejects_mistakes(wrong, hint, attempt):
    with pytest.raises(CheckFailed, match=hint):
        check.unspell(wrong)
