"""Read NWB DynamicTables (and TimeIntervals) column by column with h5py.

A ragged column ``x`` is stored as a flat dataset ``x`` plus ``x_index`` holding the cumulative
end offset of each row; :func:`ragged_offsets` turns that into ``(n_rows + 1,)`` boundaries so
row ``i`` is ``x[offsets[i]:offsets[i+1]]`` without ever building per-row Python objects.
"""

from __future__ import annotations

from collections.abc import Iterable

import h5py
import numpy as np
import pandas as pd

from ecephys.nwb.h5 import decode_str_array

__all__ = [
    "column_names",
    "is_ragged",
    "ragged_offsets",
    "read_column",
    "read_ids",
    "read_ragged_lists",
    "read_table",
]


def column_names(table: h5py.Group) -> list[str]:
    """The table's column names in the order its ``colnames`` attribute gives."""
    names = table.attrs.get("colnames", ())
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def read_ids(table: h5py.Group) -> np.ndarray:
    """The row ids (``id`` dataset) as int64."""
    return np.asarray(table["id"][()], dtype=np.int64)


def is_ragged(table: h5py.Group, name: str) -> bool:
    """Whether column ``name`` has an ``<name>_index`` VectorIndex."""
    return f"{name}_index" in table


def ragged_offsets(table: h5py.Group, name: str) -> np.ndarray:
    """Row boundaries of ragged column ``name``: int64 array of length n_rows + 1, starting at 0."""
    ends = np.asarray(table[f"{name}_index"][()], dtype=np.int64)
    offsets = np.empty(len(ends) + 1, dtype=np.int64)
    offsets[0] = 0
    offsets[1:] = ends
    return offsets


def read_column(table: h5py.Group, name: str) -> np.ndarray:
    """Read one non-ragged column whole; text comes back as an object array of str."""
    dset = table[name]
    values = dset[()]
    if dset.dtype.kind in "OS" and dset.dtype.names is None:
        return decode_str_array(values)
    return values


def read_ragged_lists(table: h5py.Group, name: str) -> list[list]:
    """Read a (small) ragged column as one Python list per row, text decoded."""
    offsets = ragged_offsets(table, name)
    flat = read_column(table, name)
    return [list(flat[a:b]) for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


def read_table(
    table: h5py.Group,
    columns: Iterable[str] | None = None,
    *,
    index_name: str = "id",
    skip_ragged: bool = True,
) -> pd.DataFrame:
    """Read the scalar columns of a DynamicTable into a DataFrame indexed by ``id``.

    Text columns keep object dtype (as the AllenSDK's tables have). Ragged columns are left
    out unless ``skip_ragged`` is False, when small ones come back as lists per row.
    """
    names = column_names(table) if columns is None else list(columns)
    data: dict[str, object] = {}
    for name in names:
        if name not in table:
            continue
        if is_ragged(table, name):
            if skip_ragged:
                continue
            data[name] = read_ragged_lists(table, name)
            continue
        if table[name].ndim != 1 or table[name].dtype.names is not None:
            continue
        data[name] = read_column(table, name)
    index = pd.Index(read_ids(table), name=index_name)
    frame = pd.DataFrame(data, index=index)
    return object_text_columns(frame)


def object_text_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Give text columns object dtype whatever pandas' default string dtype is (pandas 3)."""
    for name in frame.columns:
        dtype = frame[name].dtype
        if isinstance(dtype, pd.StringDtype) or dtype == "str":
            frame[name] = frame[name].astype(object)
    return frame
