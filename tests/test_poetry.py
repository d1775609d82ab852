"""Poem form, rhyme, word segmentation and the CJK font finder (minigpt.poetry)."""

import re
import sys
from collections import Counter

import matplotlib
import pytest
import torch
from matplotlib import font_manager

from minigpt import data, poetry
from minigpt.constrain import RegexConstraint, sample_texts
from minigpt.model import GPT, GPTConfig
from minigpt.tokenizer import CharTokenizer

SPRING = "国破山河在，城春草木深。\n感时花溅泪，恨别鸟惊心。\n烽火连三月，家书抵万金。\n白头搔更短，浑欲不胜簪。"
HEIGHTS = ("风急天高猿啸哀，渚清沙白鸟飞回。\n无边落木萧萧下，不尽长江滚滚来。\n"
           "万里悲秋常作客，百年多病独登台。\n艰难苦恨繁霜鬓，潦倒新停浊酒杯。")


@pytest.fixture(scope="module")
def val_poems():
    return [p["text"] for p in data.load_tang_poems() if p["split"] == "val"]


# ----- form ----------------------------------------------------------------------------------------------
def test_every_real_poem_has_the_form(val_poems):
    assert poetry.form_rate(val_poems) == 1.0
    assert poetry.has_form(SPRING + "\n\n")  # the blank line after a poem does not count


@pytest.mark.parametrize("broken", [
    "\n".join(SPRING.split("\n")[:3]),                            # 3 lines
    SPRING + "\n" + SPRING.split("\n")[0],                        # 5 lines
    SPRING.replace("国破山河在", HEIGHTS[:7]),                     # 7 characters in a 5-character poem
    SPRING.replace("在，", "在、"),                                # the wrong mark
    SPRING.replace("深。", "深，"),                                # a line that does not close
    SPRING.replace("山河", "ab"),                                  # not Han
    SPRING.replace("国破", "国破国"),                              # 6 characters
    SPRING.replace("\n", "", 1),                                   # two couplets on one line
])
def test_broken_forms_are_rejected(broken):
    assert not poetry.has_form(broken)


def test_form_pattern_drives_constrained_decoding_into_the_form():
    chars = sorted(set(SPRING + HEIGHTS + "？！；"))
    tok = CharTokenizer(chars)
    fmt = RegexConstraint(poetry.FORM_PATTERN, tok)
    han = [re.fullmatch(f"[{poetry.HAN}]", c) is not None for c in chars]
    assert fmt.allowed("").tolist() == han
    assert fmt.allowed("国破山河在").tolist() == [h or c in "，？！；" for c, h in zip(chars, han)]  # 5 or 7
    assert fmt.allowed("风急天高猿啸哀").tolist() == [c in "，？！；" for c in chars]
    assert fmt.allowed("国破山河在，城春草木深。").tolist() == [c == "\n" for c in chars]
    assert fmt.allowed(SPRING[:-1]).tolist() == [c in "。？！" for c in chars]
    assert fmt.complete(SPRING) and fmt.complete(HEIGHTS) and not fmt.complete(SPRING[:-1])
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=32, vocab_size=tok.vocab_size, n_layer=1, n_head=2, n_embd=16)).eval()
    kw = dict(generator=torch.Generator().manual_seed(0))
    texts = sample_texts(model, tok, "\n", 8, 70, constraint=fmt, **kw)
    free = sample_texts(model, tok, "\n", 8, 70, **kw)
    assert all(poetry.has_form(t) for t in texts)  # 4 lines of 12 or 16 characters: within 70 tokens
    assert Counter(len(t) for t in texts).keys() <= {4 * 12 + 3, 4 * 16 + 3}
    assert poetry.form_rate(free) == 0.0  # a random model never writes the form by chance


# ----- rhyme -------------------------------------------------------------------------------------------
def test_line_endings_are_the_last_han_character_of_each_line():
    assert poetry.line_endings(SPRING) == ["深", "心", "金", "簪"]
    assert poetry.line_endings(HEIGHTS + "\n\n") == ["回", "来", "台", "杯"]


