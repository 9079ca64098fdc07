"""spike_counts_per_presentation / conditionwise_spike_statistics: properties, NaN rules,
and the AllenSDK 2.16.2's answers on the vcn2020_tiny fixture."""

from __future__ import annotations

import math
import warnings

import h5py
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecephys.spikes import (
    conditionwise_spike_statistics,
    pack_spike_times,
    presentationwise_spike_times,
    spike_counts_per_presentation,
)
from tests.reference import reference_dir, session_path
from tests.spikes.brute import STARTS, UNITS, brute_conditionwise, brute_interval_counts, pack

relaxed = settings(deadline=None)

NWB = session_path("vcn2020_tiny")
REFERENCE = reference_dir("vcn2020_tiny", "unfiltered")

COUNT_COLUMNS = ["spike_count", "stimulus_presentation_count", "spike_mean", "spike_std", "spike_sem"]
RATE_COLUMNS = COUNT_COLUMNS[1:]


def _close(a, b):
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


# -- spike_counts_per_presentation ----------------------------------------------------------


@relaxed
@given(UNITS, STARTS, st.lists(st.integers(0, 24), max_size=8))
def test_counts_per_presentation_match_brute_force_and_spike_table(units, starts, lengths):
    n = min(len(starts), len(lengths))
    starts = np.asarray(starts[:n], dtype=float)
    stops = starts + np.asarray(lengths[:n], dtype=float) / 8
    flat, offsets, ids = pack(units)
    counts = spike_counts_per_presentation(flat, offsets, starts, stops)
    assert counts.dtype == np.int64
    assert np.array_equal(counts, brute_interval_counts(units, starts, stops))
    # The same membership rule as presentationwise_spike_times.
    table = presentationwise_spike_times(flat, offsets, ids, np.arange(n), starts, stops)
    tally = table.groupby(["stimulus_presentation_id", "unit_id"]).size()
    for (p, u), c in tally.items():
        assert counts[p, u - 100] == c
    assert counts.sum() == len(table)


def test_counts_per_presentation_edges_and_errors():
    flat, offsets, _ = pack([[1.0, 1.5, 2.0]])
    assert spike_counts_per_presentation(flat, offsets, [1.0], [2.0]).tolist() == [[2]]
    with pytest.raises(ValueError, match="presentation 0 stops"):
        spike_counts_per_presentation(flat, offsets, [2.0], [1.0])
    with pytest.raises(ValueError, match="of one length"):
        spike_counts_per_presentation(flat, offsets, [1.0, 2.0], [3.0])


# -- conditionwise_spike_statistics ---------------------------------------------------------

MATRICES = st.integers(1, 12).flatmap(
    lambda n: st.tuples(
        st.lists(st.lists(st.integers(0, 50), min_size=3, max_size=3), min_size=n, max_size=n),
        st.lists(st.sampled_from([3.0, 1.0, 2.0, math.nan]), min_size=n, max_size=n),
        st.lists(st.sampled_from([0.25, 0.5, 2.0, 0.1]), min_size=n, max_size=n),
    )
)


@relaxed
@given(MATRICES, st.permutations([30, 10, 20]), st.booleans())
def test_statistics_match_brute_force(matrices, unit_ids, use_rates):
    counts, conditions, durations = matrices
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning for one-presentation conditions
        df = conditionwise_spike_statistics(
            np.asarray(counts, dtype=np.int64), unit_ids, conditions, durations=durations, use_rates=use_rates
        )
    expected = brute_conditionwise(counts, unit_ids, conditions, durations, use_rates)
    assert list(df.columns) == (RATE_COLUMNS if use_rates else COUNT_COLUMNS)
    assert list(df.index.names) == ["unit_id", "stimulus_condition_id"]
    # Rows ordered by condition, then unit.
    assert [(c, u) for u, c in df.index] == sorted((c, u) for u, c in expected)
    for (u, c), row in df.iterrows():
        for column, value in expected[(u, c)].items():
            assert _close(float(row[column]), float(value)), (u, c, column, row[column], value)
    assert df["stimulus_presentation_count"].dtype == np.int64
    if not use_rates:
        assert df["spike_count"].dtype == np.int64


