"""Read NWB ``TimeIntervals`` tables column by column with h5py.

A ``TimeIntervals`` table (``/intervals/<name>`` or one inside a processing module) is a
DynamicTable: one dataset per column, ``id`` for the row ids, and ragged columns (``tags``,
``timeseries``) as a flat dataset plus ``<name>_index``. Everything here reads whole columns
and never builds per-row Python objects for numeric data; text is decoded once per distinct
value, which is what makes ~70,000 stimulus presentations load in a few tens of milliseconds.

Times are float64 seconds on the session's master clock, as stored.
"""

from __future__ import annotations

from collections.abc import Iterable

import h5py
import numpy as np
import pandas as pd

from ecephys.errors import MissingDataError, NWBFormatError
from ecephys.nwb.table import column_names, is_ragged, ragged_offsets, read_ids

__all__ = [
    "PRESENTATIONS_SUFFIX",
    "concat_columns",
    "interval_table",
    "presentation_table_names",
    "read_interval_columns",
    "read_interval_table",
    "read_presentation_columns",
    "read_ragged_text",
    "read_text_column",
]

PRESENTATIONS_SUFFIX = "_presentations"
"""Stimulus tables live at ``/intervals/<stimulus_name>_presentations``."""

SKIPPED_COLUMNS = ("tags", "timeseries")
"""Bookkeeping columns of every TimeIntervals table that the AllenSDK never returns."""


def interval_table(h5file: h5py.File, path: str) -> h5py.Group:
    """The TimeIntervals group at ``path``, or a MissingDataError naming the file and the path."""
    group = h5file.get(path)
    if group is None:
        raise MissingDataError(
            f"{h5file.filename}: there is no table at /{path.strip('/')}; this session file does not "
            "hold that part (check the session's file, or use a session that has it)."
        )
    if not isinstance(group, h5py.Group) or "id" not in group:
        raise NWBFormatError(
            f"{h5file.filename}: /{path.strip('/')} is not a TimeIntervals table (no 'id' dataset); "
            "the file is not the NWB layout ecephys reads.",
            path=h5file.filename,
        )
    return group


def presentation_table_names(h5file: h5py.File) -> list[str]:
    """Names of the ``/intervals/*_presentations`` tables, in the file's (alphabetical) order."""
    intervals = h5file.get("intervals")
    if intervals is None:
        return []
    return [name for name in intervals if name.endswith(PRESENTATIONS_SUFFIX)]


def read_text_column(dataset: h5py.Dataset) -> np.ndarray:
    """A text dataset as an object array of ``str``, decoding each distinct value once."""
    raw = dataset[()]
    if raw.dtype.kind == "S":
        raw = raw.astype(object)
    out = np.empty(len(raw), dtype=object)
    if len(raw) == 0:
        return out
    codes, uniques = pd.factorize(raw, use_na_sentinel=False)
    decoded = np.empty(len(uniques), dtype=object)
    decoded[:] = [u.decode("utf-8") if isinstance(u, bytes) else str(u) for u in uniques]
    out[:] = decoded[codes]
    return out


def _is_text(dataset: h5py.Dataset) -> bool:
    return dataset.dtype.kind in "OSU" and dataset.dtype.names is None


def read_interval_columns(
    table: h5py.Group, *, skip: Iterable[str] = SKIPPED_COLUMNS
) -> dict[str, np.ndarray]:
    """The table's one-dimensional scalar columns in ``colnames`` order (ragged and compound ones left out).

    Text comes back as object arrays of ``str``; numbers keep their stored dtype.
    """
    skipped = set(skip)
    columns: dict[str, np.ndarray] = {}
    n_rows = table["id"].shape[0]
    for name in column_names(table):
        if name in skipped or name not in table or is_ragged(table, name):
            continue
        dataset = table[name]
        if not isinstance(dataset, h5py.Dataset) or dataset.ndim != 1 or dataset.dtype.names is not None:
            continue
        if dataset.shape[0] != n_rows:
            raise NWBFormatError(
                f"{table.file.filename}: column {table.name}/{name} has {dataset.shape[0]} rows but the "
                f"table has {n_rows}; the file is corrupt, download it again.",
                path=table.file.filename,
            )
        columns[name] = read_text_column(dataset) if _is_text(dataset) else dataset[()]
    return columns


def read_interval_table(
    table: h5py.Group, *, skip: Iterable[str] = SKIPPED_COLUMNS, index_name: str = "id"
) -> pd.DataFrame:
    """A TimeIntervals table as a DataFrame indexed by ``id`` (text columns as object)."""
    columns = read_interval_columns(table, skip=skip)
    index = pd.Index(read_ids(table), name=index_name)
    return pd.DataFrame(
        {
            name: pd.Series(values, index=index, dtype=values.dtype, copy=False)
            for name, values in columns.items()
        },
        index=index,
    )


def read_ragged_text(table: h5py.Group, name: str) -> np.ndarray:
    """A ragged text column (e.g. ``tags``) as an object array holding one array of ``str`` per row."""
    offsets = ragged_offsets(table, name)
    flat = read_text_column(table[name])
    if offsets[-1] != len(flat):
        raise NWBFormatError(
            f"{table.file.filename}: column {table.name}/{name} has {len(flat)} values but its index ends "
            f"at {offsets[-1]}; the file is corrupt, download it again.",
            path=table.file.filename,
        )
    rows = np.empty(len(offsets) - 1, dtype=object)
    rows[:] = [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    return rows


def read_presentation_columns(h5file: h5py.File) -> list[dict[str, np.ndarray]]:
    """The columns of every ``*_presentations`` table, one dict per table in file order."""
    return [
        read_interval_columns(h5file["intervals"][name], skip=SKIPPED_COLUMNS)
        for name in presentation_table_names(h5file)
    ]


def concat_columns(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack tables given as column dicts, as ``pandas.concat`` would: union of columns, NaN where absent.

    Column order is first appearance. A column present everywhere keeps its common numeric
    dtype (ints widen to int64); one missing somewhere becomes float64 (numbers) or object
    (text, bools, mixtures), padded with NaN.
    """
    lengths = [len(next(iter(p.values()))) if p else 0 for p in parts]
    total = sum(lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    names: list[str] = []
    for part in parts:
        names.extend(n for n in part if n not in names)
    out: dict[str, np.ndarray] = {}
    for name in names:
        present = [p[name] for p in parts if name in p]
        everywhere = len(present) == len(parts)
        kinds = {a.dtype.kind for a in present}
        if everywhere and kinds <= set("iuf"):
            out[name] = np.concatenate([a.astype(np.int64) if a.dtype.kind in "iu" else a for a in present])
            continue
        if everywhere and kinds == {"b"}:
            out[name] = np.concatenate(present)
            continue
        if kinds <= set("iuf"):
            column = np.full(total, np.nan, dtype=np.float64)
        else:
            column = np.full(total, np.nan, dtype=object)
        for part, start, length in zip(parts, starts[:-1], lengths, strict=True):
            if name in part:
                values = part[name]
                column[start : start + length] = values.astype(object) if column.dtype == object else values
        out[name] = column
    return out
