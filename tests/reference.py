"""Load the AllenSDK's reference answers from ../shared/fixtures and compare our tables to them.

A reference table ``<name>.json`` holds shape, index_names, index_dtype, columns, dtypes,
value_types, index and data (rows). Our tables must have the same columns, index name,
dtypes (text as object) and values (floats to rtol 1e-12, NaN equal to NaN).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "fixtures"
FIXTURE_NAMES = ("vcn2020_tiny", "sdk2162_tiny")
SESSION_ID = 999000001


def session_path(fixture: str) -> Path:
    """The fixture's session NWB file."""
    return FIXTURES / fixture / f"session_{SESSION_ID}" / f"session_{SESSION_ID}.nwb"


def reference_dir(fixture: str, variant: str) -> Path:
    """``reference/<variant>`` of a fixture (variant: unfiltered, default, cache)."""
    return FIXTURES / fixture / "reference" / variant


def load_json(path: Path) -> dict:
    """Read a reference JSON file (NaN allowed)."""
    return json.loads(path.read_text())


def load_reference_table(path: Path) -> pd.DataFrame:
    """A typed reference ``.json`` table as a DataFrame with the recorded dtypes."""
    ref = load_json(path)
    frame = pd.DataFrame(ref["data"], columns=ref["columns"], dtype=object)
    for name, dtype in ref["dtypes"].items():
        if dtype != "object":
            frame[name] = frame[name].astype(dtype)
    if len(ref["index_names"]) > 1:
        index = pd.MultiIndex.from_tuples([tuple(i) for i in ref["index"]], names=ref["index_names"])
    else:
        index = pd.Index(ref["index"], dtype=ref.get("index_dtype") or None, name=ref["index_names"][0])
    frame.index = index
    return frame


def _values_equal(ours: object, theirs: object) -> bool:
    if _is_nan(ours) and _is_nan(theirs):
        return True
    if isinstance(theirs, list):
        if not isinstance(ours, np.ndarray | list | tuple) or len(ours) != len(theirs):
            return False
        return all(_values_equal(a, b) for a, b in zip(ours, theirs, strict=True))
    if isinstance(ours, np.ndarray | list | tuple):
        return False
    if (
        isinstance(ours, float | np.floating)
        and isinstance(theirs, float | int)
        and not isinstance(theirs, bool)
    ):
        return math.isclose(float(ours), float(theirs), rel_tol=1e-12, abs_tol=0.0)
    if isinstance(ours, np.generic):
        ours = ours.item()
    return ours == theirs


def _is_nan(value: object) -> bool:
    return isinstance(value, float | np.floating) and math.isnan(value)


def assert_frame_matches_reference(
    frame: pd.DataFrame, path: Path, *, sort_columns: bool = False, check_value_types: bool = False
) -> None:
    """Assert ``frame`` has the reference's columns, index, dtypes and values.

    ``sort_columns`` compares the column sets only, not their order. ``check_value_types``
    also compares each column's Python value types (``float``, ``str``, ``bool``, ``nan``, ...).
    """
    ref = load_json(path)
    columns = list(frame.columns)
    ref_columns = list(ref["columns"])
    if sort_columns:
        assert sorted(map(str, columns)) == sorted(map(str, ref_columns)), (columns, ref_columns)
    else:
        assert columns == ref_columns, (columns, ref_columns)
    assert list(frame.shape) == ref["shape"], (frame.shape, ref["shape"])
    assert list(frame.index.names) == ref["index_names"], (frame.index.names, ref["index_names"])
    dtypes = {str(c): str(t) for c, t in frame.dtypes.items()}
    ref_dtypes = {str(c): t for c, t in ref["dtypes"].items()}
    assert dtypes == ref_dtypes, {
        c: (dtypes.get(c), ref_dtypes.get(c)) for c in ref_dtypes if dtypes.get(c) != ref_dtypes[c]
    }
    ours_index = [v.item() if isinstance(v, np.generic) else v for v in frame.index]
    assert len(ours_index) == len(ref["index"])
    for a, b in zip(ours_index, ref["index"], strict=True):
        assert _values_equal(a, b) or (isinstance(b, list) and list(a) == b), (a, b)
    position = {str(c): i for i, c in enumerate(ref_columns)}
    for name in frame.columns:
        ours = frame[name].tolist()
        theirs = [row[position[str(name)]] for row in ref["data"]]
        mismatched = [
            (i, a, b) for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if not _values_equal(a, b)
        ]
        assert not mismatched, (name, mismatched[:5])
    ref_index_dtype = ref.get("index_dtype")
    if isinstance(ref_index_dtype, list):
        assert [str(level.dtype) for level in frame.index.levels] == ref_index_dtype
    elif ref_index_dtype is not None:
        assert str(frame.index.dtype) == ref_index_dtype, (frame.index.dtype, ref_index_dtype)
    if check_value_types:
        ours_types = {str(c): value_types(frame[c].to_numpy()) for c in frame.columns}
        ref_types = {str(c): sorted(t) for c, t in ref["value_types"].items()}
        assert ours_types == ref_types, {
            c: (ours_types.get(c), ref_types[c]) for c in ref_types if ours_types.get(c) != ref_types[c]
        }


