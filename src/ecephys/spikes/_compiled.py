"""Binned spike counts compiled with numba (the ``fast`` extra): the numpy kernels' answers, sooner.

:func:`bin_counts` fills the same unit-major ``(n_units, n_windows, n_bins)`` array as
:func:`ecephys.spikes._kernels.bin_counts`, for any windows (overlapping or not). The units
are split into one run of consecutive units per thread, runs holding about as many spikes
each. A unit is done in one pass: its windows in order of onset, a pointer into its spike
train that moves forward only (windows that overlap rewind it to the window's first spike),
and its block of ``out`` written front to back -- both streams the CPU prefetches by itself.
A spike's bin is guessed from the bin width when the bins are even and then checked against
the real edges, so the bins are exactly the half-open ``[edge, next_edge)`` of the numpy path.

Inside a window the spikes arrive in bin order, so a bin's count is the length of its run of
spikes, stored as the run grows: one plain store per spike that never reads ``out`` back.
Indices are unsigned, so numba emits no negative-index wraparound in the inner loop. (A
426-unit session, 600 windows of 30 bins, 3.7 M spikes, measured side by side on this project's
2-core VM: 8.3 ms on 2 cores and 17 ms on one, where the earlier kernel, which wrote the answer
presentation-major as the AllenSDK lays it out, took 10.8 ms and 21 ms.)
"""

from __future__ import annotations

import threading

import numba
import numpy as np

__all__ = ["bin_counts"]

#: One parallel call at a time: numba's default "workqueue" threading layer aborts on concurrent
#: launches (a threaded Dask scheduler, say); the kernel already uses every core.
_LAUNCH = threading.Lock()

#: Array index type of the hot loops: numba adds no negative-index wraparound to unsigned ones.
_U = np.uint64


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
def _skip_to(values: np.ndarray, target: float, lo: int, end: int) -> int:
    """:func:`_lower_bound`, stepping first: the next window is usually a few spikes on."""
    stop = min(lo + 16, end)
    while lo < stop and values[_U(lo)] < target:
        lo += 1
    if lo < stop or lo == end:
        return lo
    return _lower_bound(values, target, lo, end)


@numba.njit(cache=True, nogil=True, inline="always")
def _even_bin(edges: np.ndarray, e0: int, t: float, n_bins: int, inv_width: float) -> int:
    """The bin of ``t`` in ``[edges[e0], edges[e0 + n_bins])``: guessed from the width, checked."""
    last = n_bins - 1
    b = min(np.int64((t - edges[_U(e0)]) * inv_width), last)  # t >= edges[e0]: never negative
    if edges[_U(e0 + b)] <= t < edges[_U(e0 + b + 1)]:
        return _U(b)
    while t < edges[_U(e0 + b)] and b > 0:
        b -= 1
    while t >= edges[_U(e0 + b + 1)] and b < last:
        b += 1
    return _U(b)


@numba.njit(cache=True, nogil=True, inline="always")
def _search_bin(edges: np.ndarray, e0: int, t: float, n_bins: int, inv_width: float) -> int:  # noqa: ARG001
    """The bin of ``t`` in ``[edges[e0], edges[e0 + n_bins])`` by bisection: the last edge ``<= t``."""
    lo, hi = 0, n_bins - 1
    while lo < hi:
        mid = (lo + hi + 1) >> 1
        if edges[_U(e0 + mid)] <= t:
            lo = mid
        else:
            hi = mid - 1
    return _U(lo)


@numba.njit(cache=True, nogil=True, inline="always")
def _bin_of(edges: np.ndarray, e0: int, t: float, n_bins: int, inv_width: float, even: bool) -> int:
    """:func:`_even_bin` or :func:`_search_bin`."""
    if even:
        return _even_bin(edges, e0, t, n_bins, inv_width)
    return _search_bin(edges, e0, t, n_bins, inv_width)


@numba.njit(cache=True, nogil=True)
def _peak_run(flat, first, last, edges, e0, n_bins, inv_width, even):  # noqa: ANN001, ANN202
    """The largest count in a bin of spikes ``flat[first:last]`` (exact, whatever the output dtype)."""
    peak, run, previous = 0, 0, _U(n_bins)
    for j in range(first, last):
        b = _bin_of(edges, e0, flat[_U(j)], n_bins, inv_width, even)
        run = run + 1 if b == previous else 1
        previous = b
        peak = max(peak, run)
    return peak


