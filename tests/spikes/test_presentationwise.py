"""presentationwise_spike_counts / presentationwise_spike_times: properties, edge rules, errors,
and the AllenSDK 2.16.2's answers on the vcn2020_tiny fixture."""

from __future__ import annotations

import gzip
import hashlib
import json
import warnings

import h5py
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecephys.errors import EcephysWarning
from ecephys.spikes import (
    BinarizeWarning,
    bin_centers,
    pack_spike_times,
    presentationwise_spike_counts,
    presentationwise_spike_times,
)
from tests.reference import reference_dir, session_path
from tests.spikes.brute import (
    EDGES,
    STARTS,
    UNITS,
    brute_bin_counts,
    brute_spike_times,
    pack,
)

relaxed = settings(deadline=None)

NWB = session_path("vcn2020_tiny")
REFERENCE = reference_dir("vcn2020_tiny", "unfiltered")


def _counts(units, edges, starts, **kwargs):
    flat, offsets, ids = pack(units)
    pres = np.arange(len(starts)) + 1000
    return presentationwise_spike_counts(flat, offsets, ids, edges, pres, np.asarray(starts, float), **kwargs)


def _domain(edges, starts):
    return np.asarray(starts, dtype=float)[:, None] + np.asarray(edges, dtype=float)[None, :]


# -- properties ---------------------------------------------------------------------------


@relaxed
@given(UNITS, EDGES, STARTS)
def test_counts_match_brute_force(units, edges, starts):
    da = _counts(units, edges, starts)
    assert np.array_equal(da.values, brute_bin_counts(units, _domain(edges, starts)))


@relaxed
@given(UNITS, EDGES, STARTS)
def test_bins_sum_to_spikes_in_window(units, edges, starts):
    total = _counts(units, edges, starts).values.sum(axis=1)
    for p, start in enumerate(starts):
        lo, hi = start + edges[0], start + edges[-1]
        for k, unit in enumerate(units):
            assert total[p, k] == sum(1 for s in unit if lo <= s < hi)


@relaxed
@given(UNITS, EDGES, STARTS, st.randoms(use_true_random=False))
def test_answer_does_not_depend_on_unit_order(units, edges, starts, random):
    ids = list(range(100, 100 + len(units)))
    permuted = list(range(len(units)))
    random.shuffle(permuted)
    a = presentationwise_spike_counts(
        *pack(units, ids), edges, np.arange(len(starts)), np.asarray(starts, float)
    )
    b = presentationwise_spike_counts(
        *pack([units[i] for i in permuted], [ids[i] for i in permuted]),
        edges,
        np.arange(len(starts)),
        np.asarray(starts, float),
    )
    assert b.unit_id.values.tolist() == [ids[i] for i in permuted]
    assert a.sel(unit_id=b.unit_id).equals(b)


@relaxed
@given(UNITS, EDGES, STARTS)
def test_binarize_is_counts_above_zero(units, edges, starts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BinarizeWarning)
        binary = _counts(units, edges, starts, binarize=True)
    counts = _counts(units, edges, starts)
    assert binary.dtype == np.uint8
    assert np.array_equal(binary.values, (counts.values > 0).astype(np.uint8))


@relaxed
@given(UNITS, EDGES, STARTS.filter(bool), st.integers(1, 4))
def test_overlapping_windows_each_get_their_full_count(units, edges, starts, repeats):
    # The same window repeated, and shifted by a fraction of its width: all overlapping.
    starts = np.asarray(starts, dtype=float)
    shifted = np.concatenate([starts] * repeats + [starts + 1 / 16])
    da = _counts(units, edges, shifted)
    single = _counts(units, edges, starts).values
    for r in range(repeats):
        assert np.array_equal(da.values[r * len(starts) : (r + 1) * len(starts)], single)
    assert np.array_equal(da.values[-len(starts) :], _counts(units, edges, starts + 1 / 16).values)


