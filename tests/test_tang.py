"""The Tang poems data sets: registry figures on the shared copies, the README's reference baselines,
and the derive path end to end (small traditional-character sources served on 127.0.0.1)."""

import hashlib
import json
import math
import sys
from collections import Counter

import numpy as np
import pytest

from minigpt import data, metrics, tang
from minigpt.bpe import gpt2_tokenizer
from minigpt.classify import NaiveBayes, is_han

# ----- the shared copies ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def poems():
    return data.load_tang_poems()


@pytest.fixture(scope="module")
def poets():
    return data.load_tang_poets()


def test_both_files_are_registered_and_verified_in_the_offline_folder():
    for name in ("tang-poems", "tang-poets"):
        info = data.status(name)
        assert info["sha256_ok"] and info["source"] == "offline", info
        assert info["bytes"] == data.dataset(name).size


def test_registry_figures(poems, poets):
    assert len(poems) == 21_485
    assert Counter(p["split"] for p in poems) == {"train": 19_312, "val": 2_173}
    assert set(poems[0]) == {"author", "title", "text", "split"}
    assert sum(len(p["text"]) for p in poems) == 1_218_871
    assert len({c for p in poems for c in p["text"]}) == 6_114
    assert len(poets) == 4_422 and set(poets[0]) == {"label", "text", "split"}
    labels = Counter(p["label"] for p in poets)
    assert len(labels) == 8 and labels["白居易"] == 914 + 103 and labels["罗隐"] == 313 + 36


def test_split_is_the_sha256_of_the_text_mod_10(poems):
    for p in poems:
        expected = "val" if int(hashlib.sha256(p["text"].encode()).hexdigest(), 16) % 10 == 0 else "train"
        assert p["split"] == expected
        assert tang.split_of(p["text"]) == expected


def test_every_poem_has_the_shape_and_no_two_share_two_couplets(poems):
    for p in poems:
        couplets = p["text"].split("\n")
        assert len(couplets) == 4 and len({len(c) for c in couplets}) == 1 and len(couplets[0]) in (12, 16)
    # A poem sharing 2 couplets with an earlier one was dropped; pairs sharing exactly one remain.
    first = {}
    for i, p in enumerate(poems):
        hits = Counter(first[c] for c in p["text"].split("\n") if c in first)
        assert all(n < 2 for n in hits.values()), p
        for c in p["text"].split("\n"):
            first.setdefault(c, i)


def test_poets_are_the_top_8_named_authors_and_their_rows_are_in_tang_poems(poems, poets):
    counts = Counter(p["author"] for p in poems if p["author"] not in ("不详", "无名氏"))
    assert {p["label"] for p in poets} == {a for a, _ in counts.most_common(8)}
    rows = {(p["author"], p["text"], p["split"]) for p in poems}
    assert all((q["label"], q["text"], q["split"]) in rows for q in poets)
    # The poets file keeps tang-poems' order.
    order = {p["text"]: i for i, p in enumerate(poems)}
    positions = [order[q["text"]] for q in poets]
    assert positions == sorted(positions)
    # 50 disputed poems are left out of the 4,472 of these 8 authors.
    assert sum(counts[a] for a, _ in counts.most_common(8)) - len(poets) == 50


def test_deriving_the_shared_poems_from_themselves_gives_the_registered_bytes(poems):
    # The shared file as a source (already simplified: t2s changes nothing): every poem has the shape, none is
    # a duplicate, every split is recomputed, and the rows are written byte for byte as registered.
    source = [{"author": p["author"], "title": p["title"], "paragraphs": p["text"].split("\n")} for p in poems]
    blob = tang.to_jsonl(tang.derive(source, lambda s: s)["tang-poems"])
    assert len(blob) == data.dataset("tang-poems").size
    assert hashlib.sha256(blob).hexdigest() == data.dataset("tang-poems").sha256


def test_tang_split_is_each_poem_followed_by_a_blank_line(poems):
    sp = data.tang_split(poems)
    val = [p["text"] for p in poems if p["split"] == "val"]
    assert sp["val"] == "\n\n".join(val) + "\n\n"
    assert sp["train"].count("\n\n") == 19_312


