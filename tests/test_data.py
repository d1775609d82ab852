"""The data loader: offline folder first, then cache, then a checked, atomic download.

Downloads are served by a local HTTP server on 127.0.0.1; nothing reaches the internet.
"""

import hashlib
import json
import os
import time
import warnings
from pathlib import Path

import pytest

from minigpt import data
from minigpt.cli import main as cli_main
from minigpt.utils import sha256_file

GOOD = b"anna\nbob\ncarla\n" * 50
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()


@pytest.fixture
def server(file_server):
    """A local HTTP server with /good.txt (the right bytes), /bad.txt (wrong bytes), /missing (404),
    and two transfers cut off halfway: /cut.txt (declares the full Content-Length) and
    /cut-nolength.txt (declares nothing, so only the registry size tells)."""
    def cut(handler, path):
        if not path.startswith("cut"):
            return False
        handler.send_response(200)
        if path == "cut.txt":
            handler.send_header("Content-Length", str(len(GOOD)))
        handler.end_headers()
        handler.wfile.write(GOOD[:300])  # then the connection closes (HTTP/1.0)
        return True

    return file_server({"good.txt": GOOD, "bad.txt": GOOD[:-1] + b"X"}, respond=cut)


@pytest.fixture
def tiny_registry(monkeypatch, tmp_path, server):
    """A registry with one small data set served locally, an empty cache and no offline folder."""
    base, hits = server
    ds = data.DataSet("tiny", "tiny.txt", f"{base}/good.txt", len(GOOD), GOOD_SHA, "test data")
    monkeypatch.setitem(data.DATASETS, "tiny", ds)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MINIGPT_DATA_DIR", raising=False)
    return ds, base, hits


def test_download_checks_sha256_and_caches(tiny_registry):
    ds, base, hits = tiny_registry
    path, source = data.locate("tiny", progress=False)
    assert source == "download"
    assert path == data.cache_dir() / "tiny.txt"
    assert path.read_bytes() == GOOD
    # The second call reads the cache and does not download again.
    path2, source2 = data.locate("tiny", progress=False)
    assert (path2, source2) == (path, "cache")
    assert hits == ["good.txt"]


def test_cache_honours_xdg_cache_home(tiny_registry, tmp_path):
    assert data.cache_dir() == tmp_path / "cache" / "minigpt"


def test_checksum_mismatch_is_an_error_and_leaves_nothing_in_the_cache(tiny_registry, monkeypatch):
    ds, base, _ = tiny_registry
    monkeypatch.setitem(data.DATASETS, "tiny", data.DataSet("tiny", "tiny.txt", f"{base}/bad.txt", ds.size,
                                                            ds.sha256, ""))
    with pytest.raises(data.DataError, match="checksum mismatch"):
        data.locate("tiny", progress=False)
    cache = data.cache_dir()
    assert not cache.exists() or list(cache.iterdir()) == []


def test_offline_and_not_cached_names_the_url_and_the_variable(tiny_registry, monkeypatch):
    ds, base, _ = tiny_registry
    url = f"{base}/missing"
    monkeypatch.setitem(data.DATASETS, "tiny", data.DataSet("tiny", "tiny.txt", url, ds.size, ds.sha256, ""))
    with pytest.raises(data.DataError) as err:
        data.locate("tiny", progress=False)
    msg = str(err.value)
    assert url in msg
    assert "MINIGPT_DATA_DIR" in msg
    assert str(data.cache_dir()) in msg and "download failed: HTTP Error 404" in msg
    assert "\n" not in msg  # one line: cli.main prints it as `error: ...`


def test_offline_folder_is_read_first(tiny_registry, tmp_path, monkeypatch):
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / "tiny.txt").write_bytes(GOOD)
    monkeypatch.setenv("MINIGPT_DATA_DIR", str(offline))
    path, source = data.locate("tiny", progress=False)
    assert (path, source) == (offline / "tiny.txt", "offline")
    assert tiny_registry[2] == []  # no download


def test_corrupt_offline_file_is_reported_and_not_used(tiny_registry, tmp_path, monkeypatch, capsys):
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / "tiny.txt").write_bytes(b"corrupt")
    monkeypatch.setenv("MINIGPT_DATA_DIR", str(offline))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a one-line note on stderr, not a warning that echoes source code
        path, source = data.locate("tiny", progress=False)
    assert source == "download" and path.read_bytes() == GOOD
    assert (offline / "tiny.txt").read_bytes() == b"corrupt"  # we never write to the offline folder
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("note: ignoring corrupt offline copy:")
    assert str(offline / "tiny.txt") in err and "has 7 bytes" in err and str(path) in err


