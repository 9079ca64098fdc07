"""Spike-time layout and bin edges: validation and the small helpers the analyses share.

The spike analyses take every selected unit's spike times as one flat array:

* ``spike_times_flat`` -- float64 seconds, all units concatenated, each unit's block sorted;
* ``offsets`` -- int64, length ``n_units + 1``; unit ``k`` is
  ``spike_times_flat[offsets[k]:offsets[k + 1]]`` (the NWB ``spike_times_index`` with a
  leading 0);
* ``unit_ids`` -- int64, length ``n_units``.

:func:`pack_spike_times` builds it from a ``{unit_id: spike_times}`` mapping. Bins are
half-open, ``[edge, next_edge)``, in seconds relative to each presentation's onset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
from numpy.typing import ArrayLike

from ecephys.spikes import _kernels

__all__ = [
    "bin_centers",
    "check_bin_edges",
    "check_spike_arrays",
    "pack_spike_times",
    "time_window_domain",
]


def pack_spike_times(
    spike_times: Mapping[int, ArrayLike], unit_ids: Iterable[int] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten ``{unit_id: spike_times}`` into ``(spike_times_flat, offsets, unit_ids)``.

    Parameters
    ----------
    spike_times
        Spike times in seconds per unit id.
    unit_ids
        The units to take, in this order; default: the mapping's order.

    Returns
    -------
    spike_times_flat : float64 array, seconds; each unit's block sorted (sorted here if not)
    offsets : int64 array of length ``n_units + 1``
    unit_ids : int64 array of length ``n_units``
    """
    ids = np.asarray(list(spike_times) if unit_ids is None else list(unit_ids), dtype=np.int64)
    blocks = []
    for unit_id in ids.tolist():
        try:
            block = np.asarray(spike_times[unit_id], dtype=np.float64).reshape(-1)
        except KeyError:
            raise KeyError(f"unit {unit_id} is not among the {len(spike_times)} units given") from None
        if block.size > 1 and bool(np.any(block[1:] < block[:-1])):
            block = np.sort(block, kind="stable")
        blocks.append(block)
    offsets = np.zeros(ids.size + 1, dtype=np.int64)
    np.cumsum([b.size for b in blocks], out=offsets[1:])
    flat = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float64)
    return flat, offsets, ids