@relaxed
@given(UNITS, EDGES.filter(lambda e: np.all(np.diff(e) > 0)), STARTS)
def test_rates_are_counts_over_bin_width(units, edges, starts):
    rates = _counts(units, edges, starts, rates=True)
    counts = _counts(units, edges, starts)
    assert rates.dtype == np.float64
    assert rates.name == "spike_rates"
    np.testing.assert_allclose(rates.values, counts.values / np.diff(edges)[None, :, None], rtol=1e-15)


# -- half-open edges ----------------------------------------------------------------------


@relaxed
@given(EDGES.filter(lambda e: np.all(np.diff(e) > 0)), STARTS.filter(bool))
def test_spikes_on_inner_edges_count_once_in_the_later_bin(edges, starts):
    # Exact binary fractions: start + edge is exact, so each spike sits exactly on an edge.
    start = starts[0]
    spikes = [start + e for e in edges[1:-1]]
    counts = _counts([spikes], edges, [start]).values[0, :, 0]
    assert counts.tolist() == [0] + [1] * (len(edges) - 2)


def test_spike_on_an_inner_edge_is_counted_once_in_the_later_bin():
    edges = [0.0, 0.25, 0.5, 0.75]
    da = _counts([[10.25, 10.5]], edges, [10.0])
    assert da.values[0, :, 0].tolist() == [0, 1, 1]


def test_spike_on_first_edge_is_in_and_on_last_edge_is_out():
    da = _counts([[10.0, 10.75]], [0.0, 0.25, 0.5, 0.75], [10.0])
    assert da.values[0, :, 0].tolist() == [1, 0, 0]


def test_zero_width_bin_is_always_empty():
    da = _counts([[10.25]], [0.0, 0.25, 0.25, 0.5], [10.0])
    assert da.values[0, :, 0].tolist() == [0, 0, 1]


# -- shape, coordinates, dtype -------------------------------------------------------------


def test_dims_coords_and_name():
    edges = np.array([-0.1, 0.0, 0.2])
    da = _counts([[1.05], []], edges, [1.0, 2.0])
    assert da.name == "spike_counts"
    assert da.dims == ("stimulus_presentation_id", "time_relative_to_stimulus_onset", "unit_id")
    assert da.stimulus_presentation_id.values.tolist() == [1000, 1001]
    assert np.array_equal(da.time_relative_to_stimulus_onset.values, edges[:-1] + np.diff(edges) / 2)
    assert np.array_equal(da.time_relative_to_stimulus_onset.values, bin_centers(edges))
    assert da.unit_id.values.tolist() == [100, 101]
    assert da.dtype == np.uint16
    assert da.values[:, :, 0].tolist() == [[0, 1], [0, 0]]


def test_empty_selections_give_empty_arrays():
    assert _counts([], [0.0, 1.0], [1.0, 2.0]).shape == (2, 1, 0)
    assert _counts([[1.0]], [0.0, 1.0], []).shape == (0, 1, 1)


def test_default_dtype_widens_instead_of_overflowing():
    da = _counts([np.full(70_000, 0.5)], [0.0, 1.0], [0.0])
    assert da.dtype == np.uint32
    assert int(da.values[0, 0, 0]) == 70_000


def test_given_dtype_too_small_raises_instead_of_wrapping():
    with pytest.raises(ValueError, match="a bin holds 300 spikes, more than dtype uint8"):
        _counts([np.full(300, 0.5)], [0.0, 1.0], [0.0], dtype=np.uint8)


def test_given_dtype_is_used():
    da = _counts([[0.5, 0.6]], [0.0, 1.0], [0.0], dtype=np.int64)
    assert da.dtype == np.int64
    assert da.values.item() == 2


def test_time_domain_callback_moves_the_windows():
    units = [[1.05, 1.15, 2.5]]

    def stretch(domain):
        return domain[:, :1] + (domain - domain[:, :1]) * 2

    da = _counts(units, [0.0, 0.1, 0.2], [1.0, 2.0], time_domain_callback=stretch)
    expected = brute_bin_counts(units, stretch(_domain([0.0, 0.1, 0.2], [1.0, 2.0])))
    assert np.array_equal(da.values, expected)
    rates = _counts(units, [0.0, 0.1, 0.2], [1.0, 2.0], time_domain_callback=stretch, rates=True)
    np.testing.assert_allclose(rates.values, expected / 0.2)


