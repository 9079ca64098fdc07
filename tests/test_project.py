"""EcephysProjectCache against the AllenSDK 2.16.2 cache answers, the real tables and a fake fetcher.

The fixture folders were filled by the AllenSDK: they are opened in place (read-only); anything
that writes works on a copy in tmp_path. The fake fetcher stands in for the network side, which
is tested with the download layer.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ecephys.cache.manifest as manifest_module
from ecephys.cache.manifest import CacheLayout, CacheManifest, part_path
from ecephys.errors import (
    CacheFileNotFound,
    EcephysWarning,
    ManifestError,
    MissingDataError,
    SessionFileNotFound,
    UnknownProbeError,
    UnknownSessionError,
)
from ecephys.project import BUCKET_URL, EcephysProjectCache, ProjectCache, TableFetcher, read_table_csv
from tests.reference import (
    FIXTURE_NAMES,
    FIXTURES,
    SESSION_ID,
    SHARED,
    assert_frame_matches_reference,
    assert_metadata_matches,
    load_json,
    load_reference_table,
    reference_dir,
)

REAL = SHARED / "real_data" / "allen_vcnp_ecephys_cache"
REAL_EXPORT = SHARED / "real_data" / "allen_vcnp_session_table_export" / "all_sessions.csv"
TABLES = ("sessions", "probes", "channels", "units")
ALL_UNITS = {"amplitude_cutoff_maximum": None, "presence_ratio_minimum": None, "isi_violations_maximum": None}
PROBE_IDS = (999001018, 999002018)


def cache_tables(cache: EcephysProjectCache) -> dict[str, pd.DataFrame]:
    """What the fixtures' ``cache_get_*`` references hold, computed by ``cache``."""
    return {
        "cache_get_session_table": cache.get_session_table(),
        "cache_get_probes": cache.get_probes(),
        "cache_get_channels": cache.get_channels(),
        "cache_get_units": cache.get_units(),
        "cache_get_units_unfiltered": cache.get_units(filter_by_validity=False, **ALL_UNITS),
    }


def files_under(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def copy_fixture(fixture: str, target: Path, *, tables: bool = True, nwb: bool = True) -> Path:
    """A writable copy of a fixture cache folder (without its references)."""
    source = FIXTURES / fixture
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "manifest.json", target / "manifest.json")
    if tables:
        for name in TABLES:
            shutil.copyfile(source / f"{name}.csv", target / f"{name}.csv")
    if nwb:
        shutil.copytree(source / f"session_{SESSION_ID}", target / f"session_{SESSION_ID}")
    for path in target.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def copy_real(target: Path) -> Path:
    """The real sessions.csv and probes.csv (no channels.csv, no units.csv) in a cache folder."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("manifest.json", "sessions.csv", "probes.csv"):
        shutil.copyfile(REAL / name, target / name)
        (target / name).chmod(0o644)
    return target


class FakeFetcher:
    """The network side, in memory: tables from a fixture's CSVs, files copied from it; counts calls."""

    def __init__(self, fixture: str, *, id_as_column: bool = False) -> None:
        self.source = FIXTURES / fixture
        self.id_as_column = id_as_column
        self.table_calls: list[str] = []
        self.file_calls: list[str] = []

    def get_table(self, name: str) -> pd.DataFrame:
        self.table_calls.append(name)
        frame = pd.read_csv(self.source / f"{name}.csv", index_col="id")
        return frame.reset_index() if self.id_as_column else frame

    def fetch_file(self, key: str, target: Path) -> Path:
        self.file_calls.append(key)
        part = target.with_name(target.name + ".part")
        shutil.copyfile(self.source / key, part)
        os.replace(part, target)
        return target

    def url(self, key: str) -> str:
        return f"http://127.0.0.1:1/{key}"


@pytest.fixture(scope="module", params=FIXTURE_NAMES)
def fixture_cache(request):
    """An EcephysProjectCache over the fixture folder as the AllenSDK left it."""
    return request.param, EcephysProjectCache(FIXTURES / request.param / "manifest.json")


@pytest.fixture(scope="module")
def fixture_tables(fixture_cache):
    fixture, cache = fixture_cache
    return fixture, cache_tables(cache)


