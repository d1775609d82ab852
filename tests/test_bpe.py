"""Byte-level BPE: round trips, the Wikipedia example, incremental training, tiktoken equivalence, CLI."""

import json
import random
from pathlib import Path

import pytest

from minigpt import bpe, cli, data

MIXED = (
    "语言模型根据前面的文字预测下一个字。The model predicts the next token from the ones before it. "
    "我们先把文字变成字节，再把常见的字节对合并成新的符号。Bytes first, then frequent pairs merge. "
    "机器学习 is fun 😀🎉, naïve café, e\u0301, 12345 + 678 = 13023\r\n\n   indented\tand tabbed?!\n"
)


@pytest.fixture(scope="module")
def shakespeare():
    return data.load_text("tinyshakespeare")


@pytest.fixture(scope="module")
def tok512(shakespeare):
    return bpe.train(shakespeare, 512)


@pytest.fixture(scope="module")
def mixed_tok(shakespeare):
    return bpe.train(shakespeare[:200_000] + MIXED * 100, 700)


def random_unicode(rng: random.Random, n: int) -> str:
    """Text drawn from ASCII, Latin, Greek, CJK, Hangul, emoji, combining marks, controls and astral planes."""
    ranges = [(0x00, 0x7F), (0x80, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3),
              (0x1F300, 0x1FAFF), (0x10000, 0x10FFFF), (0xE000, 0xF8FF), (0xFFF0, 0xFFFF)]
    out = []
    for _ in range(n):
        lo, hi = rng.choice(ranges)
        cp = rng.randint(lo, hi)
        if 0xD800 <= cp <= 0xDFFF:  # surrogates are not characters
            cp = 0x20
        out.append(chr(cp))
    return "".join(out)


def naive_merges(text: str, vocab_size: int, pattern) -> list[tuple[int, int]]:
    """minbpe's algorithm: recount every pair after each merge; ties go to the smallest pair."""
    tok = bpe.BPETokenizer(pattern=pattern)
    chunks = [list(c.encode("utf-8")) for c in tok.split(text)]
    merges = []
    for k in range(vocab_size - 256):
        stats = {}
        for c in chunks:
            bpe.get_stats(c, stats)
        if not stats:
            break
        best = max(stats.values())
        pair = min(p for p, c in stats.items() if c == best)
        chunks = [bpe.merge(c, pair, 256 + k) for c in chunks]
        merges.append(pair)
    return merges


def test_wikipedia_example_aaabdaaabac():
    # https://en.wikipedia.org/wiki/Byte_pair_encoding: aa -> Z, ab -> Y, ZY -> X gives XdXac.
    tok = bpe.train("aaabdaaabac", 256 + 3, pattern=None)
    assert list(tok.merges) == [(97, 97), (97, 98), (256, 257)]
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]
    assert tok.decode([258]) == "aaab"
    assert tok.decode(tok.encode("aaabdaaabac")) == "aaabdaaabac"


