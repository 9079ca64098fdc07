"""The private kernels against brute-force references, on both code paths and tiny chunks."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecephys.spikes import _kernels
from tests.spikes.brute import (
    EDGES,
    STARTS,
    UNITS,
    brute_bin_counts,
    brute_interval_counts,
    brute_spike_times,
)
from tests.spikes.brute import (
    pack as pack_cumulative,
)


def bounds(offsets: np.ndarray) -> np.ndarray:
    """The kernels' ``(n_units, 2)`` bounds from cumulative offsets."""
    return np.stack([offsets[:-1], offsets[1:]], axis=1)


def pack(units, ids=None):
    """``(flat, bounds, unit_ids)`` as the kernels take them."""
    flat, offsets, unit_ids = pack_cumulative(units, ids)
    return flat, bounds(offsets), unit_ids


# No deadline: the machine may be busy, and the properties are about answers, not speed.
relaxed = settings(deadline=None)


def _kernel_counts(units, domain, *, method, binarize=False, chunk=None):
    flat, offsets, _ = pack(units)
    # Not zeros: every method must overwrite what ``out`` held (callers pass np.empty).
    out = np.full((len(units), domain.shape[0], domain.shape[1] - 1), 7, dtype=np.int64)
    with mock.patch.object(_kernels, "CHUNK", chunk or _kernels.CHUNK):
        _kernels.bin_counts(flat, offsets, domain, out, binarize=binarize, method=method)
    return out.transpose(1, 2, 0)  # unit-major -> (presentation, bin, unit), as brute force


@relaxed
@given(UNITS, EDGES, STARTS, st.sampled_from([None, 1, 2, 3]))
def test_general_method_matches_brute_force(units, edges, starts, chunk):
    domain = np.asarray(starts, dtype=float)[:, None] + np.asarray(edges)[None, :]
    expected = brute_bin_counts(units, domain)
    assert np.array_equal(_kernel_counts(units, domain, method="general", chunk=chunk), expected)
    assert np.array_equal(_kernel_counts(units, domain, method="auto", chunk=chunk), expected)
    assert np.array_equal(_kernel_counts(units, domain, method="compiled"), expected)
    binary = _kernel_counts(units, domain, method="compiled", binarize=True)
    assert np.array_equal(binary, (expected > 0).astype(np.int64))


@relaxed
@given(UNITS, EDGES, st.lists(st.integers(0, 6), max_size=8), st.sampled_from([None, 1, 2, 5]))
def test_disjoint_method_matches_brute_force(units, edges, gaps, chunk):
    # Windows placed one after another (gaps >= 0, any order afterwards): never overlapping.
    width = edges[-1] - edges[0]
    starts = np.cumsum([width + g / 8 for g in gaps]) if gaps else np.zeros(0)
    starts = np.random.default_rng(len(gaps)).permutation(starts)
    domain = starts[:, None] + np.asarray(edges)[None, :]
    expected = brute_bin_counts(units, domain)
    assert np.array_equal(_kernel_counts(units, domain, method="disjoint", chunk=chunk), expected)
    assert np.array_equal(_kernel_counts(units, domain, method="general", chunk=chunk), expected)
    assert np.array_equal(_kernel_counts(units, domain, method="compiled"), expected)
    binary = _kernel_counts(units, domain, method="disjoint", binarize=True, chunk=chunk)
    assert np.array_equal(binary, (expected > 0).astype(np.int64))


def test_disjoint_method_refuses_overlapping_windows():
    domain = np.array([[0.0, 1.0], [0.5, 1.5]])
    with pytest.raises(ValueError, match="do not overlap"):
        _kernel_counts([[0.7]], domain, method="disjoint")


@relaxed
@given(
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=60),
    st.lists(st.floats(0.0, 1.0), min_size=2, max_size=12),
)
def test_compiled_kernel_on_uneven_bins_matches_brute_force(spike_times, edges):
    # Uneven bins (zero-width ones too) take the compiled kernel's bisection path.
    units = [sorted(spike_times)]
    domain = np.sort(np.asarray(edges))[None, :] + np.array([[0.0], [0.5], [0.25]])
    assert np.array_equal(_kernel_counts(units, domain, method="compiled"), brute_bin_counts(units, domain))