# ----- the README's reference figures -----------------------------------------------------------------------
def _bigram_bits(train: str, val: str, vocab: list[str], k: float) -> float:
    """Add-k character bigram trained on the train stream, bits per character of the val stream; every val
    character is scored, the first one after the "\n" that ends train (every poem follows a blank line)."""
    ix = {c: i for i, c in enumerate(vocab)}
    a = np.array([ix[c] for c in train])
    b = np.array([ix[c] for c in train[-1] + val])
    counts = np.zeros((len(vocab), len(vocab)))
    np.add.at(counts, (a[:-1], a[1:]), 1)
    probs = (counts[b[:-1], b[1:]] + k) / (counts.sum(1)[b[:-1]] + k * len(vocab))
    return float(-np.log2(probs).mean())


def test_reference_character_baselines(poems):
    sp = data.tang_split(poems)
    vocab = sorted(set(sp["train"]) | set(sp["val"]))
    assert len(vocab) == 6_114
    assert math.log2(len(vocab)) == pytest.approx(12.578, abs=5e-4)
    assert _bigram_bits(sp["train"], sp["val"], vocab, 1.0) == pytest.approx(8.967, abs=5e-4)
    # 7.9315 here; the README rounds it to 7.932.
    assert _bigram_bits(sp["train"], sp["val"], vocab, 0.01) == pytest.approx(7.932, abs=1e-3)


def test_gpt2_spends_2_197_tokens_per_character(poems):
    tok = gpt2_tokenizer()
    texts = [p["text"] for p in poems]
    tokens = sum(len(tok.encode(t)) for t in texts)
    assert tokens / sum(map(len, texts)) == pytest.approx(2.197, abs=5e-4)


def test_naive_bayes_attributes_poets_as_the_readme_says(poets):
    train = [p for p in poets if p["split"] == "train"]
    val = [p for p in poets if p["split"] == "val"]
    assert len(val) == 449
    nb = NaiveBayes(alpha=1.0, keep=is_han).fit([p["text"] for p in train], [p["label"] for p in train])
    ids = {c: i for i, c in enumerate(nb.classes)}
    y = [ids[p["label"]] for p in val]
    pred = [ids[c] for c in nb.predict([p["text"] for p in val])]
    assert metrics.accuracy(y, pred) == pytest.approx(0.697, abs=5e-4)
    assert metrics.macro_f1(y, pred) == pytest.approx(0.667, abs=5e-4)
    scores = metrics.precision_recall_f1(y, pred)
    assert scores["precision"].mean() == pytest.approx(0.717, abs=5e-4)
    assert scores["recall"].mean() == pytest.approx(0.647, abs=5e-4)
    always = [ids["白居易"]] * len(val)
    assert metrics.accuracy(y, always) == pytest.approx(0.229, abs=5e-4)
    assert metrics.macro_f1(y, always, n_classes=8) == pytest.approx(0.047, abs=5e-4)


# ----- the derive path, offline ------------------------------------------------------------------------
# Traditional-character source poems: each filter rule keeps or drops one. "|" separates paragraphs.
SPRING = "國破山河在，城春草木深。|感時花濺淚，恨別鳥驚心。|烽火連三月，家書抵萬金。|白頭搔更短，渾欲不勝簪。"
HEIGHTS = ("風急天高猿嘯哀，渚清沙白鳥飛迴。|無邊落木蕭蕭下，不盡長江滾滾來。|"
           "萬里悲秋常作客，百年多病獨登臺。|艱難苦恨繁霜鬢，潦倒新停濁酒杯。")
STOVE = "寒夜擁紅鑪，孤燈照客居。|雪深山路斷，風急雁行疏。|獨坐思鄉國，長吟對素書。|明朝還遠別，此意復何如。"
RAIN = "春風吹野草，細雨濕花枝。|故國千山外，歸心一夜遲。|江邊聞笛處，月下獨行時。|欲寄相思字，天涯無雁知。"
TOWER = "白日依山盡，黃河入海流。|欲窮千里目，更上一層樓。|秋聲連遠塞，落葉滿空樓。|獨倚闌干久，悠悠萬古愁。"
AUTUMN = "秋風蕭瑟天氣涼，草木搖落露為霜。|群燕辭歸雁南翔，念君客遊思斷腸。|慊慊思歸戀故鄉，君何淹留寄他方。"
HOME = "少小離家老，鄉音未改衰。|兒童相見問，笑問客何來。|故鄉今夜月，千里共清輝。|獨在山中久，何人憶舊歸。"


def _poem(author, title, paragraphs):
    return {"author": author, "title": title, "paragraphs": paragraphs.split("|") if paragraphs else []}


