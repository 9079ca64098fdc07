"""Sessions, caches, remote files and errors pickle as recipes and come back giving the same answers."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pandas as pd
import pytest

import ecephys
from ecephys import EcephysProjectCache
from ecephys.errors import (
    CacheFileNotFound,
    IntegrityError,
    LockTimeout,
    SessionMapError,
    UnknownSessionError,
)
from ecephys.sources import RetryPolicy
from ecephys.sources.remote_file import RemoteFile, source_for_url
from tests.scale_support import S3_PLACE, s3_cache, upload_project
from tests.transport import PROJECT_SESSIONS

SID = PROJECT_SESSIONS[0]
# The synthetic sessions have invalid intervals: the session warns once on its first spike read.
pytestmark = pytest.mark.filterwarnings("ignore:session .* has invalid time intervals")


@pytest.fixture(scope="module")
def s3_endpoint(moto, project) -> str:
    """moto's endpoint URL, the project uploaded."""
    return upload_project(moto, project)


def roundtrip(thing: object) -> object:
    return pickle.loads(pickle.dumps(thing))


def lfp_probe(session: ecephys.EcephysSession) -> int:
    return int(session.probes.index[session.probes["has_lfp_data"]][0])


def assert_same_answers(got: ecephys.EcephysSession, expected: ecephys.EcephysSession) -> None:
    pd.testing.assert_frame_equal(got.units, expected.units)
    pd.testing.assert_frame_equal(got.stimulus_presentations, expected.stimulus_presentations)
    for unit_id in expected.units.index:
        np.testing.assert_array_equal(got.spike_times[unit_id], expected.spike_times[unit_id])
    probe = lfp_probe(expected)
    times = expected.get_lfp(probe).time.values
    window = slice(times[10], times[200])
    lfp = got.get_lfp(probe, time=window)
    assert lfp.shape[0] == 191
    np.testing.assert_array_equal(lfp.values, expected.get_lfp(probe, time=window).values)


def test_local_session_reopens_from_its_path_without_its_tables(project):
    session = EcephysProjectCache(project).get_session_data(SID)
    size_before = len(pickle.dumps(session))
    assert_same_answers(session, session)  # reads units, spikes, presentations and LFP
    assert len(pickle.dumps(session)) == size_before  # what was read stays behind
    restored = roundtrip(session)
    session.close()  # the copy has its own file handle
    assert_same_answers(restored, EcephysProjectCache(project).get_session_data(SID))
    assert restored.filters == session.filters
    pd.testing.assert_frame_equal(restored.external_channel_columns, session.external_channel_columns)


def test_unit_filters_travel(project):
    everything = dict(amplitude_cutoff_maximum=None, presence_ratio_minimum=None, isi_violations_maximum=None)
    session = EcephysProjectCache(project).get_session_data(SID, **everything)
    restored = roundtrip(session)
    assert (
        len(restored.units)
        == len(session.units)
        > len(EcephysProjectCache(project).get_session_data(SID).units)
    )


def test_streamed_session_reopens_from_s3_with_its_lfp_rule(project, s3_endpoint, tmp_path):
    cache = s3_cache(s3_endpoint, tmp_path / "cache")
    with cache.get_session_data(SID, stream=True) as streamed:
        streamed.units  # noqa: B018 - read something first: it does not travel
        restored = roundtrip(streamed)
    with restored:
        assert_same_answers(restored, EcephysProjectCache(project).get_session_data(SID))
        assert restored.bytes_fetched > 0  # read from S3 again, LFP included
    assert not list((tmp_path / "cache").glob("session_*/*.nwb"))  # nothing downloaded


def test_session_opened_by_url_keeps_the_lfp_beside_it(project, s3_endpoint):
    url = f"s3://{S3_PLACE['bucket']}/{S3_PLACE['prefix']}session_{SID}/session_{SID}.nwb"
    with ecephys.open_session(url, endpoint_url=s3_endpoint) as streamed:
        restored = roundtrip(streamed)
    with restored:
        local = ecephys.open_session(project / f"session_{SID}" / f"session_{SID}.nwb")
        assert_same_answers(restored, local)


def test_session_over_an_anonymous_file_object_refuses_to_pickle(project):
    data = (project / f"session_{SID}" / f"session_{SID}.nwb").read_bytes()
    with ecephys.open_session(io.BytesIO(data)) as session, pytest.raises(TypeError, match="cannot travel"):
        pickle.dumps(session)


def test_remote_file_travels_without_its_blocks(file_server):
    payload = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    url = file_server.add_file("data/blob.bin", payload)
    remote = RemoteFile(*source_for_url(url), block_size=16_384)
    assert remote.pread(100_000, 50_000) == payload[100_000:150_000]
    data = pickle.dumps(remote)
    assert len(data) < 4_000 < remote.bytes_fetched  # a recipe, not the blocks read
    sent, heads = file_server.bytes_sent, len(file_server.requests(method="HEAD"))
    restored = pickle.loads(data)
    assert (restored.size, restored.block_size, restored.name) == (len(payload), 16_384, url)
    assert restored.pread(100_000, 50_000) == payload[100_000:150_000]
    assert file_server.bytes_sent - sent == restored.bytes_fetched >= 50_000  # fetched again
    assert len(file_server.requests(method="HEAD")) == heads  # the size travelled


def test_cache_carries_its_source_and_the_tables_sessions_need(s3_endpoint, tmp_path):
    cache = s3_cache(s3_endpoint, tmp_path / "cache")
    cache.get_units()  # reads all four tables
    cache.fetcher.source.http.client  # noqa: B018 - a live connection pool
    restored = roundtrip(cache)
    assert set(restored._tables) == set(EcephysProjectCache.TRAVELLING_TABLES)  # not units.csv
    assert restored.fetcher.source.http._client is None  # no live connection travels
    assert restored.cache_dir == cache.cache_dir
    pd.testing.assert_frame_equal(restored.get_units(), cache.get_units())
    cache.fetcher.source.close()
    restored.fetcher.source.close()


@pytest.mark.parametrize(
    ("error", "attributes"),
    [
        (
            IntegrityError("size differs", path="/a/b.nwb", expected=10, actual=9),
            {"expected": 10, "actual": 9},
        ),
        (CacheFileNotFound("absent", path="/a/b.nwb", key="b.nwb"), {"key": "b.nwb", "path": "/a/b.nwb"}),
        (LockTimeout("held", path="/a.lock", timeout=3.0), {"timeout": 3.0}),
        (UnknownSessionError("session 5 is not in the table"), {}),
        (SessionMapError("failed", results={1: 2}, errors={3: ValueError("x")}), {"results": {1: 2}}),
    ],
)
def test_errors_come_back_from_a_worker_whole(error, attributes):
    restored = roundtrip(error)
    assert type(restored) is type(error)
    assert str(restored) == str(error)
    for name, value in attributes.items():
        assert getattr(restored, name) == value


def test_retry_policy_copies_draw_their_own_jitter():
    policy = RetryPolicy(retries=3)
    data = pickle.dumps(policy)
    assert len(data) < 500  # the generator's state does not travel with it
    assert pickle.loads(data).random is policy.random  # the receiving process's generator


def test_remote_file_keeps_its_block_cache_folder(file_server, tmp_path):
    url = file_server.add_file("data/blob.bin", bytes(range(256)) * 1000)
    remote = RemoteFile(*source_for_url(url), block_cache=tmp_path / "blocks")
    first = remote.pread(0, 1000)
    restored = roundtrip(remote)
    sent = file_server.bytes_sent
    assert restored.pread(0, 1000) == first
    assert file_server.bytes_sent == sent  # read from the block cache the copy reopened