@pytest.fixture(scope="module")
def fixture_session(fixture_cache):
    fixture, cache = fixture_cache
    session = cache.get_session_data(SESSION_ID)
    yield fixture, session
    session.close()


# -- project tables against the AllenSDK ----------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "cache_get_session_table",
        "cache_get_probes",
        "cache_get_channels",
        "cache_get_units",
        "cache_get_units_unfiltered",
    ],
)
def test_project_tables_match_allensdk(fixture_tables, name):
    fixture, tables = fixture_tables
    path = reference_dir(fixture, "cache") / f"{name}.json"
    frame = tables[name]
    assert_frame_matches_reference(frame, path)
    # Where the AllenSDK hands out numpy arrays (its own uniques) and where lists (sessions.csv).
    reference = load_json(path)
    if "ecephys_structure_acronyms" in frame:
        expected = reference["value_types"]["ecephys_structure_acronyms"]
        ours = sorted({type(v).__name__ for v in frame["ecephys_structure_acronyms"]})
        assert ours == expected


def test_every_cache_table_reference_is_compared(fixture_cache):
    fixture, _ = fixture_cache
    names = {p.stem for p in reference_dir(fixture, "cache").glob("cache_get_*.json")}
    assert names == {
        "cache_get_session_table",
        "cache_get_probes",
        "cache_get_channels",
        "cache_get_units",
        "cache_get_units_unfiltered",
    }


def test_probes_match_allensdk_csv(fixture_tables):
    fixture, tables = fixture_tables
    ours = tables["cache_get_probes"].drop(columns=["ecephys_structure_acronyms"])
    theirs = pd.read_csv(reference_dir(fixture, "cache") / "cache_get_probes.csv", index_col="id")
    theirs = theirs.drop(columns=["ecephys_structure_acronyms"])
    pd.testing.assert_frame_equal(
        ours, theirs.astype({"name": object, "phase": object, "structure_acronyms": object})
    )


def test_lfp_rate_is_divided_by_the_subsampling_factor(fixture_cache):
    _, cache = fixture_cache
    raw = read_table_csv(cache.layout.table("probes"))
    probes = cache.get_probes(suppress=[])
    np.testing.assert_array_equal(
        probes["lfp_sampling_rate"].to_numpy(),
        (raw["lfp_sampling_rate"] / raw["lfp_temporal_subsampling_factor"]).loc[probes.index].to_numpy(),
    )
    assert probes["lfp_sampling_rate"].between(1249, 1251).all()


def test_value_lists(fixture_cache):
    fixture, cache = fixture_cache
    ref = load_reference_table(reference_dir(fixture, "cache") / "cache_get_channels.json")
    acronyms = cache.get_structure_acronyms()
    expected = ref["ecephys_structure_acronym"].unique().tolist()
    assert [None if pd.isna(a) else a for a in acronyms] == [None if pd.isna(a) else a for a in expected]
    sessions = load_reference_table(reference_dir(fixture, "cache") / "cache_get_session_table.json")
    assert cache.get_all_session_types() == sessions["session_type"].unique().tolist()
    assert cache.get_all_full_genotypes() == sessions["full_genotype"].unique().tolist()
    assert cache.get_all_ages() == [112.0]
    assert cache.get_all_sexes() == ["M"]


def test_unit_filters_change_the_counts(fixture_cache):
    _, cache = fixture_cache
    assert cache.get_session_table()["unit_count"].tolist() == [7]
    assert cache.get_session_table(filter_by_validity=False, **ALL_UNITS)["unit_count"].tolist() == [16]
    assert cache.get_channels(filter_by_validity=False, **ALL_UNITS)["unit_count"].sum() == 16
    assert len(cache.get_units(filter_out_of_brain_units=False, filter_by_validity=False, **ALL_UNITS)) == 18


def test_unknown_unit_filter_raises_type_error_where_allensdk_ignores_it(fixture_cache):
    _, cache = fixture_cache
    with pytest.raises(TypeError, match="amplitude_cutof_maximum"):
        cache.get_units(amplitude_cutof_maximum=0.2)


# -- the session through the cache -----------------------------------------------------------