# -- warnings and errors --------------------------------------------------------------------


def test_binarize_warns_for_wide_bins():
    with pytest.warns(BinarizeWarning, match="0.00200 s wide"):
        _counts([[0.1]], [0.0, 0.002], [0.0], binarize=True)
    assert issubclass(BinarizeWarning, EcephysWarning)


def test_binarize_does_not_warn_for_rounded_millisecond_bins():
    edges = np.linspace(0, 0.05, 51)
    assert np.max(np.diff(edges)) > 0.001  # the AllenSDK warns here
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _counts([[0.1]], edges, [0.0], binarize=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bin_edges": [0.0]}, "at least 2 edges"),
        ({"bin_edges": [0.0, 0.2, 0.1]}, "non-decreasing"),
        ({"bin_edges": [0.0, np.nan]}, "finite"),
        ({"start_times": [np.inf]}, "finite"),
        ({"presentation_ids": [1, 2]}, "of one length"),
        ({"binarize": True, "rates": True}, "exclude each other"),
        ({"rates": True, "dtype": np.uint16}, "float dtype"),
        ({"rates": True, "bin_edges": [0.0, 0.0, 1.0]}, "wider than 0 s"),
        ({"dtype": bool}, "binarize=True"),
        ({"dtype": "U3"}, "integer, float or bool"),
        ({"time_domain_callback": lambda d: d[:, ::-1]}, "decreasing bin edge"),
        ({"time_domain_callback": lambda d: d[:, :1]}, "must return an array of shape"),
        ({"offsets": [0, 1, 2]}, "offsets must be 1-D"),
        ({"offsets": [0.0, 2.0]}, "must be integers"),
        ({"spike_times_flat": [2.0, 1.0]}, "unit 7 .* not sorted"),
        ({"offsets": [0, 5]}, r"offsets must lie within \[0, 2\]"),
        ({"offsets": [2, 0]}, "non-decreasing"),
        ({"offsets": [[0, 3]]}, "must lie within"),
    ],
)
def test_invalid_arguments(kwargs, match):
    arguments = {
        "spike_times_flat": [1.0, 2.0],
        "offsets": np.array([0, 2]),
        "unit_ids": [7],
        "bin_edges": [0.0, 0.5],
        "presentation_ids": [1],
        "start_times": [1.0],
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        presentationwise_spike_counts(**arguments)


# -- presentationwise_spike_times ---------------------------------------------------------


@relaxed
@given(UNITS, STARTS, st.lists(st.integers(0, 24), max_size=8))
def test_spike_times_match_brute_force(units, starts, lengths):
    n = min(len(starts), len(lengths))
    starts = np.asarray(starts[:n], dtype=float)
    stops = starts + np.asarray(lengths[:n], dtype=float) / 8
    ids = list(range(100, 100 + len(units)))
    pres = list(range(1000, 1000 + n))
    df = presentationwise_spike_times(*pack(units, ids), pres, starts, stops)
    expected = brute_spike_times(units, ids, pres, starts, stops)
    got = list(
        zip(
            df.index.tolist(),
            df.stimulus_presentation_id.tolist(),
            df.unit_id.tolist(),
            df.time_since_stimulus_presentation_onset.tolist(),
            strict=True,
        )
    )
    assert got == expected
    assert df.index.name == "spike_time"
    assert list(df.columns) == [
        "stimulus_presentation_id",
        "unit_id",
        "time_since_stimulus_presentation_onset",
    ]


def test_spike_times_exclude_onset_and_include_stop():
    df = presentationwise_spike_times(*pack([[1.0, 1.5, 2.0, 2.5]]), [5], [1.0], [2.0])
    assert df.index.tolist() == [1.5, 2.0]
    assert df.time_since_stimulus_presentation_onset.tolist() == [0.5, 1.0]


def test_spike_in_two_overlapping_presentations_appears_twice():
    df = presentationwise_spike_times(*pack([[1.5]]), [5, 6], [1.0, 1.2], [2.0, 2.2])
    assert df.index.tolist() == [1.5, 1.5]
    assert df.stimulus_presentation_id.tolist() == [5, 6]
    np.testing.assert_allclose(df.time_since_stimulus_presentation_onset, [0.5, 0.3])


def test_spike_times_ties_keep_unit_order():
    df = presentationwise_spike_times(*pack([[1.5], [1.5]], [9, 3]), [5], [1.0], [2.0])
    assert df.unit_id.tolist() == [9, 3]


def test_no_spikes_gives_a_typed_empty_frame():
    df = presentationwise_spike_times(*pack([[0.5]]), [5], [1.0], [2.0])
    assert df.empty
    assert df.index.name == "spike_time"
    assert df.index.dtype == np.float64
    assert df.dtypes.to_dict() == {
        "stimulus_presentation_id": np.dtype(np.int64),
        "unit_id": np.dtype(np.int64),
        "time_since_stimulus_presentation_onset": np.dtype(np.float64),
    }


@pytest.mark.parametrize(
    ("starts", "stops", "match"),
    [
        ([2.0], [1.0], "presentation 5 stops"),
        ([np.nan], [1.0], "finite"),
        ([1.0, 2.0], [3.0], "of one length"),
    ],
)
def test_spike_times_invalid_presentations(starts, stops, match):
    with pytest.raises(ValueError, match=match):
        presentationwise_spike_times(*pack([[1.5]]), [5], starts, stops)


# -- the AllenSDK 2.16.2's answers ----------------------------------------------------------


def _fixture_spikes():
    with h5py.File(NWB, "r") as f:
        ids = f["units/id"][:]
        index = f["units/spike_times_index"][:]
        times = f["units/spike_times"][:]
    bounds = np.concatenate(([0], index))
    return {int(u): times[bounds[k] : bounds[k + 1]] for k, u in enumerate(ids)}


def _fixture_intervals(name):
    with h5py.File(NWB, "r") as f:
        group = f["intervals"][f"{name}_presentations"]
        return group["start_time"][:], group["stop_time"][:]


def _all_presentation_starts():
    """Every presentation's start, sorted as the AllenSDK's stimulus table sorts them."""
    with h5py.File(NWB, "r") as f:
        groups = [f["intervals"][k] for k in f["intervals"] if k.endswith("_presentations")]
        return np.sort(np.concatenate([g["start_time"][:] for g in groups]), kind="stable")


def _edge_hits(spikes, domain):
    """Spikes per (presentation, bin, unit) lying exactly on the bin's right edge."""
    right = domain[:, 1:]
    out = np.zeros((*right.shape, len(spikes)), dtype=np.int64)
    for k, unit in enumerate(spikes):
        out[:, :, k] = np.searchsorted(unit, right, side="right") - np.searchsorted(unit, right, side="left")
    return out


@pytest.mark.parametrize("stimulus", ["flashes", "drifting_gratings"])
def test_counts_match_allensdk_except_spikes_on_bin_edges(stimulus):
    ref = np.load(REFERENCE / f"presentationwise_spike_counts_{stimulus}.npz")
    meta = json.loads((REFERENCE / f"presentationwise_spike_counts_{stimulus}.json").read_text())
    spikes = _fixture_spikes()
    starts, _ = _fixture_intervals(stimulus)
    # The reference's presentation ids index the session's start-sorted table; this stimulus's
    # rows are contiguous there, in the same (sorted) order as in the file.
    assert np.all(np.diff(starts) > 0)
    assert np.array_equal(np.diff(ref["stimulus_presentation_id"]), np.ones(len(starts) - 1))

    flat, offsets, ids = pack_spike_times(spikes, ref["unit_id"])
    da = presentationwise_spike_counts(
        flat, offsets, ids, ref["bin_edges"], ref["stimulus_presentation_id"], starts
    )

    assert da.name == meta["name"]
    assert list(da.dims) == meta["dims"]
    assert da.dtype == np.dtype(meta["dtype"])
    assert np.array_equal(da.time_relative_to_stimulus_onset.values, ref["time_relative_to_stimulus_onset"])
    assert np.array_equal(da.unit_id.values, ref["unit_id"])
    # The AllenSDK counts [a, b]; we count [a, b). The only difference: spikes on right edges.
    domain = starts[:, None] + ref["bin_edges"][None, :]
    on_edge = _edge_hits([spikes[int(u)] for u in ref["unit_id"]], domain)
    assert np.array_equal(da.values.astype(np.int64) + on_edge, ref["counts"].astype(np.int64))
    assert int(da.values.sum()) + int(on_edge.sum()) == meta["sum_finite"]


def test_binarized_overlapping_counts_match_allensdk_hash():
    # The reference run: the first 200 presentations of the whole table (natural-movie frames
    # overlap their neighbours' 50 ms windows), the first 10 units, 1 ms bins from linspace.
    meta = json.loads((REFERENCE / "presentationwise_spike_counts_binarized.json").read_text())
    units = np.load(REFERENCE / "presentationwise_spike_counts_flashes.npz")["unit_id"][:10]
    spikes = _fixture_spikes()
    starts = _all_presentation_starts()[:200]
    edges = np.linspace(0, 0.05, 51)
    domain = starts[:, None] + edges[None, :]
    assert np.any(domain[1:, 0] < domain[:-1, -1]), "the windows should overlap"
    assert _edge_hits([spikes[int(u)] for u in units], domain).sum() == 0

    flat, offsets, ids = pack_spike_times(spikes, units)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the AllenSDK warned twice here; we don't
        da = presentationwise_spike_counts(flat, offsets, ids, edges, np.arange(200), starts, binarize=True)
    assert list(da.shape) == meta["shape"]
    assert da.dtype == np.dtype(meta["dtype"])
    assert int(da.values.sum()) == meta["sum_finite"]
    assert hashlib.sha256(da.values.tobytes()).hexdigest() == meta["sha256"]


@pytest.mark.parametrize(
    ("stimulus", "name"),
    [
        ("flashes", "presentationwise_spike_times_flashes"),
        ("drifting_gratings", "presentationwise_spike_times_drifting_gratings_5units"),
    ],
)
def test_spike_times_match_allensdk(stimulus, name):
    with gzip.open(REFERENCE / f"{name}.csv.gz", "rt") as f:
        ref = pd.read_csv(f, index_col=0)
    schema = json.loads((REFERENCE / f"{name}.schema.json").read_text())
    presentations = pd.read_csv(REFERENCE / "stimulus_presentations.csv", index_col=0)
    starts, stops = _fixture_intervals(stimulus)
    rows = presentations[presentations.stimulus_name == stimulus]
    assert np.array_equal(rows.start_time.values, starts)
    units = np.load(REFERENCE / "presentationwise_spike_counts_flashes.npz")["unit_id"]
    if stimulus != "flashes":
        units = np.unique(ref.unit_id.values)

    df = presentationwise_spike_times(
        *pack_spike_times(_fixture_spikes(), units), rows.index.values, starts, stops
    )

    assert list(df.shape) == schema["shape"]
    assert list(df.columns) == schema["columns"]
    assert {k: str(v) for k, v in df.dtypes.items()} == schema["dtypes"]
    assert np.array_equal(df.index.values, ref.index.values)
    assert np.array_equal(df.stimulus_presentation_id.values, ref.stimulus_presentation_id.values)
    assert np.array_equal(df.unit_id.values, ref.unit_id.values)
    np.testing.assert_allclose(
        df.time_since_stimulus_presentation_onset.values,
        ref.time_since_stimulus_presentation_onset.values,
        rtol=0,
        atol=1e-12,
    )
