"""open_nwb / NWBSession: every property against pynwb, the Allen files against open_session,
streamed files against local ones, the spike analyses against brute-force numpy."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

import ecephys
from ecephys.errors import (
    MissingDataError,
    MissingDependency,
    NotEcephysSessionError,
    NWBFormatError,
    UnknownIdError,
)
from ecephys.testing import make_dynamic_routing_session
from ecephys.testing.servers import upload_folder
from tests.nwb_support import assert_matches_pynwb, pynwb_file
from tests.reference import FIXTURE_NAMES, FIXTURES, session_path

EDGES = np.linspace(-0.25, 0.5, 16)
#: open_session with every unit filter off: all the file's units, as open_nwb lists them.
ALLEN_FILTERS_OFF = dict.fromkeys(
    ("amplitude_cutoff_maximum", "presence_ratio_minimum", "isi_violations_maximum")
)
ALLEN_FILTERS_OFF |= {"filter_by_validity": False, "filter_out_of_brain_units": False}


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dynamic_routing_session(tmp_path_factory.mktemp("nwbsession"), duration=300.0, n_units=24)


@pytest.fixture(scope="module")
def session(path: Path):
    with ecephys.open_nwb(path) as opened:
        yield opened


@pytest.fixture(scope="module")
def oracle(path: Path):
    with pynwb_file(path) as nwbfile:
        yield nwbfile


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory):
    """A session without trials, events and LFP."""
    folder = tmp_path_factory.mktemp("bare")
    written = make_dynamic_routing_session(
        folder, n_units=5, n_probes=1, duration=100.0, trials=False, events=False, lfp=False
    )
    with ecephys.open_nwb(written) as opened:
        yield opened


# -------------------------------------------------------------------------- properties vs pynwb


def test_identity_and_subject(session, oracle):
    assert session.session_id == "668755_2023-08-31" == oracle.session_id
    assert session.session_start_time == oracle.session_start_time
    subject = session.subject
    for field in ("subject_id", "species", "sex", "age", "genotype", "strain"):
        assert subject[field] == getattr(oracle.subject, field)
    assert subject["date_of_birth"] == oracle.subject.date_of_birth
    assert session.metadata["session_description"] == oracle.session_description
    assert session.bytes_fetched == 0
    assert "668755_2023-08-31" in repr(session)


def test_interval_tables_equal_pynwb(session, oracle):
    assert sorted(session.intervals) == sorted(oracle.intervals)
    for name in session.intervals:
        assert_matches_pynwb(session.intervals[name], oracle.intervals[name].to_dataframe())
    assert_matches_pynwb(session.trials, oracle.trials.to_dataframe())
    assert_matches_pynwb(session.epochs, oracle.epochs.to_dataframe())
    assert_matches_pynwb(session.invalid_times, oracle.invalid_times.to_dataframe())
    assert session.trials is session.intervals["trials"]  # read once


def test_units_electrodes_and_spike_times_equal_pynwb(session, oracle):
    assert_matches_pynwb(session.units, oracle.units.to_dataframe())
    assert_matches_pynwb(session.electrodes, oracle.electrodes.to_dataframe())
    assert session.units["default_qc"].dtype == bool
    assert list(session.spike_times) == session.units.index.tolist()
    for i, unit_id in enumerate(oracle.units.id[:]):
        np.testing.assert_array_equal(session.spike_times[unit_id], oracle.units.get_unit_spike_times(i))


def test_events_and_running_speed_equal_pynwb(session, oracle):
    behavior = oracle.processing["behavior"]
    assert {"licks", "rewards", "quiescent_interval_violations", "lick_sensor_events"} == set(session.events)
    for name in ("licks", "rewards"):
        np.testing.assert_array_equal(session.events[name]["timestamps"], behavior[name]["timestamp"].data[:])
    np.testing.assert_array_equal(session.events["licks"]["duration"], behavior["licks"]["duration"].data[:])
    speed = session.running_speed
    np.testing.assert_array_equal(speed["start_time"], behavior["running_speed"].timestamps[:])
    np.testing.assert_array_equal(speed["velocity"], behavior["running_speed"].data[:])
    assert list(speed.columns) == ["start_time", "end_time", "velocity"]


@pytest.mark.parametrize("key", ["probeA", "probeB"])
def test_lfp_windows_equal_pynwb(session, oracle, key):
    series = oracle.processing["ecephys"]["LFP"][key]
    n = series.data.shape[0]
    times = (
        series.timestamps[:]
        if series.timestamps is not None
        else series.starting_time + np.arange(n) / series.rate
    )
    lfp = session.get_lfp(key, time=slice(times[1000], times[1624]))
    scale = series.conversion * (
        series.channel_conversion[:] if series.channel_conversion is not None else 1.0
    )
    np.testing.assert_allclose(lfp.values, series.data[1000:1625, :] * scale, rtol=1e-12)
    np.testing.assert_array_equal(lfp["time"], times[1000:1625])
    np.testing.assert_array_equal(lfp["channel"], series.electrodes.to_dataframe().index)
    assert lfp.dims == ("time", "channel")
    assert session.lfp_names == ["probeA", "probeB"]


def test_nwb_is_pynwb_on_the_same_file(session):
    nwbfile = session.nwb
    assert type(nwbfile).__name__ == "NWBFile"
    assert nwbfile.identifier == session.session_id
    assert session.nwb is nwbfile


def test_nwb_without_pynwb_names_the_extra(path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynwb", None)
    with ecephys.open_nwb(path) as opened, pytest.raises(MissingDependency, match=r"ecephys\[nwb\]"):
        _ = opened.nwb


def test_export_tables(session):
    tables = session.export_tables()
    expected = {"units", "electrodes", "running_speed", "subject", *session.intervals}
    expected |= {f"events_{name}" for name in session.events}
    assert set(tables) == expected
    pd.testing.assert_frame_equal(tables["trials"], session.trials)
    pd.testing.assert_frame_equal(tables["units"], session.units)
    subject = tables["subject"]
    assert subject.index.tolist() == [session.session_id] and subject.at[session.session_id, "sex"] == "M"
    assert subject.at[session.session_id, "date_of_birth"] == "2023-03-18T00:00:00-07:00"


def test_cached_tables_outlive_close(path):
    opened = ecephys.open_nwb(path)
    trials = opened.trials
    opened.close()
    assert opened.trials is trials
    with pytest.raises(ValueError, match="the file is closed"):
        _ = opened.units
    never_read = ecephys.open_nwb(path)
    never_read.close()
    assert repr(never_read) == f"<NWBSession (closed) {path}>"


# -------------------------------------------------------------------------- missing parts, bad files


def test_missing_parts(bare):
    for table in (bare.trials, bare.epochs.iloc[:0], bare.invalid_times.iloc[:0]):
        assert {"start_time", "stop_time"} <= set(table.columns)
    assert bare.trials.empty and list(bare.trials.columns) == ["start_time", "stop_time"]
    assert "trials" not in bare.intervals
    assert len(bare.events) == 0 and bare.lfp_names == []
    with pytest.raises(MissingDataError, match="no LFP series or probe 'probeA'"):
        bare.get_lfp("probeA")
    with pytest.raises(MissingDataError, match="no intervals table 'trials'"):
        bare.presentationwise_spike_counts(EDGES)
    assert "trials" not in bare.export_tables() and "events_licks" not in bare.export_tables()


def test_a_probe_lfp_file_has_no_units():
    lfp_file = FIXTURES / "vcn2020_tiny" / "session_999000001" / "probe_999001018_lfp.nwb"
    with ecephys.open_nwb(lfp_file) as opened:
        with pytest.raises(MissingDataError, match="no /units"):
            _ = opened.units
        assert opened.running_speed is None
        assert set(opened.export_tables()) == {"electrodes", "subject"}


def test_not_an_nwb_file(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["data"] = np.arange(4)
    with pytest.raises(NotEcephysSessionError, match="not an NWB file"):
        ecephys.open_nwb(tmp_path / "x.h5")


# -------------------------------------------------------------------------- Allen files


@pytest.mark.filterwarnings("ignore::ecephys.errors.EcephysWarning")
@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
def test_allen_session_through_open_nwb_equals_open_session(fixture):
    path = session_path(fixture)
    allen = ecephys.open_session(path, **ALLEN_FILTERS_OFF)
    with ecephys.open_nwb(path) as generic:
        ids = allen.units.index.to_numpy()
        assert sorted(ids) == sorted(generic.units.index)
        for column in (
            "firing_rate",
            "snr",
            "presence_ratio",
            "amplitude_cutoff",
            "peak_channel_id",
            "quality",
        ):
            np.testing.assert_array_equal(generic.units.loc[ids, column], allen.units[column], err_msg=column)
        np.testing.assert_array_equal(generic.units.loc[ids, "PT_ratio"], allen.units["waveform_PT_ratio"])
        for unit_id in ids:
            np.testing.assert_array_equal(generic.spike_times[unit_id], allen.spike_times[unit_id])
        pd.testing.assert_frame_equal(generic.running_speed, allen.running_speed, check_like=True)
        invalid = allen.invalid_times
        np.testing.assert_array_equal(generic.invalid_times["start_time"], invalid["start_time"])
        assert [list(t) for t in generic.invalid_times["tags"]] == [list(t) for t in invalid["tags"]]
        assert generic.session_id == str(allen.ecephys_session_id)
        assert generic.session_start_time == allen.session_start_time
    allen.close()


@pytest.mark.filterwarnings("ignore::ecephys.errors.EcephysWarning")
@pytest.mark.parametrize("key", ["probeA", 999001018, "probe_999001018_lfp_data"])
def test_allen_probe_lfp_file_equals_open_session(key):
    path = session_path("sdk2162_tiny")
    lfp_file = path.parent / "probe_999001018_lfp.nwb"
    with ecephys.open_session(path) as allen, ecephys.open_nwb(lfp_file) as generic:
        times = allen.get_lfp(999001018, mask_invalid_intervals=False)["time"].to_numpy()
        window = slice(times[40], times[400])
        expected = allen.get_lfp(999001018, mask_invalid_intervals=False, time=window)
        got = generic.get_lfp(key, time=window)
        np.testing.assert_array_equal(got.values, expected.values)
        np.testing.assert_array_equal(got["time"], expected["time"])
        np.testing.assert_array_equal(got["channel"], expected["channel"])


# -------------------------------------------------------------------------- streaming


def assert_same_as_local(streamed, local) -> None:
    pd.testing.assert_frame_equal(streamed.trials, local.trials)
    pd.testing.assert_frame_equal(streamed.units, local.units)
    unit = int(local.units.index[3])
    np.testing.assert_array_equal(streamed.spike_times[unit], local.spike_times[unit])
    pd.testing.assert_frame_equal(streamed.events["licks"], local.events["licks"])
    window = slice(61.0, 61.5)
    np.testing.assert_array_equal(
        streamed.get_lfp("probeB", time=window).values, local.get_lfp("probeB", time=window).values
    )


def test_https_stream_equals_local(file_server, path, session):
    url = file_server.add_file("dr/session.nwb", path)
    with ecephys.open_nwb(url) as streamed:
        assert streamed.session_id == session.session_id
        _ = streamed.units
        assert 0 < streamed.bytes_fetched < 0.5 * path.stat().st_size  # metadata and units only
        assert_same_as_local(streamed, session)
        assert streamed.bytes_fetched == file_server.bytes_sent


def test_a_second_stream_reads_from_the_block_cache(file_server, path, session, tmp_path):
    url = file_server.add_file("dr/cached.nwb", path)
    fetched = []
    for _ in range(2):
        with ecephys.open_nwb(url, block_cache=tmp_path / "blocks") as streamed:
            assert_same_as_local(streamed, session)
            fetched.append(streamed.bytes_fetched)
    assert fetched[0] > 0 and fetched[1] == 0


def test_s3_stream_equals_local(moto, path, session, tmp_path):
    folder = tmp_path / "bucket"
    folder.mkdir()
    shutil.copy(path, folder / "session.nwb")
    upload_folder(moto.endpoint_url, folder, bucket="dynamic-routing", prefix="nwb/")
    with ecephys.open_nwb("s3://dynamic-routing/nwb/session.nwb", endpoint_url=moto.endpoint_url) as streamed:
        assert_same_as_local(streamed, session)
        assert streamed.bytes_fetched > 0


# -------------------------------------------------------------------------- spike analyses


def _unit_spikes(session, unit_ids):
    return [np.asarray(session.spike_times[u]) for u in unit_ids]


def test_presentationwise_spike_counts_equal_brute_force(session):
    trials = session.trials
    ids = trials.index[::3].to_numpy()
    units = session.units.index[:6].to_numpy()
    counts = session.presentationwise_spike_counts(EDGES, ids, units, align_to="stim_start_time")
    assert counts.dims == ("stimulus_presentation_id", "time_relative_to_stimulus_onset", "unit_id")
    onsets = trials.loc[ids, "stim_start_time"].to_numpy()
    for k, spikes in enumerate(_unit_spikes(session, units)):
        for p, onset in enumerate(onsets):
            lo, hi = onset + EDGES[:-1], onset + EDGES[1:]
            expected = ((spikes[None, :] >= lo[:, None]) & (spikes[None, :] < hi[:, None])).sum(axis=1)
            np.testing.assert_array_equal(counts.values[p, :, k], expected)
    assert counts.values.sum() > 0
    np.testing.assert_array_equal(counts["stimulus_presentation_id"], ids)


def test_counts_over_another_table_and_a_dataframe(session):
    vis = session.intervals["vis_rf_mapping_trials"]
    by_name = session.presentationwise_spike_counts(EDGES, intervals="vis_rf_mapping_trials", rates=True)
    by_frame = session.presentationwise_spike_counts(EDGES, intervals=vis, rates=True)
    np.testing.assert_array_equal(by_name.values, by_frame.values)
    assert by_name.shape == (len(vis), len(EDGES) - 1, len(session.units))
    assert by_name.attrs["units"] == "spikes/s"


def test_presentationwise_spike_times_equal_brute_force(session):
    trials = session.trials.iloc[:10]
    units = session.units.index[:4].to_numpy()
    table = session.presentationwise_spike_times(trials.index, units)
    expected = []
    for unit_id, spikes in zip(units, _unit_spikes(session, units), strict=True):
        for trial_id, row in trials.iterrows():
            inside = spikes[(spikes > row["start_time"]) & (spikes <= row["stop_time"])]
            expected += [(t, trial_id, unit_id) for t in inside]
    expected.sort()
    got = sorted(zip(table.index, table["stimulus_presentation_id"], table["unit_id"], strict=True))
    assert got == expected
    onset = session.trials.loc[table["stimulus_presentation_id"], "start_time"].to_numpy()
    np.testing.assert_allclose(table["time_since_stimulus_presentation_onset"], table.index - onset)


@pytest.mark.parametrize("use_rates", [False, True])
def test_conditionwise_statistics_equal_pandas(session, use_rates):
    trials = session.trials
    units = session.units.index[:5].to_numpy()
    stats = session.conditionwise_spike_statistics(
        unit_ids=units, use_rates=use_rates, condition_columns=["stim_name", "rewarded_modality"]
    )
    conditions = session.get_conditions(condition_columns=["stim_name", "rewarded_modality"])
    assert conditions.index.name == "stimulus_condition_id" and conditions.index.is_unique
    duration = (trials["stop_time"] - trials["start_time"]).to_numpy()
    for unit_id, spikes in zip(units, _unit_spikes(session, units), strict=True):
        inside = (spikes[None, :] > trials["start_time"].to_numpy()[:, None]) & (
            spikes[None, :] <= trials["stop_time"].to_numpy()[:, None]
        )
        values = inside.sum(axis=1) / (duration if use_rates else 1.0)
        frame = trials[["stim_name", "rewarded_modality"]].assign(value=values)
        grouped = frame.groupby(["stim_name", "rewarded_modality"])["value"]
        for (stim, context), mean in grouped.mean().items():
            condition = conditions.index[
                (conditions["stim_name"] == stim) & (conditions["rewarded_modality"] == context)
            ]
            row = stats.loc[(unit_id, int(condition[0]))]
            assert row["spike_mean"] == pytest.approx(mean)
            assert row["spike_std"] == pytest.approx(grouped.std()[(stim, context)], nan_ok=True)


def test_conditionwise_lists_only_units_that_spiked(session):
    stats = session.conditionwise_spike_statistics(session.trials.index[:2], condition_columns="stim_name")
    spiked = stats.groupby(level="unit_id")["spike_count"].sum()
    assert (spiked > 0).all()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda s: s.presentationwise_spike_counts(EDGES, intervals="optotagging"),
            MissingDataError,
            "optotagging",
        ),
        (lambda s: s.presentationwise_spike_counts(EDGES, align_to="flash_time"), ValueError, "no column"),
        (lambda s: s.presentationwise_spike_counts(EDGES, align_to="response_time"), ValueError, "NaN"),
        (lambda s: s.presentationwise_spike_counts(EDGES, align_to="stim_name"), ValueError, "no times"),
        (lambda s: s.presentationwise_spike_counts(EDGES, [10_000]), UnknownIdError, "10000"),
        (lambda s: s.presentationwise_spike_counts(EDGES, unit_ids=[-1]), UnknownIdError, "session.units"),
        (lambda s: s.presentationwise_spike_times(intervals=3), TypeError, "intervals=3"),
        (lambda s: s.conditionwise_spike_statistics(), ValueError, "condition_columns"),
        (lambda s: s.conditionwise_spike_statistics(condition_columns=["nope"]), ValueError, "nope"),
    ],
)
def test_analysis_errors(session, call, error, match):
    with pytest.raises(error, match=match):
        call(session)


def test_unsorted_spike_times_are_a_format_error(path, tmp_path):
    copy = tmp_path / "unsorted.nwb"
    shutil.copy(path, copy)
    with h5py.File(copy, "r+") as f:
        f["units/spike_times"][0:2] = f["units/spike_times"][0:2][::-1].copy()
    with ecephys.open_nwb(copy) as opened, pytest.raises(NWBFormatError, match="not sorted"):
        opened.presentationwise_spike_counts(EDGES)
