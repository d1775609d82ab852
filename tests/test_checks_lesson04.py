"""Each lesson-04 check accepts the reference answer and rejects typical mistakes, a constant among them.

The checks draw new inputs every call, so the accepting test runs each check several times."""

import pytest

from minigpt import bpe
from minigpt import checks as check
from minigpt.checks import CheckFailed


def ref_encode(text, merges):
    ids = list(text.encode("utf-8"))
    while len(ids) >= 2:
        stats = bpe.get_stats(ids)
        pair = min(stats, key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = bpe.merge(ids, pair, merges[pair])
    return ids


def ref_train(text, vocab_size):
    ids, merges = list(text.encode("utf-8")), {}
    for k in range(vocab_size - 256):
        stats = bpe.get_stats(ids)
        pair = max(stats, key=stats.get)
        merges[pair] = 256 + k
        ids = bpe.merge(ids, pair, 256 + k)
    return merges


def test_pair_counts_accepts_reference_and_rejects_missing_last_pair(capsys):
    check.bpe_pair_counts(lambda ids: bpe.get_stats(ids))
    assert "✓ bpe_pair_counts" in capsys.readouterr().out
    off_by_one = lambda ids: bpe.get_stats(ids[:-1])
    with pytest.raises(CheckFailed, match="last pair"):
        check.bpe_pair_counts(off_by_one)
    with pytest.raises(CheckFailed, match="not implemented"):
        check.bpe_pair_counts(lambda ids: (_ for _ in ()).throw(NotImplementedError()))
    with pytest.raises(CheckFailed, match="has no pairs|not adjacent|miss"):  # a constant
        check.bpe_pair_counts(lambda ids: {(1, 2): 2})
    with pytest.raises(CheckFailed, match="has count"):  # a set of pairs, each counted once
        check.bpe_pair_counts(lambda ids: {p: 1 for p in zip(ids, ids[1:])})


def test_merge_accepts_reference_and_rejects_overlapping_matches(capsys):
    check.bpe_merge(bpe.merge)
    assert "✓ bpe_merge" in capsys.readouterr().out

    def overlapping(ids, pair, idx):  # typical mistake: advance by one after a match
        out, i = [], 0
        while i < len(ids):
            if i < len(ids) - 1 and (ids[i], ids[i + 1]) == pair:
                out.append(idx)
            else:
                out.append(ids[i])
            i += 1
        return out

    with pytest.raises(CheckFailed, match="bpe_merge"):
        check.bpe_merge(overlapping)

    def in_place(ids, pair, idx):
        ids[:] = bpe.merge(ids, pair, idx)
        return ids

    with pytest.raises(CheckFailed, match="changed the input"):
        check.bpe_merge(in_place)
    with pytest.raises(CheckFailed, match="bpe_merge"):  # a constant
        check.bpe_merge(lambda ids, pair, idx: [99, 3, 99])
    with pytest.raises(CheckFailed, match="bpe_merge"):  # only the first occurrence
        check.bpe_merge(lambda ids, pair, idx: bpe.merge(ids[:2], pair, idx) + ids[2:])


def test_encode_accepts_reference_and_rejects_leftmost_pair_first(capsys):
    check.bpe_encode(ref_encode)
    assert "✓ bpe_encode" in capsys.readouterr().out

    def leftmost_first(text, merges):  # typical mistake: merge the first mergeable pair, not the lowest rank
        ids = list(text.encode("utf-8"))
        changed = True
        while changed:
            changed = False
            for i in range(len(ids) - 1):
                if (ids[i], ids[i + 1]) in merges:
                    ids = ids[:i] + [merges[(ids[i], ids[i + 1])]] + ids[i + 2:]
                    changed = True
                    break
        return ids

    with pytest.raises(CheckFailed, match="LOWEST merge id"):
        check.bpe_encode(leftmost_first)
    with pytest.raises(CheckFailed, match="gives .* ids"):  # a constant
        check.bpe_encode(lambda text, merges: [97, 256])
    with pytest.raises(CheckFailed, match="keep merging"):  # the raw bytes, no merge applied
        check.bpe_encode(lambda text, merges: list(text.encode("utf-8")))


def test_train_accepts_reference_and_rejects_unapplied_merges(capsys):
    check.bpe_train(ref_train)
    assert "✓ bpe_train" in capsys.readouterr().out

    def never_applies(text, vocab_size):  # typical mistake: count once, take the top pairs
        stats = bpe.get_stats(list(text.encode("utf-8")))
        top = sorted(stats, key=stats.get, reverse=True)[: vocab_size - 256]
        return {p: 256 + k for k, p in enumerate(top)}

    with pytest.raises(CheckFailed, match="bpe_train"):
        check.bpe_train(never_applies)

    with pytest.raises(CheckFailed, match="merges, you returned"):
        check.bpe_train(lambda text, vocab_size: ref_train(text, vocab_size - 1))
    with pytest.raises(CheckFailed, match="merges, you returned|does not occur"):  # a constant
        check.bpe_train(lambda text, vocab_size: {(97, 97): 256, (256, 97): 257, (257, 98): 258})


def test_tokens_per_char_accepts_reference_and_rejects_bytes_per_char(capsys):
    check.tokens_per_char(lambda tok, text: len(tok.encode(text)) / len(text))
    assert "✓ tokens_per_char" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="tokens per character"):
        check.tokens_per_char(lambda tok, text: len(tok.encode(text)) / len(text.encode("utf-8")))
    with pytest.raises(CheckFailed, match="tokens per character"):  # a constant
        check.tokens_per_char(lambda tok, text: 0.5)
    with pytest.raises(CheckFailed, match="tokens per character"):  # characters per token
        check.tokens_per_char(lambda tok, text: len(text) / len(tok.encode(text)))


@pytest.mark.parametrize("attempt", range(3))
def test_every_check_accepts_the_reference_on_fresh_inputs(attempt, capsys):
    check.bpe_pair_counts(bpe.get_stats)
    check.bpe_merge(bpe.merge)
    check.bpe_encode(ref_encode)
    check.bpe_train(ref_train)
    check.tokens_per_char(lambda tok, text: len(tok.encode(text)) / len(text))
    assert capsys.readouterr().out.count("✓") == 5
