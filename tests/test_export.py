"""export_session: every format read back by an independent reader equals the session's tables.

Parquet is read with pandas/pyarrow, MAT with scipy.io.loadmat, JSON with the json module;
the expected values are the session's own tables and spike trains, converted by the rules
the docs give (NaN → null, mixed text/number columns → text in Parquet, text → cellstr).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import scipy.io
from hypothesis import given, settings
from hypothesis import strategies as st

from ecephys import SessionId, open_nwb, open_session
from ecephys.errors import EcephysWarning, ExportError, MissingDataError, MissingDependency, OutputExistsError
from ecephys.export import ALLEN_TABLES, export_session, spike_time_table
from ecephys.nwb.allen import RaggedColumn
from ecephys.testing import make_dynamic_routing_session, make_session
from ecephys.unit_data import UnitArrays
from tests.reference import FIXTURE_NAMES, session_path

FILTERS_OFF = {
    "amplitude_cutoff_maximum": None,
    "presence_ratio_minimum": None,
    "isi_violations_maximum": None,
    "filter_by_validity": False,
    "filter_out_of_brain_units": False,
}


@pytest.fixture(scope="module")
def synthetic_path(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic")
    files = make_session(
        folder,
        n_probes=1,
        units_per_probe=5,
        duration=60.0,
        lfp=False,
        layout="sdk2162",
        session_id=999000777,
    )
    return files.session_path


@pytest.fixture(scope="module")
def dynamic_routing_path(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dynamic_routing")
    return make_dynamic_routing_session(folder, n_units=12, duration=240.0, lfp=False, channels_per_probe=96)


SESSIONS = [
    *[(name, "open_session") for name in FIXTURE_NAMES],
    ("synthetic", "open_session"),
    ("vcn2020_tiny", "open_nwb"),
    ("dynamic_routing", "open_nwb"),
]


@pytest.fixture(params=SESSIONS, ids=["-".join(p) for p in SESSIONS])
def session(request, synthetic_path, dynamic_routing_path):
    """An Allen session (its fixed table list) or a generic NWB session (its export_tables())."""
    name, opener = request.param
    path = {"synthetic": synthetic_path, "dynamic_routing": dynamic_routing_path}.get(name) or session_path(
        name
    )
    if opener == "open_nwb":
        opened = open_nwb(path)
    else:
        opened = open_session(path, **(FILTERS_OFF if name == "synthetic" else {}))
    yield opened
    opened.close()


def output_name(session) -> str:
    """The session id in normal form: what the export is named after."""
    return str(SessionId(getattr(session, "session_id", None) or session.ecephys_session_id))


# -- independent expectations ----------------------------------------------------------------------
def spike_trains(session) -> dict[int, np.ndarray]:
    """unit id → spike times, read unit by unit through the session's mapping."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EcephysWarning)
        return {int(u): np.asarray(session.spike_times[u]) for u in session.spike_times}


def tables_of(session) -> dict[str, pd.DataFrame]:
    """The tables an export must hold: a generic session's export_tables(), an Allen one's properties."""
    if hasattr(session, "export_tables"):
        return session.export_tables()
    return {name: getattr(session, name) for name in ALLEN_TABLES}


def missing(value) -> bool:
    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float | np.floating) and math.isnan(value))
    )


def same_cell(ours, theirs) -> bool:
    """Equal values: NaN/None alike, arrays and lists element by element, numbers exactly."""
    if isinstance(ours, np.ndarray | list | tuple) or isinstance(theirs, np.ndarray | list | tuple):
        a, b = np.asarray(ours, dtype=object).ravel(), np.asarray(theirs, dtype=object).ravel()
        return len(a) == len(b) and all(same_cell(x, y) for x, y in zip(a, b, strict=True))
    if missing(ours) or missing(theirs):
        return missing(ours) and missing(theirs)
    if isinstance(ours, np.generic):
        ours = ours.item()
    if isinstance(theirs, np.generic):
        theirs = theirs.item()
    return ours == theirs


def assert_cells(back: list, expected: list, what: str) -> None:
    assert len(back) == len(expected), what
    bad = [i for i, (a, b) in enumerate(zip(back, expected, strict=True)) if not same_cell(a, b)]
    assert not bad, f"{what}: rows {bad[:5]} differ, e.g. {back[bad[0]]!r} != {expected[bad[0]]!r}"


