"""Spikes aligned to stimulus presentations: binned counts and a spike-by-spike table.

Same semantics as the AllenSDK 2.16.2's ``EcephysSession.presentationwise_spike_counts`` and
``presentationwise_spike_times``, with these deliberate differences:

* bins are half-open ``[edge, next_edge)``: a spike on an edge shared by two bins counts once,
  in the later bin, and a spike on the last edge is outside the window (the AllenSDK counts
  both ends of every bin, so a spike on an inner edge is counted twice);
* overlapping presentation windows are neither warned about nor a problem: each window gets
  its own full count, and in the spike table a spike inside two presentations appears once
  per presentation (the AllenSDK gives each spike to at most one presentation there);
* counts never overflow: by default the dtype is the AllenSDK's ``uint16`` (``uint8`` when
  binarized), widened to ``uint32`` only when some bin holds more than 65,535 spikes;
* the binarize warning ignores float rounding (1 ms bins from ``np.linspace`` don't warn);
* ``rates=True`` returns spikes per second.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import ArrayLike, DTypeLike

from ecephys.errors import BinarizeWarning
from ecephys.spikes import _kernels
from ecephys.spikes.binning import (
    bin_centers,
    check_bin_edges,
    check_spike_arrays,
    time_window_domain,
)

__all__ = ["presentationwise_spike_counts", "presentationwise_spike_times"]

_WIDER_COUNT_DTYPES = (np.dtype(np.uint16), np.dtype(np.uint32), np.dtype(np.uint64))


def _count_cap(dtype: np.dtype, binarize: bool) -> float | None:
    """The largest count ``dtype`` holds exactly, or None when no check is needed."""
    if dtype.kind == "b":
        if not binarize:
            raise ValueError("dtype=bool holds only binarized counts; pass binarize=True or another dtype")
        return None
    if binarize:
        return None
    if dtype.kind in "iu":
        return int(np.iinfo(dtype).max)
    if dtype.kind == "f":
        return float(2 ** (np.finfo(dtype).nmant + 1))
    raise ValueError(f"dtype must be an integer, float or bool dtype; got {dtype}")


def presentationwise_spike_counts(
    spike_times_flat: ArrayLike,
    offsets: ArrayLike,
    unit_ids: ArrayLike,
    bin_edges: ArrayLike,
    presentation_ids: ArrayLike,
    start_times: ArrayLike,
    *,
    binarize: bool = False,
    dtype: DTypeLike | None = None,
    large_bin_size_threshold: float = 0.001,
    time_domain_callback: Callable[[np.ndarray], ArrayLike] | None = None,
    rates: bool = False,
    check_sorted: bool = True,
) -> xr.DataArray:
    """Spike counts in time bins around each presentation's onset, per unit.

    Parameters
    ----------
    spike_times_flat, offsets, unit_ids
        The selected units' spike times (seconds), see :mod:`ecephys.spikes.binning`.
    bin_edges
        Bin edges in seconds relative to onset; bins are half-open ``[edge, next_edge)``.
    presentation_ids, start_times
        The presentations (any order; windows may overlap) and their onsets in seconds.
    binarize
        Return 1 where a bin holds at least one spike. Warns (:class:`BinarizeWarning`) when
        the widest bin is wider than ``large_bin_size_threshold`` seconds.
    dtype
        Output dtype. Default: ``uint8`` when binarized, ``float64`` for rates, otherwise
        ``uint16`` widened to ``uint32`` if a bin holds more than 65,535 spikes. A given
        integer dtype too small for the counts raises ``ValueError`` (never wraps around).
    time_domain_callback
        Applied to the ``(n_presentations, n_edges)`` array of absolute bin edges before
        counting; each row must stay non-decreasing.
    rates
        Return spikes per second: counts divided by the bin width (``np.diff(bin_edges)``,
        or the row's own widths when a ``time_domain_callback`` is given).

    Returns
    -------
    xarray.DataArray
        ``spike_counts`` (or ``spike_rates``), dims ``(stimulus_presentation_id,
        time_relative_to_stimulus_onset, unit_id)``; the time coordinate is the bin centres.
        In memory the values are unit-major (a transposed view, each unit's counts together);
        ``np.ascontiguousarray(counts.values)`` gives a C-ordered copy where one is needed.
    """
    flat, offs, ids = check_spike_arrays(spike_times_flat, offsets, unit_ids, check_sorted=check_sorted)
    edges = check_bin_edges(bin_edges)
    pres = np.asarray(presentation_ids)
    starts = np.asarray(start_times, dtype=np.float64)
    if pres.ndim != 1 or starts.shape != pres.shape:
        raise ValueError(
            f"presentation_ids and start_times must be 1-D and of one length; got shapes "
            f"{pres.shape} and {starts.shape}"
        )
    if binarize and rates:
        raise ValueError("binarize=True and rates=True exclude each other")

    widest = float(np.max(np.diff(edges)))
    if (
        binarize
        and widest > large_bin_size_threshold
        and not np.isclose(widest, large_bin_size_threshold, rtol=1e-9, atol=0.0)
    ):
        warnings.warn(
            f"binarized spike counts with bins up to {widest:.5f} s wide: a bin holding several "
            f"spikes reads as 1. Use bins no wider than {large_bin_size_threshold} s, or binarize=False.",
            BinarizeWarning,
            stacklevel=2,
        )

    domain = time_window_domain(edges, starts, time_domain_callback)
    n_pres, n_edges = domain.shape

    if rates:
        widths = np.diff(domain, axis=1) if time_domain_callback is not None else np.diff(edges)
        if bool(np.any(widths <= 0)):
            raise ValueError("rates=True needs every bin to be wider than 0 s")
    explicit = dtype is not None
    if explicit:
        out_dtype = np.dtype(dtype)
    elif binarize:
        out_dtype = np.dtype(np.uint8)
    elif rates:
        out_dtype = np.dtype(np.float64)
    else:
        out_dtype = _WIDER_COUNT_DTYPES[0]
    if rates and out_dtype.kind != "f":
        raise ValueError(f"rates=True needs a float dtype; got {out_dtype}")

    cap = _count_cap(out_dtype, binarize)
    coords = {
        "stimulus_presentation_id": pres,
        "time_relative_to_stimulus_onset": bin_centers(edges),
        "unit_id": ids,
    }
    while True:
        # Unit-major in memory: the kernels write each unit's counts front to back; the answer
        # is the (presentation, bin, unit) view of them, wrapped before it is filled in place
        # (xarray's checks then run while the caches are warm, not after the counting).
        by_unit = np.empty((ids.size, n_pres, n_edges - 1), dtype=out_dtype)
        answer = xr.DataArray(
            by_unit.transpose(1, 2, 0),
            name="spike_rates" if rates else "spike_counts",
            coords=coords,
            dims=tuple(coords),
            attrs={"units": "spikes/s"} if rates else {},
        )
        try:
            _kernels.bin_counts(flat, offs, domain, by_unit, binarize=binarize, cap=cap)
        except _kernels.CountOverflow as overflow:
            del by_unit, answer
            if explicit:
                raise ValueError(
                    f"a bin holds {overflow.count} spikes, more than dtype {out_dtype} can hold; "
                    "pass a wider dtype, or dtype=None to choose one automatically"
                ) from None
            out_dtype = next(d for d in _WIDER_COUNT_DTYPES if np.iinfo(d).max >= overflow.count)
            cap = _count_cap(out_dtype, binarize)
            continue
        break

    if rates:
        counts = answer.values  # the view of by_unit: divided in place
        counts /= widths[..., None] if widths.ndim == 2 else widths[None, :, None]
    return answer


def _empty_spike_times_frame(pres_dtype: np.dtype, unit_dtype: np.dtype) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "stimulus_presentation_id": np.zeros(0, dtype=pres_dtype),
            "unit_id": np.zeros(0, dtype=unit_dtype),
            "time_since_stimulus_presentation_onset": np.zeros(0, dtype=np.float64),
        },
        index=pd.Index(np.zeros(0, dtype=np.float64), name="spike_time"),
    )


def presentationwise_spike_times(
    spike_times_flat: ArrayLike,
    offsets: ArrayLike,
    unit_ids: ArrayLike,
    presentation_ids: ArrayLike,
    start_times: ArrayLike,
    stop_times: ArrayLike,
    *,
    check_sorted: bool = True,
) -> pd.DataFrame:
    """Every spike that falls inside a presentation, with its unit and presentation.

    A spike belongs to a presentation when ``start_time < spike_time <= stop_time`` (the
    AllenSDK's rule: a spike exactly at onset is not in the presentation, one exactly at its
    end is). A spike inside two overlapping presentations appears once for each.

    Parameters
    ----------
    spike_times_flat, offsets, unit_ids
        The selected units' spike times (seconds), see :mod:`ecephys.spikes.binning`.
    presentation_ids, start_times, stop_times
        The presentations, in any order, with their start and stop times in seconds.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``spike_time`` (float64 s), with columns ``stimulus_presentation_id``,
        ``unit_id`` and ``time_since_stimulus_presentation_onset`` (s), sorted by spike time;
        ties keep the order of ``unit_ids``, then of ``presentation_ids``. An empty frame has
        the same columns and dtypes.
    """
    flat, offs, ids = check_spike_arrays(spike_times_flat, offsets, unit_ids, check_sorted=check_sorted)
    pres = np.asarray(presentation_ids)
    starts = np.asarray(start_times, dtype=np.float64)
    stops = np.asarray(stop_times, dtype=np.float64)
    if pres.ndim != 1 or starts.shape != pres.shape or stops.shape != pres.shape:
        raise ValueError(
            "presentation_ids, start_times and stop_times must be 1-D and of one length; got shapes "
            f"{pres.shape}, {starts.shape} and {stops.shape}"
        )
    if not (bool(np.all(np.isfinite(starts))) and bool(np.all(np.isfinite(stops)))):
        raise ValueError("start_times and stop_times must be finite")
    if bool(np.any(stops < starts)):
        at = int(np.flatnonzero(stops < starts)[0])
        raise ValueError(f"presentation {pres[at]} stops ({stops[at]} s) before it starts ({starts[at]} s)")

    spike, window, unit = _kernels.interval_members(flat, offs, starts, stops, closed="right")
    if spike.size == 0:
        return _empty_spike_times_frame(pres.dtype, ids.dtype)
    times = flat[spike]
    order = np.lexsort((window, unit, times))
    window, unit, times = window[order], unit[order], times[order]
    return pd.DataFrame(
        {
            "stimulus_presentation_id": pres[window],
            "unit_id": ids[unit],
            "time_since_stimulus_presentation_onset": times - starts[window],
        },
        index=pd.Index(times, name="spike_time"),
    )
