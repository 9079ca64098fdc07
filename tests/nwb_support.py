"""Helpers for the generic-NWB tests: pynwb as the independent oracle, and table comparison.

pynwb reads the same files with its own code (hdmf's object mapper); our h5py readers must
give the same values. pynwb's DataFrames differ in form only: object references come back as
the objects (an ``ElectrodeGroup``), ragged columns as lists, and a table's id index is
``id``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Columns our tables leave out on purpose: ragged numeric, multi-dimensional, references to rows.
LEFT_OUT = {"spike_times", "obs_intervals", "electrodes", "waveform_mean", "waveform_sd", "timeseries"}


@contextmanager
def pynwb_file(path: str | Path) -> Iterator[Any]:
    """The file read by pynwb (closed afterwards); hdmf's namespace warnings silenced."""
    import pynwb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        io = pynwb.NWBHDF5IO(str(path), "r")
        try:
            yield io.read()
        finally:
            io.close()


def plain(value: Any) -> Any:
    """A pynwb cell as ours holds it: an NWB object by its name, a list/array as a list."""
    if hasattr(value, "neurodata_type") and hasattr(value, "name"):
        return value.name
    if isinstance(value, list | tuple | np.ndarray):
        return [plain(v) for v in value]
    return value


def assert_same_column(ours: pd.Series, theirs: pd.Series, name: str) -> None:
    """Equal values row by row (NaN equal to NaN), whatever the container types."""
    assert len(ours) == len(theirs), name
    if ours.dtype.kind in "fiub" and theirs.dtype.kind in "fiub":
        np.testing.assert_array_equal(ours.to_numpy(), theirs.to_numpy(), err_msg=name)
        return
    mine = [plain(v) for v in ours.tolist()]
    other = [plain(v) for v in theirs.tolist()]
    assert mine == other, name


def assert_matches_pynwb(ours: pd.DataFrame, theirs: pd.DataFrame, *, left_out: set[str] = LEFT_OUT) -> None:
    """Same ids and, column by column, the same values as pynwb's ``to_dataframe()``."""
    np.testing.assert_array_equal(ours.index.to_numpy(), theirs.index.to_numpy())
    expected = [c for c in theirs.columns if c not in left_out]
    assert sorted(ours.columns) == sorted(expected)
    for name in expected:
        assert_same_column(ours[name], theirs[name], name)
