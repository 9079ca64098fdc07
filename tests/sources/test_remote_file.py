"""RemoteFile: read semantics, block cache, parallel parts, retries and refusal without Range."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecephys.errors import RangeNotSupported, RemoteNotFound
from ecephys.sources import HTTPSource, RemoteFile, RetryPolicy
from ecephys.sources.base import ObjectInfo
from ecephys.testing.servers import Fault

DATA = bytes(range(256)) * 1200 + b"tail"  # 307,204 bytes: not a whole number of blocks


class BytesSource:
    """An in-memory source that records the ranges asked for."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.ranges: list[tuple[int, int]] = []

    def info(self, key: str) -> ObjectInfo:
        return ObjectInfo(size=len(self.data), etag=None, url=self.url(key))

    def read_range(self, key: str, start: int, stop: int) -> bytes:
        self.ranges.append((start, stop))
        return self.data[start:stop]

    def url(self, key: str) -> str:
        return f"mem://{key}"


def remote(data: bytes = DATA, **kwargs) -> tuple[RemoteFile, BytesSource]:
    source = BytesSource(data)
    return RemoteFile(source, "x.bin", **kwargs), source


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from([io.SEEK_SET, io.SEEK_CUR, io.SEEK_END]),
            st.integers(-400_000, 400_000),
            st.integers(0, 150_000),
        ),
        max_size=25,
    ),
    block_size=st.sampled_from([509, 4096, 32768]),
    cache_blocks=st.sampled_from([1, 3, 64]),
)
def test_random_seeks_and_reads_equal_the_bytes(ops, block_size, cache_blocks):
    rf, _ = remote(block_size=block_size, cache_blocks=cache_blocks, readahead=20_000, split_size=50_000)
    ref = io.BytesIO(DATA)
    for whence, offset, n in ops:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: ref.tell(), io.SEEK_END: len(DATA)}[whence]
        if base + offset < 0:
            with pytest.raises(ValueError, match="offset"):
                rf.seek(offset, whence)
            continue
        assert rf.seek(offset, whence) == ref.seek(offset, whence)
        assert rf.read(n) == ref.read(n)
        assert rf.tell() == ref.tell()
    assert rf.bytes_fetched <= len(DATA) * (1 + len(ops)) + block_size


def test_file_interface():
    rf, _ = remote()
    assert rf.readable() and rf.seekable() and not rf.writable()
    assert rf.size == len(DATA) and rf.name == "mem://x.bin"
    rf.seek(len(DATA) - 4)
    assert rf.read() == b"tail"
    assert rf.read(10) == b""
    buf = bytearray(10)
    rf.seek(3)
    assert rf.readinto(buf) == 10 and bytes(buf) == DATA[3:13]
    rf.close()
    with pytest.raises(ValueError, match="closed"):
        rf.read(1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"block_size": 0}, "block_size=0"),
        ({"cache_blocks": 0}, "cache_blocks=0"),
        ({"readahead": -1}, "readahead=-1"),
        ({"max_workers": 0}, "max_workers=0"),
    ],
)
def test_bad_parameters_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        remote(**kwargs)


def test_cache_serves_repeated_reads_without_requests():
    rf, source = remote(block_size=4096)
    rf.seek(100_000)
    first = rf.read(5000)
    before = (rf.requests, rf.bytes_fetched)
    rf.seek(100_000)
    assert rf.read(5000) == first
    assert (rf.requests, rf.bytes_fetched) == before
    assert rf.requests == 1 + len(source.ranges)  # the size lookup, then the ranges


def test_sequential_reads_grow_the_readahead_random_ones_reset_it():
    rf, source = remote(block_size=1024, readahead=64 * 1024)
    source.ranges.clear()
    pos = 10_000
    for _ in range(6):
        rf.seek(pos)
        rf.read(1024)
        pos += 1024
    sizes = [b - a for a, b in source.ranges]
    assert sizes[0] <= 2048 and sizes[-1] > 2 * sizes[0]  # small first, then growing
    assert len(sizes) < 6  # the read-ahead served some reads
    source.ranges.clear()
    rf.seek(250_000)
    rf.read(10)
    assert [b - a for a, b in source.ranges] == [1024]  # a random read: one block, no read-ahead


def test_large_read_is_split_into_parallel_parts():
    rf, source = remote(block_size=1024, split_size=64 * 1024, max_workers=4)
    source.ranges.clear()
    rf.seek(0)
    assert rf.read() == DATA
    assert len(source.ranges) == -(-(len(DATA) - 1024) // (64 * 1024))  # block 0 came at open
    assert all(b - a <= 64 * 1024 for a, b in source.ranges)
    assert rf.bytes_fetched == len(DATA)


def test_a_read_into_a_large_buffer_goes_straight_there_in_parallel_parts():
    rf, source = remote(block_size=1024, split_size=50_000, max_workers=3)
    rf.DIRECT_READ = 100_000  # as a whole dataset read by h5py would be
    source.ranges.clear()
    rf.seek(1000)
    buffer = bytearray(250_000)
    assert rf.readinto(buffer) == 250_000 and bytes(buffer) == DATA[1000:251_000]
    assert sorted(source.ranges) == [(a, min(a + 50_000, 251_000)) for a in range(1000, 251_000, 50_000)]
    assert rf.tell() == 251_000 and rf.bytes_fetched == 1024 + 250_000
    source.ranges.clear()
    assert rf.read(100) == DATA[251_000:251_100]  # small reads still use the block cache
    assert len(source.ranges) == 1
    rf.seek(len(DATA) - 120_000)
    assert rf.readinto(bytearray(200_000)) == 120_000  # fewer only at the end of the file


def test_over_http_counts_what_the_server_sent(file_server):
    url = file_server.add_file("data/x.bin", DATA)
    rf = RemoteFile(HTTPSource(""), url, block_size=8192)
    rf.seek(200_000)
    assert rf.read(20_000) == DATA[200_000:220_000]
    assert rf.bytes_fetched == file_server.bytes_sent
    assert rf.requests == len(file_server.records)  # HEAD + ranges


def test_server_ignoring_range_is_refused_with_the_download_advice(file_server):
    url = file_server.add_file("x.bin", DATA)
    file_server.faults.always = Fault(ignore_range=True)
    with pytest.raises(RangeNotSupported, match=r"ignored a Range request.*download it instead") as info:
        RemoteFile(HTTPSource(""), url)
    assert info.value.url == url


def test_503_is_retried_then_read(file_server, policy, sleeps):
    url = file_server.add_file("x.bin", DATA)
    file_server.faults.fail_first(2)  # the HEAD, then the first range
    rf = RemoteFile(HTTPSource(""), url, retries=policy)
    assert rf.read(100) == DATA[:100]
    assert len(sleeps) == 2
    assert rf.requests == 4


def test_missing_object_is_remote_not_found(file_server):
    with pytest.raises(RemoteNotFound, match="404"):
        RemoteFile(HTTPSource(""), file_server.url("nothing.nwb"), retries=RetryPolicy(retries=0))