def test_corrupt_offline_file_is_named_in_the_one_line_error(tiny_registry, tmp_path, monkeypatch):
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / "tiny.txt").write_bytes(b"corrupt")
    monkeypatch.setenv("MINIGPT_DATA_DIR", str(offline))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(data.DataError) as err:
            data.locate("tiny", download_missing=False)
    msg = str(err.value)
    assert "\n" not in msg
    assert f"ignoring corrupt offline copy: {offline / 'tiny.txt'} has 7 bytes" in msg
    assert "; " in msg and str(data.cache_dir() / "tiny.txt") in msg and tiny_registry[0].url in msg


def _permission_denied_for(monkeypatch, denied: Path):
    """Simulate a file we may not read (we run as root, so chmod cannot): hashing it fails."""
    real = data.sha256_file

    def fake(path):
        if Path(path) == denied:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(data, "sha256_file", fake)


def test_unreadable_offline_file_says_fix_its_permissions(tiny_registry, tmp_path, monkeypatch):
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / "tiny.txt").write_bytes(GOOD)
    monkeypatch.setenv("MINIGPT_DATA_DIR", str(offline))
    _permission_denied_for(monkeypatch, offline / "tiny.txt")
    with pytest.raises(data.DataError) as err:
        data.locate("tiny", progress=False)
    msg = str(err.value)
    assert msg.startswith(f"cannot read {offline / 'tiny.txt'}: permission denied; fix its permissions")
    assert "unset MINIGPT_DATA_DIR" in msg and "\n" not in msg
    assert tiny_registry[2] == []  # no download behind the user's back


