"""HTTPSource against a real server on 127.0.0.1: Range, If-Range, and every failure mapped."""

from __future__ import annotations

import pickle
import socket

import pytest

from ecephys.errors import RangeNotSupported, RemoteNotFound, SourceError, TransientSourceError
from ecephys.sources import HTTPSource, ObjectInfo, Source
from ecephys.sources.http import parse_content_range
from ecephys.testing.servers import Fault

DATA = bytes(range(256)) * 4096  # 1 MiB with a recognisable pattern
KEY = "data/blob.bin"


@pytest.fixture
def served(file_server):
    """The file server with DATA at KEY, and a source pointing at it (1 s read timeout)."""
    file_server.add_file(KEY, DATA)
    with HTTPSource(file_server.base_url, timeout=1.0) as source:
        yield file_server, source


def test_satisfies_the_protocol(served):
    _, source = served
    assert isinstance(source, Source)


def test_info_gives_size_etag_and_url(served):
    server, source = served
    info = source.info(KEY)
    assert isinstance(info, ObjectInfo)
    assert info.size == len(DATA)
    assert info.etag is not None and info.etag.startswith('"')
    assert info.url == server.url(KEY)
    assert info.accepts_ranges is True


def test_info_falls_back_to_a_one_byte_get_when_head_is_refused(served):
    server, source = served
    server.faults.push(Fault(status=405, methods=("HEAD",)))
    assert source.info(KEY).size == len(DATA)
    assert [r.range for r in server.requests(KEY, "GET")] == ["bytes=0-0"]


@pytest.mark.parametrize(
    ("start", "stop"), [(0, 1), (10, 4096), (100_000, 300_001), (len(DATA) - 5, len(DATA))]
)
def test_read_range_returns_exactly_the_bytes(served, start, stop):
    _, source = served
    assert source.read_range(KEY, start, stop) == DATA[start:stop]


def test_read_range_past_the_end_is_short_or_empty(served):
    _, source = served
    assert source.read_range(KEY, len(DATA) - 3, len(DATA) + 100) == DATA[-3:]
    assert source.read_range(KEY, len(DATA) + 10, len(DATA) + 20) == b""
    assert source.read_range(KEY, 5, 5) == b""


@pytest.mark.parametrize(("start", "stop", "match"), [(-1, 3, "start=-1"), (10, 3, "stop=3")])
def test_read_range_rejects_bad_ranges(served, start, stop, match):
    _, source = served
    with pytest.raises(ValueError, match=match):
        source.read_range(KEY, start, stop)


def test_read_range_on_a_server_that_ignores_range(served):
    server, source = served
    server.faults.always = Fault(ignore_range=True)
    with pytest.raises(RangeNotSupported, match="whole object"):
        source.read_range(KEY, 10, 20)


def test_iter_chunks_streams_from_an_offset(served):
    _, source = served
    with source.iter_chunks(KEY, 1000, chunk_size=10_000) as stream:
        assert (stream.start, stream.size, stream.restarted) == (1000, len(DATA), False)
        chunks = list(stream)
    assert b"".join(chunks) == DATA[1000:]
    assert max(len(c) for c in chunks) <= 10_000


def test_iter_chunks_says_when_the_server_ignored_range(served):
    server, source = served
    server.faults.push(Fault(ignore_range=True))
    stream = source.iter_chunks(KEY, 5000)
    assert (stream.start, stream.restarted) == (0, True)
    assert b"".join(stream) == DATA


def test_if_range_with_a_stale_etag_gets_the_whole_object(served):
    server, source = served
    stream = source.iter_chunks(KEY, 5000, if_range='"an-older-version"')
    assert stream.start == 0
    assert b"".join(stream) == DATA
    assert server.requests(KEY, "GET")[0].if_range == '"an-older-version"'


def test_if_range_with_the_current_etag_resumes(served):
    _, source = served
    etag = source.info(KEY).etag
    stream = source.iter_chunks(KEY, 5000, if_range=etag)
    assert stream.start == 5000
    assert b"".join(stream) == DATA[5000:]


def test_a_weak_etag_is_not_sent_as_if_range(served):
    server, source = served
    list(source.iter_chunks(KEY, 10, if_range='W/"weak"'))
    assert server.requests(KEY, "GET")[0].if_range is None


