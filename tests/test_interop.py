"""ecephys.interop.to_pynapple: pynapple objects that hold exactly the session's data."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ecephys
from ecephys.errors import MissingDependency
from ecephys.interop import to_pynapple
from ecephys.testing import make_dynamic_routing_session
from tests.reference import session_path

nap = pytest.importorskip("pynapple")
# pynapple warns when it nudges touching intervals apart by 1 µs (the epochs); not our concern here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory):
    path: Path = make_dynamic_routing_session(tmp_path_factory.mktemp("interop"), duration=200.0, n_units=12)
    with ecephys.open_nwb(path) as opened:
        yield opened


@pytest.fixture(scope="module")
def objects(session) -> dict:
    return session.to_pynapple()


def test_units_tsgroup_holds_the_spike_times(session, objects):
    group = objects["units"]
    assert isinstance(group, nap.TsGroup)
    assert list(group.keys()) == session.units.index.tolist()
    for unit_id in session.units.index:
        np.testing.assert_array_equal(group[unit_id].t, session.spike_times[unit_id])


def test_units_metadata_are_the_scalar_columns(session, objects):
    metadata = objects["units"].metadata
    for column in ("default_qc", "unit_id", "electrode_group_name", "snr", "structure"):
        assert metadata[column].tolist() == session.units[column].tolist(), column
    spikes = np.array([len(session.spike_times[u]) for u in session.units.index])
    support = objects["units"].time_support
    duration = float((support.end - support.start).sum())
    np.testing.assert_allclose(metadata["rate"], spikes / duration)  # pynapple's own rate


def test_interval_sets_hold_the_tables(session, objects):
    assert set(session.intervals) <= set(objects)
    trials = objects["trials"]
    assert isinstance(trials, nap.IntervalSet)
    np.testing.assert_array_equal(trials.start, session.trials["start_time"])
    np.testing.assert_array_equal(trials.end, session.trials["stop_time"])
    assert trials.metadata["stim_name"].tolist() == session.trials["stim_name"].tolist()
    assert trials.metadata["id"].tolist() == session.trials.index.tolist()
    assert "tags" not in objects["invalid_times"].metadata  # arrays per row are not metadata


def test_running_speed_and_events(session, objects):
    speed = objects["running_speed"]
    np.testing.assert_array_equal(speed.t, session.running_speed["start_time"])
    np.testing.assert_allclose(speed.d, session.running_speed["velocity"])
    np.testing.assert_array_equal(objects["licks"].t, session.events["licks"]["timestamps"])
    np.testing.assert_array_equal(objects["rewards"].t, session.events["rewards"]["timestamps"])


def test_unsorted_intervals_keep_their_metadata_rows():
    table = pd.DataFrame(
        {"start_time": [5.0, 1.0, 3.0], "stop_time": [6.0, 2.0, 4.0], "label": ["c", "a", "b"]},
        index=pd.Index([10, 11, 12], name="id"),
    )
    objects = to_pynapple({1: np.array([0.5, 1.5])}, None, {"blocks": table})
    blocks = objects["blocks"]
    np.testing.assert_array_equal(blocks.start, [1.0, 3.0, 5.0])
    assert blocks.metadata["label"].tolist() == ["a", "b", "c"]
    assert blocks.metadata["id"].tolist() == [11, 12, 10]


def test_events_named_like_a_table_and_no_units():
    events = {"trials": pd.DataFrame({"timestamps": [2.0, 1.0]})}
    table = pd.DataFrame({"start_time": [0.0], "stop_time": [1.0]})
    objects = to_pynapple({}, None, {"trials": table}, events=events)
    assert "units" not in objects
    np.testing.assert_array_equal(objects["trials_events"].t, [1.0, 2.0])


@pytest.mark.filterwarnings("ignore::ecephys.errors.EcephysWarning")
def test_the_allen_session_uses_the_same_function():
    with ecephys.open_session(session_path("vcn2020_tiny")) as allen:
        presentations = allen.stimulus_presentations
        objects = to_pynapple(
            allen.spike_times,
            allen.units,
            {"flashes": presentations[presentations["stimulus_name"] == "flashes"]},
            running_speed=allen.running_speed,
        )
        group = objects["units"]
        assert sorted(group.keys()) == sorted(allen.units.index)
        for unit_id in allen.units.index[:4]:
            np.testing.assert_array_equal(group[unit_id].t, allen.spike_times[unit_id])
        metadata = group.metadata.loc[allen.units.index]
        assert metadata["probe_description"].tolist() == allen.units["probe_description"].tolist()
        assert len(objects["flashes"]) == int((presentations["stimulus_name"] == "flashes").sum())


def test_without_pynapple_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynapple", None)
    with pytest.raises(MissingDependency, match=r"ecephys\[pynapple\]"):
        to_pynapple({1: np.array([0.5])})


def test_allen_session_to_pynapple_method():
    with ecephys.open_session(session_path("vcn2020_tiny")) as allen:
        objects = allen.to_pynapple()
        assert sorted(objects["units"].keys()) == sorted(allen.units.index)
        assert len(objects["stimulus_presentations"]) == len(allen.stimulus_presentations)
        epochs = allen.get_stimulus_epochs()
        np.testing.assert_allclose(objects["stimulus_epochs"].start, np.sort(epochs["start_time"]))
        np.testing.assert_array_equal(objects["running_speed"].t, allen.running_speed["start_time"])