def value_type(value: object) -> str:
    """The type name the reference files record for one value (``nan`` for a float NaN)."""
    return "nan" if _is_nan(value) else type(value).__name__


def value_types(values: Iterable) -> list[str]:
    """The sorted set of :func:`value_type` over ``values``."""
    return sorted({value_type(v) for v in values})


def assert_values_match_reference(
    ours: Mapping[str, Iterable], path: Path, *, check_types: bool = True
) -> None:
    """Assert a dict of parameter -> values equals a reference ``.json`` holding lists or {values, types}.

    Keys are compared as sets (their order follows the unstable column order); values in order.
    """
    ref = load_json(path)
    assert sorted(ours) == sorted(ref), (sorted(ours), sorted(ref))
    for name, expected in ref.items():
        got = list(ours[name])
        values = expected["values"] if isinstance(expected, dict) else expected
        assert len(got) == len(values) and all(
            _values_equal(a, b) for a, b in zip(got, values, strict=True)
        ), (
            name,
            got,
            values,
        )
        if check_types and isinstance(expected, dict):
            assert [value_type(v) for v in got] == expected["types"], (name, [value_type(v) for v in got])


def assert_frame_matches_schema(frame: pd.DataFrame, path: Path) -> None:
    """Assert ``frame`` matches a long-table reference ``<name>.schema.json`` (and ``<name>.csv.gz``).

    Checks shape, columns, index name and dtypes, the head and tail rows, the sha256 of
    ``frame.to_csv()`` and, where the CSV was kept, every value (rtol 1e-12).
    """
    schema = load_json(path)
    assert list(frame.shape) == schema["shape"], (frame.shape, schema["shape"])
    assert list(frame.columns) == schema["columns"]
    assert list(frame.index.names) == schema["index_names"]
    assert str(frame.index.dtype) == schema["index_dtype"]
    assert {str(c): str(t) for c, t in frame.dtypes.items()} == schema["dtypes"]
    index_key = schema["index_names"][0] or "index"
    for rows, part in (
        (schema["head"], frame.head(len(schema["head"]))),
        (schema["tail"], frame.tail(len(schema["tail"]))),
    ):
        for expected, (label, row) in zip(rows, part.iterrows(), strict=True):
            assert _values_equal(label, expected[index_key]), (label, expected[index_key])
            for name in frame.columns:
                assert _values_equal(row[name], expected[name]), (label, name, row[name], expected[name])
    assert hashlib.sha256(frame.to_csv().encode()).hexdigest() == schema["csv_sha256"]
    csv_path = path.parent / (schema.get("file") or path.name.replace(".schema.json", ".csv.gz"))
    if csv_path.exists():
        theirs = pd.read_csv(csv_path, index_col=0)
        assert list(theirs.columns) == list(frame.columns)
        np.testing.assert_allclose(
            frame.index.to_numpy(dtype=float), theirs.index.to_numpy(dtype=float), rtol=1e-12
        )
        for name in frame.columns:
            np.testing.assert_allclose(
                frame[name].to_numpy(dtype=float),
                theirs[name].to_numpy(dtype=float),
                rtol=1e-12,
                equal_nan=True,
            )


def assert_csv_matches_reference(frame: pd.DataFrame, path: Path) -> None:
    """Assert ``frame.to_csv()``, columns in the order of the ``.json`` beside ``path``, equals the CSV."""
    columns = load_json(path.with_suffix(".json"))["columns"]
    assert frame[columns].to_csv() == path.read_text()


def assert_metadata_matches(ours: dict, expected: dict) -> None:
    """``session.metadata`` against a reference ``metadata.json`` (datetime as ISO text, NaN acronyms)."""
    assert sorted(ours) == sorted(expected)
    for key, value in expected.items():
        if key == "session_start_time":
            assert ours[key].isoformat() == value
        elif key == "structure_acronyms":
            assert [None if pd.isna(a) else a for a in ours[key]] == [
                None if pd.isna(a) else a for a in value
            ]
        else:
            assert ours[key] == value, key
