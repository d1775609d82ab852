"""The data loader: offline folder first, then cache, then a checked, atomic download.

Downloads are served by a local HTTP server on 127.0.0.1; nothing reaches the internet.
"""

import hashlib
import http.server
import json
import os
import threading
from pathlib import Path

import pytest

from minigpt import data
from minigpt.cli import main as cli_main

GOOD = b"anna\nbob\ncarla\n" * 50
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()


@pytest.fixture
def server():
    """A local HTTP server with /good.txt (the right bytes), /bad.txt (wrong bytes), /missing (404)."""
    files = {"/good.txt": GOOD, "/bad.txt": GOOD[:-1] + b"X"}
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


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
    assert hits == ["/good.txt"]


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
    assert url in str(err.value)
    assert "MINIGPT_DATA_DIR" in str(err.value)


def test_offline_folder_is_read_first(tiny_registry, tmp_path, monkeypatch):
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / "tiny.txt").write_bytes(GOOD)
    monkeypatch.setenv("MINIGPT_DATA_DIR", str(offline))
    path, source = data.locate("tiny", progress=False)
    assert (path, source) == (offline / "tiny.txt", "offline")
    assert tiny_registry[2] == []  # no download


def test_corrupt_offline_file_is_reported_and_not_used(tiny_registry, tmp_path, monkeypatch):
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / "tiny.txt").write_bytes(b"corrupt")
    monkeypatch.setenv("MINIGPT_DATA_DIR", str(offline))
    with pytest.warns(UserWarning, match="corrupt offline copy"):
        path, source = data.locate("tiny", progress=False)
    assert source == "download" and path.read_bytes() == GOOD
    assert (offline / "tiny.txt").read_bytes() == b"corrupt"  # we never write to the offline folder


def test_corrupt_cache_file_is_replaced(tiny_registry):
    cached = data.cache_dir() / "tiny.txt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(GOOD[:-3])  # a truncated earlier download
    path, source = data.locate("tiny", progress=False)
    assert source == "download" and path.read_bytes() == GOOD


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(data.DataError, match="known data sets: names, tinyshakespeare"):
        data.dataset("shakespear")


def test_registry_matches_the_course_data():
    assert data.DATASETS["names"].size == 228145
    assert data.DATASETS["tinyshakespeare"].sha256.startswith("86c4e6aa9db7")


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
    assert [d["name"] for d in info["datasets"]] == ["names", "tinyshakespeare"]
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