def test_compiled_kernel_on_many_units_of_uneven_sizes_matches_brute_force():
    # 75 units, one holding most spikes: the threads' runs of units hold very different numbers
    # of units; the windows overlap (pointers rewind) and the output starts as garbage.
    rng = np.random.default_rng(7)
    sizes = [400 if k == 40 else int(rng.integers(0, 12)) for k in range(75)]
    units = [np.sort(rng.uniform(0.0, 3.0, size)).tolist() for size in sizes]
    domain = np.linspace(-0.1, 0.4, 6)[None, :] + np.array([[2.5], [0.0], [0.2], [1.0], [1.4]])
    expected = brute_bin_counts(units, domain)
    assert expected[:, :, 40].sum() > 50  # the big unit really is counted
    assert np.array_equal(_kernel_counts(units, domain, method="compiled"), expected)


def test_compiled_kernel_counts_exactly_when_a_window_holds_more_than_the_cap():
    # 6 spikes in the window but at most 3 in a bin: no overflow at cap 4, and exact counts.
    flat, offsets, _ = pack([[0.1, 0.2, 0.3, 0.6, 0.7, 0.8]])
    out = np.zeros((1, 1, 2), dtype=np.uint8)
    _kernels.bin_counts(flat, offsets, np.array([[0.0, 0.5, 1.0]]), out, cap=4, method="compiled")
    assert out[0, 0, :].tolist() == [3, 3]


@pytest.mark.parametrize("method", ["disjoint", "general", "compiled"])
def test_count_above_cap_raises_overflow(method):
    flat, offsets, _ = pack([[0.1] * 5])
    out = np.zeros((1, 1, 1), dtype=np.uint8)
    with pytest.raises(_kernels.CountOverflow) as caught:
        _kernels.bin_counts(flat, offsets, np.array([[0.0, 1.0]]), out, cap=4, method=method)
    assert caught.value.count == 5


@pytest.mark.parametrize("method", ["disjoint", "general", "compiled"])
def test_count_that_wraps_the_dtype_is_reported_exactly(method):
    # 300 spikes in one uint8 bin wrap round to 44: the overflow must still name 300.
    flat, offsets, _ = pack([list(np.linspace(0.1, 0.4, 300)), [0.2, 0.6]])
    out = np.zeros((2, 1, 2), dtype=np.uint8)
    with pytest.raises(_kernels.CountOverflow) as caught:
        _kernels.bin_counts(flat, offsets, np.array([[0.0, 0.5, 1.0]]), out, cap=255, method=method)
    assert caught.value.count == 300


def _counts_by_comparison(units, domain) -> np.ndarray:
    """``lo <= t < hi`` for every (window, bin, unit), by broadcasting: the definition, vectorised."""
    lo, hi = domain[:, :-1, None], domain[:, 1:, None]
    spike_times = [np.asarray(u)[None, None, :] for u in units]
    return np.stack([((t >= lo) & (t < hi)).sum(axis=2) for t in spike_times], axis=2)


@pytest.mark.parametrize("method", ["compiled", "disjoint", "general"])
def test_spikes_on_and_beside_edges_late_in_a_session_are_binned_exactly(method):
    # Onsets near 9,877 s and 2 ms bins from np.linspace: spikes exactly on every edge and one
    # float step either side of it, where a bin guessed from the width is most often wrong.
    edges = np.linspace(-0.05, 0.35, 201)
    domain = (9_876.54321 + np.arange(5) * 1.0)[:, None] + edges[None, :]
    on_edges = domain.ravel()
    beside = np.concatenate([on_edges, np.nextafter(on_edges, -np.inf), np.nextafter(on_edges, np.inf)])
    spike_times = np.unique(beside)
    units = [spike_times, spike_times[::3], spike_times[1::7]]
    expected = _counts_by_comparison(units, domain)
    assert (expected[:, :, 0] == 3).all()  # each bin: on its first edge, a step above, a step below the next
    assert np.array_equal(_kernel_counts(units, domain, method=method), expected)


