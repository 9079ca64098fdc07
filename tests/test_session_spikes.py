"""Spike analysis through the session against the AllenSDK's answers (kernels: tests/spikes)."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest

import ecephys
from ecephys.errors import EcephysWarning, UnknownIdError
from tests.reference import (
    FIXTURE_NAMES,
    assert_frame_matches_reference,
    assert_frame_matches_schema,
    load_json,
    reference_dir,
    session_path,
)
from tests.test_session import VARIANTS


@pytest.fixture(
    scope="module", params=[(f, v) for f in FIXTURE_NAMES for v in VARIANTS], ids=lambda p: "-".join(p)
)
def case(request):
    fixture, variant = request.param
    session = ecephys.open_session(session_path(fixture), **VARIANTS[variant])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EcephysWarning)  # the invalid-intervals notice on first use
        _ = session.spike_times
    yield session, reference_dir(fixture, variant)
    session.close()


def presentation_ids(session, stimulus_name):
    table = session.stimulus_presentations
    return table.index[table["stimulus_name"] == stimulus_name].to_numpy()


@pytest.mark.parametrize("stimulus", ["flashes", "drifting_gratings"])
def test_presentationwise_spike_counts_match_allensdk(case, stimulus):
    session, ref = case
    expected = np.load(ref / f"presentationwise_spike_counts_{stimulus}.npz")
    summary = load_json(ref / f"presentationwise_spike_counts_{stimulus}.json")
    counts = session.presentationwise_spike_counts(
        expected["bin_edges"], expected["stimulus_presentation_id"], expected["unit_id"]
    )
    assert counts.name == summary["name"] and list(counts.dims) == summary["dims"]
    assert str(counts.dtype) == summary["dtype"]
    np.testing.assert_array_equal(counts.values, expected["counts"])
    for dim in counts.dims:
        np.testing.assert_array_equal(counts[dim].values, expected[dim])


def test_binarized_counts_over_overlapping_windows_match_allensdk(case):
    session, ref = case
    summary = load_json(ref / "presentationwise_spike_counts_binarized.json")
    counts = session.presentationwise_spike_counts(
        np.linspace(0, 0.05, 51),
        session.stimulus_presentations.index[:200],
        np.load(ref / "presentationwise_spike_counts_flashes.npz")["unit_id"][:10],
        binarize=True,
    )
    assert list(counts.shape) == summary["shape"] and str(counts.dtype) == summary["dtype"]
    assert hashlib.sha256(counts.values.tobytes()).hexdigest() == summary["sha256"]


def test_rates_are_counts_per_second(case):
    session, _ = case
    edges = np.linspace(-0.05, 0.25, 31)
    ids = presentation_ids(session, "flashes")
    counts = session.presentationwise_spike_counts(edges, ids, None)
    rates = session.presentationwise_spike_counts(edges, ids, None, rates=True)
    np.testing.assert_allclose(rates.values, counts.values / np.diff(edges)[None, :, None])


@pytest.mark.parametrize(
    ("stimulus", "name", "n_units"),
    [
        ("flashes", "presentationwise_spike_times_flashes", None),
        ("drifting_gratings", "presentationwise_spike_times_drifting_gratings_5units", 5),
    ],
)
def test_presentationwise_spike_times_match_allensdk(case, stimulus, name, n_units):
    session, ref = case
    units = None if n_units is None else session.units.index[:n_units]
    times = session.presentationwise_spike_times(presentation_ids(session, stimulus), units)
    assert_frame_matches_schema(times, ref / f"{name}.schema.json")


@pytest.mark.parametrize("stimulus", ["flashes", "drifting_gratings"])
@pytest.mark.parametrize("use_rates", [False, True])
def test_conditionwise_statistics_match_allensdk(case, stimulus, use_rates):
    session, ref = case
    stats = session.conditionwise_spike_statistics(presentation_ids(session, stimulus), use_rates=use_rates)
    suffix = "_rates" if use_rates else ""
    assert_frame_matches_reference(stats, ref / f"conditionwise_spike_statistics_{stimulus}{suffix}.json")


def test_unknown_ids_are_named(case):
    session, _ = case
    with pytest.raises(UnknownIdError, match=r"1 unit id\(s\) not in session.units .*\[12345\]"):
        session.presentationwise_spike_counts([0, 0.1], [0], [12345])
    with pytest.raises(UnknownIdError, match="stimulus_presentation id"):
        session.presentationwise_spike_times([10**9])


def test_ids_in_any_order_with_repeats_select_their_own_rows(case):
    session, _ = case
    units = session.units.index.to_numpy()
    pres = session.stimulus_presentations.index.to_numpy()
    pick_units = [units[-1], units[0], units[-1]]
    pick_pres = [pres[3], pres[0], pres[3], pres[-1]]
    edges = [0.0, 0.25, 0.5]
    counts = session.presentationwise_spike_counts(edges, pick_pres, pick_units)
    assert counts["stimulus_presentation_id"].values.tolist() == pick_pres
    assert counts["unit_id"].values.tolist() == pick_units
    for i, p in enumerate(pick_pres):  # every row equals the same presentation asked for alone
        for k, u in enumerate(pick_units):
            alone = session.presentationwise_spike_counts(edges, [p], [u])
            np.testing.assert_array_equal(counts.values[i, :, k], alone.values[0, :, 0])
    # float ids (as a table's column might hold them) find the same rows
    as_float = session.presentationwise_spike_counts(edges, np.asarray(pick_pres, float), pick_units)
    np.testing.assert_array_equal(as_float.values, counts.values)


def test_unsorted_spike_times_in_the_file_are_reported_once_checked(tmp_path):
    import shutil

    import h5py

    from ecephys.errors import NWBFormatError

    path = tmp_path / "session_999000001.nwb"
    shutil.copy(session_path("vcn2020_tiny"), path)
    path.chmod(0o644)
    with h5py.File(path, "r+") as f:
        times = f["units/spike_times"]
        times[10], times[11] = times[11], times[10]  # the first unit's spikes, now out of order
    session = ecephys.open_session(path, **VARIANTS["unfiltered"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EcephysWarning)
        with pytest.raises(NWBFormatError, match="spike times are out of order"):
            session.presentationwise_spike_counts([0.0, 0.1], [0], None)
