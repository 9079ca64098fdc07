"""Stimuli and behaviour of sessions the AllenSDK fixtures lack, through ``ecephys.open_session``:
no eye tracking, no optotagging, no invalid times, functional_connectivity stimuli and a
stimulus whose parameters are all NaN. Files from ``ecephys.testing.make_session``.

What the AllenSDK 2.16.2 answers for the same files is checked outside the suite by
``bench/check_allensdk_edge_cases.py``: the same tables, except the documented differences.
"""

from __future__ import annotations

import logging

import h5py
import numpy as np
import pandas as pd
import pytest

import ecephys
from ecephys import stimuli
from ecephys.testing import make_session

LAYOUTS = ("vcn2020", "sdk2162")
SMALL = dict(n_probes=1, units_per_probe=3, duration=120.0, channels_per_probe=32, lfp=False, seed=7)
FC_STIMULI = {
    "spontaneous",
    "gabors",
    "flashes",
    "drifting_gratings_contrast",
    "natural_movie_one_more_repeats",
    "natural_movie_one_shuffled",
    "dot_motion",
    "drifting_gratings_75_repeats",
}
DOT_SETTINGS = (
    "coherence",
    "dotLife",
    "dotSize",
    "fieldPos",
    "fieldShape",
    "fieldSize",
    "nDots",
    "noiseDots",
)
OPTOTAGGING_DTYPES = {
    "start_time": "float64",
    "condition": "object",
    "level": "float64",
    "stop_time": "float64",
    "stimulus_name": "object",
    "duration": "float64",
}