@pytest.mark.parametrize("final, rhyme", [
    ("ang", "ang"), ("iang", "ang"), ("uang", "ang"), ("uei", "ei"), ("iou", "ou"), ("ian", "an"),
    ("van", "an"), ("in", "en"), ("ing", "eng"), ("vn", "en"), ("ie", "e"), ("ve", "e"), ("iong", "ong"),
    ("i", "i"), ("u", "u"), ("v", "v"), ("en", "en"), ("er", "er"),
])
def test_rhyme_drops_the_medial(final, rhyme):
    assert poetry.rhyme_of(final) == rhyme


def test_finals_and_rhymes_on_known_characters():
    assert poetry.finals("江光长归") == ["iang", "uang", "ang", "uei"]
    assert poetry.rhymes("一二三四五，江。\n一二三四五，光。\n一二三四五，长。\n一二三四五，香。")
    # 春望 rhymed in Tang Chinese; in Mandarin 簪 zan has left the -en rhyme of 深 心 金.
    assert [poetry.rhyme_of(f) for f in poetry.finals(poetry.line_endings(SPRING))] == ["en", "en", "en", "an"]
    assert not poetry.rhymes(SPRING)


def test_real_poems_rhyme_far_more_often_than_shuffled_endings(val_poems):
    real = poetry.rhyme_rate(val_poems)
    shuffled = [poetry.rhyme_rate(poetry.shuffle_endings(val_poems, seed)) for seed in range(2)]
    assert 0.55 < real < 0.65  # 0.603: Mandarin readings have drifted from Tang ones
    assert max(shuffled) < 0.01  # 4 endings agreeing by chance


def test_shuffle_endings_moves_only_the_last_characters(val_poems):
    poems = val_poems[:200]
    shuffled = poetry.shuffle_endings(poems, seed=1)
    assert Counter(e for t in poems for e in poetry.line_endings(t)) == \
        Counter(e for t in shuffled for e in poetry.line_endings(t))
    for a, b in zip(poems, shuffled):
        assert [line[:-2] + line[-1] for line in a.split("\n")] == [line[:-2] + line[-1] for line in b.split("\n")]
    assert sum(a != b for a, b in zip(poems, shuffled)) > 190
    assert poetry.shuffle_endings(poems, seed=1) == shuffled


def test_missing_pypinyin_is_one_line_saying_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pypinyin", None)
    with pytest.raises(RuntimeError) as err:
        poetry.rhymes(SPRING)
    assert "\n" not in str(err.value) and "pip install" in str(err.value) and "pypinyin" in str(err.value)


# ----- words -------------------------------------------------------------------------------------------------
def test_segmented_words_cover_every_han_character_in_order():
    words = poetry.segment([SPRING, HEIGHTS])
    assert "".join(words[0]) == re.sub(f"[^{poetry.HAN}]", "", SPRING)
    assert "".join(words[1]) == re.sub(f"[^{poetry.HAN}]", "", HEIGHTS)
    assert 10 <= len(words[0]) < 40  # some words longer than one character


def test_word_stats_count_out_of_vocabulary_val_words():
    stats = poetry.word_stats([SPRING, HEIGHTS], [SPRING])
    assert stats["oov_rate"] == 0.0 and stats["val_words"] == len(poetry.segment([SPRING])[0])
    train_vocab = {w for ws in poetry.segment([SPRING]) for w in ws}
    val = poetry.segment([HEIGHTS])[0]
    stats = poetry.word_stats([SPRING], [HEIGHTS])
    assert stats["vocab_size"] == len(train_vocab)
    assert stats["oov_rate"] == sum(w not in train_vocab for w in val) / len(val)
    assert stats["words_per_poem"] == len(val)


def test_word_stats_on_real_poems(val_poems):
    poems = data.load_tang_poems()
    train = [p["text"] for p in poems if p["split"] == "train"][:3000]
    stats = poetry.word_stats(train, val_poems[:300])
    assert 20 < stats["words_per_poem"] < 35  # 40-56 characters a poem, many words of 2 or 3
    assert 0.3 < stats["oov_rate"] < 0.6  # with a seventh of train; 0.194 with all of it


