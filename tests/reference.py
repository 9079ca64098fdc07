"""Load the AllenSDK's reference answers from ../shared/fixtures and compare our tables to them.

A reference table ``<name>.json`` holds shape, index_names, index_dtype, columns, dtypes,
value_types, index and data (rows). Our tables must have the same columns, index name,
dtypes (text as object) and values (floats to rtol 1e-12, NaN equal to NaN).
"""

from __future__ import annotations

import json
import math
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
    index = pd.Index(ref["index"], dtype=ref.get("index_dtype") or None)
    if len(ref["index_names"]) == 1:
        index.name = ref["index_names"][0]
    frame.index = index
    return frame


def _values_equal(ours: object, theirs: object) -> bool:
    if _is_nan(ours) and _is_nan(theirs):
        return True
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


def assert_frame_matches_reference(frame: pd.DataFrame, path: Path, *, sort_columns: bool = False) -> None:
    """Assert ``frame`` has the reference's columns, index, dtypes and values."""
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
