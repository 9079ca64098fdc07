"""Hot loops of the spike analyses: numpy only, one Python iteration per unit (or per block).

Every function takes the flat spike layout -- ``flat`` (float64 seconds, each unit's block
sorted) and ``offsets`` (int64 bounds of shape ``(n_units, 2)``: unit ``k`` is
``flat[offsets[k, 0]:offsets[k, 1]]``) -- and trusts its caller to have validated it
(:func:`ecephys.spikes.binning.check_spike_arrays`). Nothing here loops in Python over spikes,
bins or presentations.

Binned counts are written sparsely: each spike is located once (``np.searchsorted`` of the
spikes into the bin edges, not of the edges into the spikes), and only bins that received a
spike are written into the caller's zero-filled output. For a 6,000 x 200 x 700 request this
costs one pass over the spikes inside the windows instead of 840 million edge look-ups.
"""

from __future__ import annotations

import functools
import logging
import os
from types import ModuleType
from typing import Literal

import numpy as np

__all__ = [
    "CountOverflow",
    "bin_counts",
    "check_sorted_blocks",
    "disjoint_window_order",
    "interval_counts",
    "interval_members",
]

log = logging.getLogger(__name__)

#: Spikes (or spike-window pairs) handled per vectorised step; bounds every temporary array
#: to a few times this many elements, whatever the size of a unit.
CHUNK = 1 << 20


