"""map_sessions: in this process and on a two-worker LocalCluster, over the synthetic project on moto S3."""

from __future__ import annotations

import logging
import pickle
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecephys import EcephysProjectCache
from ecephys.errors import (
    CacheFileNotFound,
    MissingDependency,
    SessionMapError,
    SessionMapWarning,
    UnknownSessionError,
)
from ecephys.scale import SessionJob
from ecephys.testing.analyses import FLASH_BIN_EDGES, ExitOnce, FailFor, flash_response_table, unit_count
from tests.scale_support import s3_cache, upload_project
from tests.transport import PROJECT_SESSIONS

distributed = pytest.importorskip("distributed")

# The synthetic sessions have invalid intervals: the session warns once on its first spike read.
pytestmark = pytest.mark.filterwarnings("ignore:session .* has invalid time intervals")
FIRST, SECOND, THIRD = PROJECT_SESSIONS


@pytest.fixture(scope="module")
def s3_endpoint(moto, project) -> str:
    """moto's endpoint URL, the project uploaded."""
    return upload_project(moto, project)


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    """A LocalCluster of two single-threaded worker processes, closed after the module."""
    cluster = distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        dashboard_address=":0",
        silence_logs=logging.CRITICAL,
    )
    with cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture
def cache(s3_endpoint: str, tmp_path: Path) -> EcephysProjectCache:
    return s3_cache(s3_endpoint, tmp_path / "cache")


@pytest.fixture(scope="module")
def expected(project: Path) -> dict[int, pd.DataFrame]:
    """flash_response_table of each session, opened from the local project folder one by one."""
    local = EcephysProjectCache(project)
    tables = {}
    for sid in PROJECT_SESSIONS:
        with local.get_session_data(sid) as session:
            tables[sid] = flash_response_table(session)
    return tables


def downloaded(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("session_*.nwb"))


def assert_same_tables(got: dict, expected: dict) -> None:
    assert list(got) == list(expected)
    for sid, table in expected.items():
        pd.testing.assert_frame_equal(got[sid], table)


# -- the analysis itself, against spikes counted here ----------------------------------------
def test_flash_response_table_counts_spikes_around_each_flash(project):
    with EcephysProjectCache(project).get_session_data(FIRST) as session:
        table = flash_response_table(session)
        flashes = session.stimulus_presentations.query("stimulus_name == 'flashes'")["start_time"].to_numpy()
        assert len(flashes) and len(table) == len(session.units)
        for unit_id, row in table.iterrows():
            spikes = session.spike_times[unit_id]
            edges = flashes[:, None] + FLASH_BIN_EDGES[None, :]  # half-open [start, stop)
            counts = np.diff(np.searchsorted(spikes, edges, side="left"), axis=1)
            rates = counts.mean(axis=0) / np.diff(FLASH_BIN_EDGES)
            assert (row["baseline_rate"], row["flash_rate"]) == pytest.approx(tuple(rates))


# -- in this process ------------------------------------------------------------------------
def test_in_process_streams_each_session_once(cache, expected, tmp_path):
    results = cache.map_sessions(flash_response_table, progress=False)
    assert_same_tables(results, expected)
    assert downloaded(tmp_path) == []  # streamed, not downloaded


def test_in_process_download_gives_the_same(cache, expected, tmp_path):
    results = cache.map_sessions(flash_response_table, stream=False, progress=False)
    assert_same_tables(results, expected)
    assert len(downloaded(tmp_path / "cache")) == 3


def test_combine_keys_rows_by_session_id(cache, expected):
    table = cache.map_sessions(flash_response_table, [THIRD, FIRST, THIRD], combine=pd.concat, progress=False)
    pd.testing.assert_frame_equal(table, pd.concat({THIRD: expected[THIRD], FIRST: expected[FIRST]}))


def test_sessions_are_closed_after_fn(cache):
    sessions = cache.map_sessions(lambda session: session, [FIRST], progress=False)
    assert not sessions[FIRST]._nwb.file.id.valid  # the HDF5 file is closed
    assert all(stream.closed for stream in sessions[FIRST]._owned)  # and the RemoteFile under it


def test_progress_bar_counts_sessions(cache, capsys):
    cache.map_sessions(unit_count, [FIRST, SECOND], progress=True)
    assert "2/2" in capsys.readouterr().err


def test_unknown_session_fails_before_anything_runs(cache):
    opened = []
    with pytest.raises(UnknownSessionError, match="12345"):
        cache.map_sessions(opened.append, [FIRST, 12345], progress=False)
    assert opened == []


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        (dict(errors="ignore"), ValueError, "errors='ignore'"),
        (dict(retries=-1), ValueError, "retries=-1"),
        (dict(presence_ratio_max=0.5), TypeError, "presence_ratio_max"),
        (dict(fn=42), TypeError, "fn=42"),
    ],
)
def test_bad_arguments_are_refused(cache, options, error, match):
    options = {"fn": flash_response_table, **options}
    with pytest.raises(error, match=match):
        cache.map_sessions(options.pop("fn"), progress=False, **options)