def as_list(value, rows: int | None = None) -> list:
    """A loadmat (simplify_cells) column as a list of ``rows`` cells; '' comes back as an empty array.

    simplify_cells squeezes a 1-row column to its only cell (a scalar, or the cell's own array).
    """
    one = rows == 1 or not isinstance(value, np.ndarray)
    cells = [value] if one else list(np.asarray(value, dtype=object).ravel())
    return ["" if isinstance(c, np.ndarray) and c.dtype.kind == "U" and c.size == 0 else c for c in cells]


def test_sessions_export_themselves(tmp_path):
    """``session.export(...)`` on both session classes is export_session on that session."""
    for opened in (open_session, open_nwb):
        with opened(session_path("vcn2020_tiny")) as session:
            files = session.export(tmp_path / opened.__name__, "parquet", tables=["units", "spike_times"])
            assert sorted(p.name for p in files) == ["session.json", "spike_times.parquet", "units.parquet"]
            back = pd.read_parquet(files[0].parent / "units.parquet")
            assert back.index.tolist() == session.units.index.tolist()


# -- Parquet -------------------------------------------------------------------------------------------
def test_parquet_round_trip(session, tmp_path):
    files = export_session(session, tmp_path, "parquet")
    folder = tmp_path / output_name(session)
    assert sorted(files) == sorted(folder.iterdir())
    metadata = json.loads((folder / "session.json").read_text())
    assert metadata["session_id"] == output_name(session)
    assert sorted(metadata["files"]) == sorted(p.name for p in files)
    for name, original in tables_of(session).items():
        back = pd.read_parquet(folder / f"{name}.parquet")
        as_text = metadata["tables"][name]["written_as_text"]
        assert list(back.columns) == list(original.columns), name
        assert list(back.index.names) == list(original.index.names), name
        assert_cells(back.index.tolist(), original.index.tolist(), f"{name} index")
        for column in original.columns:
            expected = original[column].tolist()
            if column in as_text:  # columns mixing text and numbers are written as text
                assert pd.api.types.infer_dtype(original[column], skipna=True).startswith("mixed")
                expected = [None if missing(v) else str(v) for v in expected]
            assert_cells(back[column].tolist(), expected, f"{name}.{column}")
    assert metadata["tables"]["running_speed"]["columns"]["start_time"]["unit"] == "s"
    assert metadata["tables"]["running_speed"]["columns"]["velocity"]["unit"] == "cm/s"


def test_parquet_spike_times_are_one_long_sorted_table(session, tmp_path):
    export_session(session, tmp_path, "parquet", tables=["spike_times"])
    path = tmp_path / output_name(session) / "spike_times.parquet"
    schema = pq.read_schema(path)
    assert [(f.name, str(f.type)) for f in schema] == [("unit_id", "int64"), ("spike_time", "double")]
    back = pd.read_parquet(path)
    order = np.lexsort((back["spike_time"].to_numpy(), back["unit_id"].to_numpy()))
    np.testing.assert_array_equal(order, np.arange(len(back)))
    trains = spike_trains(session)
    assert len(back) == sum(len(t) for t in trains.values())
    for unit_id, train in trains.items():
        np.testing.assert_array_equal(back.loc[back["unit_id"] == unit_id, "spike_time"].to_numpy(), train)


class SpikesOnly:
    """A session that is nothing but spike trains, held in an in-memory HDF5 units table."""

    session_id = "626791_2022-08-15"

    def __init__(self, trains: dict[int, list[float]], file_order: list[int]) -> None:
        self._file = h5py.File(f"spikes-{id(self)}.h5", "w", driver="core", backing_store=False)
        table = self._file.create_group("units")
        table["spike_times"] = np.array([t for u in file_order for t in trains[u]], dtype=np.float64)
        table["spike_times_index"] = np.cumsum([len(trains[u]) for u in file_order]).astype(np.int64)
        self.spike_times = UnitArrays(
            RaggedColumn(table, "spike_times"), np.array(file_order), np.array(file_order)
        )

    def export_tables(self) -> dict[str, pd.DataFrame]:
        return {}


trains_strategy = st.dictionaries(
    st.integers(min_value=-(2**40), max_value=2**40),
    st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), max_size=20),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(trains_strategy, st.randoms(use_true_random=False))