def test_compiled_kernel_refuses_an_output_it_cannot_write_in_place():
    flat, offsets, _ = pack([[0.1]])
    out = np.zeros((1, 2, 2), dtype=np.int64)[:, :, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        _kernels.bin_counts(flat, offsets, np.array([[0.0, 0.5, 1.0]]), out, method="compiled")


@pytest.mark.parametrize(
    ("lo", "hi", "disjoint"),
    [
        ([0.0, 2.0, 1.0], [1.0, 3.0, 2.0], True),  # touching windows, given out of order
        ([0.0, 0.5], [1.0, 1.5], False),
        ([0.0, 0.0], [0.0, 1.0], True),  # an empty window at the start of another
        ([], [], True),
    ],
)
def test_disjoint_window_order(lo, hi, disjoint):
    order = _kernels.disjoint_window_order(np.asarray(lo), np.asarray(hi))
    assert (order is not None) == disjoint
    if order is not None:
        assert np.all(np.diff(np.asarray(lo)[order]) >= 0)


def test_check_sorted_blocks_names_the_first_unsorted_unit():
    flat = np.array([1.0, 2.0, 5.0, 3.0, 0.0, 9.0])
    assert _kernels.check_sorted_blocks(flat, bounds(np.array([0, 2, 4, 6]))) == 1
    assert _kernels.check_sorted_blocks(flat, bounds(np.array([0, 3, 4, 6]))) == -1
    # bounds may select units in any order, skipping others
    assert _kernels.check_sorted_blocks(flat, np.array([[4, 6], [0, 2]])) == -1
    assert _kernels.check_sorted_blocks(flat, np.array([[4, 6], [1, 4]])) == 1


@relaxed
@given(UNITS, STARTS, st.lists(st.integers(0, 24), max_size=8))
def test_interval_counts_and_members_match_brute_force(units, starts, lengths):
    n = min(len(starts), len(lengths))
    starts = np.asarray(starts[:n], dtype=float)
    stops = starts + np.asarray(lengths[:n], dtype=float) / 8
    flat, offsets, ids = pack(units)
    counts = _kernels.interval_counts(flat, offsets, starts, stops, closed="right")
    assert np.array_equal(counts, brute_interval_counts(units, starts, stops))

    spike, interval, unit = _kernels.interval_members(flat, offsets, starts, stops, closed="right")
    rows = sorted(zip(flat[spike].tolist(), unit.tolist(), interval.tolist(), strict=True))
    expected = brute_spike_times(units, list(range(len(units))), list(range(n)), starts, stops)
    assert [(t, k, p) for t, k, p in rows] == [(t, k, p) for t, p, k, _ in expected]
    assert np.bincount(unit, minlength=len(units)).tolist() == counts.sum(axis=0).tolist()


def test_interval_counts_left_closed():
    flat, offsets, _ = pack([[1.0, 2.0, 3.0]])
    counts = _kernels.interval_counts(flat, offsets, np.array([1.0]), np.array([3.0]), closed="left")
    assert counts.tolist() == [[2]]
    counts = _kernels.interval_counts(flat, offsets, np.array([1.0]), np.array([3.0]), closed="right")
    assert counts.tolist() == [[2]]
    spike, _, _ = _kernels.interval_members(flat, offsets, np.array([1.0]), np.array([3.0]), closed="left")
    assert flat[spike].tolist() == [1.0, 2.0]


def test_without_numba_the_numpy_kernels_answer(monkeypatch):
    units = [[0.1, 0.2, 0.7], [0.55]]
    domain = np.array([[0.0, 0.5, 1.0]])
    monkeypatch.setenv("ECEPHYS_NO_NUMBA", "1")
    _kernels.compiled_kernels.cache_clear()
    try:
        assert _kernels.compiled_kernels() is None
        with pytest.raises(ValueError, match=r"ecephys\[fast\]"):
            _kernel_counts(units, domain, method="compiled")
        assert np.array_equal(_kernel_counts(units, domain, method="auto"), brute_bin_counts(units, domain))
    finally:
        monkeypatch.delenv("ECEPHYS_NO_NUMBA")
        _kernels.compiled_kernels.cache_clear()
    assert _kernels.compiled_kernels() is not None


def test_a_compiled_kernel_that_cannot_build_falls_back_to_numpy(monkeypatch, caplog):
    from ecephys.spikes import _compiled

    def cannot_build(*args, **kwargs):
        raise RuntimeError("LLVM ERROR: unknown intrinsic")  # what an incompatible llvmlite says

    monkeypatch.setattr(_compiled, "bin_counts", cannot_build)
    _kernels.compiled_kernels.cache_clear()
    try:
        assert _kernels.compiled_kernels() is None
        assert "failed to build" in caplog.text
        units, domain = [[0.1, 0.6]], np.array([[0.0, 0.5, 1.0]])
        assert np.array_equal(_kernel_counts(units, domain, method="auto"), brute_bin_counts(units, domain))
    finally:
        monkeypatch.undo()
        _kernels.compiled_kernels.cache_clear()
    assert _kernels.compiled_kernels() is _compiled