def check_spike_arrays(
    spike_times_flat: ArrayLike, offsets: ArrayLike, unit_ids: ArrayLike, *, check_sorted: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the flat spike layout; return (float64 spikes, int64 ``(n_units, 2)`` bounds, ids).

    ``offsets`` is either the cumulative form (``n_units + 1`` entries; unit ``k`` is
    ``flat[offsets[k]:offsets[k + 1]]``) or per-unit bounds of shape ``(n_units, 2)`` (unit
    ``k`` is ``flat[offsets[k, 0]:offsets[k, 1]]``), which lets a caller select units of a
    larger array without copying their spikes. ``check_sorted=False`` skips the per-unit order
    check, for callers that checked the same spikes once already (a session does).

    Raises
    ------
    ValueError
        naming the parameter, when a shape or an offset is wrong or a unit's spike times
        are not sorted ascending.
    """
    flat = np.ascontiguousarray(spike_times_flat, dtype=np.float64)
    offs = np.asarray(offsets)
    ids = np.asarray(unit_ids)
    if flat.ndim != 1:
        raise ValueError(f"spike_times_flat must be 1-D; got shape {flat.shape}")
    if ids.ndim != 1:
        raise ValueError(f"unit_ids must be 1-D; got shape {ids.shape}")
    if offs.size and not np.issubdtype(offs.dtype, np.integer):
        raise ValueError(f"offsets must be integers; got dtype {offs.dtype}")
    offs = offs.astype(np.int64, copy=False)
    if offs.ndim == 1 and offs.size == ids.size + 1:
        if offs.size and bool(np.any(np.diff(offs) < 0)):
            raise ValueError(f"offsets must be non-decreasing; got {offs[0]} ... {offs[-1]}")
        bounds = np.stack([offs[:-1], offs[1:]], axis=1) if offs.size else np.zeros((0, 2), np.int64)
    elif offs.ndim == 2 and offs.shape == (ids.size, 2):
        bounds = offs
    else:
        raise ValueError(
            f"offsets must be 1-D with len(unit_ids) + 1 = {ids.size + 1} entries, or per-unit bounds of "
            f"shape ({ids.size}, 2); got shape {offs.shape}"
        )
    if bounds.size and (
        bool(np.any(bounds[:, 0] < 0)) or bool(np.any(bounds[:, 1] > flat.size))
        or bool(np.any(bounds[:, 1] < bounds[:, 0]))
    ):  # fmt: skip
        raise ValueError(
            f"offsets must lie within [0, {flat.size}] (the length of spike_times_flat), each unit's "
            "start before its stop"
        )
    bad = _kernels.check_sorted_blocks(flat, bounds) if check_sorted else -1
    if bad >= 0:
        raise ValueError(
            f"the spike times of unit {ids[bad]} (position {bad}) are not sorted; "
            "sort each unit's block, or build the arrays with pack_spike_times"
        )
    return flat, bounds, ids


def check_bin_edges(bin_edges: ArrayLike) -> np.ndarray:
    """Bin edges as a 1-D float64 array of at least two finite, non-decreasing values (seconds)."""
    edges = np.asarray(bin_edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2:
        raise ValueError(f"bin_edges must be 1-D with at least 2 edges; got shape {edges.shape}")
    if not bool(np.all(np.isfinite(edges))):
        raise ValueError("bin_edges must be finite")
    if bool(np.any(np.diff(edges) < 0)):
        at = int(np.flatnonzero(np.diff(edges) < 0)[0])
        raise ValueError(f"bin_edges must be non-decreasing; edge {at + 1} ({edges[at + 1]}) < edge {at}")
    return edges


def bin_centers(bin_edges: ArrayLike) -> np.ndarray:
    """Bin centres in seconds, ``bin_edges[:-1] + np.diff(bin_edges) / 2`` (the AllenSDK's)."""
    edges = np.asarray(bin_edges, dtype=np.float64)
    return edges[:-1] + np.diff(edges) / 2


def time_window_domain(
    bin_edges: ArrayLike,
    start_times: ArrayLike,
    callback: Callable[[np.ndarray], ArrayLike] | None = None,
) -> np.ndarray:
    """Absolute bin edges per presentation: ``start_times[:, None] + bin_edges[None, :]``.

    Parameters
    ----------
    bin_edges
        Edges relative to onset, seconds.
    start_times
        Onset of each presentation, seconds.
    callback
        Applied to the ``(n_presentations, n_edges)`` domain before counting (the
        AllenSDK's ``time_domain_callback``); it must return an array of the same shape.

    Raises
    ------
    ValueError
        if a row of the domain is not finite and non-decreasing, or the callback changed its shape.
    """
    edges = check_bin_edges(bin_edges)
    starts = np.asarray(start_times, dtype=np.float64)
    if starts.ndim != 1:
        raise ValueError(f"start_times must be 1-D; got shape {starts.shape}")
    if not bool(np.all(np.isfinite(starts))):
        raise ValueError("start_times must be finite")
    domain = starts[:, None] + edges[None, :]
    if callback is not None:
        shape = domain.shape
        domain = np.ascontiguousarray(callback(domain), dtype=np.float64)
        if domain.shape != shape:
            raise ValueError(
                f"time_domain_callback must return an array of shape {shape}; got {domain.shape}"
            )
        if not bool(np.all(np.isfinite(domain))):
            raise ValueError("time_domain_callback returned non-finite bin edges")
        backwards = np.argwhere(np.diff(domain, axis=1) < 0)
        if backwards.size:
            rows = ", ".join(f"({r}, {c})" for r, c in backwards[:5].tolist())
            raise ValueError(
                f"the time domain has {len(backwards)} decreasing bin edge(s), at (presentation, bin) "
                f"{rows}{' ...' if len(backwards) > 5 else ''}; each row must be non-decreasing"
            )
    return domain