def test_get_stats_and_merge_on_small_lists():
    assert bpe.get_stats([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert bpe.merge([1, 2, 3, 1, 2], (1, 2), 99) == [99, 3, 99]
    assert bpe.merge([5, 5, 5], (5, 5), 7) == [7, 5]  # left to right, no overlaps
    assert bpe.merge([5, 5, 5, 5], (5, 5), 7) == [7, 7]


@pytest.mark.parametrize("pattern", ["gpt4", "gpt2", None])
def test_incremental_training_matches_full_recount(pattern):
    rng = random.Random(0)
    words = ["the", "then", "there", "hello", "hell", "she", "sells", "sea", "shells", "你好", "世界", "😀"]
    text = " ".join(rng.choice(words) for _ in range(400)) + " aaaa aaaaa bbb"
    assert list(bpe.train(text, 300, pattern=pattern).merges) == naive_merges(text, 300, pattern)


def test_incremental_training_matches_full_recount_on_shakespeare(shakespeare):
    text = shakespeare[:20_000]
    assert list(bpe.train(text, 320).merges) == naive_merges(text, 320, "gpt4")


def test_vocabulary_is_256_bytes_plus_merges(tok512):
    assert tok512.vocab_size == 512
    assert len(tok512.merges) == 256
    assert all(tok512.vocab[i] == bytes([i]) for i in range(256))
    a, b = tok512._pair_of(300)
    assert tok512.vocab[300] == tok512.vocab[a] + tok512.vocab[b]
    assert max(a, b) < 300  # a merge only uses tokens that already exist


def test_first_merge_is_the_most_frequent_pair(shakespeare):
    text = shakespeare[:50_000]
    tok = bpe.train(text, 257)
    stats = {}
    for chunk in tok.split(text):
        bpe.get_stats(list(chunk.encode("utf-8")), stats)
    assert stats[next(iter(tok.merges))] == max(stats.values())


def test_training_stops_when_nothing_is_left_to_merge():
    tok = bpe.train("ab ab ab", 1000)
    # chunks "ab" and " ab": merges (a,b), then (space, ab)
    assert len(tok.merges) == 2
    assert tok.encode("ab ab") == [256, 257]


@pytest.mark.parametrize("seed", range(20))
def test_round_trip_random_unicode(mixed_tok, seed):
    rng = random.Random(seed)
    text = random_unicode(rng, rng.randint(0, 300))
    assert mixed_tok.decode(mixed_tok.encode(text)) == text


@pytest.mark.parametrize("pattern", ["gpt4", "gpt2", None])
def test_round_trip_chinese_emoji_combining_marks(pattern):
    tok = bpe.train(MIXED * 5, 400, pattern=pattern)
    for text in [MIXED, "", " ", "\n\n", "😀" * 7, "e\u0301\u0308", "\x00\x01\x7f", "中文和English混在一起", "\uFFFD"]:
        assert tok.decode(tok.encode(text)) == text


def test_text_unseen_in_training_falls_back_to_bytes(tok512):
    text = "机器学习"
    ids = tok512.encode(text)
    assert len(ids) == len(text.encode("utf-8")) == 12  # no Chinese merges: one token per byte
    assert tok512.decode(ids) == text


def test_lone_surrogates_become_replacement_characters(tok512):
    # "\ud800" is a Python str but not Unicode text: it has no UTF-8 form. Like tiktoken, we use U+FFFD.
    text = "ab\ud800cd"
    assert tok512.decode(tok512.encode(text)) == "ab\ufffdcd"
    assert tok512.encode(text) == tok512.to_tiktoken().encode_ordinary(text)


def test_decoding_half_a_character_gives_replacement_character(tok512):
    ids = tok512.encode("é")
    assert len(ids) == 2
    assert tok512.decode(ids[:1]) == "\ufffd"
    assert tok512.decode_bytes(ids[:1]) == "é".encode()[:1]


def test_tiktoken_with_our_merges_gives_our_ids_on_shakespeare(tok512, shakespeare):
    enc = tok512.to_tiktoken()
    sample = shakespeare[-100_000:]
    assert enc.encode_ordinary(sample) == tok512.encode(sample)
    assert enc.decode(tok512.encode(sample)) == sample


@pytest.mark.parametrize("pattern", ["gpt4", "gpt2"])
def test_tiktoken_with_our_merges_gives_our_ids_on_mixed_chinese_english(shakespeare, pattern):
    tok = bpe.train(shakespeare[:200_000] + MIXED * 20, 1200, pattern=pattern)
    enc = tok.to_tiktoken()
    rng = random.Random(1)
    texts = [MIXED, MIXED * 3 + shakespeare[:5000], random_unicode(rng, 500)]
    for text in texts:
        assert enc.encode_ordinary(text) == tok.encode(text)


def test_mixed_tokenizer_learns_chinese_merges(mixed_tok):
    # 100 copies of MIXED make its pairs frequent enough to be merged
    assert len(mixed_tok.encode("机器学习")) < len("机器学习".encode()) / 2
    assert len(mixed_tok.encode(MIXED)) < len(MIXED.encode()) / 3


def test_special_tokens_are_recognised_only_when_allowed(tok512):
    tok = bpe.BPETokenizer(list(tok512.merges), pattern="gpt4", special_tokens=["<|endoftext|>"])
    eot = tok.special_tokens["<|endoftext|>"]
    assert eot == 512 and tok.vocab_size == 513
    text = "To be<|endoftext|>or not"
    with_special = tok.encode(text, allowed_special="all")
    assert with_special.count(eot) == 1
    assert eot not in tok.encode(text)  # by default special strings are ordinary text
    assert tok.decode(with_special) == text
    assert tok.decode(tok.encode(text)) == text
    assert tok.to_tiktoken().encode(text, allowed_special="all") == with_special
    with pytest.raises(ValueError, match="unknown special tokens"):
        tok.encode(text, allowed_special={"<|nope|>"})


def test_save_and_load_as_json(tmp_path, tok512):
    tok = bpe.BPETokenizer(list(tok512.merges), pattern="gpt4", special_tokens=["<|endoftext|>"])
    path = tmp_path / "tok.json"
    tok.save(path)
    d = json.loads(path.read_text(encoding="utf-8"))  # plain JSON, never pickle
    assert d["format"] == "minigpt-bpe" and len(d["merges"]) == 256
    again = bpe.BPETokenizer.load(path)
    assert again.merges == tok.merges and again.pattern == tok.pattern
    assert again.special_tokens == tok.special_tokens
    assert again.encode(MIXED) == tok.encode(MIXED)


def test_readable_vocabulary_listing(tmp_path, tok512):
    path = tmp_path / "vocab.txt"
    tok512.save_vocab_text(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 256 and lines[0].startswith("256 [")


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="below 256"):
        bpe.train("hello", 100)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bpe.BPETokenizer.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("this is not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not a BPE tokenizer"):
        bpe.BPETokenizer.load(bad)
    bad.write_text(json.dumps({"type": "char", "chars": ["a"]}), encoding="utf-8")
    with pytest.raises(ValueError, match="not a BPE tokenizer"):
        bpe.BPETokenizer.load(bad)
    with pytest.raises(ValueError, match="does not exist yet"):
        bpe.BPETokenizer([(300, 1)])
    with pytest.raises(ValueError, match="out of range"):
        bpe.BPETokenizer().decode([999])
    with pytest.raises(ValueError, match="valid regex"):
        bpe.BPETokenizer(pattern="(unclosed")


def test_tokenizers_library_bytelevel_round_trip():
    hf = bpe.train_hf_bytelevel(MIXED * 10, 400)
    assert hf.get_vocab_size() <= 400
    assert hf.decode(hf.encode(MIXED).ids) == MIXED


def test_cli_train_then_encode(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(MIXED * 10, encoding="utf-8")
    out = tmp_path / "tok.json"
    assert cli.main(["bpe", "train", "--data", str(corpus), "--vocab-size", "300", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["merges"] == 44 and out.exists()
    assert cli.main(["bpe", "encode", "--model", str(out), "机器学习 is fun", "--json"]) == 0
    ids = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["ids"]
    assert bpe.BPETokenizer.load(out).decode(ids) == "机器学习 is fun"


def test_cli_bad_input_exits_2_with_a_clear_message(tmp_path, capsys):
    out = tmp_path / "tok.json"
    assert cli.main(["bpe", "train", "--data", "tinyshakespeare", "--vocab-size", "100", "--out", str(out)]) == 2
    assert "below 256" in capsys.readouterr().err
    assert cli.main(["bpe", "encode", "--model", str(tmp_path / "nope.json"), "hi"]) == 2
    assert "does not exist" in capsys.readouterr().err
    notok = tmp_path / "notok.json"
    notok.write_text("[1, 2, 3]", encoding="utf-8")
    assert cli.main(["bpe", "encode", "--model", str(notok), "hi"]) == 2
    assert "not a BPE tokenizer" in capsys.readouterr().err
    assert cli.main(["bpe", "train", "--data", "no-such-data", "--out", str(out)]) == 2
    assert "neither a data set" in capsys.readouterr().err


def test_bench_reports_both_libraries_on_the_same_text(capsys):
    result = bpe.bench(MIXED * 30, 300)
    out = capsys.readouterr().out
    assert "tokenizers (Rust)" in out and "minigpt.bpe (Python)" in out
    assert result["tiktoken_same_ids"] is True
    assert result["text_bytes"] == len((MIXED * 30).encode())
    assert result["ours_tokens"] < result["text_bytes"] and result["tokenizers_tokens"] < result["text_bytes"]


# ---- bad files and paths: one clear line, nothing half-done ------------------------------------
def _model(**fields) -> dict:
    d = {"format": "minigpt-bpe", "version": 1, "pattern": None, "merges": [[104, 101]], "special_tokens": {}}
    d.update(fields)
    return d


@pytest.mark.parametrize("fields, match", [
    ({"merges": [[104, 101], [104.7, 101]]}, r"merge 1 is \[104\.7, 101\]"),  # was read as (104, 101)
    ({"merges": [["104", 101]]}, r"merge 0 is \[\"104\", 101\]"),
    ({"merges": [[104, 101, 32]]}, r"merge 0 is \[104, 101, 32\]"),
    ({"merges": [104]}, r"merge 0 is 104,"),
    ({"merges": [[True, 101]]}, r"merge 0 is \[true, 101\]"),
    ({"special_tokens": {"<|eot|>": "abc"}}, r"special token '<\|eot\|>' has id \"abc\""),
    ({"special_tokens": {"<|eot|>": 257.5}}, r"special token '<\|eot\|>' has id 257\.5"),
    ({"special_tokens": ["<|eot|>"]}, r"'special_tokens' must be an object"),
    ({"pattern": 5}, r"'pattern' is 5, but it must be a regex string or null"),
    ({"pattern": ["gpt4"]}, r"'pattern' is \[\"gpt4\"\]"),
    ({"version": True}, r"version True is not supported"),
], ids=["float-merge", "string-id", "triple", "not-a-pair", "bool-id", "special-abc", "special-float",
        "special-list", "pattern-int", "pattern-list", "version-bool"])
def test_load_rejects_a_bad_model_file_naming_the_bad_field(tmp_path, fields, match):
    path = tmp_path / "tok.json"
    path.write_text(json.dumps(_model(**fields)), encoding="utf-8")
    with pytest.raises(ValueError, match=match) as err:
        bpe.BPETokenizer.load(path)
    assert "\n" not in str(err.value)


def test_load_accepts_a_good_hand_written_model(tmp_path):
    path = tmp_path / "tok.json"
    path.write_text(json.dumps(_model(special_tokens={"<|eot|>": 257})), encoding="utf-8")
    tok = bpe.BPETokenizer.load(path)
    assert tok.encode("hehe") == [256, 256] and tok.special_tokens == {"<|eot|>": 257}


def test_constructor_rejects_non_integer_merges_and_ids():
    with pytest.raises(ValueError, match=r"merge 0 \(104\.7, 101\) is not a pair of integer token ids"):
        bpe.BPETokenizer([(104.7, 101)])
    with pytest.raises(ValueError, match="has id 'abc', which is not a whole number"):
        bpe.BPETokenizer(special_tokens={"<|eot|>": "abc"})
    with pytest.raises(ValueError, match=r"pattern 5 is not a string \(int\)"):
        bpe.BPETokenizer(pattern=5)


def test_train_refuses_an_empty_text():
    with pytest.raises(ValueError, match="training text is empty"):
        bpe.train("", 300)


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    """A small corpus file; training is replaced by a failure, so a test proves it never got that far."""
    path = tmp_path / "corpus.txt"
    path.write_text("hello world " * 20, encoding="utf-8")

    def no_training(*args, **kwargs):
        raise AssertionError("bad --out must be refused before training")

    monkeypatch.setattr(bpe, "train", no_training)
    return path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err.strip()


def test_cli_train_out_is_a_folder(tmp_path, corpus, capsys):
    out = tmp_path / "models"
    out.mkdir()
    assert cli.main(["bpe", "train", "--data", str(corpus), "--vocab-size", "260", "--out", str(out)]) == 2
    assert _one_line_error(capsys).startswith(f"error: {out} is a folder; give a file name")
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("inside", ["tok.json", "sub/tok.json"])
def test_cli_train_out_inside_a_file(tmp_path, corpus, capsys, inside):
    out = corpus / inside  # corpus.txt is a file, so corpus.txt/tok.json cannot be written
    assert cli.main(["bpe", "train", "--data", str(corpus), "--vocab-size", "260", "--out", str(out)]) == 2
    err = _one_line_error(capsys)
    assert err.startswith(f"error: cannot write {out}: a part of its folder path is a file, not a folder")


def test_cli_train_out_in_a_read_only_folder(tmp_path, corpus, capsys, monkeypatch):
    import tempfile

    ro = tmp_path / "readonly"
    ro.mkdir()
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):  # we run as root: simulate a folder we may not write to
        if dir is not None and Path(dir) == ro:
            raise PermissionError(13, "Permission denied", str(Path(dir) / "tok.json123.tmp"))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    out = ro / "tok.json"
    assert cli.main(["bpe", "train", "--data", str(corpus), "--vocab-size", "260", "--out", str(out)]) == 2
    err = _one_line_error(capsys)
    assert err.startswith(f"error: cannot write {out}: permission denied in {ro}") and ".tmp" not in err


def test_save_to_a_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="is a folder; give a file name"):
        bpe.BPETokenizer().save(tmp_path)


def test_cli_train_empty_text_is_refused_before_writing(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    out = tmp_path / "tok.json"
    assert cli.main(["bpe", "train", "--data", str(empty), "--vocab-size", "260", "--out", str(out)]) == 2
    assert "is empty" in _one_line_error(capsys)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt"]


def test_cli_train_data_that_is_not_utf8(tmp_path, capsys):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café".encode("latin-1"))
    assert cli.main(["bpe", "train", "--data", str(latin1), "--out", str(tmp_path / "tok.json")]) == 2
    assert f"--data '{latin1}' is not UTF-8 text (byte 3" in _one_line_error(capsys)


def test_cli_encode_model_is_a_folder(tmp_path, capsys):
    assert cli.main(["bpe", "encode", "--model", str(tmp_path), "hi"]) == 2
    assert _one_line_error(capsys).startswith(f"error: tokenizer file {tmp_path} is a folder, not a file")


def test_cli_encode_bad_merge_in_model(tmp_path, capsys):
    path = tmp_path / "tok.json"
    path.write_text(json.dumps(_model(merges=[[104.7, 101]])), encoding="utf-8")
    assert cli.main(["bpe", "encode", "--model", str(path), "he"]) == 2
    assert "merge 0 is [104.7, 101]" in _one_line_error(capsys)


# ---- GPT-2's released tokenizer ---------------------------------------------------------------------
GPT2_TEXTS = {
    "english": "Hello world! I'm 12345 years old. Don't panic; it's fine, isn't it?",
    "code": "def f(x):\n    return {'a': x ** 2}  # square\n\tif x != 0: pass\n",
    "chinese": "语言模型根据前面的文字预测下一个字。你好，世界！",
    "emoji": "emoji 🤗🎉 and a family 👩‍👩‍👧 done 😀",
    "whitespace": "a    b\n\n\n   \t\t c   \r\n  \u00a0 end   ",
    "endoftext": "first document<|endoftext|>second document",
    "mixed": MIXED,
}


@pytest.fixture(scope="module")
def gpt2():
    return bpe.gpt2_tokenizer()


@pytest.fixture(scope="module")
def tiktoken_gpt2():
    """tiktoken's GPT-2 encoding, built by tiktoken's own loader from the same two files (offline:
    ``tiktoken.get_encoding("gpt2")`` would download them)."""
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import r50k_pat_str

    ranks = data_gym_to_mergeable_bpe_ranks(str(data.path("gpt2-vocab")), str(data.path("gpt2-encoder")))
    return tiktoken.Encoding("gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256})


@pytest.fixture(scope="module")
def hf_gpt2(tmp_path_factory):
    """transformers' GPT2TokenizerFast from the same files (named as on the Hub: vocab.json, merges.txt)."""
    import shutil

    from transformers import GPT2TokenizerFast

    d = tmp_path_factory.mktemp("gpt2-tokenizer")
    shutil.copy(data.path("gpt2-encoder"), d / "vocab.json")
    shutil.copy(data.path("gpt2-vocab"), d / "merges.txt")
    return GPT2TokenizerFast.from_pretrained(d)


def test_gpt2_tokenizer_has_gpt2s_vocabulary(gpt2):
    assert gpt2.vocab_size == 50257 and len(gpt2.merges) == 50000
    assert gpt2.special_tokens == {"<|endoftext|>": 50256}
    assert gpt2.pattern == bpe.GPT2_SPLIT_PATTERN
    assert gpt2.token_bytes(0) == b"!" and gpt2.token_bytes(220) == b" " and gpt2.token_bytes(198) == b"\n"
    assert gpt2.encode("Hello world") == [15496, 995]  # the ids every GPT-2 tutorial shows


@pytest.mark.parametrize("kind", sorted(GPT2_TEXTS))
def test_gpt2_ids_equal_tiktoken_and_transformers(gpt2, tiktoken_gpt2, hf_gpt2, kind):
    text = GPT2_TEXTS[kind]
    ours = gpt2.encode(text, allowed_special="all")
    assert ours == tiktoken_gpt2.encode(text, allowed_special="all")
    assert ours == hf_gpt2(text)["input_ids"]
    assert gpt2.decode(ours) == text
    if kind == "endoftext":
        assert 50256 in ours and 50256 not in gpt2.encode(text)  # ordinary text unless allowed


def test_gpt2_ids_equal_tiktoken_on_shakespeare_and_random_unicode(gpt2, tiktoken_gpt2, shakespeare):
    rng = random.Random(7)
    for text in [shakespeare[:50_000], *(random_unicode(rng, 300) for _ in range(5))]:
        assert gpt2.encode(text) == tiktoken_gpt2.encode_ordinary(text)


def test_bytes_to_unicode_is_gpt2s_table():
    table = bpe.bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert table[ord("A")] == "A" and table[32] == "Ġ" and table[10] == "Ċ"
    assert all(ch.isprintable() and not ch.isspace() for ch in table.values())


def test_byte_order_survives_save_and_load(gpt2, tmp_path):
    small = bpe.BPETokenizer(list(gpt2.merges)[:300], pattern="gpt2", byte_order=gpt2.byte_order)
    small.save(tmp_path / "t.json")
    again = bpe.BPETokenizer.load(tmp_path / "t.json")
    assert again.byte_order == gpt2.byte_order and again.encode(MIXED) == small.encode(MIXED)
    assert again.decode(again.encode(MIXED)) == MIXED
    assert small.encode("!") == [0] and small.encode(" ") == [220]  # GPT-2's byte ids, not the byte values


def test_bad_byte_order_is_refused():
    with pytest.raises(ValueError, match="byte_order"):
        bpe.BPETokenizer([], byte_order=[0] * 256)


def test_a_wrong_gpt2_merges_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "vocab.bpe"
    bad.write_text("#version: 0.2\nĠ t\nh e\n", encoding="utf-8")  # the second merge is not GPT-2's
    with pytest.raises(ValueError, match="merge 1"):
        bpe.gpt2_tokenizer(data.path("gpt2-encoder"), bad)
