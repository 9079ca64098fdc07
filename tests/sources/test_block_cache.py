"""The on-disk block cache: a second open reads locally; a changed object or a broken cache refetches."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest

import ecephys
from ecephys.errors import EcephysWarning
from ecephys.sources import HTTPSource, RemoteFile
from ecephys.sources.block_cache import DiskBlockCache
from tests.transport import SESSION_NWB, need

DATA = bytes(range(256)) * 3000 + b"end"  # 768,003 bytes: 12 blocks of 64 KiB, the last one short
BLOCK = 65536


def read_spans(rf: RemoteFile) -> list[bytes]:
    """A few scattered reads and one long one, as h5py makes them."""
    return [rf.pread(10, 100), rf.pread(300_000, 70_000), rf.pread(767_990, 50), rf.pread(0, len(DATA))]


def ranges(server) -> int:
    return len(server.requests(method="GET"))


def test_second_open_reads_from_disk(file_server, tmp_path):
    url = file_server.add_file("x.bin", DATA)
    first = RemoteFile(HTTPSource(""), url, block_size=BLOCK, block_cache=tmp_path)
    expected = [DATA[10:110], DATA[300_000:370_000], DATA[767_990:], DATA]
    assert read_spans(first) == expected
    first.close()
    assert ranges(file_server) > 0
    file_server.reset_stats()
    again = RemoteFile(HTTPSource(""), url, block_size=BLOCK, block_cache=tmp_path)
    assert read_spans(again) == expected
    assert ranges(file_server) == 0 and again.bytes_fetched == 0  # one HEAD to check the ETag
    assert len(file_server.requests(method="HEAD")) == 1


def test_blocks_read_before_a_crash_survive_without_close(file_server, tmp_path):
    url = file_server.add_file("x.bin", DATA)
    first = RemoteFile(HTTPSource(""), url, block_size=BLOCK, block_cache=tmp_path)
    first.pread(0, 100)  # no close(): the presence map is written after every fetch
    file_server.reset_stats()
    again = RemoteFile(HTTPSource(""), url, block_size=BLOCK, block_cache=tmp_path)
    assert again.pread(0, 100) == DATA[:100]
    assert ranges(file_server) == 0


def test_a_changed_object_is_fetched_afresh(file_server, tmp_path):
    url = file_server.add_file("x.bin", DATA)
    with RemoteFile(HTTPSource(""), url, block_size=BLOCK, block_cache=tmp_path) as rf:
        rf.pread(0, len(DATA))
    changed = DATA[::-1]
    file_server.add_file("x.bin", changed)  # same URL and size, another ETag
    file_server.reset_stats()
    with RemoteFile(HTTPSource(""), url, block_size=BLOCK, block_cache=tmp_path) as rf:
        assert rf.pread(0, len(changed)) == changed
    assert ranges(file_server) > 0


@pytest.mark.parametrize("damage", ["data", "presence"])
def test_a_damaged_cache_is_refetched_not_believed(file_server, tmp_path, damage):
    url = file_server.add_file("x.bin", DATA)
    with RemoteFile(HTTPSource(""), url, block_size=BLOCK, block_cache=tmp_path) as rf:
        rf.pread(0, len(DATA))
    suffix = ".blocks" if damage == "data" else ".present"
    (victim,) = tmp_path.glob(f"*{suffix}")
    if damage == "data":
        victim.unlink()
    else:
        victim.write_bytes(b"\x01")  # a map of another length
    file_server.reset_stats()
    with RemoteFile(HTTPSource(""), url, block_size=BLOCK, block_cache=tmp_path) as rf:
        assert rf.pread(0, len(DATA)) == DATA
    assert ranges(file_server) > 0


def test_a_full_disk_turns_the_cache_off_without_failing_reads(file_server, tmp_path, caplog):
    url = file_server.add_file("x.bin", DATA)
    with RemoteFile(HTTPSource(""), url, block_size=BLOCK, block_cache=tmp_path) as rf:
        (data_path,) = tmp_path.glob("*.blocks")
    data_path.unlink()
    data_path.symlink_to("/dev/full")  # every write: "No space left on device"
    with caplog.at_level(logging.WARNING, logger="ecephys.sources.block_cache"):
        rf = RemoteFile(HTTPSource(""), url, block_size=BLOCK, block_cache=tmp_path)
        assert rf.pread(0, len(DATA)) == DATA
    assert rf.disk is not None and not rf.disk.enabled
    assert "block cache off" in caplog.text
    rf.close()


def test_a_folder_that_cannot_be_made_turns_the_cache_off(file_server, tmp_path, caplog):
    url = file_server.add_file("x.bin", DATA)
    (tmp_path / "plain-file").write_text("a file where the folder should be")
    with caplog.at_level(logging.WARNING, logger="ecephys.sources.block_cache"):
        cache = DiskBlockCache(tmp_path / "plain-file", url, len(DATA), None, BLOCK)
    cache.put(0, DATA[:BLOCK])
    assert cache.get(0) is None and not cache.enabled
    assert "block cache off" in caplog.text


def test_a_streamed_session_opened_twice_reads_its_blocks_locally(file_server, tmp_path):
    need(SESSION_NWB)
    url = file_server.add_file("s/session.nwb", SESSION_NWB)
    local = ecephys.open_session(SESSION_NWB)
    answers = []
    for _ in range(2):
        file_server.reset_stats()
        with ecephys.open_session(url, block_cache=tmp_path) as streamed:
            unit_id = int(streamed.units.index[0])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", EcephysWarning)
                answers.append((streamed.units, streamed.spike_times[unit_id], streamed.bytes_fetched))
    (units1, spikes1, fetched1), (units2, spikes2, fetched2) = answers
    assert fetched1 > 0 and fetched2 == 0
    assert ranges(file_server) == 0
    pd.testing.assert_frame_equal(units2, local.units)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EcephysWarning)
        np.testing.assert_array_equal(spikes2, local.spike_times[int(local.units.index[0])])
    np.testing.assert_array_equal(spikes1, spikes2)