def test_unreadable_offline_file_through_the_cli_is_one_line(tiny_registry, tmp_path, monkeypatch, capsys):
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / "tiny.txt").write_bytes(GOOD)
    monkeypatch.setenv("MINIGPT_DATA_DIR", str(offline))
    _permission_denied_for(monkeypatch, offline / "tiny.txt")
    assert cli_main(["data", "tiny", "--download"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: cannot read") and "fix its permissions" in err


def test_folder_instead_of_offline_file_is_called_a_folder(tiny_registry, tmp_path, monkeypatch, capsys):
    offline = tmp_path / "offline"
    (offline / "tiny.txt").mkdir(parents=True)
    monkeypatch.setenv("MINIGPT_DATA_DIR", str(offline))
    with pytest.raises(data.DataError) as err:
        data.locate("tiny", download_missing=False)
    msg = str(err.value)
    assert f"{offline / 'tiny.txt'} is a folder, not a file" in msg
    assert "bytes, expected" not in msg and "\n" not in msg
    # With a download allowed, the folder is skipped (and left alone) with a one-line note.
    path, source = data.locate("tiny", progress=False)
    assert source == "download" and (offline / "tiny.txt").is_dir()
    assert "is a folder, not a file" in capsys.readouterr().err


def test_folder_in_the_cache_is_a_clear_error_and_is_never_deleted(tiny_registry):
    ds, base, hits = tiny_registry
    folder = data.cache_dir() / "tiny.txt"
    folder.mkdir(parents=True)
    (folder / "my-notes.txt").write_text("keep me")
    with pytest.raises(data.DataError) as err:
        data.locate("tiny", progress=False)
    msg = str(err.value)
    assert msg.startswith(f"{folder} is a folder") and "remove that folder" in msg and "\n" not in msg
    assert (folder / "my-notes.txt").read_text() == "keep me"
    assert hits == []


def test_offline_folder_that_does_not_exist_is_named(tiny_registry, tmp_path, monkeypatch):
    missing = tmp_path / "no-such-folder"
    monkeypatch.setenv("MINIGPT_DATA_DIR", str(missing))
    with pytest.raises(data.DataError) as err:
        data.locate("tiny", download_missing=False)
    assert f"MINIGPT_DATA_DIR is set to {missing}, a folder that does not exist" in str(err.value)


def test_stale_partial_downloads_are_removed_before_downloading(tiny_registry):
    cache = data.cache_dir()
    cache.mkdir(parents=True)
    two_hours_ago = time.time() - 7200
    stale = cache / "tiny.txt.k3j_9x2a.part"  # left by a download that was killed
    fresh = cache / "tiny.txt.abcd1234.part"  # may be a download running in another process
    other = cache / "other.txt.k3j_9x2a.part"  # another data set's: not ours to judge
    folder = cache / "tiny.txt.dir.part"  # never delete folders
    for p in (stale, fresh, other):
        p.write_bytes(b"half a file")
    folder.mkdir()
    for p in (stale, other, folder):
        os.utime(p, (two_hours_ago, two_hours_ago))
    path, source = data.locate("tiny", progress=False)
    assert source == "download"
    assert sorted(p.name for p in cache.iterdir()) == sorted(["tiny.txt", fresh.name, other.name, folder.name])


@pytest.mark.parametrize("route", ["/cut.txt", "/cut-nolength.txt"])
def test_cut_off_download_says_incomplete_not_checksum_mismatch(tiny_registry, monkeypatch, route):
    ds, base, _ = tiny_registry
    monkeypatch.setitem(data.DATASETS, "tiny", data.DataSet("tiny", "tiny.txt", base + route, ds.size,
                                                            ds.sha256, ""))
    with pytest.raises(data.DataError, match=f"incomplete download: got 300 of {len(GOOD)} bytes"):
        data.locate("tiny", progress=False)
    cache = data.cache_dir()
    assert list(cache.iterdir()) == []  # no file, no .part left behind


def test_unwritable_cache_is_one_clear_line(tiny_registry, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", kwargs.get("dir"))

    monkeypatch.setattr(data.tempfile, "mkstemp", denied)
    with pytest.raises(data.DataError) as err:
        data.locate("tiny", progress=False)
    msg = str(err.value)
    assert msg.startswith(f"cannot write tiny.txt into {data.cache_dir()}: permission denied")
    assert "XDG_CACHE_HOME" in msg and "\n" not in msg


def test_corrupt_cache_file_is_replaced(tiny_registry):
    cached = data.cache_dir() / "tiny.txt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(GOOD[:-3])  # a truncated earlier download
    path, source = data.locate("tiny", progress=False)
    assert source == "download" and path.read_bytes() == GOOD


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(data.DataError, match="known data sets: gpt2-encoder, gpt2-vocab, names, tang-poems, tang-poets, tinyshakespeare"):
        data.dataset("shakespear")


def test_registry_matches_the_course_data():
    assert data.DATASETS["names"].size == 228145
    assert data.DATASETS["tinyshakespeare"].sha256.startswith("86c4e6aa9db7")
    assert data.DATASETS["gpt2-encoder"].size == 1042301 and data.DATASETS["gpt2-vocab"].size == 456318
    assert data.DATASETS["gpt2-vocab"].sha256.startswith("1ce1664773c5")


def test_gpt2_tokenizer_files_come_from_the_offline_folder_with_their_checksums():
    for name, filename in (("gpt2-encoder", "gpt2-encoder.json"), ("gpt2-vocab", "gpt2-vocab.bpe")):
        path, source = data.locate(name, download_missing=False)
        assert source in ("offline", "cache") and path.name == filename
        assert sha256_file(path) == data.DATASETS[name].sha256


def test_names_split_is_fixed_and_80_10_10():
    split = data.names_split()
    sizes = {k: len(v) for k, v in split.items()}
    assert sizes == {"train": 25626, "dev": 3203, "test": 3204}
    assert split == data.names_split()  # same every time
    all_names = data.load_names()
    assert sorted(split["train"] + split["dev"] + split["test"]) == sorted(all_names)
    # Fixed with seed 42: the first training names are always the same.
    assert split["train"][:3] == ["yuheng", "diondre", "xavien"]


def test_shakespeare_split_is_first_90_percent_then_last_10():
    text = data.load_text("tinyshakespeare")
    split = data.shakespeare_split()
    assert split["train"] + split["val"] == text
    assert len(split["train"]) == int(0.9 * len(text)) == 1003854
    assert len(set(text)) == 65


def test_cli_data_json_last_line_is_one_object(capsys):
    assert cli_main(["data", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    info = json.loads(out[-1])
    assert [d["name"] for d in info["datasets"]] == ["gpt2-encoder", "gpt2-vocab", "names", "tang-poems", "tang-poets",
                                                     "tinyshakespeare"]
    assert all(d["sha256_ok"] for d in info["datasets"])


def test_cli_data_unknown_name_is_a_clear_error(capsys):
    assert cli_main(["data", "nope"]) == 2
    assert "known data sets" in capsys.readouterr().err


def test_cli_data_reports_missing_files(tiny_registry, capsys):
    assert cli_main(["data", "tiny", "--json"]) == 1
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["datasets"][0]["sha256_ok"] is False and info["datasets"][0]["path"] is None


def test_the_test_suite_reads_the_offline_copies():
    # CI points MINIGPT_DATA_DIR at ../shared/data; the suite must never download the real files.
    assert os.environ.get("MINIGPT_DATA_DIR"), "MINIGPT_DATA_DIR is not set for the tests"
    assert data.locate("names", download_missing=False)[1] in ("offline", "cache")
    assert Path(os.environ["MINIGPT_DATA_DIR"]).is_dir()
