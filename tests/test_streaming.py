"""Sessions streamed from the HTTP test server and moto's S3 give the local file's answers."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ecephys
from ecephys import EcephysProjectCache
from ecephys.errors import EcephysWarning, RangeNotSupported
from ecephys.testing.servers import Fault, upload_folder
from ecephys.testing.synthetic import make_session
from tests.transport import PREFIX, PROJECT_SESSIONS, SESSION_NWB, TINY, need

SID = 999000001
FOLDER = f"session_{SID}"
PROBE = 999001018
# The fixtures have invalid intervals: the session warns once on its first spike read.
pytestmark = pytest.mark.filterwarnings("ignore::ecephys.errors.EcephysWarning")


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EcephysWarning)
        return fn(*args, **kwargs)


def assert_same_session(streamed, local, *, lfp: bool = True) -> None:
    pd.testing.assert_frame_equal(streamed.units, local.units)
    for uid in local.units.index[:3]:
        np.testing.assert_array_equal(quiet(streamed.spike_times.__getitem__, uid), local.spike_times[uid])
    pd.testing.assert_frame_equal(streamed.stimulus_presentations, local.stimulus_presentations)
    if lfp:
        probe = int(local.probes.index[local.probes["has_lfp_data"]][0])
        start = quiet(local.get_lfp, probe).time.values[10]
        window = slice(start, start + 0.5)
        expected = quiet(local.get_lfp, probe, time=window)
        got = quiet(streamed.get_lfp, probe, time=window)
        np.testing.assert_array_equal(got.values, expected.values)
        np.testing.assert_array_equal(got.time.values, expected.time.values)


def serve_folder(server, folder: Path, under: str) -> str:
    for path in sorted(folder.iterdir()):
        server.add_file(f"{under}/{path.name}", path)
    return server.url(under)


def test_https_session_equals_the_local_file(file_server):
    need(SESSION_NWB)
    base = serve_folder(file_server, TINY / FOLDER, f"data/{FOLDER}")
    local = ecephys.open_session(SESSION_NWB)
    with ecephys.open_session(f"{base}/session_{SID}.nwb") as streamed:
        units = streamed.units
        quiet(streamed.spike_times.__getitem__, int(units.index[0]))
        size = SESSION_NWB.stat().st_size
        assert 0 < streamed.bytes_fetched < 0.5 * size  # open + units + one unit's spikes
        assert streamed.bytes_fetched == file_server.bytes_sent
        assert_same_session(streamed, local)
        lfp_path = f"/data/{FOLDER}/probe_{PROBE}_lfp.nwb"
        assert file_server.bytes_by_path[lfp_path] > 0  # the LFP file streamed from beside it
        assert streamed.bytes_fetched == file_server.bytes_sent


def test_s3_session_equals_the_local_file(moto):
    need(SESSION_NWB)
    # A bucket of its own: the shared moto server's default bucket is listed by tests/sources.
    upload_folder(moto.endpoint_url, TINY, bucket="tiny", include=lambda p: p.startswith(FOLDER + "/"))
    url = f"s3://tiny/{PREFIX}{FOLDER}/session_{SID}.nwb"
    local = ecephys.open_session(SESSION_NWB)
    with ecephys.open_session(url, endpoint_url=moto.endpoint_url) as streamed:
        assert_same_session(streamed, local)
        assert streamed.bytes_fetched > 0


def test_synthetic_session_streams_a_small_part(file_server, tmp_path):
    files = make_session(tmp_path, n_probes=3, units_per_probe=40, duration=1500.0, lfp=False)
    size = files.session_path.stat().st_size
    url = file_server.add_file(f"{FOLDER}/session.nwb", files.session_path)
    local = ecephys.open_session(files.session_path)
    with ecephys.open_session(url) as streamed:
        units = quiet(lambda: streamed.units)
        quiet(streamed.spike_times.__getitem__, int(units.index[0]))
        fetched = streamed.bytes_fetched
        assert fetched < 0.25 * size, (fetched, size)
        assert_same_session(streamed, local, lfp=False)


def test_streamed_spike_times_defer_the_invalid_interval_check(file_server):
    """One unit's spikes read no /intervals metadata; the notice comes once /intervals is read."""
    need(SESSION_NWB)
    url = file_server.add_file(f"{FOLDER}/session_{SID}.nwb", SESSION_NWB)
    local = ecephys.open_session(SESSION_NWB)
    with pytest.warns(EcephysWarning, match="invalid time intervals"):
        _ = local.spike_times  # the local file: at once, as the AllenSDK does
    with ecephys.open_session(url) as streamed:
        unit_id = int(streamed.units.index[0])
        with warnings.catch_warnings():
            warnings.simplefilter("error", EcephysWarning)
            np.testing.assert_array_equal(streamed.spike_times[unit_id], local.spike_times[unit_id])
        first_requests = len(file_server.records)
        with pytest.warns(EcephysWarning, match="invalid time intervals"):
            counts = streamed.presentationwise_spike_counts(
                [0.0, 0.1], streamed.stimulus_presentations.index[:3], [unit_id]
            )
        assert len(file_server.records) > first_requests
        assert counts.shape == (3, 1, 1)
        with warnings.catch_warnings():
            warnings.simplefilter("error", EcephysWarning)
            _ = streamed.spike_times[unit_id]  # once per session