def test_missing_jieba_is_one_line_saying_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "jieba", None)
    with pytest.raises(RuntimeError) as err:
        poetry.segment([SPRING])
    assert "\n" not in str(err.value) and "pip install" in str(err.value) and "jieba" in str(err.value)


# ----- font ---------------------------------------------------------------------------------------------
@pytest.fixture
def fonts(monkeypatch):
    """matplotlib's font list, replaced by the test; rcParams restored afterwards."""
    def install(*names):
        entries = [font_manager.FontEntry(fname=f"/fonts/{n}.ttc", name=n) for n in names]
        monkeypatch.setattr(font_manager.fontManager, "ttflist", entries)
        monkeypatch.setattr(font_manager, "findSystemFonts", lambda *a, **k: [])
    with matplotlib.rc_context():
        yield install


def test_no_cjk_font_is_one_clear_line(fonts, capsys):
    fonts("DejaVu Sans", "Liberation Serif")
    before = list(matplotlib.rcParams["font.sans-serif"])
    assert poetry.find_cjk_font() is None
    assert poetry.use_cjk_font() is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no CJK font found" in err and "fonts-noto-cjk" in err
    assert matplotlib.rcParams["font.sans-serif"] == before


def test_a_cjk_font_installed_after_matplotlib_cached_its_list_is_found(fonts, monkeypatch):
    fonts("DejaVu Sans")
    added = []

    def addfont(path):
        added.append(path)
        font_manager.fontManager.ttflist.append(font_manager.FontEntry(fname=path, name="WenQuanYi Zen Hei"))

    monkeypatch.setattr(font_manager, "findSystemFonts",
                        lambda *a, **k: ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                                         "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"])
    monkeypatch.setattr(font_manager.fontManager, "addfont", addfont)
    assert poetry.find_cjk_font() == "WenQuanYi Zen Hei"
    assert added == ["/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"]  # only CJK files are added


def test_a_cjk_font_goes_first_in_the_sans_serif_list(fonts, capsys):
    fonts("DejaVu Sans", "WenQuanYi Zen Hei", "Noto Sans CJK SC")
    assert poetry.find_cjk_font() == "Noto Sans CJK SC"  # the preferred one, not the first listed
    assert poetry.use_cjk_font() == "Noto Sans CJK SC"
    assert matplotlib.rcParams["font.sans-serif"][0] == "Noto Sans CJK SC"
    assert matplotlib.rcParams["font.family"] == ["sans-serif"]
    assert capsys.readouterr().err == ""


# ----- a fast form constraint and copied couplets -----------------------------------------------------------
def test_form_constraint_allows_exactly_what_the_plain_regex_constraint_allows(val_poems):
    tok = CharTokenizer.from_text("".join(val_poems[:200]) + "\n")
    fast, plain = poetry.FormConstraint(tok), RegexConstraint(poetry.FORM_PATTERN, tok)
    for poem in (val_poems[0], val_poems[7], HEIGHTS.replace("猿", "猿")):
        for cut in (0, 3, 5, 6, 11, 12, 13, 30, len(poem) - 1, len(poem)):
            if all(ch in tok.stoi for ch in poem[:cut]):
                assert torch.equal(fast.allowed(poem[:cut]), plain.allowed(poem[:cut])), (poem, cut)
    assert fast.complete(SPRING) and not fast.complete(SPRING[:-1])


def test_copied_share_counts_couplets_found_verbatim_in_train():
    train = [SPRING, HEIGHTS]
    mixed = SPRING.split("\n")[0] + "\n" + "白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。\n" + HEIGHTS.split("\n")[3]
    assert poetry.couplets(SPRING + "\n\n") == SPRING.split("\n")
    assert poetry.copied_share([mixed], train) == 0.5
    assert poetry.copied_share([SPRING, HEIGHTS], train) == 1.0
    assert poetry.copied_share(["白日依山尽，黄河入海流。"], train) == 0.0
    assert poetry.copied_share([], train) == 0.0
