"""Binned spike counts compiled with numba (the ``fast`` extra): the numpy kernels' answers, sooner.

:func:`bin_counts` fills the same ``(n_windows, n_bins, n_units)`` array as
:func:`ecephys.spikes._kernels.bin_counts`, for any windows (overlapping or not). Units are
taken in blocks, one thread per block, so threads write disjoint columns; inside a block the
windows go in order of onset and each unit keeps a pointer into its spike train that only moves
forward (a galloping search), so the spikes are read once, in order. A spike's bin is guessed
from the bin width when the bins are even and then checked against the real edges, so the bins
are exactly the half-open ``[edge, next_edge)`` of the numpy path.
"""

from __future__ import annotations

import threading

import numba
import numpy as np

__all__ = ["bin_counts"]

#: One parallel call at a time: numba's default "workqueue" threading layer aborts on concurrent
#: launches (a threaded Dask scheduler, say); the kernel already uses every core.
_LAUNCH = threading.Lock()

#: Units per thread block: 32 columns of uint16 are one 64-byte cache line of a (window, bin) row.
UNIT_BLOCK = 32


@numba.njit(cache=True, nogil=True, inline="always")
def _lower_bound(values: np.ndarray, target: float, lo: int, end: int) -> int:
    """First index in ``[lo, end)`` with ``values[i] >= target`` (``end`` when none), galloping from lo."""
    if lo >= end or values[lo] >= target:
        return lo
    step = 1
    hi = lo + 1
    while hi < end and values[hi] < target:
        lo = hi
        step *= 2
        hi = lo + step
    hi = min(hi, end)
    lo += 1  # values[lo - 1] < target; the answer lies in [lo, hi]
    while lo < hi:
        mid = (lo + hi) >> 1
        if values[mid] < target:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True, inline="always")
def _bin_of(row: np.ndarray, t: float, n_bins: int, inv_width: float, even: bool) -> int:
    """The bin ``b`` with ``row[b] <= t < row[b + 1]``, for ``row[0] <= t < row[n_bins]``."""
    if even:
        b = min(max(int((t - row[0]) * inv_width), 0), n_bins - 1)
        while b > 0 and t < row[b]:
            b -= 1
        while b < n_bins - 1 and t >= row[b + 1]:
            b += 1
        return b
    lo, hi = 0, n_bins - 1  # the last edge <= t
    while lo < hi:
        mid = (lo + hi + 1) >> 1
        if row[mid] <= t:
            lo = mid
        else:
            hi = mid - 1
    return lo


@numba.njit(cache=True, nogil=True)
def _count_runs(flat, j0, j1, row, n_bins, inv_width, even, out, w, k):  # noqa: ANN001, ANN202
    """Write the counts of spikes ``flat[j0:j1]`` bin by bin; returns the largest (exact, no wrap)."""
    current, run, peak = -1, 0, 0
    for j in range(j0, j1):
        b = _bin_of(row, flat[j], n_bins, inv_width, even)
        if b != current:
            if run:
                out[w, current, k] = run
                peak = max(peak, run)
            current, run = b, 0
        run += 1
    if run:
        out[w, current, k] = run
        peak = max(peak, run)
    return peak


@numba.njit(cache=True, nogil=True, inline="always")
def _skip_to(values: np.ndarray, target: float, lo: int, end: int) -> int:
    """:func:`_lower_bound`, stepping first: the next window is usually a few spikes on."""
    stop = min(lo + 16, end)
    while lo < stop and values[lo] < target:
        lo += 1
    if lo < stop or lo == end:
        return lo
    return _lower_bound(values, target, lo, end)


@numba.njit(cache=True, parallel=True)
def _fill(flat, offsets, domain, order, out, binarize, even, disjoint, cap):  # noqa: ANN001, ANN202
    n_windows, n_edges = domain.shape
    n_bins = n_edges - 1
    n_units = offsets.shape[0]
    n_blocks = (n_units + UNIT_BLOCK - 1) // UNIT_BLOCK
    peaks = np.zeros(n_blocks, dtype=np.int64)
    for block in numba.prange(n_blocks):
        k0 = block * UNIT_BLOCK
        k1 = min(n_units, k0 + UNIT_BLOCK)
        pointers = offsets[k0:k1, 0].copy()
        peak = 0
        for i in range(n_windows):  # in onset order: each unit's pointer only moves forward
            w = order[i]
            row = domain[w]
            start, stop = row[0], row[n_bins]
            inv_width = n_bins / (stop - start) if stop > start else 0.0
            for k in range(k0, k1):
                end = offsets[k, 1]
                j0 = _skip_to(flat, start, pointers[k - k0], end)
                j = j0
                while j < end and flat[j] < stop:
                    b = _bin_of(row, flat[j], n_bins, inv_width, even)
                    if binarize:
                        out[w, b, k] = 1
                    else:
                        out[w, b, k] += 1
                    j += 1
                # Disjoint windows: the next one starts after this one's spikes.
                pointers[k - k0] = j if disjoint else j0
                if not binarize and j - j0 > cap:  # a bin may have wrapped: count it again exactly
                    out[w, :, k] = 0
                    peak = max(peak, _count_runs(flat, j0, j, row, n_bins, inv_width, even, out, w, k))
        peaks[block] = peak
    return peaks.max() if n_blocks else 0


def bin_counts(
    flat: np.ndarray,
    offsets: np.ndarray,
    domain: np.ndarray,
    out: np.ndarray,
    *,
    binarize: bool,
    cap: float | None,
) -> int:
    """Fill ``out`` (zeros) with each unit's spikes per half-open bin.

    Returns 0, or, when some window holds more than ``cap`` spikes of one unit, the largest
    count in a bin (exact): more than ``cap`` means that bin wrapped, and the caller starts
    again with a wider dtype (as :func:`ecephys.spikes._kernels.bin_counts`).
    """
    n_windows, n_edges = domain.shape
    if n_windows == 0 or n_edges < 2 or offsets.shape[0] == 0:
        return 0
    widths = np.diff(domain, axis=1)
    mean = (domain[:, -1] - domain[:, 0]) / (n_edges - 1)
    even = bool(np.all(np.abs(widths - mean[:, None]) <= 1e-9 * np.maximum(np.abs(mean[:, None]), 1e-300)))
    order = np.argsort(domain[:, 0], kind="stable")
    disjoint = bool(np.all(domain[order[1:], 0] >= domain[order[:-1], -1]))
    limit = np.iinfo(np.int64).max if cap is None else int(min(cap, np.iinfo(np.int64).max))
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    domain = np.ascontiguousarray(domain, dtype=np.float64)
    with _LAUNCH:
        return int(_fill(flat, offsets, domain, order, out, binarize, even, disjoint, limit))
