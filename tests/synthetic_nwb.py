"""Write small NWB-shaped TimeIntervals tables with h5py, for tests that need a layout the fixtures lack."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import h5py
import numpy as np

TEXT = h5py.string_dtype()


def write_time_intervals(
    parent: h5py.Group,
    name: str,
    columns: Mapping[str, Sequence | np.ndarray],
    *,
    tags: Sequence[Sequence[str]] | None = None,
) -> h5py.Group:
    """A TimeIntervals group ``parent/name`` with the given scalar columns, ``id`` and ragged ``tags``.

    Lists of ``str`` become variable-length text datasets; everything else is stored as given.
    ``tags`` defaults to one ``stimulus_time_interval`` tag per row, as the Allen files have.
    """
    group = parent.create_group(name)
    group.attrs["neurodata_type"] = "TimeIntervals"
    group.attrs["namespace"] = "core"
    n_rows = len(next(iter(columns.values())))
    group.create_dataset("id", data=np.arange(n_rows, dtype=np.int64))
    for column, values in columns.items():
        values = np.asarray(values)
        if values.dtype.kind in "UO":
            group.create_dataset(column, data=values.astype(object), dtype=TEXT)
        else:
            group.create_dataset(column, data=values)
    if tags is None:
        tags = [["stimulus_time_interval"]] * n_rows
    flat = [t for row in tags for t in row]
    group.create_dataset("tags", data=np.array(flat, dtype=object), dtype=TEXT)
    group.create_dataset("tags_index", data=np.cumsum([len(row) for row in tags]).astype(np.uint32))
    group.attrs["colnames"] = np.array([*columns, "tags"], dtype=object)
    return group


def write_presentations(h5file: h5py.File, tables: Mapping[str, Mapping[str, Sequence | np.ndarray]]) -> None:
    """``/intervals/<name>_presentations`` for each ``name -> columns`` of ``tables``."""
    intervals = h5file.require_group("intervals")
    for name, columns in tables.items():
        write_time_intervals(intervals, f"{name}_presentations", columns)


def write_invalid_times(h5file: h5py.File, rows: Sequence[tuple[float, float, Sequence[str]]]) -> None:
    """``/intervals/invalid_times`` from ``(start, stop, [scope, id, label])`` rows."""
    intervals = h5file.require_group("intervals")
    write_time_intervals(
        intervals,
        "invalid_times",
        {"start_time": [r[0] for r in rows], "stop_time": [r[1] for r in rows]},
        tags=[list(r[2]) for r in rows],
    )