@numba.njit(cache=True, nogil=True, inline="always")
def _open_window(flat, lo, end, starts, stops, inv_widths, slots, n_bins, out, unit_base, i):  # noqa: ANN001, ANN202
    """Zero window ``i``'s bins in the unit's block and find its first spike.

    Returns ``(base, first, stop, inv_width, e0)``: where its bins start in ``out``, the first
    spike at or after its start, its last edge, bins per second, and its first edge in ``edges``.
    """
    base = _U(unit_base + slots[i])
    for b in range(n_bins):
        out[base + _U(b)] = 0
    first = _skip_to(flat, starts[i], lo, end)
    return base, first, stops[i], inv_widths[i], i * (n_bins + 1)


# Two kernels: the hot case (even bins, windows that do not overlap, counts that cannot
# overflow, not binarized) has a loop of its own, since the options of the general one cost
# it about 15 % (more values live in the inner loop than registers hold).
@numba.njit(cache=True, nogil=True)
def _count_unit_even_disjoint(flat, lo, end, edges, starts, stops, inv_widths, slots, n_bins, out, unit_base):  # noqa: ANN001, ANN202, E501
    """Write one unit's counts for every window into its block of ``out`` (see :func:`_count_unit`).

    Returns the most spikes in one window: no bin holds more.
    """
    n_windows = starts.shape[0]
    most = 0
    for i in range(n_windows):
        window = _open_window(flat, lo, end, starts, stops, inv_widths, slots, n_bins, out, unit_base, i)
        base, lo, stop, inv_width, e0 = window
        previous = _U(n_bins)  # no bin
        run = 0
        j = lo
        while j < end:
            t = flat[_U(j)]
            if t >= stop:
                break
            b = _even_bin(edges, e0, t, n_bins, inv_width)
            run = run + 1 if b == previous else 1
            previous = b
            out[base + b] = run
            j += 1
        most = max(most, j - lo)
        lo = j  # the next window starts after this one's spikes
    return most


@numba.njit(cache=True, nogil=True)
def _count_unit(flat, lo, end, edges, starts, stops, inv_widths, slots, n_bins, out, unit_base, options):  # noqa: ANN001, ANN202, E501
    """Write one unit's counts for every window into its block of ``out``; returns its peak check.

    The windows are in onset order: their edges end to end, first and last edges, bins per
    second, and where each window's bins go in the unit's block (``slots``, from ``unit_base``).
    ``options`` is ``(ceiling, cap, even, disjoint)``: the largest value stored (1 binarizes);
    the window size above which the largest count in a bin is worked out and returned; whether
    the bins are even (guessed from the width) and the windows disjoint (the pointer never
    rewinds).
    """
    ceiling, cap, even, disjoint = options
    peak = 0
    for i in range(starts.shape[0]):
        window = _open_window(flat, lo, end, starts, stops, inv_widths, slots, n_bins, out, unit_base, i)
        base, lo, stop, inv_width, e0 = window
        previous = _U(n_bins)  # no bin
        run = 0
        j = lo
        while j < end:
            t = flat[_U(j)]
            if t >= stop:
                break
            b = _bin_of(edges, e0, t, n_bins, inv_width, even)
            run = run + 1 if b == previous else 1
            previous = b
            out[base + b] = min(run, ceiling)
            j += 1
        if j - lo > cap:  # a bin may have wrapped round: the caller needs its exact count
            peak = max(peak, _peak_run(flat, lo, j, edges, e0, n_bins, inv_width, even))
        if disjoint:
            lo = j
    return peak


