import json

import pytest

from minigpt.tokenizer import CharTokenizer


def test_vocabulary_is_the_sorted_distinct_characters():
    tok = CharTokenizer.from_text("hello world")
    assert tok.chars == sorted(set("hello world"))
    assert tok.vocab_size == 8


def test_encode_decode_round_trip_on_shakespeare():
    from minigpt.data import load_text

    text = load_text("tinyshakespeare")
    tok = CharTokenizer.from_text(text)
    assert tok.vocab_size == 65
    sample = text[:5000]
    ids = tok.encode(sample)
    assert len(ids) == len(sample) and max(ids) < 65
    assert tok.decode(ids) == sample


def test_unknown_character_error_names_it_and_its_position():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"'z' \(U\+007A\) at position 2"):
        tok.encode("abz")


def test_decode_rejects_out_of_range_ids():
    with pytest.raises(ValueError, match="out of range"):
        CharTokenizer.from_text("ab").decode([0, 5])


def test_save_load_is_json_and_round_trips(tmp_path):
    tok = CharTokenizer.from_text("héllo, 世界\n")
    path = tmp_path / "tok.json"
    tok.save(path)
    assert json.loads(path.read_text(encoding="utf-8"))["type"] == "char"  # plain JSON, no pickle
    again = CharTokenizer.load(path)
    assert again.chars == tok.chars
    assert again.decode(again.encode("世界, héllo")) == "世界, héllo"


def test_loading_a_file_that_is_not_a_tokenizer_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\x80\x03}q\x00.")  # a pickle, not JSON
    with pytest.raises(ValueError, match="not a character tokenizer"):
        CharTokenizer.load(bad)
    other = tmp_path / "other.json"
    other.write_text('{"merges": []}')
    with pytest.raises(ValueError, match="not a character tokenizer"):
        CharTokenizer.load(other)


def test_empty_text_is_a_clear_error():
    with pytest.raises(ValueError, match="empty"):
        CharTokenizer.from_text("")


# --------------------------------------------------------------------------- the interface both kinds share

SAMPLE = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
          "First Citizen:\nYou are all resolved rather to die than to famish?\n") * 3


def _make(kind):
    from minigpt.bpe import train

    return CharTokenizer.from_text(SAMPLE) if kind == "char" else train(SAMPLE, 300)


@pytest.fixture(params=["char", "bpe"])
def tok(request):
    return _make(request.param)


def test_both_kinds_are_tokenizers(tok):
    from minigpt.tokenizer import Tokenizer

    assert isinstance(tok, Tokenizer)
    with pytest.raises(TypeError):
        Tokenizer()  # the interface itself is abstract
    with pytest.raises(TypeError, match="load_tokenizer for either kind"):
        Tokenizer.load("tok.json")


def test_contract_round_trip(tok):
    ids = tok.encode(SAMPLE)
    assert ids and all(isinstance(i, int) and 0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == SAMPLE
    assert tok.decode([]) == "" and tok.encode("") == []


def test_contract_vocab_size_is_the_number_of_ids(tok):
    expected = len(set(SAMPLE)) if isinstance(tok, CharTokenizer) else 300
    assert tok.vocab_size == expected
    for i in (0, tok.vocab_size - 1):
        assert isinstance(tok.decode([i]), str)  # every id below vocab_size decodes
    with pytest.raises(ValueError, match=f"token id {tok.vocab_size} is out of range for a vocabulary of "
                                         f"{tok.vocab_size}"):
        tok.decode([tok.vocab_size])
    with pytest.raises(ValueError, match="token id -1 is out of range"):
        tok.decode([-1])


def test_contract_save_then_load_gives_an_equal_tokenizer(tok, tmp_path):
    from minigpt.checkpoint import load_tokenizer

    path = tmp_path / "tok.json"
    tok.save(path)
    json.loads(path.read_text(encoding="utf-8"))  # plain JSON, no pickle
    for load in (type(tok).load, load_tokenizer):  # its own kind's loader, and the one for any kind
        again = load(path)
        assert type(again) is type(tok) and again.to_dict() == tok.to_dict()
        assert again.vocab_size == tok.vocab_size and again.encode(SAMPLE) == tok.encode(SAMPLE)


def test_contract_unknown_input_is_one_clear_error(tok, tmp_path):
    from minigpt.checkpoint import load_tokenizer

    unseen = "Zebra ☃ 日本"  # characters the training text never had
    if isinstance(tok, CharTokenizer):  # a character vocabulary cannot encode them: it says which
        with pytest.raises(ValueError, match=r"'Z' \(U\+005A\) at position 0 is not in the vocabulary"):
            tok.encode(unseen)
    else:  # a byte-level BPE encodes every string
        assert tok.decode(tok.encode(unseen)) == unseen
    other = _make("bpe" if isinstance(tok, CharTokenizer) else "char")
    other.save(tmp_path / "other.json")
    with pytest.raises(ValueError, match=f"not a {type(tok).kind} tokenizer"):
        type(tok).load(tmp_path / "other.json")  # a file of the other kind
    (tmp_path / "junk.json").write_text('{"merges": 3}', encoding="utf-8")
    (tmp_path / "pickle.json").write_bytes(b"\x80\x03}q\x00.")
    for loader in (type(tok).load, load_tokenizer):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            loader(tmp_path / "missing.json")
        with pytest.raises(ValueError, match="is a folder, not a file"):
            loader(tmp_path)
        with pytest.raises(ValueError, match="not a .*tokenizer"):
            loader(tmp_path / "junk.json")
        with pytest.raises(ValueError, match="not UTF-8 JSON"):
            loader(tmp_path / "pickle.json")
    with pytest.raises(ValueError, match="is a folder; give a file name"):
        tok.save(tmp_path)


def test_the_one_loader_tells_the_kinds_apart(tmp_path):
    from minigpt.bpe import BPETokenizer
    from minigpt.checkpoint import load_tokenizer, tokenizer_from_dict

    for kind, cls in (("char", CharTokenizer), ("bpe", BPETokenizer)):
        tok = _make(kind)
        tok.save(tmp_path / f"{kind}.json")
        assert type(load_tokenizer(tmp_path / f"{kind}.json")) is cls
        assert type(tokenizer_from_dict(tok.to_dict())) is cls
    with pytest.raises(ValueError, match="expected a JSON object with type 'char'.* or format 'minigpt-bpe'"):
        tokenizer_from_dict({"type": "wordpiece"})
