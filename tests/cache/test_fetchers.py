"""The fetchers fill an empty EcephysProjectCache from the warehouse emulator or a folder source."""

from __future__ import annotations

import pandas as pd
import pytest

from ecephys.cache.fetchers import SourceFetcher, WarehouseFetcher
from ecephys.errors import RemoteNotFound
from ecephys.project import EcephysProjectCache
from ecephys.sources import HTTPSource, LocalSource, RetryPolicy, WarehouseClient
from ecephys.testing.servers import Fault
from tests.transport import TINY, copy_tree, need

SID, PID = 999000001, 999001018


@pytest.fixture(scope="module")
def tiny_copy(tmp_path_factory):
    """A writable copy of the vcn2020_tiny folder (tables and session files)."""
    need(TINY / "units.csv")
    return copy_tree(TINY, tmp_path_factory.mktemp("tiny") / "cache")


def test_warehouse_fetcher_fills_an_empty_cache(tiny_warehouse, tiny_copy, tmp_path):
    client = WarehouseClient("http", tiny_warehouse.host, retry=RetryPolicy(sleep=lambda s: None))
    cache = EcephysProjectCache(tmp_path / "empty", fetcher=WarehouseFetcher(client, progress=False))
    reference = EcephysProjectCache(tiny_copy)
    # The tiny sessions.csv is not warehouse-made (see test_warehouse): its columns come back in
    # the warehouse's order, so the tables that carry session columns are compared by name.
    pd.testing.assert_frame_equal(cache.get_probes(), reference.get_probes())
    pd.testing.assert_frame_equal(cache.get_units(), reference.get_units(), check_like=True)
    pd.testing.assert_frame_equal(cache.get_session_table(), reference.get_session_table(), check_like=True)
    session = cache.fetch_session_file(SID)
    assert session.read_bytes() == (tiny_copy / f"session_{SID}" / f"session_{SID}.nwb").read_bytes()
    lfp = cache.fetch_lfp_file(PID)
    assert lfp.read_bytes() == (tiny_copy / f"session_{SID}" / f"probe_{PID}_lfp.nwb").read_bytes()
    assert sorted(p.name for p in session.parent.iterdir()) == sorted(
        [session.name, lfp.name, session.name + ".lock", lfp.name + ".lock"]
    )


def test_warehouse_fetcher_refuses_other_keys(tiny_warehouse, tmp_path):
    fetcher = WarehouseFetcher(WarehouseClient("http", tiny_warehouse.host))
    with pytest.raises(RemoteNotFound, match="use a SourceFetcher"):
        fetcher.fetch_file("natural_scene_templates/natural_scene_1.tiff", tmp_path / "x.tiff")
    with pytest.raises(ValueError, match="table 'stimuli'"):
        fetcher.get_table("stimuli")


def test_source_fetcher_over_http_with_faults(file_server, tiny_copy, tmp_path):
    for path in sorted(p for p in tiny_copy.rglob("*") if p.is_file()):
        file_server.add_file(path.relative_to(tiny_copy).as_posix(), path)
    file_server.faults.push(Fault(status=503), Fault(drop_after=1000))
    fetcher = SourceFetcher(
        HTTPSource(file_server.base_url + "/"), progress=False, retries=RetryPolicy(sleep=lambda s: None)
    )
    cache = EcephysProjectCache(tmp_path / "empty", fetcher=fetcher)
    pd.testing.assert_frame_equal(cache.get_channels(), EcephysProjectCache(tiny_copy).get_channels())
    assert (
        cache.fetch_session_file(SID).stat().st_size
        == (tiny_copy / f"session_{SID}" / f"session_{SID}.nwb").stat().st_size
    )
    assert fetcher.url("sessions.csv") == file_server.url("sessions.csv")


def test_source_fetcher_over_a_folder(tiny_copy, tmp_path):
    cache = EcephysProjectCache(
        tmp_path / "empty", fetcher=SourceFetcher(LocalSource(tiny_copy), progress=False)
    )
    pd.testing.assert_frame_equal(
        cache.get_session_table(), EcephysProjectCache(tiny_copy).get_session_table()
    )
