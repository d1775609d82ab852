"""The commands layer's bad inputs: every numeric option is checked where it is parsed, no command writes
over its own source, damaged or unsafe Hugging Face weights and an empty progress folder are one line."""

from __future__ import annotations

import argparse
import math
import os
import pickle

import pytest
import torch

from minigpt import bpe as bpe_mod
from minigpt.checkpoint import load_checkpoint, save_checkpoint
from minigpt.cli import build_parser, main
from minigpt.commands.options import NumberType
from minigpt.model import GPT, GPTConfig
from minigpt.tokenizer import CharTokenizer


def one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


# --------------------------------------------------------------------------- numbers, from the parser itself

def subcommands(parser, prefix=()):
    """(command words, sub-parser) for every command and sub-command of ``parser``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from subcommands(sub, (*prefix, name))


def numeric_options():
    """Every option whose value is a number: (command words, option, its NumberType)."""
    found = []
    for words, sub in subcommands(build_parser()):
        for action in sub._actions:
            numeric_default = isinstance(action.default, (int, float)) and not isinstance(action.default, bool)
            if isinstance(action.type, NumberType) or action.type in (int, float) or numeric_default:
                found.append((words, action.option_strings[0] if action.option_strings else action.dest, action))
    return found


NUMERIC = numeric_options()


def bad_values(t: NumberType) -> list[str]:
    """Values ``t`` must refuse: NaN, both infinities, junk, just outside each end, and absurdly huge."""
    below = t.low if t.low_open else t.low - (1 if t.kind is int else 1e-3 * max(1.0, abs(t.low)))
    above = t.high + 1 if t.kind is int else t.high * 1.01 + 1e-6
    huge = "9" * 30 if t.kind is int else "1e300"
    return ["nan", "inf", "-inf", "ten", str(below), str(above), huge, "-" + huge]


def test_every_numeric_option_of_every_command_is_found_and_checked_where_it_is_parsed():
    names = {(" ".join(w), opt) for w, opt, _ in NUMERIC}
    # spot checks that the walk reaches nested commands and both kinds of numbers
    assert {("train", "--batch-size"), ("bpe train", "--vocab-size"), ("sample", "--top-p"),
            ("chat", "--temperature"), ("doctor", "--probe-seconds"), ("progress", "--timeout"),
            ("ngram", "--discount"), ("bench", "--rounds"), ("gpu-check", "--steps")} <= names
    plain = [f"{' '.join(w)} {opt}" for w, opt, a in NUMERIC if not isinstance(a.type, NumberType)]
    assert plain == [], f"give these a range with commands.options.integer/real/seed: {plain}"


CASES = [(words, opt, value) for words, opt, action in NUMERIC if isinstance(action.type, NumberType)
         for value in bad_values(action.type)]


@pytest.mark.parametrize("words, option, value", CASES,
                         ids=[f"{' '.join(w)} {o} {v[:12]}" for w, o, v in CASES])
def test_a_bad_number_is_one_line_naming_the_option_and_its_range(words, option, value, capsys):
    assert main([*words, f"{option}={value}"]) == 2
    err = one_line_error(capsys, option, "must be")
    assert capsys.readouterr().out == ""
    t = dict((o, a.type) for w, o, a in NUMERIC if w == words)[option]
    assert t.must in err  # the allowed range is stated


@pytest.mark.parametrize("words, option, action", NUMERIC, ids=[f"{' '.join(w)} {o}" for w, o, _ in NUMERIC])
def test_each_numeric_option_accepts_its_range_and_its_default(words, option, action):
    t = action.type
    low = t.low if not t.low_open else (t.low + 1 if t.kind is int else t.low + 1e-9)
    assert t(str(low)) == low and t(str(t.high)) == t.high
    middle = t.kind((low + t.high) / 2) if t.kind is int else (low + t.high) / 2
    assert t(repr(middle)) == middle
    if action.default is not None:
        assert t(str(action.default)) == action.default and math.isfinite(action.default)


def test_a_command_line_argparse_cannot_parse_is_one_line(capsys):
    assert main(["train", "--no-such-option"]) == 2
    one_line_error(capsys, "unrecognized arguments: --no-such-option", "python -m minigpt train --help")
    assert main(["bench"]) == 2
    one_line_error(capsys, "the following arguments are required: what")


# --------------------------------------------------------------------------- never write over the source

@pytest.fixture
def run(tmp_path):
    """A small run folder written by save_checkpoint, as `train` writes it."""
    torch.manual_seed(0)
    tok = CharTokenizer.from_text("abcdefgh \n")
    model = GPT(GPTConfig(block_size=8, vocab_size=tok.vocab_size, n_layer=1, n_head=2, n_embd=16))
    save_checkpoint(tmp_path / "run", model, tok, 3, train_config={})
    return tmp_path / "run"


def files_of(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", ["itself", "inside", "deep inside", "the checkpoint folder", "its parent",
                                   "a link to it"])
def test_export_refuses_an_out_that_is_contains_or_lies_inside_the_run(run, where, capsys):
    before = files_of(run)
    inner = load_checkpoint(run, load_state=False).path
    out = {"itself": run, "inside": run / "hf", "deep inside": inner / "hf", "the checkpoint folder": inner,
           "its parent": run.parent}.get(where)
    if where == "a link to it":
        out = run.parent / "link"
        os.symlink(run, out)
    assert main(["export", "--ckpt", str(run), "--out", str(out), "--overwrite"]) == 2
    one_line_error(capsys, f"--out {out}", "the source --ckpt", "choose an --out outside it")
    assert files_of(run) == before and load_checkpoint(run, load_state=False).step == 3


def test_export_to_a_folder_beside_the_run_still_works(run, tmp_path, capsys):
    assert main(["export", "--ckpt", str(run), "--out", str(tmp_path / "hf")]) == 0
    assert (tmp_path / "hf" / "model.safetensors").is_file()


def _gpt2_folder(folder):
    from transformers import GPT2Config, GPT2LMHeadModel

    from minigpt.hf import hf_tokenizer

    tok = bpe_mod.train("To be, or not to be, that is the question. " * 20, 300, pattern="gpt2",
                        special_tokens=["<|endoftext|>"])
    eot = tok.special_tokens["<|endoftext|>"]
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=tok.vocab_size, n_positions=16, n_embd=16, n_layer=1, n_head=2,
                               bos_token_id=eot, eos_token_id=eot)).save_pretrained(folder)
    hf_tokenizer(tok).save_pretrained(folder)
    return folder


def test_import_hf_refuses_an_out_inside_the_model_folder(tmp_path, capsys):
    folder = _gpt2_folder(tmp_path / "gpt2")
    before = files_of(folder)
    assert main(["import-hf", "--model", str(folder), "--out", str(folder / "run"), "--overwrite"]) == 2
    one_line_error(capsys, "lies inside the source --model")
    assert files_of(folder) == before


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_import_hf_of_damaged_safetensors_names_the_file_in_one_line(tmp_path, damage, capsys):
    folder = _gpt2_folder(tmp_path / "gpt2")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200] if damage == "truncated" else b"not a tensor file" * 50)
    assert main(["import-hf", "--model", str(folder), "--out", str(tmp_path / "run")]) == 2
    one_line_error(capsys, f"{weights} cannot be read", "damaged or incomplete", "download or export the model again")
    assert not (tmp_path / "run").exists()


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # loading this pickle would create the marker file


def test_import_hf_refuses_a_pickle_that_would_run_code_and_never_suggests_unsafe_loading(tmp_path, capsys):
    folder = _gpt2_folder(tmp_path / "gpt2")
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "the-pickle-ran"
    torch.save({"transformer.wte.weight": _RunsCode(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(pickle.UnpicklingError):  # the premise: torch's safe loader refuses this file
        torch.load(folder / "pytorch_model.bin", weights_only=True)
    assert main(["import-hf", "--model", str(folder), "--out", str(tmp_path / "run")]) == 2
    err = one_line_error(capsys, f"{folder / 'pytorch_model.bin'} was refused", "would run code", "model.safetensors")
    assert "weights_only" not in err and "False" not in err
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_a_pickle_refusal_wrapped_in_another_error_is_named_the_same_way(tmp_path, monkeypatch):
    # Other transformers versions wrap torch's refusal in an OSError whose text advises weights_only=False.
    from transformers import GPT2LMHeadModel

    from minigpt.hf import load_hf

    folder = _gpt2_folder(tmp_path / "gpt2")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    torch_text = ("Weights only load failed. Re-running `torch.load` with `weights_only` set to `False` will likely "
                  "succeed, but it can result in arbitrary code execution.")

    def refuse(*args, **kwargs):
        raise OSError(torch_text)

    monkeypatch.setattr(GPT2LMHeadModel, "from_pretrained", refuse)
    with pytest.raises(ValueError) as e:
        load_hf(folder)
    assert str(e.value).startswith(f"{folder / 'pytorch_model.bin'} was refused")
    assert "weights_only" not in str(e.value) and "False" not in str(e.value)


def test_bpe_train_refuses_an_out_that_is_its_own_text(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be " * 50, encoding="utf-8")
    link = tmp_path / "link.txt"
    os.symlink(corpus, link)
    for out in (corpus, link):
        assert main(["bpe", "train", "--data", str(corpus), "--vocab-size", "260", "--out", str(out)]) == 2
        one_line_error(capsys, "is the source --data")
    assert corpus.read_text(encoding="utf-8") == "to be or not to be " * 50


def test_exercises_reset_refuses_to_write_into_solutions(capsys):
    from minigpt.exercises import ROOT

    solutions = ROOT / "solutions"
    before = files_of(solutions)
    assert main(["exercises", "reset", "01", "--dir", str(solutions)]) == 2
    one_line_error(capsys, f"--dir {solutions} is the source solutions/")
    assert files_of(solutions) == before


# --------------------------------------------------------------------------- progress

def test_progress_on_a_folder_without_exercise_notebooks_says_so_and_exits_2(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("no notebooks here", encoding="utf-8")
    assert main(["progress", str(tmp_path)]) == 2
    one_line_error(capsys, f"no exercise notebooks (.ipynb) found in {tmp_path}")
    assert main(["progress", str(tmp_path), "--class"]) == 2
    one_line_error(capsys, "no exercise notebooks")
