"""minigpt's GPT is GPT-2: the same weights in transformers' GPT2LMHeadModel give the same logits;
exported folders load offline in transformers (model, tokenizer, pipeline); GPT-2 folders import back,
and settings minigpt cannot represent are refused by name."""

import dataclasses
import json
import re

import pytest
import torch

from minigpt import bpe as bpe_mod
from minigpt.checkpoint import load_checkpoint
from minigpt.cli import main as cli_main
from minigpt.generate import generate_text
from minigpt.hf import (
    check_hf_config,
    export_hf,
    from_hf,
    hf_tokenizer,
    import_hf,
    load_hf,
    to_hf,
    tokenizer_from_hf,
)
from minigpt.model import GPT, GPTConfig
from minigpt.train import PRESETS, train


@pytest.mark.parametrize("bias,activation", [(True, "gelu_tanh"), (False, "gelu_tanh"), (True, "gelu")])
def test_weights_copied_into_gpt2lmheadmodel_give_the_same_logits(bias, activation):
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=32, vocab_size=101, n_layer=3, n_head=4, n_embd=48, bias=bias,
                          activation=activation)).eval()
    # Make the weights less uniform than the init so every parameter matters.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    hf = to_hf(model)
    assert hf.config.activation_function == {"gelu_tanh": "gelu_new", "gelu": "gelu"}[activation]
    idx = torch.randint(0, 101, (2, 32))
    with torch.no_grad():
        ours, _ = model(idx)
        theirs = hf(idx).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("hf_activation,ours", [("gelu_new", "gelu_tanh"), ("gelu", "gelu")])
def test_a_gpt2lmheadmodel_loads_into_minigpt_with_the_same_logits(hf_activation, ours):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(1)
    cfg = GPT2Config(vocab_size=64, n_positions=24, n_embd=32, n_layer=2, n_head=2, activation_function=hf_activation,
                     resid_pdrop=0, embd_pdrop=0, attn_pdrop=0, bos_token_id=0, eos_token_id=0)
    hf = GPT2LMHeadModel(cfg).eval()  # a randomly initialised small GPT-2 stands in for the real weights
    model = from_hf(hf)
    idx = torch.randint(0, 64, (3, 24))
    with torch.no_grad():
        torch.testing.assert_close(model(idx)[0], hf(idx).logits, atol=1e-5, rtol=1e-5)
    assert model.config.n_layer == 2 and model.config.block_size == 24 and model.config.activation == ours


# ---- export and import: folders that transformers loads offline ---------------------------------------

BYTE_LEVEL_TEXTS = [
    "To be, or not to be: that is the question.",
    "Hello, world!!! What?! (yes) -- 'quoted' \"double\" ... ;:",
    "spaces    and\n\n\nnewlines\t\ttabs   \r\n  end  ",
    "语言模型根据前面的文字预测下一个字。",
    "emoji 🤗🎉 and 👩‍👩‍👧 😀",
]


def _trained(out, text, tokenizer="char", vocab_size=None):
    cfg = dataclasses.replace(PRESETS["tiny"], max_iters=30, eval_interval=30, eval_tokens=2048, sample_tokens=0,
                              out_dir=str(out), tokenizer=tokenizer, vocab_size=vocab_size)
    train(cfg, device="cpu", progress=False, text=text)
    return load_checkpoint(out, load_state=False)


@pytest.fixture(scope="module")
def char_run(tmp_path_factory, text):
    out = tmp_path_factory.mktemp("char-run")
    return out, _trained(out, text)


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory, text):
    out = tmp_path_factory.mktemp("bpe-run")
    return out, _trained(out, text, "bpe", 400)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, char_run, bpe_run):
    base = tmp_path_factory.mktemp("exported")
    return {"char": export_hf(char_run[0], base / "char"), "bpe": export_hf(bpe_run[0], base / "bpe")}


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_exported_folder_loads_offline_with_the_same_logits(exported, char_run, bpe_run, kind):
    from transformers import AutoModelForCausalLM

    ck = {"char": char_run, "bpe": bpe_run}[kind][1]
    folder = exported[kind]
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json"} <= {
        p.name for p in folder.iterdir()}
    hf = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    idx = torch.randint(0, ck.model.config.vocab_size, (2, ck.model.config.block_size))
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, ck.model(idx)[0], atol=1e-5, rtol=1e-5)