def test_spike_table_sorts_by_unit_then_time_whatever_the_file_order(trains, random):
    file_order = list(trains)
    random.shuffle(file_order)
    table = spike_time_table(SpikesOnly(trains, file_order))
    assert table.unit_ids.tolist() == sorted(trains)
    assert table.counts.tolist() == [len(trains[u]) for u in sorted(trains)]
    expected = sorted((u, t) for u, times in trains.items() for t in times)
    assert list(zip(table.unit_id.tolist(), table.spike_time.tolist(), strict=True)) == expected
    assert [t.tolist() for t in table.per_unit()] == [sorted(trains[u]) for u in sorted(trains)]


def test_a_session_without_spike_trains_exports_its_tables_only(tmp_path):
    class NoUnits:
        session_id = "626791_2022-08-15"

        @property
        def spike_times(self):
            raise MissingDataError("session 626791_2022-08-15 has no units table")

        def export_tables(self) -> dict[str, pd.DataFrame]:
            return {"epochs": pd.DataFrame({"start_time": [0.0], "stop_time": [1.5]})}

    session = NoUnits()
    files = export_session(session, tmp_path, "parquet")
    assert [p.name for p in files] == ["epochs.parquet", "session.json"]
    with pytest.raises(MissingDataError, match="has no units table"):
        export_session(session, tmp_path / "asked", "parquet", tables=["spike_times"])
    assert not (tmp_path / "asked" / "626791_2022-08-15").exists()


# -- MATLAB ------------------------------------------------------------------------------------------------
def iso_times(series: pd.Series, missing_as: object) -> list | None:
    """A date-time column as ISO 8601 text (what MAT and JSON hold), or None for other columns."""
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        return None
    return [missing_as if missing(t) else t.isoformat() for t in series]


def expected_mat_column(series: pd.Series) -> list:
    """What loadmat should give for a column: numbers as they are, text with '' for missing."""
    kind = pd.api.types.infer_dtype(series, skipna=True)
    if iso_times(series, "") is not None:
        return iso_times(series, "")
    if kind == "string":
        return ["" if missing(v) else v for v in series]
    if kind == "boolean" and not series.hasnans:
        return [int(v) for v in series]
    return series.tolist()


def test_mat_round_trip(session, tmp_path):
    assert export_session(session, tmp_path, "mat") == [tmp_path / f"{output_name(session)}.mat"]
    assert os.listdir(tmp_path) == [f"{output_name(session)}.mat"]
    mat = scipy.io.loadmat(tmp_path / f"{output_name(session)}.mat", simplify_cells=True)
    for name, original in tables_of(session).items():
        struct = mat[name]
        flat = original.reset_index(names=[n or "index" for n in original.index.names])
        assert list(struct) == list(flat.columns), name  # the Allen column names are valid MATLAB names
        for column in flat.columns:
            assert_cells(
                as_list(struct[column], len(flat)), expected_mat_column(flat[column]), f"{name}.{column}"
            )
    trains = spike_trains(session)
    unit_ids = np.atleast_1d(mat["unit_ids"])
    assert sorted(unit_ids.tolist()) == unit_ids.tolist() == sorted(trains)
    for unit_id, cell in zip(unit_ids, as_list(mat["spike_times"], len(unit_ids)), strict=True):
        np.testing.assert_array_equal(np.atleast_1d(cell), trains[int(unit_id)])
    info = json.loads(mat["export_info"]["json"])
    assert info["session_id"] == output_name(session)
    assert info["tables"]["spike_times"]["spikes"] == sum(len(t) for t in trains.values())


# -- JSON ---------------------------------------------------------------------------------------------
def test_json_round_trip(session, tmp_path):
    export_session(session, tmp_path, "json")
    folder = tmp_path / output_name(session)
    for name, original in tables_of(session).items():
        records = json.loads((folder / f"{name}.json").read_text())  # strict JSON: no NaN tokens
        flat = original.reset_index(names=[n or "index" for n in original.index.names])
        assert len(records) == len(flat), name
        assert all(list(r) == list(flat.columns) for r in records), name
        for column in flat.columns:
            expected = iso_times(flat[column], None) or flat[column].tolist()
            assert_cells([r[column] for r in records], expected, f"{name}.{column}")
    trains_back = json.loads((folder / "spike_times.json").read_text())
    trains = spike_trains(session)
    assert sorted(trains_back, key=int) == [str(u) for u in sorted(trains)]
    for unit_id, train in trains.items():
        np.testing.assert_array_equal(np.asarray(trains_back[str(unit_id)], dtype=np.float64), train)


