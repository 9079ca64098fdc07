"""S3Source against moto's S3 server on 127.0.0.1, with unsigned plain-HTTP requests."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecephys.cache.download import fetch
from ecephys.errors import RemoteNotFound
from ecephys.sources import LocalSource, S3Source, Source
from ecephys.testing.servers import MotoS3, upload_folder
from tests.transport import BUCKET, PREFIX


@pytest.fixture(scope="module")
def bucket(moto: MotoS3, project: Path) -> tuple[S3Source, Path]:
    """The three-session project uploaded in the bucket layout; a source reading it."""
    upload_folder(moto.endpoint_url, project, bucket=BUCKET, prefix=PREFIX)
    return S3Source(BUCKET, PREFIX, endpoint_url=moto.endpoint_url, timeout=5), project


def test_satisfies_the_protocol(bucket):
    source, _ = bucket
    assert isinstance(source, Source)


def test_list_matches_the_folder(bucket):
    source, folder = bucket
    assert source.list() == LocalSource(folder).list()
    assert source.list("session_990000001/") == LocalSource(folder).list("session_990000001/")
    assert source.list("nothing/") == []


def test_list_follows_continuation_tokens(bucket):
    source, folder = bucket
    paged = S3Source(BUCKET, PREFIX, endpoint_url=source.endpoint_url, list_page_size=2)
    assert paged.list() == LocalSource(folder).list()


def test_info_and_ranges(bucket):
    source, folder = bucket
    key = "session_990000001/session_990000001.nwb"
    data = (folder / key).read_bytes()
    info = source.info(key)
    assert info.size == len(data) and info.etag
    assert info.url == f"{source.endpoint_url}/{BUCKET}/{PREFIX}{key}"
    assert source.read_range(key, 100, 5000) == data[100:5000]
    stream = source.iter_chunks(key, 1234, if_range=info.etag)
    assert stream.start == 1234
    assert b"".join(stream) == data[1234:]


def test_missing_key(bucket):
    source, _ = bucket
    with pytest.raises(RemoteNotFound, match="session_1/session_1.nwb"):
        source.info("session_1/session_1.nwb")


def test_fetch_from_the_bucket(bucket, tmp_path):
    source, folder = bucket
    key = "session_991000001/probe_991001018_lfp.nwb"
    got = fetch(source, key, tmp_path / key, progress=False)
    assert got.read_bytes() == (folder / key).read_bytes()


def test_aws_urls_without_network():
    source = S3Source()
    assert source.url("sessions.csv") == (
        "https://allen-brain-observatory.s3.us-west-2.amazonaws.com/"
        "visual-coding-neuropixels/ecephys-cache/sessions.csv"
    )
    assert S3Source("b", "p", endpoint_url="http://127.0.0.1:9/").url("k") == "http://127.0.0.1:9/b/p/k"
