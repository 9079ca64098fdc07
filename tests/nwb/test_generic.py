"""ecephys.nwb.generic and ecephys.nwb.series: h5py readers of any NWB file, checked against pynwb."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from ecephys.errors import (
    MissingDataError,
    NotEcephysSessionError,
    NotHDF5Error,
    NWBFormatError,
    SessionFileNotFound,
    TruncatedFileError,
)
from ecephys.nwb.generic import GenericNWBFile, read_dynamic_table, read_event_table
from ecephys.nwb.series import ElectricalSeriesReader, sample_range, series_times
from ecephys.testing import make_dynamic_routing_session
from tests.nwb_support import assert_matches_pynwb, pynwb_file
from tests.reference import FIXTURE_NAMES, FIXTURES, session_path

LFP_FILE = FIXTURES / "vcn2020_tiny" / "session_999000001" / "probe_999001018_lfp.nwb"


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dynamic_routing_session(tmp_path_factory.mktemp("generic") / "dr.nwb", duration=300.0)


@pytest.fixture(scope="module")
def reader(path: Path):
    nwb = GenericNWBFile(path)
    yield nwb
    nwb.close()


@pytest.fixture(scope="module")
def oracle(path: Path):
    with pynwb_file(path) as nwbfile:
        yield nwbfile


# -------------------------------------------------------------------------- tables


@pytest.mark.parametrize(
    "name", ["trials", "epochs", "invalid_times", "vis_rf_mapping_trials", "aud_rf_mapping_trials"]
)
def test_interval_tables_equal_pynwb(reader, oracle, name):
    assert_matches_pynwb(reader.interval_table(name), oracle.intervals[name].to_dataframe())


def test_units_and_electrodes_equal_pynwb(reader, oracle):
    assert_matches_pynwb(reader.units, oracle.units.to_dataframe())
    assert_matches_pynwb(reader.electrodes, oracle.electrodes.to_dataframe())
    assert reader.units["electrode_group"].tolist() == reader.units["electrode_group_name"].tolist()
    for i, unit_id in enumerate(reader.unit_ids):
        np.testing.assert_array_equal(reader.spike_times.row(i), oracle.units.get_unit_spike_times(i))
        assert unit_id == oracle.units.id[i]


def test_text_and_bool_columns_keep_their_types(reader):
    trials = reader.interval_table("trials")
    assert trials["stim_name"].dtype == object and isinstance(trials["stim_name"].iloc[0], str)
    assert trials["is_go"].dtype == bool
    tags = reader.interval_table("epochs")["tags"]
    assert all(isinstance(t, np.ndarray) for t in tags) and list(tags.iloc[1]) == ["task", "rewards"]


@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
def test_allen_tables_equal_pynwb(fixture):
    path = session_path(fixture)
    nwb = GenericNWBFile(path)
    with pynwb_file(path) as oracle:
        assert_matches_pynwb(nwb.electrodes, oracle.electrodes.to_dataframe())
        assert_matches_pynwb(
            nwb.units,
            oracle.units.to_dataframe(),
            left_out={"spike_times", "spike_amplitudes", "waveform_mean"},
        )
        name = "flashes_presentations"
        assert_matches_pynwb(nwb.interval_table(name), oracle.intervals[name].to_dataframe())
    assert set(nwb.electrodes["group"]) == {"probeA", "probeB"}
    assert nwb.subject["specimen_name"] and isinstance(nwb.subject["age_in_days"], float)
    nwb.close()


def test_metadata_and_subject_equal_pynwb(reader, oracle):
    assert reader.session_id == oracle.session_id
    assert reader.identifier == oracle.identifier
    assert reader.session_start_time == oracle.session_start_time
    assert reader.metadata["institution"] == oracle.institution
    assert reader.metadata["keywords"] == list(oracle.keywords[:])
    assert reader.metadata["experimenter"] == list(oracle.experimenter)
    for field in ("subject_id", "species", "sex", "age", "genotype", "strain", "description"):
        assert reader.subject[field] == getattr(oracle.subject, field), field
    assert reader.subject["date_of_birth"] == oracle.subject.date_of_birth


def test_missing_table_and_columns_of_wrong_length(tmp_path):
    path = tmp_path / "bad.nwb"
    with h5py.File(path, "w") as f:
        f.attrs["nwb_version"] = "2.7.0"
        f["identifier"] = "x"
        table = f.create_group("intervals/trials")
        table.attrs["colnames"] = ["start_time", "stop_time"]
        table["id"] = np.arange(3)
        table["start_time"] = np.arange(3.0)
        table["stop_time"] = np.arange(2.0)
    nwb = GenericNWBFile(path)
    with pytest.raises(NWBFormatError, match="stop_time has 2 rows but the table has 3"):
        nwb.interval_table("trials")
    with pytest.raises(MissingDataError, match="no /intervals/epochs"):
        nwb.interval_table("epochs")
    with pytest.raises(MissingDataError, match="no /units"):
        _ = nwb.units
    with pytest.raises(MissingDataError, match="electrodes"):
        _ = nwb.electrodes
    assert nwb.running_speed() is None and nwb.event_groups == {} and nwb.lfp_names == []
    assert nwb.subject == {}
    nwb.close()


# -------------------------------------------------------------------------- events


def test_events_equal_pynwb(reader, oracle):
    assert list(reader.event_groups) == [
        "licks",
        "quiescent_interval_violations",
        "rewards",
        "lick_sensor_events",
    ]
    behavior = oracle.processing["behavior"]
    licks = read_event_table(reader.event_groups["licks"])
    np.testing.assert_array_equal(licks["timestamps"], behavior["licks"]["timestamp"].data[:])
    np.testing.assert_array_equal(licks["duration"], behavior["licks"]["duration"].data[:])
    rewards = read_event_table(reader.event_groups["rewards"])
    np.testing.assert_array_equal(rewards["timestamps"], behavior["rewards"]["timestamp"].data[:])
    violations = read_event_table(reader.event_groups["quiescent_interval_violations"])
    assert_matches_pynwb(violations, behavior["quiescent_interval_violations"].to_dataframe())
    sensor = read_event_table(reader.event_groups["lick_sensor_events"])
    np.testing.assert_array_equal(
        sensor["timestamps"], oracle.acquisition["lick_sensor_events"].timestamps[:]
    )
    np.testing.assert_array_equal(sensor["data"], oracle.acquisition["lick_sensor_events"].data[:])


def _add_legacy_events(path: Path) -> dict[str, np.ndarray]:
    """ndx-events 0.2 groups as older npc_sessions files hold them: Events and LabeledEvents."""
    licks = np.array([1.5, 2.25, 3.0])
    ttl = np.array([0.5, 0.75, 1.0, 4.0])
    codes = np.array([1, 0, 1, 2], dtype=np.uint8)
    with h5py.File(path, "r+") as f:
        events = f["processing/behavior"].create_group("legacy_licks")
        events.attrs.update({"neurodata_type": "Events", "namespace": "ndx-events", "description": "licks"})
        events.create_dataset("timestamps", data=licks).attrs.update({"unit": "seconds", "resolution": -1.0})
        labeled = f["acquisition"].create_group("ttl_codes")
        labeled.attrs.update(
            {"neurodata_type": "LabeledEvents", "namespace": "ndx-events", "description": "x"}
        )
        labeled.create_dataset("timestamps", data=ttl)
        labeled.create_dataset("data", data=codes)
        labeled.attrs["labels"] = ["off", "on", "reward"]
    return {"licks": licks, "ttl": ttl, "codes": codes}


def test_ndx_events_0_2_types(path, tmp_path):
    copy = tmp_path / "legacy.nwb"
    shutil.copy(path, copy)
    written = _add_legacy_events(copy)
    nwb = GenericNWBFile(copy)
    legacy = read_event_table(nwb.event_groups["legacy_licks"])
    assert list(legacy.columns) == ["timestamps"]
    np.testing.assert_array_equal(legacy["timestamps"], written["licks"])
    labeled = read_event_table(nwb.event_groups["ttl_codes"])
    np.testing.assert_array_equal(labeled["timestamps"], written["ttl"])
    np.testing.assert_array_equal(labeled["data"], written["codes"])
    assert labeled["label"].tolist() == ["on", "off", "on", "reward"]
    nwb.close()


def test_allen_file_has_no_events_and_its_running_speed():
    path = session_path("sdk2162_tiny")
    nwb = GenericNWBFile(path)
    assert nwb.event_groups == {}  # optotagging and gaze series are not events
    speed = nwb.running_speed()
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(
            speed["start_time"], f["processing/running/running_speed/timestamps"][()]
        )
        np.testing.assert_array_equal(
            speed["end_time"], f["processing/running/running_speed_end_times/timestamps"][()]
        )
        np.testing.assert_array_equal(speed["velocity"], f["processing/running/running_speed/data"][()])
    nwb.close()


def test_running_speed_ends_at_the_next_sample(reader, oracle):
    series = oracle.processing["behavior"]["running_speed"]
    speed = reader.running_speed()
    times = series.timestamps[:]
    np.testing.assert_array_equal(speed["start_time"], times)
    np.testing.assert_array_equal(speed["end_time"].to_numpy()[:-1], times[1:])
    assert speed["end_time"].iloc[-1] == pytest.approx(times[-1] + np.median(np.diff(times)))
    np.testing.assert_array_equal(speed["velocity"], series.data[:])
    assert speed.attrs["unit"] == "cm/s"


# -------------------------------------------------------------------------- LFP


def test_finds_lfp_series(reader):
    assert reader.lfp_names == ["probeA", "probeB"]
    allen = GenericNWBFile(LFP_FILE)
    assert list(allen.electrical_series) == ["probe_999001018_lfp_data"]  # one object, two paths
    allen.close()


@pytest.mark.parametrize("probe", ["probeA", "probeB"])
def test_lfp_window_equals_pynwb(reader, oracle, probe):
    series = oracle.processing["ecephys"]["LFP"][probe]
    lfp = ElectricalSeriesReader(reader.electrical_series[probe])
    if series.timestamps is not None:
        times = series.timestamps[:]
    else:
        times = series.starting_time + np.arange(series.data.shape[0]) / series.rate
    start, stop = times[100], times[250]  # both ends inclusive
    window = lfp.read(time=slice(start, stop))
    np.testing.assert_array_equal(window["time"], times[100:251])
    scale = series.conversion * (
        series.channel_conversion[:] if series.channel_conversion is not None else 1.0
    )
    np.testing.assert_allclose(window.values, series.data[100:251, :] * scale, rtol=1e-12)
    ids = series.electrodes.to_dataframe().index.to_numpy()
    np.testing.assert_array_equal(window["channel"], ids)
    picked = lfp.read(time=(start, stop), channels=[ids[3], ids[0]])
    np.testing.assert_array_equal(picked.values, window.values[:, [3, 0]])
    assert window.attrs["units"] == "V"


def test_lfp_window_edges_and_unknown_channels(reader):
    group = reader.electrical_series["probeB"]
    times = series_times(group)
    assert sample_range(group, None, None) == (0, len(times))
    assert sample_range(group, times[5] + 1e-9, times[7]) == (6, 8)
    assert sample_range(group, times[-1] + 1.0, None) == (len(times), len(times))
    assert sample_range(group, None, times[0] - 1.0) == (0, 0)
    with pytest.raises(MissingDataError, match="not in this series"):
        ElectricalSeriesReader(group).read(time=(times[0], times[3]), channels=[0])


def test_allen_lfp_file_equals_h5py_read():
    nwb = GenericNWBFile(LFP_FILE)
    lfp = ElectricalSeriesReader(nwb.electrical_series["probe_999001018_lfp_data"])
    with h5py.File(LFP_FILE, "r") as f:
        series = f["acquisition/probe_999001018_lfp/probe_999001018_lfp_data"]
        times = series["timestamps"][()]
        window = lfp.read(time=slice(times[10], times[20]))
        np.testing.assert_array_equal(window.values, series["data"][10:21])
        np.testing.assert_array_equal(window["channel"], f["general/extracellular_ephys/electrodes/id"][()])
    nwb.close()


# -------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    ("content", "error", "match"),
    [
        (b"", TruncatedFileError, "empty"),
        (b"<html><body>Access denied</body></html>", NotHDF5Error, "HTML page"),
        (None, NotEcephysSessionError, "not an NWB file"),
    ],
)
def test_bad_files(tmp_path, content, error, match):
    path = tmp_path / "bad.nwb"
    if content is None:
        with h5py.File(path, "w") as f:
            f["something"] = np.arange(3)
    else:
        path.write_bytes(content)
    with pytest.raises(error, match=match):
        GenericNWBFile(path)


def test_truncated_and_absent_files(path, tmp_path):
    cut = tmp_path / "cut.nwb"
    cut.write_bytes(path.read_bytes()[:50_000])
    with pytest.raises(TruncatedFileError, match="truncated"):
        GenericNWBFile(cut)
    with pytest.raises(SessionFileNotFound, match="no such NWB file"):
        GenericNWBFile(tmp_path / "absent.nwb")


def test_read_dynamic_table_refuses_a_group_without_ids(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        group = f.create_group("not_a_table")
        with pytest.raises(NWBFormatError, match="not a DynamicTable"):
            read_dynamic_table(group)


def test_tables_without_colnames_use_their_datasets(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        table = f.create_group("t")
        table["id"] = np.array([4, 5])
        table["value"] = np.array([1.0, 2.0])
        table["name"] = np.array([b"a", b"b"])
        frame = read_dynamic_table(table)
    expected = pd.DataFrame({"name": ["a", "b"], "value": [1.0, 2.0]}, index=pd.Index([4, 5], name="id"))
    pd.testing.assert_frame_equal(
        frame[["name", "value"]].astype({"name": object}), expected.astype({"name": object})
    )