def test_json_is_strict_about_nan(tmp_path, synthetic_path):
    with open_session(synthetic_path, **FILTERS_OFF) as session:
        export_session(session, tmp_path, "json", tables=["channels", "stimulus_presentations"])

    def refuse(token: str) -> None:
        pytest.fail(f"a JSON file holds {token}")

    for path in (tmp_path / "999000777").glob("*.json"):
        json.loads(path.read_text(), parse_constant=refuse)


# -- a session with awkward tables: names MATLAB refuses, datetimes, lists, missing values -------------------
class OddSession:
    """A session whose export_tables() returns awkward tables; its spike trains are a real file's."""

    session_id = "DRpilot_668755_20230831"

    def __init__(self, session) -> None:
        self._session = session

    @property
    def spike_times(self):
        return self._session.spike_times

    def export_tables(self) -> dict[str, pd.DataFrame]:
        odd = pd.DataFrame(
            {
                "2nd column": [1.5, np.nan, 3.0],
                "a-b": ["x", None, "z"],
                "x" * 70: [1, 2, 3],
                "x" * 71: [True, False, True],
                "when": pd.to_datetime(
                    ["2023-08-31T10:00:00", None, "2023-08-31T12:30:00.250"], format="ISO8601"
                ).tz_localize("UTC"),
                "tags": [["a", "b"], [], ["c"]],
                "maybe": pd.array([1, None, 3], dtype="Int64"),
            },
            index=pd.Index([10, 11, 12], name="trial id"),
        )
        return {"trials table": odd, "empty": pd.DataFrame({"start_time": np.zeros(0)})}


def test_awkward_tables_in_every_format(tmp_path, synthetic_path):
    with open_session(synthetic_path, **FILTERS_OFF) as real:
        odd = OddSession(real)
        trials = odd.export_tables()["trials table"]
        for fmt in ("parquet", "json", "mat"):
            export_session(odd, tmp_path / fmt, fmt)
        trains = spike_trains(real)
    assert sorted(os.listdir(tmp_path / "parquet" / "668755_2023-08-31")) == [
        "empty.parquet",
        "session.json",
        "spike_times.parquet",
        "trials table.parquet",
    ]
    back = pd.read_parquet(tmp_path / "parquet" / "668755_2023-08-31" / "trials table.parquet")
    assert back.index.name == "trial id" and back.index.tolist() == [10, 11, 12]
    for column in trials.columns:
        assert_cells(back[column].tolist(), trials[column].tolist(), f"parquet {column}")

    records = json.loads((tmp_path / "json" / "668755_2023-08-31" / "trials table.json").read_text())
    assert [r["when"] for r in records] == [
        "2023-08-31T10:00:00+00:00",
        None,
        "2023-08-31T12:30:00.250000+00:00",
    ]
    assert [r["tags"] for r in records] == [["a", "b"], [], ["c"]]
    assert [r["maybe"] for r in records] == [1, None, 3]
    assert [r["2nd column"] for r in records] == [1.5, None, 3.0]

    mat = scipy.io.loadmat(tmp_path / "mat" / "668755_2023-08-31.mat", simplify_cells=True)
    struct = mat["trials_table"]
    long_name = "x" * 63
    assert list(struct) == [
        "trial_id",
        "x2nd_column",
        "a_b",
        long_name,
        long_name[:61] + "_2",
        "when",
        "tags",
        "maybe",
    ]
    np.testing.assert_array_equal(struct["x2nd_column"], [1.5, np.nan, 3.0])
    assert as_list(struct["a_b"]) == ["x", "", "z"]
    np.testing.assert_array_equal(struct[long_name[:61] + "_2"], [1, 0, 1])
    assert as_list(struct["when"]) == ["2023-08-31T10:00:00+00:00", "", "2023-08-31T12:30:00.250000+00:00"]
    np.testing.assert_array_equal(struct["maybe"], [1.0, np.nan, 3.0])
    assert [list(np.atleast_1d(t)) for t in struct["tags"]] == [["a", "b"], [], ["c"]]
    info = json.loads(mat["export_info"]["json"])
    assert info["tables"]["trials table"]["fields"]["x2nd_column"] == "2nd column"
    assert info["tables"]["trials table"]["variable"] == "trials_table"
    for unit_id, cell in zip(np.atleast_1d(mat["unit_ids"]), as_list(mat["spike_times"]), strict=True):
        np.testing.assert_array_equal(np.atleast_1d(cell), trains[int(unit_id)])