SOURCE_0 = [
    _poem("杜甫", "春望", SPRING),                                        # kept (5 characters)
    _poem("杜甫", "登高", HEIGHTS),                                       # kept (7 characters)
    _poem("王維", "缺", "國破山河在，城春草木深。|感時花濺淚，恨別鳥驚心。|烽火連三月，家書抵萬金。"),  # 3 lines
    _poem("王維", "雜", SPRING.replace("國破山河在，城春草木深。", HEIGHTS.split("|")[0])),  # 5 and 7 mixed
    _poem("王維", "闕", SPRING.replace("國破", "國□")),                  # a missing-glyph box
    _poem("王維", "注", SPRING.replace("深。", "深（一作新）。")),            # an editorial note
    _poem("王維", "拉", SPRING.replace("山河", "AB")),                    # Latin letters
    _poem("王維", "頓", SPRING.replace("，", "、", 1)),                    # the wrong mark
    _poem("王維", "空", ""),                                              # no text
    _poem("李白", "春望", SPRING.replace("渾欲", "正欲")),                 # 3 couplets as 春望: a duplicate
]
SOURCE_1000 = [
    _poem("王維", "寒夜", STOVE),                                         # kept: 鑪 -> U+2CB3B, so 鑪 stays
    _poem("白居易", "雨", RAIN),                                          # kept, disputed by the next one
    _poem("元稹", "殘", "故國千山外，歸心一夜遲。"),                        # dropped, but shares a couplet
    _poem("白居易", "登樓", TOWER),                                       # kept
    _poem("不詳", "無題", HOME),                                          # kept in poems, not in poets
    _poem("王維", "秋", HEIGHTS.split("|")[0] + "|" + AUTUMN),             # 1 couplet shared with 登高: kept
]
# What the derivation must make of them (by hand: t2s, with 鑪 kept).
EXPECTED_POEMS = [
    ("杜甫", "春望", "国破山河在，城春草木深。\n感时花溅泪，恨别鸟惊心。\n烽火连三月，家书抵万金。\n白头搔更短，浑欲不胜簪。"),
    ("杜甫", "登高", "风急天高猿啸哀，渚清沙白鸟飞回。\n无边落木萧萧下，不尽长江滚滚来。\n"
                   "万里悲秋常作客，百年多病独登台。\n艰难苦恨繁霜鬓，潦倒新停浊酒杯。"),
    ("王维", "寒夜", "寒夜拥红鑪，孤灯照客居。\n雪深山路断，风急雁行疏。\n独坐思乡国，长吟对素书。\n明朝还远别，此意复何如。"),
    ("白居易", "雨", "春风吹野草，细雨湿花枝。\n故国千山外，归心一夜迟。\n江边闻笛处，月下独行时。\n欲寄相思字，天涯无雁知。"),
    ("白居易", "登楼", "白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。\n秋声连远塞，落叶满空楼。\n独倚阑干久，悠悠万古愁。"),
    ("不详", "无题", "少小离家老，乡音未改衰。\n儿童相见问，笑问客何来。\n故乡今夜月，千里共清辉。\n独在山中久，何人忆旧归。"),
    ("王维", "秋", "风急天高猿啸哀，渚清沙白鸟飞回。\n秋风萧瑟天气凉，草木摇落露为霜。\n"
                 "群燕辞归雁南翔，念君客游思断肠。\n慊慊思归恋故乡，君何淹留寄他方。"),
]
# 春望 shares couplets with 李白's copy, 登高 with 王维's 秋, 雨 with 元稹's fragment: all disputed.
# 王维 (2 poems), 白居易 (2) and 杜甫 (2) are the named authors; 不详 is not.
EXPECTED_POETS = [("王维", 2), ("白居易", 4)]


def _fake_t2s(text: str) -> str:
    """A stand-in for OpenCC's t2s on the characters of the test poems (鑪 -> U+2CB3B, as t2s does)."""
    table = dict(zip("來兒別勝問嘯國對層復憶戀搖擁斷時書樓歸殘氣涼淚渾滾滿濁濕濺為無燈獨盡窮紅細維聞聲腸臺舊艱萬葉蕭處見詳輝辭迴連遊遠遲還邊鄉鑪"
                     "長闌闕雜離難頓頭題風飛驚鬢鳥黃",
                     "来儿别胜问啸国对层复忆恋摇拥断时书楼归残气凉泪浑滚满浊湿溅为无灯独尽穷红细维闻声肠台旧艰万叶萧处见详辉辞回连游远迟还边乡\U0002cb3b"
                     "长阑阙杂离难顿头题风飞惊鬓鸟黄"))
    return "".join(table.get(c, c) for c in text)


