"""Hand a session's data to pynapple: units as a ``TsGroup``, interval tables as ``IntervalSet``s.

:func:`to_pynapple` takes plain data (a unit id → spike times mapping and DataFrames), so
both :class:`ecephys.NWBSession` and :class:`ecephys.EcephysSession` can use it::

    to_pynapple(session.spike_times, session.units, {"trials": session.trials},
                running_speed=session.running_speed)

pynapple is an optional dependency (``pip install 'ecephys[pynapple]'``), imported here only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ecephys.errors import MissingDependency

__all__ = ["to_pynapple"]

#: Metadata names a TsGroup refuses (it computes its own ``rate``).
RESERVED_UNIT_COLUMNS = frozenset({"rate"})


def _pynapple() -> Any:
    try:
        import pynapple
    except ImportError as err:
        raise MissingDependency(
            "to_pynapple needs pynapple, which is not installed: pip install 'ecephys[pynapple]'"
        ) from err
    return pynapple


def _holds_scalars(values: pd.Series) -> bool:
    """Whether every cell is a number, bool, str or missing (type inference first, cells if mixed)."""
    if values.dtype != object or pd.api.types.infer_dtype(values, skipna=True) != "mixed":
        return True
    return bool(values.map(lambda v: v is None or np.isscalar(v)).all())


def _scalar_columns(table: pd.DataFrame, reserved: frozenset[str] = frozenset()) -> pd.DataFrame:
    """The columns holding one number, bool or string per row (arrays and lists left out)."""
    return table[[name for name in table.columns if name not in reserved and _holds_scalars(table[name])]]


def _time_support(nap: Any, spike_times: Mapping[int, np.ndarray], tables: Mapping[str, pd.DataFrame]) -> Any:
    """One IntervalSet from the first to the last spike or interval bound (s); None when empty."""
    lows, highs = [], []
    for times in spike_times.values():
        if len(times):
            lows.append(float(times[0]))
            highs.append(float(times[-1]))
    for table in tables.values():
        bounds = table[["start_time", "stop_time"]].to_numpy(dtype=np.float64)
        bounds = bounds[np.isfinite(bounds)]
        if bounds.size:
            lows.append(float(bounds.min()))
            highs.append(float(bounds.max()))
    if not lows:
        return None
    low, high = min(lows), max(highs)
    return nap.IntervalSet(start=low, end=high if high > low else low + 1e-6)


def _ts_group(
    nap: Any, spike_times: Mapping[int, np.ndarray], units: pd.DataFrame | None, support: Any
) -> Any:
    """A TsGroup keyed by unit id; the units' scalar columns as metadata (``rate`` left to pynapple)."""
    data = {
        int(u): nap.Ts(t=np.asarray(t, dtype=np.float64), time_support=support)
        for u, t in spike_times.items()
    }
    metadata = None
    if units is not None:
        metadata = _scalar_columns(units, RESERVED_UNIT_COLUMNS).loc[list(data)]
        metadata.index = list(data)
    return nap.TsGroup(data, time_support=support, metadata=metadata)


def _interval_set(nap: Any, table: pd.DataFrame) -> Any:
    """An IntervalSet of a table's finite [start_time, stop_time] rows, sorted by start, with its
    row id (``id``) and scalar columns as metadata. pynapple merges overlapping intervals (and
    then drops the metadata)."""
    finite = np.isfinite(table[["start_time", "stop_time"]].to_numpy(dtype=np.float64)).all(axis=1)
    rows = table[finite].sort_values("start_time", kind="stable")
    metadata = _scalar_columns(rows.drop(columns=["start_time", "stop_time"]))
    metadata = metadata.reset_index(names=rows.index.name or "id").reset_index(drop=True)
    return nap.IntervalSet(
        start=rows["start_time"].to_numpy(dtype=np.float64),
        end=rows["stop_time"].to_numpy(dtype=np.float64),
        metadata=metadata,
    )


def to_pynapple(
    spike_times: Mapping[int, np.ndarray],
    units: pd.DataFrame | None = None,
    interval_tables: Mapping[str, pd.DataFrame] | None = None,
    *,
    running_speed: pd.DataFrame | None = None,
    events: Mapping[str, pd.DataFrame] | None = None,
) -> dict[str, Any]:
    """A session's data as pynapple objects, by name.

    Parameters
    ----------
    spike_times
        unit id → sorted spike times (s), e.g. ``session.spike_times``.
    units
        Table indexed by unit id (``session.units``); its scalar columns become the TsGroup's
        metadata (a ``rate`` column is left out: pynapple computes its own).
    interval_tables
        name → table with ``start_time`` and ``stop_time`` (s), e.g. ``session.intervals``.
    running_speed
        Table with ``start_time`` (s) and ``velocity`` (cm/s), as the sessions give it.
    events
        name → table with ``timestamps`` (s), e.g. ``session.events``.

    Returns
    -------
    dict
        ``"units"``: TsGroup keyed by unit id (time support from the first to the last spike or
        interval; absent without units); each non-empty interval table's name: IntervalSet
        (metadata: the row ``id`` and the scalar columns); ``"running_speed"``: Tsd; each event
        series' name (or ``<name>_events`` if taken): Ts.
    """
    nap = _pynapple()
    tables = {name: table for name, table in (interval_tables or {}).items() if len(table)}
    out: dict[str, Any] = {}
    if len(spike_times):
        out["units"] = _ts_group(nap, spike_times, units, _time_support(nap, spike_times, tables))
    for name, table in tables.items():
        out[name] = _interval_set(nap, table)
    if running_speed is not None and len(running_speed):
        out["running_speed"] = nap.Tsd(
            t=running_speed["start_time"].to_numpy(dtype=np.float64),
            d=running_speed["velocity"].to_numpy(dtype=np.float64),
        )
    for name, frame in (events or {}).items():
        if len(frame):
            out[name if name not in out else f"{name}_events"] = nap.Ts(
                t=np.sort(frame["timestamps"].to_numpy())
            )
    return out
