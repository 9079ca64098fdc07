"""get_sessions / load_catalog: folders, CSV catalogs and lists of files; filters; files really closed."""

from __future__ import annotations

import gc
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from ecephys import SessionId, get_sessions
from ecephys.catalog import load_catalog
from ecephys.errors import CatalogError, SessionFileNotFound
from ecephys.testing import make_dynamic_routing_session, make_session

ALLEN_IDS = (999000300, 999000200)
pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files in /proc")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Two Allen sessions (with LFP files), two Mindscope-named files and one file without an id."""
    root = tmp_path_factory.mktemp("catalog")
    for sid in ALLEN_IDS:
        make_session(
            root / "allen", session_id=sid, n_probes=1, units_per_probe=3, duration=30.0, lfp_duration=2.0
        )
    source = root / "allen" / "session_999000200" / "session_999000200.nwb"
    for name in (
        "DRpilot_668755_20230831/668755_2023-08-31.nwb",
        "626791_2022-08-15_1.nwb",
        "misc/other.nwb",
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, root / name)
    return root


EXPECTED_ORDER = [
    ("allen/session_999000200/session_999000200.nwb", "999000200", None),
    ("allen/session_999000300/session_999000300.nwb", "999000300", None),
    ("626791_2022-08-15_1.nwb", "626791_2022-08-15_1", "626791"),
    ("DRpilot_668755_20230831/668755_2023-08-31.nwb", "668755_2023-08-31", "668755"),
    ("misc/other.nwb", None, None),
]


def open_descriptors(path: Path) -> int:
    """How many of this process's file descriptors point at ``path``."""
    target, count = os.path.realpath(path), 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            count += os.readlink(fd) == target
        except OSError:
            continue
    return count


def every_file(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.nwb"))


def test_a_folder_is_cataloged_by_session_id_without_lfp_files(folder):
    catalog = load_catalog(folder)
    assert [str(p.relative_to(folder)) for p in catalog["path"]] == [e[0] for e in EXPECTED_ORDER]
    assert catalog["session_id"].tolist() == [e[1] for e in EXPECTED_ORDER]
    assert catalog["subject_id"].tolist() == [e[2] for e in EXPECTED_ORDER]
    assert [str(d) if d else None for d in catalog["date"]] == [None, None, "2022-08-15", "2023-08-31", None]
    assert any("probe_" in p.name for p in every_file(folder))  # the LFP files are there, just not listed


def test_each_session_is_open_during_its_turn_only(folder):
    paths = load_catalog(folder)["path"].tolist()
    seen = []
    for position, session in enumerate(get_sessions(folder)):
        seen.append(session)
        assert open_descriptors(paths[position]) >= 1
        assert [open_descriptors(p) for p in paths[:position]] == [0] * position
    assert len(seen) == len(paths)
    assert [open_descriptors(p) for p in every_file(folder)] == [0] * len(every_file(folder))


def test_breaking_out_or_dropping_the_generator_closes_the_session(folder):
    first = load_catalog(folder)["path"][0]
    for _ in get_sessions(folder):
        assert open_descriptors(first) >= 1
        break
    gc.collect()
    assert open_descriptors(first) == 0

    sessions = get_sessions(folder)
    next(sessions)
    assert open_descriptors(first) >= 1
    sessions.close()
    assert open_descriptors(first) == 0

    sessions = get_sessions(folder)
    next(sessions)
    del sessions
    gc.collect()
    assert open_descriptors(first) == 0


def test_an_error_in_the_loop_closes_the_session(folder):
    first = load_catalog(folder)["path"][0]
    with pytest.raises(ZeroDivisionError):
        for _ in get_sessions(folder):
            1 / 0  # noqa: B018
    gc.collect()
    assert open_descriptors(first) == 0


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"subject_id": "668755"}, ["668755_2023-08-31"]),
        ({"subject_id": 668755}, ["668755_2023-08-31"]),
        ({"subject_id": ["626791", "668755"]}, ["626791_2022-08-15_1", "668755_2023-08-31"]),
        ({"session_id": "DRpilot_668755_20230831"}, ["668755_2023-08-31"]),
        ({"session_id": 999000300}, ["999000300"]),
        (
            {"session_id": lambda sid: sid is not None and sid.ecephys_session_id is not None},
            ["999000200", "999000300"],
        ),
        ({"date": "2022-08-15"}, ["626791_2022-08-15_1"]),
        ({"subject_id": "668755", "date": "2022-08-15"}, []),
    ],
)
def test_catalog_filters_choose_before_opening(folder, filters, expected):
    catalog = load_catalog(folder)
    wanted = set(catalog.loc[catalog["session_id"].isin(expected), "path"])
    opened = []
    for _ in get_sessions(folder, **filters):
        opened.append(next(p for p in every_file(folder) if open_descriptors(p)))
    assert set(opened) == wanted and len(opened) == len(expected)


def test_an_unknown_filter_is_refused_before_opening_anything(folder):
    with pytest.raises(
        CatalogError, match=r"named 'genotype'.*columns are \['path', 'session_id', 'subject_id', 'date'\]"
    ):
        get_sessions(folder, genotype="wt/wt")


