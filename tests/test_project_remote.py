"""EcephysProjectCache filled from the warehouse emulator and from moto's S3, over real sockets."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecephys import EcephysProjectCache
from ecephys.cache.fetchers import SourceFetcher
from ecephys.errors import EcephysWarning, MissingDataError, TruncatedFileError
from ecephys.sources import HTTPSource
from ecephys.testing.servers import upload_folder
from ecephys.testing.warehouse import WarehouseServer
from tests.transport import BUCKET, PREFIX, PROJECT_SESSIONS, TINY

DOWNLOADS = "/api/v2/well_known_file_download/"


def file_downloads(server) -> list[str]:
    return [r.path for r in server.records if r.path.startswith(DOWNLOADS) and r.method == "GET"]


def host_of(server) -> str:
    return server.base_url.split("://", 1)[1]


def lfp_of(session, probe_id):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EcephysWarning)
        return session.get_lfp(probe_id)


def test_from_warehouse_downloads_session_and_lfp_once(project, project_warehouse, tmp_path):
    cache = EcephysProjectCache.from_warehouse(
        scheme="http",
        host=host_of(project_warehouse),
        manifest=tmp_path / "cache" / "manifest.json",
        timeout=10,
    )
    local = EcephysProjectCache(project)
    pd.testing.assert_frame_equal(cache.get_probes(), local.get_probes())
    assert cache.get_session_table().index.tolist() == list(PROJECT_SESSIONS)

    sid = PROJECT_SESSIONS[0]
    session = cache.get_session_data(sid)
    target = tmp_path / "cache" / f"session_{sid}" / f"session_{sid}.nwb"
    assert target.read_bytes() == (project / f"session_{sid}" / f"session_{sid}.nwb").read_bytes()
    assert not list(target.parent.glob("*.part"))
    assert (tmp_path / "cache" / "manifest.json").exists()
    probe_id = int(session.probes.index[0])
    lfp = lfp_of(session, probe_id)
    expected = lfp_of(local.get_session_data(sid), probe_id)
    np.testing.assert_array_equal(lfp.values, expected.values)
    assert len(file_downloads(project_warehouse)) == 2

    again = EcephysProjectCache.from_warehouse(
        scheme="http", host=host_of(project_warehouse), manifest=tmp_path / "cache" / "manifest.json"
    )
    lfp_of(again.get_session_data(sid), probe_id)
    assert len(file_downloads(project_warehouse)) == 2  # both files reused, nothing fetched again


def test_probe_without_lfp_file_is_named(project, project_warehouse, tmp_path):
    cache = EcephysProjectCache.from_warehouse(
        scheme="http", host=host_of(project_warehouse), manifest=tmp_path / "manifest.json"
    )
    probes = cache.get_probes()
    no_lfp = probes.index[~probes["has_lfp_data"]]
    assert len(no_lfp) == 1
    session = cache.get_session_data(int(probes.at[no_lfp[0], "ecephys_session_id"]))
    with pytest.raises(MissingDataError, match=rf"probe {no_lfp[0]} .* has no LFP file"):
        session.get_lfp(int(no_lfp[0]))


def test_truncated_file_from_an_older_tool_is_fetched_again(project, project_warehouse, tmp_path):
    sid = PROJECT_SESSIONS[1]
    original = project / f"session_{sid}" / f"session_{sid}.nwb"
    target = tmp_path / f"session_{sid}" / f"session_{sid}.nwb"
    target.parent.mkdir(parents=True)
    target.write_bytes(original.read_bytes()[: original.stat().st_size // 2])  # as the AllenSDK leaves it
    for table in project.glob("*.csv"):
        shutil.copy(table, tmp_path)

    with pytest.raises(TruncatedFileError, match="not whole .* delete it and download it again"):
        EcephysProjectCache(tmp_path).get_session_data(sid)

    cache = EcephysProjectCache.from_warehouse(
        scheme="http", host=host_of(project_warehouse), manifest=tmp_path
    )
    session = cache.get_session_data(sid)
    assert target.read_bytes() == original.read_bytes()
    assert session.num_probes == 2


def test_from_s3_reads_the_bucket_layout(project, moto, tmp_path):
    upload_folder(moto.endpoint_url, project, bucket=BUCKET, prefix=PREFIX)
    cache = EcephysProjectCache.from_s3(
        tmp_path / "manifest.json", endpoint_url=moto.endpoint_url, timeout=10
    )
    pd.testing.assert_frame_equal(cache.get_probes(), EcephysProjectCache(project).get_probes())
    sid = PROJECT_SESSIONS[2]
    session = cache.get_session_data(sid)
    assert session.ecephys_session_id == sid
    probe_id = int(session.probes.index[0])
    assert lfp_of(session, probe_id).sizes["time"] > 0
    assert (tmp_path / f"session_{sid}" / f"probe_{probe_id}_lfp.nwb").read_bytes() == (
        project / f"session_{sid}" / f"probe_{probe_id}_lfp.nwb"
    ).read_bytes()


def test_allensdk_cache_folder_is_used_as_it_is_with_zero_downloads(file_server):
    """The fixture folder was filled by the AllenSDK; a cache with a fetcher must not fetch anything."""
    cache = EcephysProjectCache(
        TINY / "manifest.json", fetcher=SourceFetcher(HTTPSource(file_server.base_url))
    )
    assert len(cache.get_session_table()) == 1
    assert len(cache.get_units()) > 0
    session = cache.get_session_data(999000001)
    assert lfp_of(session, 999001018).sizes["channel"] == 8
    assert "ecephys_structure_acronym" in session.units
    assert file_server.records == []


def test_download_links_name_the_remote_files(project, project_warehouse, tmp_path: Path):
    cache = EcephysProjectCache.from_s3(tmp_path, endpoint_url="http://127.0.0.1:1")
    shutil.copy(project / "sessions.csv", tmp_path)
    shutil.copy(project / "probes.csv", tmp_path)
    links = cache.download_links()
    assert (links["kind"] == "session_nwb").sum() == len(PROJECT_SESSIONS)
    assert (links["kind"] == "probe_lfp_nwb").sum() == 2 * len(PROJECT_SESSIONS) - 1  # one probe lacks LFP
    assert links["url"].str.startswith("http://127.0.0.1:1/").all()
    assert not links["exists"].any()


def test_analysis_metrics_come_from_the_warehouse_like_the_folder(project, tmp_path):
    folder = tmp_path / "project"
    shutil.copytree(project, folder)
    sessions = pd.read_csv(folder / "sessions.csv")
    session_type = sessions["session_type"].iloc[0]
    of_type = sessions.loc[sessions["session_type"] == session_type, "id"]
    probes = pd.read_csv(folder / "probes.csv")
    channels = pd.read_csv(folder / "channels.csv")
    probe_ids = probes.loc[probes["ecephys_session_id"].isin(of_type), "id"]
    channel_ids = channels.loc[channels["ecephys_probe_id"].isin(probe_ids), "id"]
    units = pd.read_csv(folder / "units.csv")
    units = units[units["ecephys_channel_id"].isin(channel_ids)]  # a typewise table holds that type's units
    rng = np.random.default_rng(0)
    metrics = pd.DataFrame(
        {
            "ecephys_unit_id": units["id"],
            "pref_ori_dg": rng.choice([0.0, 45.0, 90.0], len(units)),
            "g_osi_dg": rng.random(len(units)),
        }
    )
    metrics.to_csv(folder / f"{session_type}_analysis_metrics.csv", index=False)
    local = EcephysProjectCache(folder).get_unit_analysis_metrics_by_session_type(session_type)
    assert len(local) > 0
    with WarehouseServer(folder) as server:
        cache = EcephysProjectCache.from_warehouse(
            scheme="http", host=host_of(server), manifest=tmp_path / "cache" / "manifest.json"
        )
        fetched = cache.get_unit_analysis_metrics_by_session_type(session_type)
    pd.testing.assert_frame_equal(fetched, local)
    assert (tmp_path / "cache" / f"{session_type}_analysis_metrics.csv").exists()
