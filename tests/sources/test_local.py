"""LocalSource: a folder behind the same interface as the remote sources."""

from __future__ import annotations

import pytest

from ecephys.cache.download import fetch
from ecephys.errors import RemoteNotFound
from ecephys.sources import LocalSource, Source

DATA = b"0123456789" * 1000


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "session_1").mkdir()
    (tmp_path / "session_1" / "session_1.nwb").write_bytes(DATA)
    (tmp_path / "sessions.csv").write_text("id\n1\n")
    return tmp_path


def test_satisfies_the_protocol(folder):
    assert isinstance(LocalSource(folder), Source)


def test_info_read_range_and_url(folder):
    source = LocalSource(folder)
    info = source.info("session_1/session_1.nwb")
    assert info.size == len(DATA) and info.etag
    assert (
        info.url
        == (folder / "session_1" / "session_1.nwb").resolve().as_uri()
        == source.url("session_1/session_1.nwb")
    )
    assert source.read_range("session_1/session_1.nwb", 5, 25) == DATA[5:25]
    assert source.read_range("session_1/session_1.nwb", len(DATA) - 2, len(DATA) + 9) == DATA[-2:]


def test_iter_chunks_and_if_range(folder):
    source = LocalSource(folder)
    key = "session_1/session_1.nwb"
    etag = source.info(key).etag
    with source.iter_chunks(key, 100, chunk_size=333, if_range=etag) as stream:
        chunks = list(stream)
    assert stream.start == 100 and b"".join(chunks) == DATA[100:]
    assert max(map(len, chunks)) == 333
    stale = source.iter_chunks(key, 100, if_range='"old"')
    assert (stale.start, stale.restarted) == (0, True)
    assert b"".join(stale) == DATA


def test_list(folder):
    source = LocalSource(folder)
    assert source.list() == ["session_1/session_1.nwb", "sessions.csv"]
    assert source.list("session_1/") == ["session_1/session_1.nwb"]


@pytest.mark.parametrize("key", ["nope.csv", "session_1"])
def test_missing_files(folder, key):
    with pytest.raises(RemoteNotFound, match=key):
        LocalSource(folder).info(key)


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "a/../../x", ""])
def test_keys_stay_inside_the_folder(folder, key):
    with pytest.raises(ValueError, match="relative path inside"):
        LocalSource(folder).path(key)


def test_fetch_from_a_folder(folder, tmp_path_factory):
    target = tmp_path_factory.mktemp("cache") / "session_1" / "session_1.nwb"
    got = fetch(LocalSource(folder), "session_1/session_1.nwb", target, progress=False, hdf5=False)
    assert got.read_bytes() == DATA