def write_csv_catalog(folder: Path) -> Path:
    rows = [
        ("DRpilot_668755_20230831/668755_2023-08-31.nwb", "668755_2023-08-31", 668755, "DynamicRouting1"),
        ("626791_2022-08-15_1.nwb", "626791_2022-08-15_1", 626791, "DynamicRouting1"),
        ("allen/session_999000300/session_999000300.nwb", "999000300", None, "brain_observatory_1.1"),
    ]
    table = pd.DataFrame(rows, columns=["NWB_Path", "session_id", "subject_id", "session_type"])
    path = folder / "catalog.csv"
    table.to_csv(path, index=False)
    return path


def test_a_csv_catalog_with_relative_paths_and_metadata(folder):
    csv = write_csv_catalog(folder)
    catalog = load_catalog(csv)
    assert list(catalog.columns) == ["path", "session_id", "subject_id", "session_type"]
    assert catalog["path"].tolist()[0] == folder / "DRpilot_668755_20230831" / "668755_2023-08-31.nwb"
    # subject ids with a gap are read as floats; they still match as text
    assert len(list(get_sessions(csv, subject_id="626791"))) == 1
    target = folder / "allen" / "session_999000300" / "session_999000300.nwb"
    opened = [
        open_descriptors(target) for _ in get_sessions(csv, session_type=["brain_observatory_1.1", "x"])
    ]
    assert opened == [1] or opened == [2]  # only that row's file was opened
    assert open_descriptors(target) == 0


def test_a_catalog_without_a_path_column_names_its_columns(tmp_path):
    csv = tmp_path / "sessions.csv"
    pd.DataFrame({"id": [715093703], "session_type": ["brain_observatory_1.1"]}).to_csv(csv, index=False)
    with pytest.raises(
        CatalogError, match=r"no column of NWB file paths.*found columns \['id', 'session_type'\]"
    ):
        get_sessions(csv)


def test_a_list_of_paths_keeps_its_order(folder):
    paths = list(reversed(load_catalog(folder)["path"].tolist()))[:3]
    opened = []
    for _ in get_sessions([str(p) for p in paths]):
        opened.append(next(p for p in paths if open_descriptors(p)))
    assert opened == paths


def test_a_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(SessionFileNotFound, match="does not exist; give a folder of .nwb files"):
        get_sessions(tmp_path / "nowhere")


def test_a_catalog_of_urls_streams_each_session(folder, file_server):
    path = folder / "allen" / "session_999000300" / "session_999000300.nwb"
    url = file_server.add_file("remote/session_999000300.nwb", path)
    catalog = pd.DataFrame({"url": [url], "session_id": ["999000300"]})
    streamed = [session.invalid_times for session in get_sessions(catalog, session_id="999000300")]
    local = [session.invalid_times for session in get_sessions([path])]
    assert file_server.bytes_sent > 0
    assert len(streamed) == 1 and len(streamed[0]) > 0
    pd.testing.assert_frame_equal(streamed[0], local[0])


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory) -> Path:
    """Two Dynamic-Routing-like sessions written by pynwb and one Allen session."""
    root = tmp_path_factory.mktemp("mixed")
    small = {"n_units": 4, "n_probes": 1, "duration": 120.0, "lfp": False, "channels_per_probe": 32}
    (root / "DRpilot_668755_20230831").mkdir()
    make_dynamic_routing_session(root / "DRpilot_668755_20230831", **small)
    make_dynamic_routing_session(root, subject_id="626791", session_date="2022-08-15", **small)
    make_session(
        root / "allen", session_id=999000300, n_probes=1, units_per_probe=3, duration=30.0, lfp=False
    )
    return root


def test_ids_read_from_file_names_are_the_files_own(mixed_folder):
    catalog = load_catalog(mixed_folder)
    assert catalog["session_id"].tolist() == ["999000300", "626791_2022-08-15", "668755_2023-08-31"]
    own = [SessionId(session.session_id) for session in get_sessions(mixed_folder)]
    assert own == catalog["session_id"].tolist()


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"session_start_time": lambda t: t.year == 2023}, ["668755_2023-08-31"]),
        ({"subject": lambda s: s.get("subject_id") == "626791"}, ["626791_2022-08-15"]),
        (
            {
                "session_id": ["626791_20220815", "668755_20230831"],
                "session_start_time": lambda t: t.year < 2023,
            },
            ["626791_2022-08-15"],
        ),
    ],
)
def test_session_attribute_filters_open_then_choose(mixed_folder, filters, expected):
    kept = [SessionId(session.session_id) for session in get_sessions(mixed_folder, **filters)]
    assert kept == expected
    assert [open_descriptors(p) for p in every_file(mixed_folder)] == [0] * len(every_file(mixed_folder))


def test_an_unknown_attribute_filter_names_the_session_class(mixed_folder):
    with pytest.raises(CatalogError, match="no catalog column or NWBSession attribute named 'genotype'"):
        get_sessions(mixed_folder, genotype="wt/wt")