class CountOverflow(Exception):  # noqa: N818 - private control flow, never reaches users
    """A bin holds more spikes than the output dtype can represent."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


def check_sorted_blocks(flat: np.ndarray, offsets: np.ndarray) -> int:
    """Index of the first unit whose block of ``flat`` is not sorted ascending, or -1."""
    for k in range(offsets.shape[0]):
        block = flat[offsets[k, 0] : offsets[k, 1]]
        if block.size > 1 and bool(np.any(block[1:] < block[:-1])):
            return k
    return -1


def disjoint_window_order(lo: np.ndarray, hi: np.ndarray) -> np.ndarray | None:
    """The order that sorts windows ``[lo, hi)`` by start, if in that order none overlaps.

    Returns ``None`` when some window starts before the previous one ends; touching windows
    (``hi[i] == lo[i + 1]``) do not overlap.
    """
    order = np.argsort(lo, kind="stable")
    if order.size > 1 and bool(np.any(hi[order[:-1]] > lo[order[1:]])):
        return None
    return order


def _write_runs(
    out_flat: np.ndarray,
    idx: np.ndarray,
    *,
    binarize: bool,
    cap: float | None,
    carry: tuple[int, int],
) -> tuple[int, int]:
    """Write counts of the flat indices ``idx`` (equal values adjacent) into ``out_flat``.

    ``carry`` is ``(index, count)`` of the last run written by the previous chunk of the same
    unit, so a bin split across chunks is written with its full count. Returns the new carry.
    """
    if idx.size == 0:
        return carry
    first = np.flatnonzero(idx[1:] != idx[:-1]) + 1
    first = np.concatenate((np.zeros(1, dtype=np.intp), first))
    where = idx[first]
    if binarize:
        out_flat[where] = 1
        return int(where[-1]), 1
    counts = np.diff(np.append(first, idx.size))
    if where[0] == carry[0]:
        counts[0] += carry[1]
    if cap is not None:
        peak = int(counts.max())
        if peak > cap:
            raise CountOverflow(peak)
    out_flat[where] = counts
    return int(where[-1]), int(counts[-1])


def _bin_counts_disjoint(
    flat: np.ndarray,
    offsets: np.ndarray,
    domain: np.ndarray,
    order: np.ndarray,
    out: np.ndarray,
    *,
    binarize: bool,
    cap: float | None,
) -> None:
    """Windows that do not overlap: all their edges, in window order, form one sorted array."""
    n_windows, n_edges = domain.shape
    n_bins = n_edges - 1
    n_units = offsets.shape[0]
    if n_windows == 0 or n_bins == 0:
        return
    edges = np.ascontiguousarray(domain[order]).ravel()
    out_flat = out.reshape(-1)
    identity = bool(np.array_equal(order, np.arange(n_windows)))
    for k in range(n_units):
        unit = flat[offsets[k, 0] : offsets[k, 1]]
        # Spikes before the first edge or at/after the last edge fall in no bin.
        lo, hi = np.searchsorted(unit, (edges[0], edges[-1]), side="left")
        carry = (-1, 0)
        for a in range(int(lo), int(hi), CHUNK):
            spikes = unit[a : min(a + CHUNK, int(hi))]
            # Last edge <= spike: the half-open bin [edge, next edge) that holds it.
            pos = np.searchsorted(edges, spikes, side="right") - 1
            window, bin_ = np.divmod(pos, n_edges)
            inside = bin_ < n_bins  # bin_ == n_bins: between two windows
            window = window[inside]
            if not identity:
                window = order[window]
            # Spikes visit the bins in time order, so each bin's spikes are adjacent in idx.
            idx = (k * n_windows + window) * n_bins + bin_[inside]
            carry = _write_runs(out_flat, idx, binarize=binarize, cap=cap, carry=carry)


def _bin_counts_general(
    flat: np.ndarray,
    offsets: np.ndarray,
    domain: np.ndarray,
    out: np.ndarray,
    *,
    binarize: bool,
    cap: float | None,
) -> None:
    """Any windows, overlapping or not: expand (spike, window) pairs, then a batched bisection."""
    n_windows, n_edges = domain.shape
    n_bins = n_edges - 1
    n_units = offsets.shape[0]
    if n_windows == 0 or n_bins == 0:
        return
    edges = np.ascontiguousarray(domain).ravel()
    first_edge = np.ascontiguousarray(domain[:, 0])
    last_edge = np.ascontiguousarray(domain[:, -1])
    steps = int(np.ceil(np.log2(n_bins))) if n_bins > 1 else 0
    out_flat = out.reshape(-1)
    for k in range(n_units):
        unit = flat[offsets[k, 0] : offsets[k, 1]]
        begin = np.searchsorted(unit, first_edge, side="left")
        end = np.searchsorted(unit, last_edge, side="left")
        n_in = np.maximum(end - begin, 0)
        # Blocks of whole windows holding about CHUNK pairs each: a bin never spans two blocks.
        cum = np.cumsum(n_in)
        cuts = np.searchsorted(cum, np.arange(CHUNK, int(cum[-1]) if cum.size else 0, CHUNK), side="left")
        bounds = np.unique(np.concatenate(([0], cuts + 1, [n_windows])).clip(0, n_windows))
        for w0, w1 in zip(bounds[:-1], bounds[1:], strict=True):
            counts = n_in[w0:w1]
            total = int(counts.sum())
            if total == 0:
                continue
            window = np.repeat(np.arange(w0, w1), counts)
            run_start = np.cumsum(counts) - counts
            spike = np.arange(total) + np.repeat(begin[w0:w1] - run_start, counts)
            spikes = unit[spike]
            base = window * n_edges
            # Invariant: edges[base + low] <= spike < edges[base + high].
            low = np.zeros(total, dtype=np.intp)
            high = np.full(total, n_bins, dtype=np.intp)
            for _ in range(steps):
                mid = (low + high) >> 1
                right = spikes >= edges[base + mid]
                low = np.where(right, mid, low)
                high = np.where(right, high, mid)
            idx = (k * n_windows + window) * n_bins + low
            _write_runs(out_flat, idx, binarize=binarize, cap=cap, carry=(-1, 0))


@functools.cache
def compiled_kernels() -> ModuleType | None:
    """The numba kernels (:mod:`ecephys.spikes._compiled`), or None without a working numba.

    ``ECEPHYS_NO_NUMBA=1`` in the environment keeps to the numpy kernels. The kernel is
    compiled (or loaded from numba's cache) and run once on a tiny input here: a numba or
    LLVM that cannot build it is logged and the numpy kernels answer instead.
    """
    if os.environ.get("ECEPHYS_NO_NUMBA", "") not in ("", "0"):
        return None
    try:
        from ecephys.spikes import _compiled
    except ImportError:
        return None
    spike_times, bounds, edges = np.array([0.25, 0.75]), np.array([[0, 2]]), np.array([[0.0, 0.5, 1.0]])
    counts = np.zeros((1, 1, 2), dtype=np.uint16)  # one unit, one window, two bins
    binary = np.zeros((1, 1, 2), dtype=np.uint16)
    try:  # both loops: the hot one (counts) and the general one (binarized)
        _compiled.bin_counts(spike_times, bounds, edges, counts, binarize=False, cap=None)
        _compiled.bin_counts(spike_times, bounds, edges, binary, binarize=True, cap=None)
    except Exception as err:  # numba's errors have no common base; any failure means "not here"
        log.warning("ecephys: the compiled spike-count kernel failed to build (%s); using numpy", err)
        return None
    return _compiled if counts.ravel().tolist() == binary.ravel().tolist() == [1, 1] else None


def bin_counts(
    flat: np.ndarray,
    offsets: np.ndarray,
    domain: np.ndarray,
    out: np.ndarray,
    *,
    binarize: bool = False,
    cap: float | None = None,
    method: Literal["auto", "compiled", "disjoint", "general"] = "auto",
) -> None:
    """Count each unit's spikes into half-open bins ``[domain[p, b], domain[p, b + 1])``.

    Parameters
    ----------
    flat, offsets
        The flat spike layout (seconds).
    domain
        ``(n_windows, n_edges)`` float64 absolute bin edges, each row non-decreasing.
    out
        C-contiguous ``(n_units, n_windows, n_edges - 1)`` array (unit-major: each unit's
        counts are written front to back), overwritten in place (its contents do not matter:
        ``np.empty`` spares a pass that zero-fills it twice).
    binarize
        Write 1 for every bin holding at least one spike.
    cap
        Largest count ``out`` can hold; a larger one raises :class:`CountOverflow`.
    method
        ``"compiled"``: the numba kernel (the ``fast`` extra), any windows; ``"disjoint"``
        (numpy) needs windows that do not overlap; ``"general"`` (numpy) takes any; ``"auto"``
        picks ``"compiled"`` when numba is installed, else ``"disjoint"`` when it applies (it
        is about a third faster than ``"general"``). All give the same counts.
    """
    compiled = compiled_kernels() if method in ("auto", "compiled") else None
    if method == "compiled" and compiled is None:
        raise ValueError("method='compiled' needs numba: pip install ecephys[fast]")
    if compiled is not None:
        peak = compiled.bin_counts(flat, offsets, domain, out, binarize=binarize, cap=cap)
        if cap is not None and peak > cap:
            raise CountOverflow(peak)
        return
    out[...] = 0
    if method == "general":
        _bin_counts_general(flat, offsets, domain, out, binarize=binarize, cap=cap)
        return
    order = disjoint_window_order(domain[:, 0], domain[:, -1]) if domain.shape[1] else None
    if order is None:
        if method == "disjoint":
            raise ValueError("method='disjoint' needs windows that do not overlap")
        _bin_counts_general(flat, offsets, domain, out, binarize=binarize, cap=cap)
        return
    _bin_counts_disjoint(flat, offsets, domain, order, out, binarize=binarize, cap=cap)


def interval_counts(
    flat: np.ndarray,
    offsets: np.ndarray,
    starts: np.ndarray,
    stops: np.ndarray,
    *,
    closed: Literal["left", "right"] = "right",
) -> np.ndarray:
    """Spikes per interval and unit, ``(n_intervals, n_units)`` int64.

    ``closed="right"`` counts ``start < t <= stop`` (the AllenSDK's presentation membership),
    ``closed="left"`` counts ``start <= t < stop``. Overlapping intervals each get their count.
    """
    side: Literal["left", "right"] = "right" if closed == "right" else "left"
    n_units = offsets.shape[0]
    result = np.zeros((n_units, starts.size), dtype=np.int64)
    for k in range(n_units):
        unit = flat[offsets[k, 0] : offsets[k, 1]]
        result[k] = np.searchsorted(unit, stops, side=side) - np.searchsorted(unit, starts, side=side)
    np.maximum(result, 0, out=result)
    return np.ascontiguousarray(result.T)


def interval_members(
    flat: np.ndarray,
    offsets: np.ndarray,
    starts: np.ndarray,
    stops: np.ndarray,
    *,
    closed: Literal["left", "right"] = "right",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (spike, interval) pair with the spike inside the interval.

    Returns int64 arrays ``(spike_index, interval_index, unit_index)``: positions in ``flat``,
    in ``starts`` and in the unit list, ordered by unit, then interval, then spike. A spike
    inside two overlapping intervals gives two pairs. ``closed`` as in :func:`interval_counts`.
    """
    side: Literal["left", "right"] = "right" if closed == "right" else "left"
    n_units = offsets.shape[0]
    spike_parts: list[np.ndarray] = []
    interval_parts: list[np.ndarray] = []
    unit_parts: list[np.ndarray] = []
    intervals = np.arange(starts.size)
    for k in range(n_units):
        a = int(offsets[k, 0])
        unit = flat[a : offsets[k, 1]]
        begin = np.searchsorted(unit, starts, side=side)
        counts = np.maximum(np.searchsorted(unit, stops, side=side) - begin, 0)
        total = int(counts.sum())
        if total == 0:
            continue
        run_start = np.cumsum(counts) - counts
        spike_parts.append(np.arange(total) + np.repeat(begin + a - run_start, counts))
        interval_parts.append(np.repeat(intervals, counts))
        unit_parts.append(np.full(total, k, dtype=np.int64))
    if not spike_parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), empty.copy()
    return (
        np.concatenate(spike_parts).astype(np.int64, copy=False),
        np.concatenate(interval_parts).astype(np.int64, copy=False),
        np.concatenate(unit_parts),
    )
