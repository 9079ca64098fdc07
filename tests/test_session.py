"""EcephysSession against the AllenSDK 2.16.2's answers on both fixture layouts."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import ecephys
from ecephys.errors import EcephysWarning
from tests.reference import (
    FIXTURE_NAMES,
    assert_frame_matches_reference,
    assert_metadata_matches,
    load_json,
    reference_dir,
    session_path,
)

ALL_UNITS = {
    "amplitude_cutoff_maximum": np.inf,
    "presence_ratio_minimum": -np.inf,
    "isi_violations_maximum": np.inf,
    "filter_by_validity": False,
    "filter_out_of_brain_units": False,
}
VARIANTS = {"unfiltered": ALL_UNITS, "default": {}}


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@pytest.fixture(
    scope="module", params=[(f, v) for f in FIXTURE_NAMES for v in VARIANTS], ids=lambda p: "-".join(p)
)
def case(request):
    fixture, variant = request.param
    session = ecephys.open_session(session_path(fixture), **VARIANTS[variant])
    yield session, reference_dir(fixture, variant)
    session.close()


@pytest.mark.parametrize("table", ["units", "channels", "probes"])
def test_tables_match_allensdk(case, table):
    session, ref = case
    assert_frame_matches_reference(getattr(session, table), ref / f"{table}.json")


def test_spike_times_match_allensdk(case):
    session, ref = case
    summary = pd.read_csv(ref / "spike_times_summary.csv", index_col="unit_id")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EcephysWarning)  # asserted in test_spike_times_warning_comes_once
        spike_times = session.spike_times
    assert list(spike_times) == summary.index.tolist()
    for unit_id, row in summary.iterrows():
        times = spike_times[unit_id]
        assert times.dtype == np.float64
        assert len(times) == row["n_spikes"]
        assert sha256(times) == row["sha256"]
        assert bool(np.all(np.diff(times) >= 0)) == row["is_sorted"]
    arrays = np.load(ref / "spike_times_first3units.npz")
    for unit_id in arrays["unit_ids"]:
        np.testing.assert_array_equal(spike_times[unit_id], arrays[f"unit_{unit_id}"])
        np.testing.assert_array_equal(session.spike_amplitudes[unit_id], arrays[f"amp_{unit_id}"])


def test_spike_times_whole_read_equals_per_unit_reads(case):
    session, _ = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EcephysWarning)  # the module-scoped session may have warned already
        per_unit = {u: np.array(session.spike_times[u]) for u in session.spike_times}
    loaded = dict(session.spike_times.items())
    assert per_unit.keys() == loaded.keys()
    for unit_id, times in per_unit.items():
        np.testing.assert_array_equal(loaded[unit_id], times)
    flat, offsets = session.spike_times.flat()
    assert offsets[-1] == len(flat) == sum(len(t) for t in per_unit.values())
    for k, unit_id in enumerate(session.spike_times.unit_ids):
        np.testing.assert_array_equal(flat[offsets[k] : offsets[k + 1]], per_unit[unit_id])


def test_spike_times_of_selected_units_in_any_order(case):
    session, _ = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EcephysWarning)  # the invalid-interval notice, once per session
        spike_times = session.spike_times
        ids = spike_times.unit_ids
        chosen = np.array([ids[-1], ids[0], ids[-1], ids[len(ids) // 2]])  # reversed, repeated
        per_unit = [np.array(spike_times[u]) for u in chosen]
    flat, bounds = spike_times.bounds(chosen)
    copied, offsets = spike_times.flat(chosen)
    for k, times in enumerate(per_unit):
        np.testing.assert_array_equal(flat[bounds[k, 0] : bounds[k, 1]], times)
        np.testing.assert_array_equal(copied[offsets[k] : offsets[k + 1]], times)
    missing = int(ids.max()) + 1
    with pytest.raises(KeyError, match=str(missing)):
        spike_times.bounds(np.array([ids[0], missing]))


def test_spike_amplitudes_cover_every_unit_as_in_allensdk(case):
    session, ref = case
    summary = pd.read_csv(ref / "spike_times_summary.csv", index_col="unit_id")
    assert len(session.spike_amplitudes) == load_json(ref / "session_summary.json")["n_spike_amplitude_units"]
    for unit_id, row in summary.iterrows():
        assert sha256(session.spike_amplitudes[unit_id]) == row["amp_sha256"]


def test_mean_waveforms_match_allensdk(case):
    session, ref = case
    summary = load_json(ref / "mean_waveforms_summary.json")
    assert len(session.mean_waveforms) == summary["n_units"]
    assert sorted(session.mean_waveforms) == sorted(int(u) for u in summary["per_unit"])
    for unit_id, info in summary["per_unit"].items():
        waveform = session.mean_waveforms[int(unit_id)]
        assert isinstance(waveform, xr.DataArray)
        assert list(waveform.dims) == summary["dims"]
        assert list(waveform.shape) == info["shape"]
        assert sha256(waveform.values) == info["sha256"]
    arrays = np.load(ref / "mean_waveforms_3units.npz")
    for unit_id in arrays["unit_ids"]:
        waveform = session.mean_waveforms[unit_id]
        np.testing.assert_array_equal(waveform.values, arrays[f"unit_{unit_id}_data"])
        np.testing.assert_array_equal(waveform["channel_id"].values, arrays[f"unit_{unit_id}_channel_id"])
        np.testing.assert_array_equal(waveform["time"].values, arrays[f"unit_{unit_id}_time"])


def test_mean_waveforms_refuse_filtered_out_units():
    session = ecephys.open_session(session_path("vcn2020_tiny"))
    all_ids = set(ecephys.open_session(session_path("vcn2020_tiny"), **ALL_UNITS).units.index)
    dropped = sorted(all_ids - set(session.units.index))
    assert dropped
    with pytest.raises(KeyError):
        session.mean_waveforms[dropped[0]]
    assert dropped[0] not in session.mean_waveforms


def test_session_summary_matches_allensdk(case):
    session, ref = case
    summary = load_json(ref / "session_summary.json")
    for name in (
        "rig_equipment_name",
        "num_units",
        "num_probes",
        "num_channels",
        "specimen_name",
        "age_in_days",
        "sex",
        "full_genotype",
        "session_type",
        "ecephys_session_id",
    ):
        assert getattr(session, name) == summary[name], name
    assert session.session_start_time.isoformat() == summary["session_start_time"]
    assert_frame_matches_reference(session.rig_geometry_data, ref / "rig_geometry_data.json")


@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
def test_structures_from_the_file_equal_allensdk_cache_answers(fixture):
    """The AllenSDK needs its project cache for these (KeyError without); we read the file."""
    cache_ref = reference_dir(fixture, "cache")
    assert "structure_acronyms" in load_json(reference_dir(fixture, "default") / "errors.json")
    session = ecephys.open_session(session_path(fixture))
    expected = load_json(cache_ref / "session_summary.json")["structure_acronyms"]
    ours = session.structure_acronyms
    assert len(ours) == len(expected)
    assert all(a == b or (pd.isna(a) and pd.isna(b)) for a, b in zip(ours, expected, strict=True))
    counts = session.structurewise_unit_counts
    reference = load_json(cache_ref / "structurewise_unit_counts.json")
    assert counts.name == reference["columns"][0]
    assert counts.index.tolist() == reference["index"]
    assert counts.tolist() == [row[0] for row in reference["data"]]
    assert str(counts.dtype) == "int64"


@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
def test_from_nwb_path_takes_filters_in_api_kwargs(fixture):
    session = ecephys.EcephysSession.from_nwb_path(session_path(fixture), api_kwargs=ALL_UNITS)
    assert session.num_units == 18
    default = ecephys.EcephysSession.from_nwb_path(session_path(fixture))
    assert default.num_units == 7


def test_none_threshold_means_no_limit():
    none = ecephys.open_session(
        session_path("vcn2020_tiny"),
        amplitude_cutoff_maximum=None,
        presence_ratio_minimum=None,
        isi_violations_maximum=None,
    )
    inf = ecephys.open_session(
        session_path("vcn2020_tiny"),
        amplitude_cutoff_maximum=np.inf,
        presence_ratio_minimum=-np.inf,
        isi_violations_maximum=np.inf,
    )
    pd.testing.assert_frame_equal(none.units, inf.units)


def test_zero_threshold_means_zero_not_no_limit():
    """The AllenSDK turns 0 into 'no filter' (``value or inf``); we keep 0 as asked."""
    session = ecephys.open_session(session_path("vcn2020_tiny"), isi_violations_maximum=0.0)
    assert len(session.units) > 0
    assert (session.units["isi_violations"] <= 0.0).all()
    everything = ecephys.open_session(session_path("vcn2020_tiny"), isi_violations_maximum=np.inf)
    assert (everything.units["isi_violations"] > 0).any()


def test_filters_are_applied_in_order_and_each_removes_units():
    base = dict(ALL_UNITS)
    counts = {}
    for name, value in [
        ("filter_out_of_brain_units", True),
        ("filter_by_validity", True),
        ("amplitude_cutoff_maximum", 0.1),
        ("presence_ratio_minimum", 0.95),
        ("isi_violations_maximum", 0.5),
    ]:
        base[name] = value
        counts[name] = ecephys.open_session(session_path("vcn2020_tiny"), **base).num_units
    assert counts["filter_out_of_brain_units"] < 18
    assert counts["isi_violations_maximum"] == 7
    assert list(counts.values()) == sorted(counts.values(), reverse=True)


def test_unknown_filter_argument_is_a_clear_error():
    with pytest.raises(TypeError, match="isi_violation_maximum"):
        ecephys.EcephysSession.from_nwb_path(
            session_path("vcn2020_tiny"), api_kwargs={"isi_violation_maximum": 1}
        )


def test_spike_times_warning_comes_once():
    session = ecephys.open_session(session_path("vcn2020_tiny"))
    with pytest.warns(EcephysWarning):
        _ = session.spike_times
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _ = session.spike_times


# -- stimuli and behaviour through the session (the functions are tested in test_stimuli.py) --
@pytest.mark.parametrize(
    ("attribute", "reference", "sort_columns"),
    [
        ("stimulus_presentations", "stimulus_presentations.json", True),
        ("stimulus_conditions", "stimulus_conditions.json", True),
        ("invalid_times", "invalid_times.json", False),
        ("optogenetic_stimulation_epochs", "optogenetic_stimulation_epochs.json", False),
    ],
)
def test_stimulus_tables_through_the_session(case, attribute, reference, sort_columns):
    session, ref = case
    frame = getattr(session, attribute)
    assert_frame_matches_reference(frame, ref / reference, sort_columns=sort_columns)


def test_stimulus_methods_through_the_session(case):
    session, ref = case
    assert_frame_matches_reference(
        session.get_stimulus_table(["drifting_gratings"]),
        ref / "get_stimulus_table_drifting_gratings.json",
        sort_columns=True,
    )
    assert_frame_matches_reference(
        session.get_stimulus_epochs(duration_thresholds={"spontaneous_activity": 90}),
        ref / "get_stimulus_epochs.json",
        sort_columns=True,
    )
    assert_frame_matches_reference(
        session.get_inter_presentation_intervals_for_stimulus(["flashes"]),
        ref / "get_inter_presentation_intervals_for_stimulus_flashes.json",
    )
    values = session.get_parameter_values_for_stimulus("drifting_gratings")
    expected = load_json(ref / "parameter_values_drifting_gratings.json")
    assert {k: list(v) for k, v in values.items()} == expected


@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
def test_full_metadata_equals_allensdk_cache_answer(fixture):
    """Without the project cache the AllenSDK raises KeyError here; we answer from the file."""
    session = ecephys.open_session(session_path(fixture))
    ref = reference_dir(fixture, "default")
    expected = load_json(ref.parent / "cache" / "metadata.json")
    assert_metadata_matches(session.metadata, expected)
