"""Summary statistics of spike counts (or rates) per stimulus condition and unit.

As the AllenSDK 2.16.2's ``EcephysSession.conditionwise_spike_statistics``, computed from a
``(presentation, unit)`` count matrix instead of a spike-by-spike table. A spike counts for a
presentation when ``start_time < spike_time <= stop_time`` -- the AllenSDK's rule, so the
totals equal the rows of :func:`~ecephys.spikes.presentationwise_spike_times`. Deliberate
differences: overlapping presentations each count all their spikes (the AllenSDK gives each
spike to at most one presentation), and a one-presentation condition gives NaN standard
deviation and SEM without numpy's ``RuntimeWarning``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ecephys.spikes import _kernels
from ecephys.spikes.binning import check_spike_arrays

__all__ = ["conditionwise_spike_statistics", "spike_counts_per_presentation"]

_COUNT_COLUMNS = ["spike_count", "stimulus_presentation_count", "spike_mean", "spike_std", "spike_sem"]
_RATE_COLUMNS = ["stimulus_presentation_count", "spike_mean", "spike_std", "spike_sem"]


def spike_counts_per_presentation(
    spike_times_flat: ArrayLike,
    offsets: ArrayLike,
    start_times: ArrayLike,
    stop_times: ArrayLike,
    *,
    check_sorted: bool = True,
) -> np.ndarray:
    """Spikes of each unit within each presentation, ``start_time < t <= stop_time``.

    Parameters
    ----------
    spike_times_flat, offsets
        The selected units' spike times (seconds), see :mod:`ecephys.spikes.binning`.
    start_times, stop_times
        Each presentation's start and stop, seconds; any order, overlaps allowed.

    Returns
    -------
    numpy.ndarray
        int64, shape ``(n_presentations, n_units)``.
    """
    offs = np.asarray(offsets)
    n_units = offs.shape[0] if offs.ndim == 2 else max(offs.size - 1, 0)
    flat, offs, _ = check_spike_arrays(spike_times_flat, offs, np.arange(n_units), check_sorted=check_sorted)
    starts = np.asarray(start_times, dtype=np.float64)
    stops = np.asarray(stop_times, dtype=np.float64)
    if starts.ndim != 1 or stops.shape != starts.shape:
        raise ValueError(
            f"start_times and stop_times must be 1-D and of one length; got {starts.shape} and {stops.shape}"
        )
    if bool(np.any(stops < starts)):
        at = int(np.flatnonzero(stops < starts)[0])
        raise ValueError(f"presentation {at} stops ({stops[at]} s) before it starts ({starts[at]} s)")
    return _kernels.interval_counts(flat, offs, starts, stops, closed="right")


def _empty_statistics(unit_dtype: np.dtype, condition_dtype: np.dtype, use_rates: bool) -> pd.DataFrame:
    columns = _RATE_COLUMNS if use_rates else _COUNT_COLUMNS
    data = {
        name: np.zeros(0, dtype=np.int64 if name in ("spike_count", "stimulus_presentation_count") else float)
        for name in columns
    }
    index = pd.MultiIndex.from_arrays(
        [np.zeros(0, dtype=unit_dtype), np.zeros(0, dtype=condition_dtype)],
        names=["unit_id", "stimulus_condition_id"],
    )
    return pd.DataFrame(data, index=index)


def conditionwise_spike_statistics(
    spike_counts: ArrayLike,
    unit_ids: ArrayLike,
    condition_ids: ArrayLike,
    *,
    durations: ArrayLike | None = None,
    use_rates: bool = False,
) -> pd.DataFrame:
    """Spike count (or rate) statistics per stimulus condition and unit.

    Parameters
    ----------
    spike_counts
        ``(n_presentations, n_units)`` spikes per presentation and unit, e.g. from
        :func:`spike_counts_per_presentation`.
    unit_ids
        The units, one per column of ``spike_counts``. (Asked for no particular units, the
        AllenSDK keeps only those with a spike in the presentations: pass
        ``spike_counts[:, spike_counts.sum(axis=0) > 0]`` and those ids to do the same.)
    condition_ids
        Each presentation's ``stimulus_condition_id``; presentations whose condition is
        missing (NaN/None) are left out, as the AllenSDK's ``groupby`` leaves them out.
    durations
        Each presentation's duration in seconds; needed when ``use_rates``.
    use_rates
        Summarise spike rates (count / duration, spikes/s) instead of counts.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(unit_id, stimulus_condition_id)`` -- the AllenSDK's level order -- with
        rows sorted by condition, then unit. Columns: ``spike_count`` (int64, total; counts
        only), ``stimulus_presentation_count`` (int64), ``spike_mean``, ``spike_std``
        (``ddof=1``) and ``spike_sem`` (``spike_std / sqrt(n)``); std and SEM are NaN for a
        condition with one presentation.
    """
    counts = np.asarray(spike_counts)
    ids = np.asarray(unit_ids)
    conditions = np.asarray(condition_ids)
    if ids.ndim != 1 or conditions.ndim != 1:
        raise ValueError("unit_ids and condition_ids must be 1-D")
    if counts.shape != (conditions.size, ids.size):
        raise ValueError(
            f"spike_counts must have shape (len(condition_ids), len(unit_ids)) = "
            f"{(conditions.size, ids.size)}; got {counts.shape}"
        )
    if not np.issubdtype(counts.dtype, np.integer):
        raise ValueError(f"spike_counts must be integers; got dtype {counts.dtype}")
    if use_rates:
        if durations is None:
            raise ValueError("use_rates=True needs durations (seconds per presentation)")
        seconds = np.asarray(durations, dtype=np.float64)
        if seconds.shape != conditions.shape:
            raise ValueError(f"durations must have shape {conditions.shape}; got {seconds.shape}")

    codes, levels = pd.factorize(conditions, sort=True, use_na_sentinel=True)
    keep = codes >= 0
    if not bool(keep.any()) or ids.size == 0:
        return _empty_statistics(ids.dtype, conditions.dtype, use_rates)

    order = np.argsort(codes[keep], kind="stable")
    rows = np.flatnonzero(keep)[order]
    codes = codes[rows]
    n_conditions = len(levels)
    n = np.bincount(codes, minlength=n_conditions)
    present = np.flatnonzero(n)  # every level occurs, but stay safe
    starts = np.concatenate(([0], np.cumsum(n)[:-1]))[present]
    n = n[present]

    unit_order = np.argsort(ids, kind="stable")
    counts = counts[rows][:, unit_order].astype(np.int64, copy=False)
    if use_rates:
        with np.errstate(divide="ignore", invalid="ignore"):
            values = counts / seconds[rows][:, None]
    else:
        values = counts.astype(np.float64)

    mean = np.add.reduceat(values, starts, axis=0) / n[:, None]
    position = np.repeat(np.arange(present.size), n)
    deviation = values - mean[position]
    np.multiply(deviation, deviation, out=deviation)
    squares = np.add.reduceat(deviation, starts, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        std = np.sqrt(squares / (n[:, None] - 1))
    std[n == 1] = np.nan
    sem = std / np.sqrt(n)[:, None]

    n_units = ids.size
    columns: dict[str, np.ndarray] = {}
    if not use_rates:
        columns["spike_count"] = np.add.reduceat(counts, starts, axis=0).reshape(-1)
    columns["stimulus_presentation_count"] = np.repeat(n.astype(np.int64), n_units)
    columns["spike_mean"] = mean.reshape(-1)
    columns["spike_std"] = std.reshape(-1)
    columns["spike_sem"] = sem.reshape(-1)
    level_values = np.asarray(levels)[present]
    index = pd.MultiIndex.from_arrays(
        [np.tile(ids[unit_order], present.size), np.repeat(level_values, n_units)],
        names=["unit_id", "stimulus_condition_id"],
    )
    return pd.DataFrame(columns, index=index)