@pytest.mark.parametrize("table", ["channels", "units"])
def test_session_tables_get_the_cache_structure_columns(fixture_session, table):
    fixture, session = fixture_session
    frame = getattr(session, table)
    assert_frame_matches_reference(frame, reference_dir(fixture, "cache") / f"{table}.json")
    assert frame.shape[1] == {"channels": 11, "units": 40}[table]


def test_session_structures_and_summary_match_allensdk_cache(fixture_session):
    fixture, session = fixture_session
    ref = reference_dir(fixture, "cache")
    counts = session.structurewise_unit_counts
    expected_counts = load_json(ref / "structurewise_unit_counts.json")
    assert counts.name == expected_counts["columns"][0]
    assert counts.index.tolist() == expected_counts["index"]
    assert counts.tolist() == [row[0] for row in expected_counts["data"]]

    ours = session.metadata
    assert_metadata_matches(ours, load_json(ref / "metadata.json"))

    summary = load_json(ref / "session_summary.json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EcephysWarning)  # the invalid-interval warning, tested elsewhere
        assert len(session.spike_times) == summary["n_units_with_spike_times"]
    assert len(session.spike_amplitudes) == summary["n_spike_amplitude_units"]
    for key in (
        "num_units",
        "num_channels",
        "num_probes",
        "num_stimulus_presentations",
        "rig_equipment_name",
    ):
        assert ours[key] == summary[key], key


def test_channel_structure_intervals_use_the_cache_structure_ids(fixture_session):
    fixture, session = fixture_session
    expected = load_json(reference_dir(fixture, "cache") / "channel_structure_intervals_probe0.json")
    channels = session.channels.index[session.channels["probe_id"] == session.probes.index[0]]
    labels, intervals = session.channel_structure_intervals(channels)
    assert intervals.tolist() == expected["intervals"]
    assert [None if pd.isna(x) else x for x in labels] == [
        None if pd.isna(x) else x for x in expected["labels"]
    ]


def test_session_lfp_is_found_beside_the_session_file(fixture_session):
    _, session = fixture_session
    lfp = session.get_lfp(PROBE_IDS[0], mask_invalid_intervals=False, time=slice(33.0, 33.1))
    assert lfp.sizes["time"] > 0


def test_session_data_takes_unit_filters(fixture_cache):
    _, cache = fixture_cache
    with cache.get_session_data(SESSION_ID, filter_by_validity=False, **ALL_UNITS) as session:
        assert session.num_units == 16  # all 18 but the two out of the brain
        assert "ecephys_structure_acronym" in session.units


def test_an_allensdk_folder_is_used_as_it_is_with_zero_fetching(fixture_cache, tmp_path):
    fixture, _ = fixture_cache
    folder = copy_fixture(fixture, tmp_path / "c")
    before = files_under(folder)

    class NoNetwork:
        def get_table(self, name):
            raise AssertionError(f"fetched table {name}")

        def fetch_file(self, key, target):
            raise AssertionError(f"fetched {key}")

    cache = EcephysProjectCache(folder, fetcher=NoNetwork())
    cache_tables(cache)
    cache.get_session_data(SESSION_ID).close()
    cache.fetch_lfp_file(PROBE_IDS[1])
    assert files_under(folder) == before


def test_fixed_cache_works_where_allensdk_raises(fixture_cache):
    fixture, _ = fixture_cache
    assert "cache.fixed() (expected to fail in 2.16.2)" in load_json(
        reference_dir(fixture, "cache") / "errors.json"
    )
    cache = EcephysProjectCache.fixed(FIXTURES / fixture / "manifest.json")
    assert cache.fetcher is None
    assert len(cache.get_units()) == 7
    assert ProjectCache is EcephysProjectCache


# -- errors that say what to do --------------------------------------------------------------


@pytest.mark.parametrize(
    "method", ["get_session_data", "fetch_session_file", "get_unit_analysis_metrics_for_session"]
)
@pytest.mark.parametrize("session_id", [123, "abc", 999000002])
def test_unknown_session_id_is_a_clear_error(fixture_cache, method, session_id):
    _, cache = fixture_cache
    with pytest.raises(UnknownSessionError, match=rf"session {session_id!r} .*get_session_table\(\)\.index"):
        getattr(cache, method)(session_id)
    with pytest.raises(KeyError):
        getattr(cache, method)(session_id)


@pytest.mark.parametrize(
    ("probe_id", "error", "match"),
    [
        (1, UnknownProbeError, r"probe 1 is not in the project's probe table"),
        ("probeA", UnknownProbeError, r"get_probes\(\)\.index"),
    ],
)
def test_unknown_probe_is_a_clear_error(fixture_cache, probe_id, error, match):
    _, cache = fixture_cache
    with pytest.raises(error, match=match):
        cache.fetch_lfp_file(probe_id)


def test_missing_session_file_in_a_plain_folder_says_how_to_get_it(tmp_path):
    folder = copy_fixture("vcn2020_tiny", tmp_path / "c", nwb=False)
    cache = EcephysProjectCache(folder)
    key = f"session_{SESSION_ID}/session_{SESSION_ID}.nwb"
    with pytest.raises(CacheFileNotFound) as info:
        cache.get_session_data(SESSION_ID)
    message = str(info.value)
    assert key in message and str(folder) in message
    assert BUCKET_URL + key in message and "fetcher=" in message
    assert info.value.key == key and Path(info.value.path) == folder / key
    assert isinstance(info.value, SessionFileNotFound) and isinstance(info.value, FileNotFoundError)
    with pytest.raises(CacheFileNotFound, match=rf"probe_{PROBE_IDS[0]}_lfp\.nwb"):
        cache.fetch_lfp_file(PROBE_IDS[0])


@pytest.mark.parametrize("missing", TABLES)
def test_missing_table_in_a_plain_folder_says_how_to_get_it(tmp_path, missing):
    folder = copy_fixture("vcn2020_tiny", tmp_path / "c", nwb=False)
    (folder / f"{missing}.csv").unlink()
    cache = EcephysProjectCache(folder)
    with pytest.raises(CacheFileNotFound, match=rf"{missing}\.csv is not in the cache folder .*{BUCKET_URL}"):
        cache.get_units()


def test_probe_without_lfp_is_a_clear_error(tmp_path):
    cache = EcephysProjectCache(copy_real(tmp_path / "real"))
    with pytest.raises(MissingDataError, match=r"probe 846401834 \(probeC\) of session 839557629 has no LFP"):
        cache.fetch_lfp_file(846401834)


# -- the fetcher: missing tables and files are fetched once, written atomically, reused -------


def test_missing_tables_are_fetched_once_written_atomically_and_reused(tmp_path, monkeypatch):
    folder = tmp_path / "new" / "cache"
    fetcher = FakeFetcher("vcn2020_tiny")
    assert isinstance(fetcher, TableFetcher)
    replaced: list[tuple[str, str]] = []
    real_replace = os.replace

    def recording_replace(src, dst):
        assert not Path(dst).exists()  # nothing half-written ever sits at the final path
        replaced.append((Path(src).name, Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(manifest_module.os, "replace", recording_replace)
    cache = EcephysProjectCache(folder, fetcher=fetcher)
    assert not folder.exists()  # constructing writes nothing
    tables = cache_tables(cache)
    assert sorted(fetcher.table_calls) == sorted(TABLES)
    assert sorted(replaced) == sorted(
        [(f"{n}.csv.part", f"{n}.csv") for n in TABLES] + [("manifest.json.part", "manifest.json")]
    )
    assert not list(folder.glob("*.part"))
    assert CacheManifest.read(folder / "manifest.json") == CacheManifest.standard()
    for name, frame in tables.items():
        assert_frame_matches_reference(frame, reference_dir("vcn2020_tiny", "cache") / f"{name}.json")

    again = EcephysProjectCache(folder, fetcher=fetcher)
    cache_tables(again)
    assert sorted(fetcher.table_calls) == sorted(TABLES)  # no second fetch
    for name in TABLES:
        pd.testing.assert_frame_equal(
            read_table_csv(folder / f"{name}.csv"), read_table_csv(FIXTURES / "vcn2020_tiny" / f"{name}.csv")
        )


def test_fetched_table_with_an_id_column_is_written_with_its_ids(tmp_path):
    fetcher = FakeFetcher("sdk2162_tiny", id_as_column=True)
    cache = EcephysProjectCache(tmp_path / "c", fetcher=fetcher)
    assert_frame_matches_reference(
        cache.get_probes(), reference_dir("sdk2162_tiny", "cache") / "cache_get_probes.json"
    )


def test_fetched_table_without_ids_is_refused(tmp_path):
    class NoIds(FakeFetcher):
        def get_table(self, name):
            return super().get_table(name).reset_index(drop=True)

    cache = EcephysProjectCache(tmp_path / "c", fetcher=NoIds("vcn2020_tiny"))
    with pytest.raises(ValueError, match=r"neither an 'id' index nor an 'id' column"):
        cache.get_session_table()
    assert not list((tmp_path / "c").glob("*.csv*"))


def test_failed_table_write_leaves_neither_table_nor_part_file(tmp_path, monkeypatch):
    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(manifest_module.os, "replace", failing_replace)
    folder = tmp_path / "c"
    folder.mkdir()
    shutil.copyfile(FIXTURES / "vcn2020_tiny" / "manifest.json", folder / "manifest.json")
    cache = EcephysProjectCache(folder, fetcher=FakeFetcher("vcn2020_tiny"))
    with pytest.raises(OSError, match="disk full"):
        cache.get_session_table()
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json"]


def test_missing_session_file_is_fetched_once_then_reused(tmp_path):
    folder = copy_fixture("sdk2162_tiny", tmp_path / "c", nwb=False)
    fetcher = FakeFetcher("sdk2162_tiny")
    cache = EcephysProjectCache(folder, fetcher=fetcher)
    key = f"session_{SESSION_ID}/session_{SESSION_ID}.nwb"
    with cache.get_session_data(SESSION_ID) as session:
        assert_frame_matches_reference(session.units, reference_dir("sdk2162_tiny", "cache") / "units.json")
    with cache.get_session_data(SESSION_ID):
        pass
    assert fetcher.file_calls == [key]
    assert fetcher.table_calls == []
    assert (
        cache.fetch_lfp_file(PROBE_IDS[1])
        == folder / f"session_{SESSION_ID}" / f"probe_{PROBE_IDS[1]}_lfp.nwb"
    )
    assert fetcher.file_calls == [key, f"session_{SESSION_ID}/probe_{PROBE_IDS[1]}_lfp.nwb"]
    assert not list(folder.rglob("*.part"))


def test_download_links_list_session_and_lfp_files(tmp_path):
    folder = copy_fixture("vcn2020_tiny", tmp_path / "c", nwb=False)
    links = EcephysProjectCache(folder).download_links()
    assert links["kind"].tolist() == ["session_nwb", "probe_lfp_nwb", "probe_lfp_nwb"]
    assert links["key"].tolist() == [
        f"session_{SESSION_ID}/session_{SESSION_ID}.nwb",
        *(f"session_{SESSION_ID}/probe_{p}_lfp.nwb" for p in PROBE_IDS),
    ]
    assert links["probe_id"].tolist() == [pd.NA, *PROBE_IDS]
    assert links["url"].tolist() == [BUCKET_URL + k for k in links["key"]]
    assert links["path"].tolist() == [str(folder / k) for k in links["key"]]
    assert not links["exists"].any()
    with_fetcher = EcephysProjectCache(FIXTURES / "vcn2020_tiny", fetcher=FakeFetcher("vcn2020_tiny"))
    links = with_fetcher.download_links()
    assert links["url"].str.startswith("http://127.0.0.1:1/session_").all()
    assert links["exists"].all()


# -- the real project tables (sessions.csv and probes.csv only) -------------------------------


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory):
    return EcephysProjectCache(copy_real(tmp_path_factory.mktemp("real")))


def test_real_probes_without_channels_or_units(real_cache):
    probes = real_cache.get_probes()
    assert probes.shape == (332, 9)
    assert probes.index.name == "id"
    assert list(probes.columns) == [
        "ecephys_session_id",
        "lfp_sampling_rate",
        "name",
        "phase",
        "sampling_rate",
        "has_lfp_data",
        "unit_count",
        "channel_count",
        "ecephys_structure_acronyms",
    ]
    assert probes["phase"].value_counts().to_dict() == {"3a": 314, "PXI": 18}
    assert set(probes.loc[probes["phase"] == "PXI", "ecephys_session_id"]) == {
        839068429,
        840012044,
        847657808,
    }
    no_lfp = probes.index[~probes["has_lfp_data"]]
    assert len(no_lfp) == 7
    assert {773463023, 832810584} <= set(no_lfp)
    assert (probes["sampling_rate"] == 0.0).sum() == 1
    assert probes.loc[probes["sampling_rate"] == 0.0, "name"].tolist() == ["probeC"]

    with_factor = real_cache.get_probes(suppress=[])
    unknown_factor = with_factor["lfp_temporal_subsampling_factor"].isna()
    assert with_factor.index[unknown_factor].tolist() == [
        846401828,
        846401830,
        846401834,
        846401838,
        846401841,
    ]
    assert (with_factor.loc[unknown_factor, "ecephys_session_id"] == 839557629).all()
    assert not with_factor.loc[unknown_factor, "has_lfp_data"].any()
    assert with_factor.loc[unknown_factor, "lfp_sampling_rate"].isna().all()  # rate / NaN
    rates = with_factor.loc[~unknown_factor, "lfp_sampling_rate"]
    assert rates.between(1249.9, 1250.1).all() and len(rates) == 327


def test_real_probes_counts_are_missing_without_channels_and_units_where_allensdk_needs_them(real_cache):
    probes = real_cache.get_probes()
    assert str(probes["unit_count"].dtype) == "Int64" and probes["unit_count"].isna().all()
    assert str(probes["channel_count"].dtype) == "Int64" and probes["channel_count"].isna().all()
    assert probes["ecephys_structure_acronyms"].isna().all()
    with pytest.raises(CacheFileNotFound, match=r"channels\.csv"):
        real_cache.get_channels()


def test_real_probes_come_grouped_by_session_as_allensdk_orders_them(real_cache):
    raw = read_table_csv(REAL / "probes.csv")
    probes = real_cache.get_probes()
    first_seen = pd.unique(raw["ecephys_session_id"])
    expected = np.concatenate([raw.index[raw["ecephys_session_id"] == s].to_numpy() for s in first_seen])
    assert probes.index.tolist() == expected.tolist()
    assert probes.index.tolist() != raw.index.tolist()  # probes.csv itself is not grouped


def test_real_session_table_matches_allensdk_export(real_cache):
    sessions = real_cache.get_session_table()
    export = pd.read_csv(REAL_EXPORT, index_col="id")
    assert list(sessions.columns) == list(export.columns)
    assert sessions.index.tolist() == export.index.tolist()
    assert sessions["session_type"].value_counts().to_dict() == {
        "brain_observatory_1.1": 32,
        "functional_connectivity": 26,
    }
    for name in (
        "published_at",
        "specimen_id",
        "session_type",
        "age_in_days",
        "sex",
        "full_genotype",
        "probe_count",
    ):
        assert sessions[name].tolist() == export[name].tolist(), name
    assert sessions["probe_count"].sum() == 332
    assert sessions["unit_count"].isna().all() and sessions["channel_count"].isna().all()
    assert real_cache.get_all_session_types() == ["brain_observatory_1.1", "functional_connectivity"]


def test_real_download_links(real_cache):
    links = real_cache.download_links()
    assert (links["kind"] == "session_nwb").sum() == 58
    assert (links["kind"] == "probe_lfp_nwb").sum() == 332 - 7
    assert links.loc[0, "key"] == "session_715093703/session_715093703.nwb"
    assert links["url"].str.startswith(BUCKET_URL).all()


# -- analysis metrics --------------------------------------------------------------------------


def write_metrics(path: Path, unit_ids: list[int]) -> pd.DataFrame:
    metrics = pd.DataFrame(
        {
            "pref_ori_dg": np.arange(len(unit_ids), dtype=float) * 45.0,
            "firing_rate_dg": np.linspace(1, 5, len(unit_ids)),
        },
        index=pd.Index(unit_ids, name="ecephys_unit_id"),
    )
    metrics.to_csv(path)
    return metrics


@pytest.fixture
def metrics_folder(tmp_path):
    folder = copy_fixture("vcn2020_tiny", tmp_path / "c", nwb=False)
    units = read_table_csv(folder / "units.csv")
    # the session's units plus one of another session
    write_metrics(folder / "brain_observatory_1.1_analysis_metrics.csv", [*units.index.tolist(), 123])
    return folder


def test_metrics_by_session_type(metrics_folder):
    cache = EcephysProjectCache(metrics_folder)
    raw = cache.get_unit_analysis_metrics_by_session_type("brain_observatory_1.1", annotate=False)
    assert raw.shape == (19, 2) and raw.index.name == "ecephys_unit_id"
    annotated = cache.get_unit_analysis_metrics_by_session_type("brain_observatory_1.1")
    units = cache.get_units()
    assert annotated.index.tolist() == units.index.tolist()
    assert annotated.index.name == "ecephys_unit_id"
    assert list(annotated.columns) == [*units.columns, "pref_ori_dg", "firing_rate_dg"]
    everything = cache.get_unit_analysis_metrics_by_session_type(
        "brain_observatory_1.1", filter_by_validity=False, filter_out_of_brain_units=False, **ALL_UNITS
    )
    assert len(everything) == 18
    with pytest.raises(ValueError, match=r"unrecognized session type: 'drifting'.*brain_observatory_1\.1"):
        cache.get_unit_analysis_metrics_by_session_type("drifting")


def test_metrics_for_session_from_the_session_type_table(metrics_folder):
    cache = EcephysProjectCache(metrics_folder)
    raw = cache.get_unit_analysis_metrics_for_session(SESSION_ID, annotate=False)
    assert 123 not in raw.index and len(raw) == 18
    annotated = cache.get_unit_analysis_metrics_for_session(SESSION_ID)
    assert annotated.index.tolist() == cache.get_units().index.tolist()
    assert annotated.index.name == "ecephys_unit_id"


def test_metrics_for_session_prefer_the_session_file(metrics_folder):
    session_file = metrics_folder / f"session_{SESSION_ID}" / f"session_{SESSION_ID}_analysis_metrics.csv"
    session_file.parent.mkdir()
    written = write_metrics(session_file, [999500001, 999500002])
    cache = EcephysProjectCache(metrics_folder)
    pd.testing.assert_frame_equal(
        cache.get_unit_analysis_metrics_for_session(SESSION_ID, annotate=False), written
    )
    assert cache.get_unit_analysis_metrics_for_session(SESSION_ID).index.tolist() == [999500001, 999500002]


def test_missing_metrics_are_fetched_by_session_type(tmp_path):
    folder = copy_fixture("vcn2020_tiny", tmp_path / "c", nwb=False)

    class MetricsFetcher(FakeFetcher):
        def fetch_file(self, key, target):
            self.file_calls.append(key)
            write_metrics(target, [999500001, 999510001])
            return target

    fetcher = MetricsFetcher("vcn2020_tiny")
    cache = EcephysProjectCache(folder, fetcher=fetcher)
    assert len(cache.get_unit_analysis_metrics_for_session(SESSION_ID, annotate=False)) == 2
    assert len(cache.get_unit_analysis_metrics_by_session_type("brain_observatory_1.1", annotate=False)) == 2
    assert fetcher.file_calls == ["brain_observatory_1.1_analysis_metrics.csv"]
    with pytest.raises(CacheFileNotFound, match=r"brain_observatory_1\.1_analysis_metrics\.csv"):
        EcephysProjectCache(
            copy_fixture("vcn2020_tiny", tmp_path / "d", nwb=False)
        ).get_unit_analysis_metrics_by_session_type("brain_observatory_1.1")


# -- deliberate differences --------------------------------------------------------------------


def test_infinite_thresholds_keep_units_with_nan_metrics_where_allensdk_drops_them(tmp_path):
    folder = copy_fixture("vcn2020_tiny", tmp_path / "c", nwb=False)
    units = pd.read_csv(folder / "units.csv", index_col="id")
    units.loc[999500001, "amplitude_cutoff"] = np.nan
    units.to_csv(folder / "units.csv")
    cache = EcephysProjectCache(folder)
    assert 999500001 in cache.get_units(**ALL_UNITS).index
    assert 999500001 not in cache.get_units().index  # a finite threshold compares, NaN fails


def test_probe_without_channels_gets_empty_structures_where_allensdk_puts_zero(tmp_path):
    folder = copy_fixture("vcn2020_tiny", tmp_path / "c", nwb=False)
    channels = pd.read_csv(folder / "channels.csv", index_col="id")
    channels[channels["ecephys_probe_id"] != PROBE_IDS[1]].to_csv(folder / "channels.csv")
    probes = EcephysProjectCache(folder).get_probes()
    empty = probes.at[PROBE_IDS[1], "ecephys_structure_acronyms"]
    assert isinstance(empty, np.ndarray) and empty.size == 0
    assert probes.at[PROBE_IDS[1], "channel_count"] == 0 and probes.at[PROBE_IDS[1], "unit_count"] == 0


# -- the folder layout ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", [REAL / "manifest.json", *(FIXTURES / f / "manifest.json" for f in FIXTURE_NAMES)], ids=str
)
def test_manifest_round_trips_byte_for_byte(path):
    manifest = CacheManifest.read(path)
    assert manifest == CacheManifest.standard()
    assert manifest.to_json() == path.read_text()


def test_layout_paths_and_keys(tmp_path):
    layout = CacheLayout(tmp_path)
    assert layout.session_nwb(715093703) == tmp_path / "session_715093703" / "session_715093703.nwb"
    assert (
        layout.probe_lfp_nwb(715093703, 729445648)
        == tmp_path / "session_715093703" / "probe_729445648_lfp.nwb"
    )
    assert layout.session_analysis_metrics(5) == tmp_path / "session_5" / "session_5_analysis_metrics.csv"
    assert layout.typewise_analysis_metrics("functional_connectivity") == (
        tmp_path / "functional_connectivity_analysis_metrics.csv"
    )
    assert layout.natural_movie(1) == tmp_path / "natural_movie_templates" / "natural_movie_1.h5"
    assert layout.natural_scene(7) == tmp_path / "natural_scene_templates" / "natural_scene_7.tiff"
    assert [layout.table(n).name for n in TABLES] == [f"{n}.csv" for n in TABLES]
    assert CacheLayout.key("probe_lfp_nwb", 1, 2) == "session_1/probe_2_lfp.nwb"
    assert part_path(layout.table("units")) == tmp_path / "units.csv.part"
    with pytest.raises(ValueError, match="unknown table"):
        layout.table("stimuli")


def test_manifest_with_its_own_paths_is_followed(tmp_path):
    data = CacheManifest.standard().to_dict()
    for entry in data["manifest"]:
        if entry.get("key") == "session_data":
            entry["spec"] = "nwb/session_%d"
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    cache = EcephysProjectCache(tmp_path / "manifest.json")
    assert cache.layout.session_nwb(5) == tmp_path / "nwb" / "session_5" / "session_5.nwb"
    assert CacheLayout.key("session_nwb", 5, 5) == "session_5/session_5.nwb"  # the bucket's layout


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (
            '{"manifest": [{"type": "manifest_version", "value": "0.2.0"}]}',
            r"version '0\.2\.0', expected '0\.3\.0'",
        ),
        ('{"manifest": [{"type": "manifest_version", "value": "0.3.0"}]}', r"lacks the entries \['BASEDIR'"),
        ("{not json", r"not valid JSON"),
        ('{"files": []}', r'"manifest" list'),
    ],
)
def test_bad_manifest_is_a_clear_error(tmp_path, content, match):
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(ManifestError, match=match):
        EcephysProjectCache(tmp_path)


def test_default_folder_follows_the_environment_and_is_not_created(tmp_path, monkeypatch):
    monkeypatch.setenv("ECEPHYS_CACHE_DIR", str(tmp_path / "env"))
    cache = EcephysProjectCache()
    assert cache.cache_dir == tmp_path / "env" / "visual-coding-neuropixels"
    assert cache.manifest_path == cache.cache_dir / "manifest.json"
    assert not (tmp_path / "env").exists()
    assert "folder only" in repr(cache)


def test_fetcher_that_returns_a_missing_path_is_a_clear_error(tmp_path):
    class Liar(FakeFetcher):
        def fetch_file(self, key, target):
            return target

    folder = copy_fixture("vcn2020_tiny", tmp_path / "c", nwb=False)
    cache = EcephysProjectCache(folder, fetcher=Liar("vcn2020_tiny"))
    with pytest.raises(CacheFileNotFound, match=r"Liar\.fetch_file\('session_999000001/.*does not exist"):
        cache.fetch_session_file(SESSION_ID)
