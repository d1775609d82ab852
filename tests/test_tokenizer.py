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