def _jsonl(rows) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def _split(text):
    return "val" if int(hashlib.sha256(text.encode()).hexdigest(), 16) % 10 == 0 else "train"


POEMS_BYTES = _jsonl({"author": a, "title": t, "text": x, "split": _split(x)} for a, t, x in EXPECTED_POEMS)
POETS_BYTES = _jsonl({"label": EXPECTED_POEMS[i][0], "text": EXPECTED_POEMS[i][2], "split": _split(EXPECTED_POEMS[i][2])}
                     for _, i in EXPECTED_POETS)


@pytest.fixture
def sources(monkeypatch, tmp_path, file_server):
    """The two source files served on 127.0.0.1, listed in a source list like the package's, with the
    registry's checksums set to the expected derived files; an empty cache and no offline folder."""
    files = {"全唐诗/poet.tang.0.json": json.dumps(SOURCE_0, ensure_ascii=False).encode(),
             "全唐诗/poet.tang.1000.json": json.dumps(SOURCE_1000, ensure_ascii=False).encode()}
    served = dict(files)
    base, hits = file_server(served)
    listing = tmp_path / "tang_sources.sha256"
    listing.write_text("# test sources\n# sha256  bytes  path\n" + "".join(
        f"{hashlib.sha256(b).hexdigest()}  {len(b)}  {rel}\n" for rel, b in files.items()), encoding="utf-8")
    monkeypatch.setattr(tang, "SOURCE_LIST", listing)
    monkeypatch.setattr(tang, "SOURCE_BASE_URL", base)
    for name, blob in (("tang-poems", POEMS_BYTES), ("tang-poets", POETS_BYTES)):
        ds = data.dataset(name)
        monkeypatch.setitem(data.DATASETS, name, data.DataSet(ds.name, ds.filename, ds.url, len(blob),
                                                              hashlib.sha256(blob).hexdigest(), "", "tang"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MINIGPT_DATA_DIR", raising=False)
    return served, hits


def test_the_fake_converter_agrees_with_opencc_on_the_test_poems():
    convert = tang.opencc_t2s()
    for poem in SOURCE_0 + SOURCE_1000:
        for s in poem["paragraphs"] + [poem["author"], poem["title"]]:
            assert _fake_t2s(s) == convert(s)


@pytest.mark.parametrize("converter", ["opencc", "fake"])
def test_derive_downloads_checks_and_derives_both_files(sources, monkeypatch, converter):
    served, hits = sources
    if converter == "fake":
        monkeypatch.setattr(tang, "opencc_t2s", lambda: _fake_t2s)
    path, source = data.locate("tang-poets", progress=False)
    assert source == "derived" and path == data.cache_dir() / "tang-poets.jsonl"
    assert path.read_bytes() == POETS_BYTES
    assert (data.cache_dir() / "tang-poems.jsonl").read_bytes() == POEMS_BYTES
    assert sorted(hits) == sorted(served)
    # Both files and the checked sources are cached: nothing is downloaded again.
    assert data.locate("tang-poems", progress=False) == (data.cache_dir() / "tang-poems.jsonl", "cache")
    assert sorted(p.name for p in (data.cache_dir() / "tang-sources").iterdir()) == [
        "poet.tang.0.json", "poet.tang.1000.json"]
    assert len(hits) == len(served)
    assert data.load_tang_poems()[2]["text"].startswith("寒夜拥红鑪")  # 鑪 kept: t2s gives U+2CB3B


def test_cached_sources_are_reused_when_the_files_must_be_derived_again(sources):
    served, hits = sources
    data.locate("tang-poems", progress=False)
    (data.cache_dir() / "tang-poems.jsonl").unlink()
    assert data.locate("tang-poems", progress=False)[1] == "derived"
    assert len(hits) == len(served)


def test_a_source_file_with_the_wrong_checksum_is_one_error_and_nothing_is_derived(sources):
    served, _ = sources
    rel = "全唐诗/poet.tang.1000.json"
    served[rel] = served[rel].replace("白居易".encode(), "白居噫".encode())
    with pytest.raises(data.DataError) as err:
        data.locate("tang-poems", progress=False)
    assert "checksum mismatch" in str(err.value) and "poet.tang.1000.json" in str(err.value)
    assert "\n" not in str(err.value)
    assert not (data.cache_dir() / "tang-poems.jsonl").exists()
    assert not (data.cache_dir() / "tang-sources" / "poet.tang.1000.json").exists()


def test_a_derived_file_with_the_wrong_checksum_names_the_opencc_version(sources, monkeypatch):
    monkeypatch.setattr(tang, "opencc_t2s", lambda: (lambda s: s))  # "converts" nothing: a different result
    with pytest.raises(data.DataError) as err:
        data.locate("tang-poems", progress=False)
    msg = str(err.value)
    assert "OpenCC 1.4.2" in msg and "derived tang-poems has sha256" in msg and "\n" not in msg
    assert not list(data.cache_dir().glob("tang-*.jsonl")) and not list(data.cache_dir().glob("*.part"))


def test_missing_opencc_is_one_line_saying_how_to_install_it_before_any_download(sources, monkeypatch):
    _, hits = sources
    monkeypatch.setitem(sys.modules, "opencc", None)  # import opencc raises ImportError
    with pytest.raises(data.DataError) as err:
        data.locate("tang-poems", progress=False)
    msg = str(err.value)
    assert "\n" not in msg and "OpenCC 1.4.2" in msg and "pip install" in msg and "minigpt[chinese]" in msg
    assert hits == []


def test_missing_derived_file_without_download_says_how_to_get_it(sources):
    with pytest.raises(data.DataError) as err:
        data.locate("tang-poems", download_missing=False)
    msg = str(err.value)
    assert "derived" in msg and "python -m minigpt data --download" in msg and "MINIGPT_DATA_DIR" in msg
    assert "\n" not in msg


def test_the_package_ships_the_58_source_files_of_the_readme():
    rows = tang.source_files()
    assert len(rows) == 58
    assert [r[2] for r in rows] == [f"全唐诗/poet.tang.{n}.json" for n in range(0, 58_000, 1000)]
    assert all(len(sha) == 64 for sha, _, _ in rows)
    assert sum(size for _, size, _ in rows) == pytest.approx(25.6e6, rel=0.01)


# ----- the steps, one by one ---------------------------------------------------------------------------------
def test_shape_filter_keeps_only_eight_line_poems_of_five_or_seven_han_characters():
    assert tang.has_shape(SPRING.split("|")) and tang.has_shape(HEIGHTS.split("|"))
    assert tang.has_shape(SPRING.replace("，", "？", 1).split("|"))  # ？！ may close either half
    for poem in SOURCE_0[2:9]:
        assert not tang.has_shape(poem["paragraphs"]), poem["title"]
    assert not tang.has_shape(SPRING.replace("國破", "𠀀破").split("|"))  # outside the basic CJK block
    assert not tang.has_shape(None)


def test_to_simplified_keeps_the_traditional_character_where_t2s_leaves_the_basic_block():
    assert tang.to_simplified("寒夜擁紅鑪", _fake_t2s) == "寒夜拥红鑪"
    assert tang.to_simplified("（登樓）", _fake_t2s) == "（登楼）"  # punctuation t2s leaves alone stays
    # A conversion that changes the length is done character by character; a character that would become two stays.
    assert tang.to_simplified("甲樓", lambda s: s.replace("甲", "乙丙").replace("樓", "楼")) == "甲楼"


def test_duplicates_are_dropped_at_two_shared_couplets_and_the_first_wins():
    a = {"text": "一\n二\n三\n四"}
    one_shared = {"text": "一\n五\n六\n七"}
    two_shared = {"text": "一\n二\n八\n九"}
    assert tang.drop_duplicates([a, one_shared, two_shared]) == [a, one_shared]
    assert tang.drop_duplicates([two_shared, a]) == [two_shared]


def test_poets_subset_takes_the_top_named_authors_less_the_disputed():
    poems = [{"author": a, "text": str(i), "split": "train"}
             for i, a in enumerate(["甲", "甲", "甲", "乙", "乙", "不详", "不详", "不详", "不详", "丙"])]
    rows = tang.poets_subset(poems, [False, True] + [False] * 8, n_poets=2)
    assert [(r["label"], r["text"]) for r in rows] == [("甲", "0"), ("甲", "2"), ("乙", "3"), ("乙", "4")]