def test_exported_char_tokenizer_gives_our_ids_on_the_shakespeare_alphabet(exported, char_run):
    from transformers import AutoTokenizer

    tok = char_run[1].tokenizer
    hf_tok = AutoTokenizer.from_pretrained(exported["char"], local_files_only=True)
    alphabet = "".join(tok.chars)
    for text in [alphabet, alphabet[::-1], "ROMEO:\nBut soft, what light through yonder window breaks?\n\n  x"]:
        ids = hf_tok(text)["input_ids"]
        assert ids == tok.encode(text)
        assert hf_tok.decode(ids) == text


@pytest.mark.parametrize("sample", BYTE_LEVEL_TEXTS)
def test_exported_bpe_tokenizer_gives_our_ids(exported, bpe_run, sample):
    from transformers import AutoTokenizer

    tok = bpe_run[1].tokenizer
    hf_tok = AutoTokenizer.from_pretrained(exported["bpe"], local_files_only=True)
    ids = hf_tok(sample)["input_ids"]
    assert ids == tok.encode(sample)
    assert hf_tok.decode(ids) == sample


def test_gpt2_tokenizer_through_the_tokenizers_library_gives_gpt2s_ids():
    gpt2 = bpe_mod.gpt2_tokenizer()
    fast = hf_tokenizer(gpt2)
    for text in BYTE_LEVEL_TEXTS + ["a<|endoftext|>b"]:
        assert fast(text)["input_ids"] == gpt2.encode(text, allowed_special="all")


def test_tokenizer_json_of_gpt2_reads_back_as_gpt2s_tokenizer(tmp_path):
    """The layout of the Hub's gpt2 tokenizer.json (ByteLevel pre-tokenizer, merges as text)."""
    import shutil

    from transformers import GPT2TokenizerFast

    from minigpt import data

    shutil.copy(data.path("gpt2-encoder"), tmp_path / "vocab.json")
    shutil.copy(data.path("gpt2-vocab"), tmp_path / "merges.txt")
    spec = json.loads(GPT2TokenizerFast.from_pretrained(tmp_path).backend_tokenizer.to_str())
    ours, gpt2 = tokenizer_from_hf(spec), bpe_mod.gpt2_tokenizer()
    assert ours.merges == gpt2.merges and ours.byte_order == gpt2.byte_order
    assert ours.special_tokens == gpt2.special_tokens and ours.pattern == gpt2.pattern


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_pipeline_greedy_equals_minigpt_greedy(exported, char_run, bpe_run, kind):
    from transformers import pipeline

    ck = {"char": char_run, "bpe": bpe_run}[kind][1]
    prompt = "ROMEO:\nWhat"
    n = ck.model.config.block_size - len(ck.tokenizer.encode(prompt))
    pipe = pipeline("text-generation", model=str(exported[kind]), device="cpu")
    theirs = pipe(prompt, max_new_tokens=n, do_sample=False)[0]["generated_text"]
    assert theirs == prompt + generate_text(ck.model, ck.tokenizer, prompt, n, temperature=0)


