"""make_dynamic_routing_session: a pynwb-written file that pynwb reads back with what it claims."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecephys.errors import MissingDependency
from ecephys.testing import make_dynamic_routing_session
from tests.nwb_support import pynwb_file

DURATION = 600.0


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dynamic_routing_session(tmp_path_factory.mktemp("dr") / "session.nwb")


@pytest.fixture(scope="module")
def nwb(path: Path):
    with pynwb_file(path) as nwbfile:
        yield nwbfile


def test_session_and_subject_metadata(nwb):
    assert nwb.identifier == nwb.session_id == "668755_2023-08-31"
    assert nwb.session_start_time.date().isoformat() == "2023-08-31"
    assert nwb.session_start_time.tzinfo is not None
    subject = nwb.subject
    assert subject.subject_id == "668755"
    assert subject.species == "Mus musculus" and subject.sex == "M"
    assert subject.age == "P166D" and subject.genotype == "VGAT-ChR2-YFP/wt"
    assert (nwb.session_start_time.date() - subject.date_of_birth.date()).days == 166


def test_epochs_have_tags_and_cover_the_session(nwb):
    epochs = nwb.epochs.to_dataframe()
    assert epochs["script_name"].tolist() == ["Spontaneous", "DynamicRouting1", "RFMapping", "Spontaneous"]
    assert list(epochs["tags"].iloc[1]) == ["task", "rewards"]
    assert "vis_rf_mapping_trials" in epochs["interval_names"].iloc[2]
    np.testing.assert_array_equal(epochs["start_time"].to_numpy()[1:], epochs["stop_time"].to_numpy()[:-1])
    assert epochs["start_time"].iloc[0] == 0.0 and epochs["stop_time"].iloc[-1] == DURATION


def test_trials_are_a_consistent_go_nogo_task(nwb):
    trials = nwb.trials.to_dataframe()
    task = nwb.epochs.to_dataframe().iloc[1]
    assert len(trials) == int((task["stop_time"] - task["start_time"]) / 5.0)
    assert (trials["start_time"] >= task["start_time"]).all() and (
        trials["stop_time"] <= task["stop_time"]
    ).all()
    assert (trials["start_time"].to_numpy()[1:] > trials["stop_time"].to_numpy()[:-1]).all()  # no overlap
    assert set(trials["stim_name"]) <= {"vis1", "vis2", "sound1", "sound2", "catch"}
    np.testing.assert_array_equal(trials["is_vis_stim"], trials["stim_name"].str.startswith("vis"))
    np.testing.assert_array_equal(trials["is_hit"], trials["is_go"] & trials["is_response"])
    np.testing.assert_array_equal(trials["is_false_alarm"], trials["is_nogo"] & trials["is_response"])
    np.testing.assert_array_equal(trials["response_time"].isna(), ~trials["is_response"])
    assert trials["response_time"].isna().any() and trials["is_response"].any()
    vis_go = trials["is_vis_context"] & (trials["stim_name"] == "vis1")
    aud_go = trials["is_aud_context"] & (trials["stim_name"] == "sound1")
    np.testing.assert_array_equal(trials["is_go"], vis_go | aud_go)
    assert trials["block_index"].nunique() == 6


def test_rf_mapping_and_invalid_times_tables(nwb):
    assert {"vis_rf_mapping_trials", "aud_rf_mapping_trials", "invalid_times"} <= set(nwb.intervals)
    vis = nwb.intervals["vis_rf_mapping_trials"].to_dataframe()
    flashes = vis["is_full_field_flash"]
    assert vis.loc[flashes, "grating_orientation"].isna().all()
    assert vis.loc[~flashes, "grating_orientation"].notna().all()
    invalid = nwb.invalid_times.to_dataframe()
    assert invalid["reason"].tolist() == ["sync glitch"] and list(invalid["tags"].iloc[0]) == [
        "all_probes",
        "sync",
    ]


def _spikes_per_trial(times: np.ndarray, onsets: np.ndarray, start: float, stop: float) -> float:
    """Mean count of ``times`` in ``[onset + start, onset + stop)`` over the onsets (s)."""
    return float(np.mean(np.searchsorted(times, onsets + stop) - np.searchsorted(times, onsets + start)))


def test_units_spike_trains_and_default_qc(nwb):
    units = nwb.units.to_dataframe()
    assert len(units) == 40
    for times in units["spike_times"]:
        assert np.all(np.diff(times) >= 0) and times[0] >= 0.0 and times[-1] <= DURATION
    rates = np.array([len(t) for t in units["spike_times"]]) / DURATION
    np.testing.assert_allclose(units["firing_rate"], rates)
    # The generator's claim: units tuned to a modality fire ~3 extra spikes 30-150 ms after each
    # onset of a trial of that modality, and nothing extra after the other modality's.
    trials = nwb.trials.to_dataframe()
    excess = {}
    for modality in ("is_vis_stim", "is_aud_stim"):
        onsets = trials.loc[trials[modality].astype(bool), "stim_start_time"].to_numpy()
        after = [_spikes_per_trial(t, onsets, 0.03, 0.15) for t in units["spike_times"]]
        before = [_spikes_per_trial(t, onsets, -0.15, -0.03) for t in units["spike_times"]]
        excess[modality] = np.asarray(after) - np.asarray(before)
    visual, auditory = excess["is_vis_stim"] > 2.0, excess["is_aud_stim"] > 2.0
    assert visual.any() and auditory.any() and not (visual & auditory).any()
    assert np.all(np.abs(excess["is_aud_stim"][visual]) < 1.0)
    assert np.all(np.abs(excess["is_vis_stim"][auditory]) < 1.0)
    rule = (
        (units["activity_drift"] < 0.2)
        & (units["isi_violations_ratio"] <= 0.5)
        & (units["amplitude_cutoff"] <= 0.1)
        & (units["presence_ratio"] >= 0.7)
        & (units["decoder_label"] != "noise")
    )
    np.testing.assert_array_equal(units["default_qc"].to_numpy(), rule.to_numpy())
    assert 0 < units["default_qc"].sum() < len(units)
    for _, unit in units.iterrows():  # the electrodes region points at the unit's own probe
        assert set(unit["electrodes"]["group_name"]) == {unit["electrode_group"].name}
        assert unit["peak_electrode"] in unit["electrodes"].index


def test_electrodes_have_ccf_coordinates_and_structures(nwb):
    electrodes = nwb.electrodes.to_dataframe()
    assert len(electrodes) == 2 * 384
    assert {"x", "y", "z", "location", "structure", "group_name", "channel"} <= set(electrodes.columns)
    assert electrodes[["x", "y", "z"]].notna().all().all()
    assert set(electrodes["group_name"]) == {"probeA", "probeB"}
    cortex = electrodes["location"].str.startswith("VISp")
    assert (electrodes.loc[cortex, "structure"] == "VISp").all()


def test_behavior_events_and_running_speed(nwb):
    behavior = nwb.processing["behavior"]
    speed = behavior["running_speed"]
    assert speed.unit == "cm/s" and len(speed.data) == int(DURATION * 60)
    assert np.all(np.diff(speed.timestamps[:]) > 0)
    licks = behavior["licks"]
    assert licks.neurodata_type == "EventsTable"
    lick_times = licks["timestamp"].data[:]
    assert np.all(np.diff(lick_times) >= 0)
    rewards = behavior["rewards"]["timestamp"].data[:]
    reward_times = nwb.trials.to_dataframe()["reward_time"]
    np.testing.assert_array_equal(rewards, np.sort(reward_times.dropna().to_numpy()))
    assert type(behavior["quiescent_interval_violations"]).__name__ == "DynamicTable"
    np.testing.assert_array_equal(nwb.acquisition["lick_sensor_events"].timestamps[:], lick_times)


def test_lfp_per_probe_in_both_time_encodings(nwb):
    series = nwb.processing["ecephys"]["LFP"].electrical_series
    assert sorted(series) == ["probeA", "probeB"]
    a, b = series["probeA"], series["probeB"]
    assert a.data.dtype == np.int16 and a.data.shape == (12500, 8)
    assert a.conversion == pytest.approx(0.195e-6)
    assert a.timestamps is not None and b.timestamps is None and b.rate == 1250.0
    assert b.channel_conversion is not None and len(b.channel_conversion) == 8
    assert set(a.electrodes.to_dataframe()["group_name"]) == {"probeA"}
    volts = a.data[:] * a.conversion
    assert 20e-6 < volts.std() < 500e-6  # a plausible LFP amplitude


def test_small_and_deterministic(path, tmp_path):
    assert path.stat().st_size < 5e6
    again = make_dynamic_routing_session(tmp_path / "again.nwb")
    other = make_dynamic_routing_session(tmp_path / "other.nwb", seed=1)
    with pynwb_file(path) as one, pynwb_file(again) as two, pynwb_file(other) as three:
        pd.testing.assert_frame_equal(one.trials.to_dataframe(), two.trials.to_dataframe())
        np.testing.assert_array_equal(one.units["spike_times"].data[:], two.units["spike_times"].data[:])
        assert not np.array_equal(one.units["spike_times"].data[:10], three.units["spike_times"].data[:10])


def test_folder_target_and_optional_parts(tmp_path):
    written = make_dynamic_routing_session(
        tmp_path, n_units=5, n_probes=1, duration=100.0, trials=False, events=False, lfp=False
    )
    assert written == tmp_path / "668755_2023-08-31.nwb"
    with pynwb_file(written) as nwbfile:
        assert nwbfile.trials is None
        assert "ecephys" not in nwbfile.processing
        assert list(nwbfile.processing["behavior"].data_interfaces) == ["running_speed"]
        assert len(nwbfile.units) == 5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_probes": 0}, "n_probes=0"),
        ({"n_probes": 7}, "n_probes=7"),
        ({"lfp_channels": 500}, "lfp_channels"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_dynamic_routing_session(tmp_path / "x.nwb", **kwargs)


def test_without_pynwb_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynwb", None)
    with pytest.raises(MissingDependency, match=r"ecephys\[nwb\]"):
        make_dynamic_routing_session(tmp_path / "x.nwb")