def test_server_ignoring_range_suggests_a_download(file_server):
    need(SESSION_NWB)
    url = file_server.add_file(f"{FOLDER}/session_{SID}.nwb", SESSION_NWB)
    file_server.faults.always = Fault(ignore_range=True)
    with pytest.raises(RangeNotSupported, match="download it instead"):
        ecephys.open_session(url)


def test_503_first_is_retried(file_server, policy, sleeps):
    need(SESSION_NWB)
    url = file_server.add_file(f"{FOLDER}/session_{SID}.nwb", SESSION_NWB)
    file_server.faults.fail_first(3)
    with ecephys.open_session(url, retries=policy) as streamed:
        pd.testing.assert_frame_equal(streamed.units, ecephys.open_session(SESSION_NWB).units)
    assert len(sleeps) == 3


def test_cache_streams_from_s3_without_downloading(project, moto, tmp_path):
    upload_folder(moto.endpoint_url, project, bucket="streaming", prefix="cache/")
    cache = EcephysProjectCache.from_s3(
        tmp_path / "cache", bucket="streaming", prefix="cache/", endpoint_url=moto.endpoint_url
    )
    sid = PROJECT_SESSIONS[0]
    with cache.get_session_data(sid, stream=True) as streamed:
        local = EcephysProjectCache(project).get_session_data(sid)
        assert_same_session(streamed, local)
        assert streamed.bytes_fetched > 0
    assert not list((tmp_path / "cache").glob("session_*/*.nwb"))  # nothing downloaded


def test_cache_block_cache_makes_the_second_stream_local(project, moto, tmp_path):
    upload_folder(moto.endpoint_url, project, bucket="blocks", prefix="cache/")
    cache = EcephysProjectCache.from_s3(
        tmp_path / "cache", bucket="blocks", prefix="cache/", endpoint_url=moto.endpoint_url
    )
    sid = PROJECT_SESSIONS[0]
    fetched = []
    for _ in range(2):
        with cache.get_session_data(sid, stream=True, block_cache=True) as streamed:
            units = streamed.units
            quiet(streamed.spike_times.__getitem__, int(units.index[0]))
            fetched.append(streamed.bytes_fetched)
    assert fetched[0] > 0 and fetched[1] == 0
    assert list((tmp_path / "cache" / "blocks").glob("*.blocks"))
    assert not list((tmp_path / "cache").glob("session_*/*.nwb"))  # still nothing downloaded


def test_cache_without_a_streamable_source_says_so(project, project_warehouse, tmp_path):
    cache = EcephysProjectCache.from_warehouse(
        scheme="http", host=project_warehouse.host, manifest=tmp_path / "manifest.json"
    )
    with pytest.raises(ValueError, match=r"stream=True: .* WarehouseFetcher"):
        cache.get_session_data(PROJECT_SESSIONS[0], stream=True)


@pytest.mark.parametrize("opener", [ecephys.open_session, ecephys.open_nwb])
def test_a_url_session_closes_its_connections(file_server, opener):
    need(SESSION_NWB)
    url = file_server.add_file(f"{FOLDER}/session_{SID}.nwb", SESSION_NWB)
    gc.collect()  # what earlier tests left (a project cache keeps its source open, on purpose)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with opener(url) as streamed:
            assert len(streamed.units)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