@pytest.fixture(scope="module", params=LAYOUTS)
def layout(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def bare(tmp_path_factory, layout):
    """A brain_observatory_1.1 session without eye tracking, optotagging or invalid times."""
    folder = tmp_path_factory.mktemp(f"bare-{layout}")
    files = make_session(
        folder, layout=layout, eye_tracking=False, optotagging=False, invalid_times=False, **SMALL
    )
    return ecephys.open_session(files.session_path)


@pytest.fixture(scope="module")
def complete(tmp_path_factory, layout):
    """The same session with every part."""
    files = make_session(tmp_path_factory.mktemp(f"complete-{layout}"), layout=layout, **SMALL)
    return ecephys.open_session(files.session_path)


@pytest.fixture(scope="module")
def fc(tmp_path_factory, layout):
    """A functional_connectivity session with the all-NaN stimulus."""
    folder = tmp_path_factory.mktemp(f"fc-{layout}")
    files = make_session(
        folder, layout=layout, session_type="functional_connectivity", all_nan_stimulus=True, **SMALL
    )
    return ecephys.open_session(files.session_path)


# -- parts a session may lack ----------------------------------------------------------------


def test_no_eye_tracking_gives_none_logged_not_printed(bare, caplog, capsys):
    with caplog.at_level(logging.INFO, logger="ecephys.stimuli"):
        answers = [
            bare.get_pupil_data(),
            bare.get_screen_gaze_data(),
            bare.get_screen_gaze_data(include_filtered_data=True),
        ]
    assert answers == [None, None, None]
    assert capsys.readouterr().out == ""
    records = [r for r in caplog.records if r.name == "ecephys.stimuli"]
    assert len(records) == 3 and {r.levelno for r in records} == {logging.INFO}
    assert "no eye tracking data" in records[0].getMessage()
    assert "/processing/eye_tracking" in records[0].getMessage()
    assert bare.rig_geometry_data is None and bare.rig_equipment_name is None


def test_eye_tracking_is_read_when_present(complete):
    assert complete.get_pupil_data().index.name == "Time (s)"
    assert "filtered_eye_area" in complete.get_screen_gaze_data(include_filtered_data=True)


def test_gaze_data_needs_both_gaze_mapping_modules(tmp_path):
    files = make_session(tmp_path, **SMALL)
    with h5py.File(files.session_path, "r+") as nwb:
        del nwb["processing/filtered_gaze_mapping"]
    with h5py.File(files.session_path, "r") as h5file:
        assert stimuli.screen_gaze_data(h5file) is None  # as the AllenSDK, even for raw data only
        assert stimuli.pupil_data(h5file) is not None


def test_no_optotagging_gives_a_typed_empty_table(bare, complete):
    empty = bare.optogenetic_stimulation_epochs
    assert empty.empty
    assert {c: str(t) for c, t in empty.dtypes.items()} == OPTOTAGGING_DTYPES
    assert empty.index.name == "id" and empty.index.dtype == np.int64
    full = complete.optogenetic_stimulation_epochs
    assert len(full) > 0
    pd.testing.assert_frame_equal(empty, full.iloc[:0])


def test_no_invalid_times_gives_an_empty_table_and_no_masking(bare, complete):
    assert bare.invalid_times.empty and list(bare.invalid_times.columns) == [
        "start_time",
        "stop_time",
        "tags",
    ]
    assert bare.get_invalid_times().empty
    assert "invalid_presentation" not in bare.stimulus_names
    assert "invalid_presentation" in complete.stimulus_names
    assert bare.stimulus_presentations["stimulus_condition_id"].dtype == np.int64


def test_missing_parts_leave_the_rest_as_it_was(bare, complete):
    pd.testing.assert_frame_equal(bare.running_speed, complete.running_speed)
    masked = complete.stimulus_presentations["stimulus_name"] == "invalid_presentation"
    pd.testing.assert_series_equal(
        bare.stimulus_presentations["start_time"], complete.stimulus_presentations["start_time"]
    )
    same = bare.stimulus_presentations.loc[~masked.to_numpy(), "stimulus_name"]
    pd.testing.assert_series_equal(same, complete.stimulus_presentations.loc[~masked, "stimulus_name"])


def test_an_empty_file_answers_like_a_session_without_those_parts(tmp_path):
    path = tmp_path / "empty.nwb"
    h5py.File(path, "w").close()
    with h5py.File(path, "r") as h5file:
        assert stimuli.pupil_data(h5file) is None
        assert stimuli.screen_gaze_data(h5file, include_filtered_data=True) is None
        assert stimuli.optogenetic_stimulation_epochs(h5file).empty
        assert stimuli.invalid_times(h5file).empty


# -- functional_connectivity -----------------------------------------------------------------


def test_functional_connectivity_stimuli_and_session_type(fc):
    assert fc.session_type == "functional_connectivity"
    assert set(fc.stimulus_names) == FC_STIMULI | {"all_nan_stimulus", "invalid_presentation"}
    assert fc.stimulus_names[0] == "spontaneous"


def test_dot_motion_columns_keep_their_case(fc):
    table = fc.stimulus_presentations
    assert {"Dir", "Speed", "coherence"} <= set(table.columns)
    assert not {"dir", "speed", "direction", *DOT_SETTINGS[1:]} & set(table.columns)
    dots = table[table["stimulus_name"] == "dot_motion"]
    assert set(dots["Dir"]) <= {float(d) for d in range(0, 360, 45)}
    assert set(dots["Speed"]) <= {0.0, 0.0005, 0.001, 0.005, 0.01, 0.02, 0.04}
    assert (dots[["orientation", "frame", "spatial_frequency"]] == "null").all().all()
    others = table[~table["stimulus_name"].isin(["dot_motion", "invalid_presentation"])]
    assert (others[["Dir", "Speed"]] == "null").all().all()


def test_dot_motion_settings_are_detailed_parameters(fc):
    detailed = fc.get_stimulus_table("dot_motion", include_detailed_parameters=True)
    assert set(DOT_SETTINGS) <= set(detailed.columns)
    assert set(detailed["fieldSize"]) == {"[2.0, 2.0]"} and set(detailed["nDots"]) == {500.0}
    plain = fc.get_stimulus_table("dot_motion")
    assert not set(DOT_SETTINGS[1:]) & set(plain.columns)
    assert {"Dir", "Speed", "coherence", "contrast"} <= set(plain.columns)
    assert "orientation" not in plain.columns  # 'null' throughout: unused by dot_motion


def test_spatial_frequency_mixes_text_and_numbers_as_stored(fc):
    table = fc.stimulus_presentations
    sf = table.set_index("stimulus_name")["spatial_frequency"]
    assert {type(v) for v in sf.loc["drifting_gratings_contrast"]} == {str}
    assert {type(v) for v in sf.loc["drifting_gratings_75_repeats"]} == {float}


def test_functional_connectivity_conditions_and_parameter_values(fc):
    table = fc.stimulus_presentations
    conditions = fc.stimulus_conditions
    ids = table["stimulus_condition_id"].dropna().astype(np.int64)
    assert set(ids) <= set(conditions.index)
    dots = table[table["stimulus_name"] == "dot_motion"]
    looked_up = conditions.loc[dots["stimulus_condition_id"].astype(np.int64), ["Dir", "Speed"]]
    np.testing.assert_array_equal(looked_up.to_numpy(), dots[["Dir", "Speed"]].to_numpy())
    assert dots.groupby(["Dir", "Speed"])["stimulus_condition_id"].nunique().eq(1).all()
    values = fc.get_parameter_values_for_stimulus("drifting_gratings_contrast")
    assert set(values["orientation"]) <= {0.0, 45.0, 90.0, 135.0} and len(values["contrast"]) > 1


def test_functional_connectivity_epochs_follow_the_blocks(fc):
    epochs = fc.get_stimulus_epochs(duration_thresholds={})
    names = epochs["stimulus_name"].to_numpy()
    assert "invalid_presentation" in names  # the invalid interval splits the gabors epoch
    shown = names[~np.isin(names, ["spontaneous", "invalid_presentation"])]
    shown = shown[np.r_[True, shown[1:] != shown[:-1]]].tolist()
    assert shown == [
        "gabors",
        "flashes",
        "drifting_gratings_contrast",
        "natural_movie_one_more_repeats",
        "natural_movie_one_shuffled",
        "dot_motion",
        "drifting_gratings_75_repeats",
        "all_nan_stimulus",
    ]
    assert np.all(np.diff(epochs["start_time"].to_numpy()) > 0)
    assert set(fc.get_stimulus_epochs()["stimulus_name"]) >= FC_STIMULI - {"spontaneous"}


def test_shuffled_movie_shows_each_frame_once_per_repeat(fc):
    table = fc.stimulus_presentations
    frames = table.loc[table["stimulus_name"] == "natural_movie_one_shuffled", "frame"].astype(int)
    assert frames.is_unique and not frames.is_monotonic_increasing
    more = table.loc[table["stimulus_name"] == "natural_movie_one_more_repeats", "frame"].astype(int)
    assert more.iloc[0] == 0 and more.is_monotonic_increasing


# -- a stimulus whose parameters are all NaN -------------------------------------------------


def test_all_nan_stimulus_parameters_are_null(fc):
    table = fc.get_stimulus_table(include_detailed_parameters=True, include_unused_parameters=True)
    rows = table[table["stimulus_name"] == "all_nan_stimulus"]
    assert len(rows) > 0
    parameters = rows.drop(
        columns=[
            "start_time",
            "stop_time",
            "duration",
            "stimulus_block",
            "stimulus_name",
            "stimulus_condition_id",
        ]
    )
    assert (parameters == "null").all().all()
    assert rows["stimulus_condition_id"].nunique() == 1


def test_all_nan_stimulus_has_no_used_parameters(fc):
    table = fc.get_stimulus_table("all_nan_stimulus")
    assert list(table.columns) == [
        "stimulus_block",
        "start_time",
        "stop_time",
        "stimulus_name",
        "duration",
        "stimulus_condition_id",
    ]
    assert fc.get_parameter_values_for_stimulus("all_nan_stimulus") == {}
    condition = fc.stimulus_conditions.loc[table["stimulus_condition_id"].iloc[0]]
    assert condition["stimulus_name"] == "all_nan_stimulus" and condition["Dir"] == "null"