# -- output handling -----------------------------------------------------------------------------------------
def output_of(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (relative path → bytes), hidden ones included."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["parquet", "mat", "json"])
def test_existing_output_needs_overwrite(fmt, tmp_path, synthetic_path):
    with open_session(synthetic_path, **FILTERS_OFF) as session:
        first = export_session(session, tmp_path, fmt, tables=["units"])
        before = output_of(tmp_path)
        with pytest.raises(OutputExistsError, match="already exists; pass overwrite=True") as info:
            export_session(session, tmp_path, fmt)
        assert isinstance(info.value, FileExistsError)
        assert output_of(tmp_path) == before
        second = export_session(session, tmp_path, fmt, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == sorted({p.relative_to(tmp_path).parts[0] for p in first})
    if fmt != "mat":
        assert len(second) == len(ALLEN_TABLES) + 2  # the tables, spike_times and session.json
        assert sorted(second) == sorted((tmp_path / "999000777").iterdir())


FAILING_EXPORT = """
import resource, signal, sys
from ecephys import open_session
from ecephys.export import export_session
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[4]), resource.RLIM_INFINITY))
with open_session(sys.argv[1]) as session:
    try:
        export_session(session, sys.argv[2], sys.argv[3], tables=sys.argv[5].split(","), overwrite=True)
    except OSError as err:
        print("failed:", err)
        sys.exit(3)
"""
SIZE_LIMIT = 6000  # bytes per file
SMALL_THEN_LARGE = ["probes", "invalid_times", "running_speed"]


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
@pytest.mark.parametrize("fmt", ["parquet", "mat", "json"])
@pytest.mark.parametrize("earlier_export", [False, True])
def test_a_failed_write_leaves_nothing_behind(fmt, earlier_export, tmp_path, synthetic_path):
    """A write that fails part way (a file-size limit, as a full disk) leaves what was there."""
    with open_session(synthetic_path) as session:
        sizes = {
            p.stem: p.stat().st_size
            for p in export_session(session, tmp_path / "full", fmt, tables=SMALL_THEN_LARGE)
        }
        if earlier_export:
            export_session(session, tmp_path / "out", fmt, tables=["probes"])
    if fmt == "mat":  # one file, bigger than the limit: it fails part way through
        assert sizes["999000777"] > SIZE_LIMIT
    else:  # the first two files fit under the limit, the third does not: it fails after writing two
        assert sizes["probes"] < SIZE_LIMIT and sizes["invalid_times"] < SIZE_LIMIT < sizes["running_speed"]
    out = tmp_path / "out"
    before = output_of(out) if earlier_export else {}
    tables = ",".join(SMALL_THEN_LARGE)
    argv = [sys.executable, "-c", FAILING_EXPORT, str(synthetic_path), str(out), fmt, str(SIZE_LIMIT), tables]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert proc.returncode == 3, proc.stderr
    assert "File too large" in proc.stdout
    assert output_of(out) == before
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_unknown_tables_and_formats_are_refused_before_writing(tmp_path, synthetic_path):
    with open_session(synthetic_path) as session:
        with pytest.raises(MissingDataError, match=r"has no table 'trials'; its tables are \['units'"):
            export_session(session, tmp_path, "parquet", tables=["units", "trials"])
        with pytest.raises(ExportError, match="'hdf5' is not one of"):
            export_session(session, tmp_path, "hdf5")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("fmt", "modules"), [("parquet", ["pyarrow", "pyarrow.parquet"]), ("mat", ["scipy.io"])]
)
def test_missing_writer_library_names_the_extra(fmt, modules, monkeypatch, tmp_path, synthetic_path):
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # what Python does for a package not installed
    with (
        open_session(synthetic_path) as session,
        pytest.raises(MissingDependency, match=r"pip install 'ecephys\[export\]'"),
    ):
        export_session(session, tmp_path, fmt)
    assert os.listdir(tmp_path) == []