def test_single_presentation_condition_has_nan_spread():
    df = conditionwise_spike_statistics(np.array([[4], [1], [3]]), [7], [1, 2, 2])
    assert df.loc[(7, 1)].spike_mean == 4.0
    assert math.isnan(df.loc[(7, 1)].spike_std)
    assert math.isnan(df.loc[(7, 1)].spike_sem)
    assert df.loc[(7, 2)].spike_std == pytest.approx(math.sqrt(2))
    assert df.loc[(7, 2)].spike_sem == pytest.approx(1.0)


def test_missing_conditions_are_left_out_and_condition_dtype_kept():
    df = conditionwise_spike_statistics(np.array([[4], [1]]), [7], np.array([np.nan, 2.0]))
    assert df.index.tolist() == [(7, 2.0)]
    assert df.index.levels[1].dtype == np.float64


def test_empty_inputs_give_typed_empty_frames():
    df = conditionwise_spike_statistics(np.zeros((0, 2), dtype=np.int64), [1, 2], np.zeros(0))
    assert df.empty
    assert list(df.columns) == COUNT_COLUMNS
    assert list(df.index.names) == ["unit_id", "stimulus_condition_id"]
    df = conditionwise_spike_statistics(
        np.zeros((2, 0), dtype=np.int64), [], [1, 2], durations=[1.0, 1.0], use_rates=True
    )
    assert df.empty
    assert list(df.columns) == RATE_COLUMNS


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"spike_counts": np.zeros((3, 1))}, "must be integers"),
        ({"spike_counts": np.zeros((2, 1), dtype=int)}, "must have shape"),
        ({"use_rates": True}, "needs durations"),
        ({"use_rates": True, "durations": [1.0]}, "durations must have shape"),
        ({"unit_ids": [[7]]}, "must be 1-D"),
    ],
)
def test_invalid_arguments(kwargs, match):
    arguments = {"spike_counts": np.zeros((3, 1), dtype=int), "unit_ids": [7], "condition_ids": [1, 1, 2]}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        conditionwise_spike_statistics(**arguments)


# -- the AllenSDK 2.16.2's answers ----------------------------------------------------------


def _fixture_spikes():
    with h5py.File(NWB, "r") as f:
        ids = f["units/id"][:]
        index = f["units/spike_times_index"][:]
        times = f["units/spike_times"][:]
    bounds = np.concatenate(([0], index))
    return {int(u): times[bounds[k] : bounds[k + 1]] for k, u in enumerate(ids)}


@pytest.mark.parametrize("stimulus", ["flashes", "drifting_gratings"])
@pytest.mark.parametrize("use_rates", [False, True])
def test_statistics_match_allensdk(stimulus, use_rates):
    suffix = "_rates" if use_rates else ""
    ref = pd.read_csv(REFERENCE / f"conditionwise_spike_statistics_{stimulus}{suffix}.csv", index_col=[0, 1])
    with h5py.File(NWB, "r") as f:
        group = f["intervals"][f"{stimulus}_presentations"]
        starts, stops = group["start_time"][:], group["stop_time"][:]
    # Condition ids come from the AllenSDK's presentation table, matched by start time.
    table = pd.read_csv(REFERENCE / "stimulus_presentations.csv", index_col=0)
    rows = table.set_index("start_time").loc[starts]
    assert np.array_equal(rows.stop_time.values, stops)

    spikes = _fixture_spikes()
    flat, offsets, ids = pack_spike_times(spikes, sorted(spikes))
    counts = spike_counts_per_presentation(flat, offsets, starts, stops)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the AllenSDK's RuntimeWarnings are gone
        df = conditionwise_spike_statistics(
            counts, ids, rows.stimulus_condition_id.values, durations=stops - starts, use_rates=use_rates
        )

    assert list(df.columns) == list(ref.columns)
    assert list(df.index.names) == list(ref.index.names)
    assert df.index.tolist() == ref.index.tolist()
    assert df.index.get_level_values(1).dtype == ref.index.get_level_values(1).dtype
    for column in ref.columns:
        assert df[column].dtype == ref[column].dtype, column
        np.testing.assert_allclose(df[column].values, ref[column].values, rtol=1e-12, atol=0, equal_nan=True)
    if stimulus == "drifting_gratings":
        assert df.spike_std.isna().any()  # one-presentation conditions, as in the reference