def test_export_never_writes_into_a_folder_that_is_not_empty(char_run, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        export_hf(char_run[0], out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    export_hf(char_run[0], out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "config.json").is_file()


def test_export_then_import_gives_back_the_same_model_and_tokenizer(exported, bpe_run, tmp_path):
    out = import_hf(exported["bpe"], tmp_path / "back")
    ck, orig = load_checkpoint(out, load_state=False), bpe_run[1]
    assert ck.tokenizer.to_dict() == orig.tokenizer.to_dict()
    idx = torch.randint(0, orig.model.config.vocab_size, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(ck.model(idx)[0], orig.model(idx)[0], atol=1e-6, rtol=1e-6)


def _random_gpt2(folder, **overrides):
    """A randomly initialised GPT-2-shaped model with the tokenizer of a small byte-level BPE, saved
    with save_pretrained: what the real gpt2 folder looks like, at a size a test can afford."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = bpe_mod.train("To be, or not to be, that is the question. " * 20, 300, pattern="gpt2",
                        special_tokens=["<|endoftext|>"])
    settings = dict(vocab_size=tok.vocab_size, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                    bos_token_id=300, eos_token_id=300)
    settings.update(overrides)
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(**settings)).eval()
    hf.save_pretrained(folder)
    hf_tokenizer(tok).save_pretrained(folder)
    return hf, tok


def test_a_random_gpt2_folder_imports_with_the_same_logits_and_tokenizer(tmp_path):
    hf, tok = _random_gpt2(tmp_path / "gpt2-random")
    model, ours = load_hf(tmp_path / "gpt2-random")
    assert ours.to_dict() == tok.to_dict()
    idx = torch.randint(0, hf.config.vocab_size, (2, 32))
    with torch.no_grad():
        torch.testing.assert_close(model(idx)[0], hf(idx).logits, atol=1e-5, rtol=1e-5)
    assert cli_main(["import-hf", "--model", str(tmp_path / "gpt2-random"), "--out", str(tmp_path / "run")]) == 0
    ck = load_checkpoint(tmp_path / "run", load_state=False)
    with torch.no_grad():
        torch.testing.assert_close(ck.model(idx)[0], hf(idx).logits, atol=1e-5, rtol=1e-5)


REFUSED = [
    ({"tie_word_embeddings": False}, "tie_word_embeddings=False"),
    ({"layer_norm_epsilon": 1e-6}, "layer_norm_epsilon=1e-06"),
    ({"scale_attn_weights": False}, "scale_attn_weights=False"),
    ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx=True"),
    ({"reorder_and_upcast_attn": True}, "reorder_and_upcast_attn=True"),
    ({"activation_function": "relu"}, "activation_function='relu'"),
    ({"n_inner": 3 * 32}, "n_inner=96"),
]


@pytest.mark.parametrize("setting, named", REFUSED, ids=[r[1].split("=")[0] for r in REFUSED])
def test_settings_minigpt_cannot_represent_are_refused_by_name(tmp_path, setting, named):
    from transformers import GPT2Config

    hf, _ = _random_gpt2(tmp_path / "m", **setting)
    with pytest.raises(ValueError, match=re.escape(named)):
        check_hf_config(GPT2Config(**setting))
    with pytest.raises(ValueError, match=re.escape(named)):
        from_hf(hf)
    with pytest.raises(ValueError, match=re.escape(named)):
        load_hf(tmp_path / "m")


def test_both_gelus_are_accepted():
    from transformers import GPT2Config

    for act in ("gelu_new", "gelu_pytorch_tanh", "gelu"):
        check_hf_config(GPT2Config(activation_function=act))


def test_another_architecture_is_refused_by_name():
    from transformers import LlamaConfig

    with pytest.raises(ValueError, match="model_type='llama'"):
        check_hf_config(LlamaConfig())


@pytest.mark.parametrize("argv, says", [
    (["export", "--ckpt", "{tmp}/nothing", "--out", "{tmp}/o"], "no checkpoint at"),
    (["export", "--ckpt", "{tmp}/foreign", "--out", "{tmp}/o"], "no checkpoint in"),
    (["import-hf", "--model", "{tmp}/nothing/here", "--out", "{tmp}/o"], "no model folder"),
    (["import-hf", "--model", "{tmp}/foreign", "--out", "{tmp}/o"], "no config.json"),
    (["import-hf", "--model", "{tmp}/foreign/file.txt", "--out", "{tmp}/o"], "is a file"),
])
def test_cli_bad_paths_and_foreign_folders_exit_2_with_one_line(tmp_path, capsys, argv, says):
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "file.txt").write_text("not a model")
    assert cli_main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and says in err and len(err.strip().splitlines()) == 1


def test_cli_import_of_a_minigpt_run_folder_says_what_it_is(char_run, tmp_path, capsys):
    assert cli_main(["import-hf", "--model", str(char_run[0]), "--out", str(tmp_path / "o")]) == 2
    assert "already a minigpt checkpoint" in capsys.readouterr().err


def test_cli_export_refuses_a_full_folder_and_writes_with_overwrite(char_run, tmp_path, capsys):
    out = tmp_path / "o"
    assert cli_main(["export", "--ckpt", str(char_run[0]), "--out", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "model.safetensors" in info["files"]
    assert cli_main(["export", "--ckpt", str(char_run[0]), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli_main(["export", "--ckpt", str(char_run[0]), "--out", str(out), "--overwrite"]) == 0