@numba.njit(cache=True, parallel=True)
def _fill(flat, offsets, windows, out, parts, options):  # noqa: ANN001, ANN202
    """Count units ``parts[p]:parts[p + 1]`` on thread ``p``; returns the largest peak check.

    ``windows`` is ``(edges, starts, stops, inv_widths, slots)`` (see :func:`_count_unit`);
    ``options`` is None for the hot case (the check is then the most spikes in a window), else
    those of :func:`_count_unit`.
    """
    edges, starts, stops, inv_widths, slots = windows
    n_bins = edges.shape[0] // starts.shape[0] - 1
    block = starts.shape[0] * n_bins  # one unit's counts
    n_parts = parts.shape[0] - 1
    peaks = np.zeros(max(n_parts, 1), dtype=np.int64)
    for part in numba.prange(n_parts):  # disjoint blocks of out: no two threads write one line
        peak = 0
        for k in range(parts[part], parts[part + 1]):
            lo, end = offsets[k, 0], offsets[k, 1]
            if options is None:
                unit_peak = _count_unit_even_disjoint(
                    flat, lo, end, edges, starts, stops, inv_widths, slots, n_bins, out, k * block
                )
            else:
                unit_peak = _count_unit(
                    flat, lo, end, edges, starts, stops, inv_widths, slots, n_bins, out, k * block, options
                )
            peak = max(peak, unit_peak)
        peaks[part] = peak
    return peaks.max()


def _balanced_parts(offsets: np.ndarray, n_parts: int) -> np.ndarray:
    """Unit bounds of ``n_parts`` runs of consecutive units holding about as many spikes each."""
    work = np.cumsum(offsets[:, 1] - offsets[:, 0] + 1)  # + 1: a unit costs a little even without spikes
    targets = work[-1] * np.arange(1, n_parts) / n_parts
    cuts = np.searchsorted(work, targets, side="left") + 1
    return np.unique(np.concatenate(([0], cuts, [offsets.shape[0]]))).astype(np.int64)


def _windows_in_onset_order(domain: np.ndarray) -> tuple[tuple[np.ndarray, ...], bool, bool]:
    """The kernel's window arrays (see :func:`_count_unit`), whether bins are even, whether disjoint."""
    n_windows, n_edges = domain.shape
    n_bins = n_edges - 1
    order = np.argsort(domain[:, 0], kind="stable")
    sorted_domain = np.ascontiguousarray(domain[order], dtype=np.float64)
    starts = np.ascontiguousarray(sorted_domain[:, 0])
    stops = np.ascontiguousarray(sorted_domain[:, -1])
    spans = stops - starts
    inv_widths = np.divide(n_bins, spans, out=np.zeros(n_windows), where=spans > 0)
    widths = np.diff(sorted_domain, axis=1)
    mean = spans / n_bins
    even = bool(np.all(np.abs(widths - mean[:, None]) <= 1e-9 * np.maximum(np.abs(mean[:, None]), 1e-300)))
    disjoint = bool(np.all(starts[1:] >= stops[:-1]))
    slots = order.astype(np.int64) * n_bins
    return (sorted_domain.reshape(-1), starts, stops, inv_widths, slots), even, disjoint


def bin_counts(
    flat: np.ndarray,
    offsets: np.ndarray,
    domain: np.ndarray,
    out: np.ndarray,
    *,
    binarize: bool,
    cap: float | None,
) -> int:
    """Overwrite ``out`` (C-contiguous ``(n_units, n_windows, n_bins)``) with spikes per half-open bin.

    Returns 0, or, when some bin holds more than ``cap`` spikes, the largest count in a bin
    (exact, though ``out`` wrapped round): the caller starts again with a wider dtype (as
    :func:`ecephys.spikes._kernels.bin_counts`).
    """
    n_windows, n_edges = domain.shape
    if n_windows == 0 or n_edges < 2 or offsets.shape[0] == 0:
        return 0
    if not out.flags.c_contiguous:
        raise ValueError("bin_counts needs a C-contiguous out array")
    windows, even, disjoint = _windows_in_onset_order(domain)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    int_max = int(np.iinfo(np.int64).max)
    limit = int_max if cap is None or binarize else int(min(cap, int_max))
    general = (1 if binarize else int_max, limit, even, disjoint)
    parts = _balanced_parts(offsets, numba.get_num_threads())
    with _LAUNCH:
        if even and disjoint and not binarize:
            most = int(_fill(flat, offsets, windows, out.reshape(-1), parts, None))
            if most <= limit:  # no bin can have wrapped round
                return 0
        peak = int(_fill(flat, offsets, windows, out.reshape(-1), parts, general))
    return peak if peak > limit else 0