def test_iter_chunks_at_the_end_is_empty(served):
    _, source = served
    stream = source.iter_chunks(KEY, len(DATA))
    assert list(stream) == []
    assert stream.size == len(DATA)


# ------------------------------------------------------------------ failures


def test_404_names_the_url(served):
    server, source = served
    with pytest.raises(RemoteNotFound, match="no/such/file") as caught:
        source.info("no/such/file")
    assert isinstance(caught.value, FileNotFoundError)
    assert caught.value.url == server.url("no/such/file")


@pytest.mark.parametrize(
    ("fault", "expected", "match"),
    [
        (Fault(status=503), TransientSourceError, "503"),
        (Fault(status=500), TransientSourceError, "500"),
        (Fault(status=429), TransientSourceError, "429"),
        (Fault(status=403), SourceError, "403 Forbidden"),
        (Fault(drop_after=50_000), TransientSourceError, "cut"),
        (Fault(drop_after=50_000, reset=True), TransientSourceError, "cut"),
        (Fault(stall=3.0, stall_after=20_000), TransientSourceError, "timed out"),
        (Fault(length_delta=+1000), TransientSourceError, "cut"),
    ],
    ids=["503", "500", "429", "403", "drop", "reset", "stall", "long-content-length"],
)
def test_failures_map_to_the_error_tree(served, fault, expected, match):
    server, source = served
    server.faults.push(fault)
    received = []
    with pytest.raises(expected, match=match) as caught:
        for chunk in source.iter_chunks(KEY):
            received.append(chunk)
    assert type(caught.value) is expected  # a 403 is not retried
    if fault.status:
        assert received == []  # the HTML error page is never handed on as content
    if fault.drop_after:
        assert len(b"".join(received)) <= fault.drop_after
        assert b"".join(received) == DATA[: len(b"".join(received))]


def test_a_short_content_length_ends_the_body_early(served):
    server, source = served
    server.faults.push(Fault(length_delta=-1000))
    body = b"".join(source.iter_chunks(KEY))
    assert body == DATA[:-1000]  # the caller sees a short body and checks it against the size


def test_refused_connection_is_transient():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    source = HTTPSource(f"http://127.0.0.1:{port}", timeout=1.0, connect_timeout=1.0)
    with pytest.raises(TransientSourceError, match=f"127.0.0.1:{port}"):
        source.info("x")


def test_get_json_refuses_an_html_page(file_server):
    file_server.add_file("page.json", b"<html>maintenance</html>", content_type="text/html")
    with pytest.raises(SourceError, match="expected JSON but got text/html"):
        HTTPSource(file_server.base_url).get_json("page.json")


# ------------------------------------------------------------------ plumbing


@pytest.mark.parametrize(
    ("base", "key", "url"),
    [
        ("http://h/api/", "a/b c.nwb", "http://h/api/a/b%20c.nwb"),
        ("http://h/api", "/a", "http://h/api/a"),
        ("http://h/api/", "https://other/x?y=1", "https://other/x?y=1"),
        ("", "http://h/x", "http://h/x"),
    ],
)
def test_url_joins_keys_and_passes_full_urls(base, key, url):
    assert HTTPSource(base).url(key) == url


def test_relative_key_without_base_url():
    with pytest.raises(ValueError, match="needs a base_url"):
        HTTPSource("").url("a/b")


def test_plain_http_cannot_list():
    with pytest.raises(NotImplementedError, match="cannot list"):
        HTTPSource("http://h/").list("")


def test_source_pickles_without_its_connection_pool(served):
    _, source = served
    source.info(KEY)
    clone = pickle.loads(pickle.dumps(source))
    assert clone.read_range(KEY, 0, 4) == DATA[:4]


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        ("bytes 0-9/100", (0, 9, 100)),
        ("bytes 5-9/*", (5, 9, None)),
        ("bytes */100", (None, None, 100)),
        ("items 0-1/2", (None, None, None)),
        (None, (None, None, None)),
    ],
)
def test_parse_content_range(header, parsed):
    assert parse_content_range(header) == parsed