def test_streaming_needs_a_source_that_reads_parts(project):
    with pytest.raises(ValueError, match="stream=True.*no fetcher"):
        EcephysProjectCache(project).map_sessions(flash_response_table, progress=False)


def test_one_failing_session_keeps_the_others(cache, expected):
    with pytest.raises(SessionMapError, match=rf"1 of 3 sessions: {SECOND} \(ValueError: session") as caught:
        cache.map_sessions(FailFor(flash_response_table, (SECOND,)), progress=False)
    assert_same_tables(caught.value.results, {s: expected[s] for s in (FIRST, THIRD)})
    assert list(caught.value.errors) == [SECOND]
    assert isinstance(caught.value.errors[SECOND], ValueError)


def test_skip_warns_and_returns_the_others(cache, expected):
    with pytest.warns(SessionMapWarning, match=str(SECOND)):
        table = cache.map_sessions(
            FailFor(flash_response_table, (SECOND,)), errors="skip", combine=pd.concat, progress=False
        )
    assert table.index.get_level_values(0).unique().tolist() == [FIRST, THIRD]


def test_without_distributed_the_extra_is_named(cache, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(MissingDependency, match=r"ecephys\[dask\]"):
        cache.map_sessions(flash_response_table, client=object(), progress=False)


def test_scale_imports_no_dask():
    code = "import sys, ecephys.scale; print(any(m in sys.modules for m in ('dask', 'distributed')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- a worker without the client's folder -------------------------------------------------------
def test_worker_without_the_client_folder_downloads_into_its_own(cache, project, tmp_path, monkeypatch):
    cache.map_sessions(unit_count, [FIRST], stream=False, progress=False)  # the client's folder, tables read
    job = pickle.loads(pickle.dumps(SessionJob(cache, unit_count, stream=False)))
    shutil.rmtree(tmp_path / "cache")  # as on another machine
    monkeypatch.setenv("ECEPHYS_CACHE_DIR", str(tmp_path / "worker"))
    assert job(SECOND) == len(EcephysProjectCache(project).get_session_data(SECOND).units)
    assert downloaded(tmp_path) == [f"session_{SECOND}.nwb"]
    assert (tmp_path / "worker" / "visual-coding-neuropixels" / f"session_{SECOND}").is_dir()


# -- on the cluster -------------------------------------------------------------------------------
def test_cluster_gives_the_in_process_answers(client, cache, expected, tmp_path):
    table = cache.map_sessions(flash_response_table, client=client, combine=pd.concat, progress=False)
    pd.testing.assert_frame_equal(table, pd.concat(expected))
    assert downloaded(tmp_path) == []


def test_cluster_downloads_into_the_worker_cache_dir(client, cache, expected, tmp_path):
    workers = tmp_path / "workers"
    results = cache.map_sessions(
        flash_response_table, client=client, stream=False, worker_cache_dir=workers, progress=False
    )
    assert_same_tables(results, expected)
    assert downloaded(workers) == sorted(f"session_{sid}.nwb" for sid in PROJECT_SESSIONS)


def test_killed_worker_is_replaced_and_the_result_complete(client, cache, expected, tmp_path):
    marker = tmp_path / "killed-once"
    fn = ExitOnce(flash_response_table, SECOND, str(marker))
    results = cache.map_sessions(fn, client=client, retries=0, progress=False)
    assert marker.exists()  # a worker did exit in the middle of the run
    assert_same_tables(results, expected)


def test_the_only_worker_killed_loses_nothing(cache, expected, tmp_path):
    # The job (cache and fn) lived on that worker only: Dask must make it again, not cancel the rest.
    marker = tmp_path / "killed-once"
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, dashboard_address=":0", silence_logs=logging.CRITICAL
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        results = cache.map_sessions(
            ExitOnce(flash_response_table, SECOND, str(marker)), client=client, retries=0, progress=False
        )
    assert marker.exists()
    assert_same_tables(results, expected)


def test_cluster_failure_names_the_session_and_keeps_the_others(client, cache, expected):
    with pytest.raises(SessionMapError, match=str(FIRST)) as caught:
        cache.map_sessions(FailFor(flash_response_table, (FIRST,)), client=client, retries=1, progress=False)
    assert_same_tables(caught.value.results, {s: expected[s] for s in (SECOND, THIRD)})
    assert isinstance(caught.value.errors[FIRST], ValueError)


def test_ecephys_errors_come_back_with_their_type(client, project, tmp_path):
    tables_only = tmp_path / "tables-only"  # a folder without the session files, and no fetcher
    tables_only.mkdir()
    for table in project.glob("*.csv"):
        shutil.copy(table, tables_only)
    fixed = EcephysProjectCache.fixed(tables_only)
    with pytest.raises(SessionMapError, match=f"{FIRST} \\(CacheFileNotFound") as caught:
        fixed.map_sessions(unit_count, [FIRST], client=client, stream=False, retries=0, progress=False)
    error = caught.value.errors[FIRST]
    assert isinstance(error, CacheFileNotFound)  # its type and attributes survived the trip
    assert error.key == f"session_{FIRST}/session_{FIRST}.nwb"
