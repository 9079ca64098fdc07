"""Stimulus, behaviour and optotagging tables against the AllenSDK 2.16.2's answers, and edge cases."""

from __future__ import annotations

import time

import h5py
import numpy as np
import pandas as pd
import pytest

from ecephys import stimuli
from ecephys.errors import MissingDataError, NWBFormatError
from tests.reference import (
    FIXTURE_NAMES,
    assert_csv_matches_reference,
    assert_frame_matches_reference,
    assert_frame_matches_schema,
    assert_values_match_reference,
    load_json,
    load_reference_table,
    reference_dir,
    session_path,
)
from tests.synthetic_nwb import write_invalid_times, write_presentations

# Stimulus parts do not depend on unit filters, so every variant must give the same answers.
VARIANTS = ("unfiltered", "default", "cache")
ALLENSDK_EPOCH_THRESHOLDS = {"spontaneous_activity": 90.0}


@pytest.fixture(scope="module", params=FIXTURE_NAMES)
def session(request):
    with h5py.File(session_path(request.param), "r") as h5file:
        presentations, conditions = stimuli.load_stimulus_tables(h5file)
        yield request.param, h5file, presentations, conditions


@pytest.fixture(params=VARIANTS)
def ref(request, session):
    return reference_dir(session[0], request.param)


# -- the presentations table and its views ---------------------------------------------


def test_stimulus_presentations_match_allensdk(session, ref):
    _, _, presentations, _ = session
    table = stimuli.remove_detailed_parameters(presentations)
    assert_frame_matches_reference(
        table, ref / "stimulus_presentations.json", sort_columns=True, check_value_types=True
    )
    assert_csv_matches_reference(table, ref / "stimulus_presentations.csv")


def test_stimulus_conditions_match_allensdk(session, ref):
    _, _, _, conditions = session
    assert_frame_matches_reference(
        conditions, ref / "stimulus_conditions.json", sort_columns=True, check_value_types=True
    )
    assert_csv_matches_reference(conditions, ref / "stimulus_conditions.csv")


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        (
            "get_stimulus_table_all_detailed_unused",
            {"include_detailed_parameters": True, "include_unused_parameters": True},
        ),
        ("get_stimulus_table_drifting_gratings", {"stimulus_names": ["drifting_gratings"]}),
    ],
)
def test_stimulus_tables_match_allensdk(session, ref, name, kwargs):
    _, _, presentations, _ = session
    table = stimuli.get_stimulus_table(presentations, **kwargs)
    assert_frame_matches_reference(table, ref / f"{name}.json", sort_columns=True, check_value_types=True)
    assert_csv_matches_reference(table, ref / f"{name}.csv")


@pytest.mark.parametrize("thresholds", [ALLENSDK_EPOCH_THRESHOLDS, {}])
def test_stimulus_epochs_match_allensdk_with_its_thresholds(session, ref, thresholds):
    _, _, presentations, _ = session
    epochs = stimuli.get_stimulus_epochs(presentations, duration_thresholds=thresholds)
    assert_frame_matches_reference(epochs, ref / "get_stimulus_epochs.json", check_value_types=True)
    assert_csv_matches_reference(epochs, ref / "get_stimulus_epochs.csv")


def test_stimulus_epochs_default_drops_short_spontaneous_unlike_allensdk(session, ref):
    # Deliberate difference: the AllenSDK's default {"spontaneous_activity": 90} never matches.
    _, _, presentations, _ = session
    ours = stimuli.get_stimulus_epochs(presentations)
    theirs = load_reference_table(ref / "get_stimulus_epochs.json")
    short_spontaneous = (theirs["stimulus_name"] == "spontaneous") & (theirs["duration"] < 90.0)
    assert short_spontaneous.any()
    expected = theirs[~short_spontaneous]
    assert "spontaneous" not in set(ours["stimulus_name"])
    assert list(ours.index) == list(expected.index)
    pd.testing.assert_frame_equal(ours, expected, check_index_type=False)


def test_stimulus_parameter_values_match_allensdk(session, ref):
    _, _, presentations, _ = session
    assert_values_match_reference(
        stimuli.get_stimulus_parameter_values(presentations), ref / "stimulus_parameter_values.json"
    )
    assert_values_match_reference(
        stimuli.get_stimulus_parameter_values(presentations, drop_nulls=False),
        ref / "stimulus_parameter_values_with_nulls.json",
    )


def test_parameter_values_for_stimulus_match_allensdk(session, ref):
    _, _, presentations, _ = session
    values = stimuli.get_parameter_values_for_stimulus(presentations, "drifting_gratings")
    assert_values_match_reference(values, ref / "parameter_values_drifting_gratings.json")


def test_inter_presentation_intervals_for_flashes_match_allensdk(session, ref):
    _, _, presentations, _ = session
    intervals = stimuli.get_inter_presentation_intervals_for_stimulus(presentations, ["flashes"])
    name = "get_inter_presentation_intervals_for_stimulus_flashes"
    assert_frame_matches_reference(intervals, ref / f"{name}.json", check_value_types=True)
    assert_csv_matches_reference(intervals, ref / f"{name}.csv")


def test_inter_presentation_intervals_cover_consecutive_pairs(session):
    _, _, presentations, _ = session
    intervals = stimuli.inter_presentation_intervals(presentations)
    assert len(intervals) == len(presentations) - 1
    assert intervals.index.names == ["from_presentation_id", "to_presentation_id"]
    expected = presentations["start_time"].to_numpy()[1:] - presentations["stop_time"].to_numpy()[:-1]
    np.testing.assert_array_equal(intervals["interval"].to_numpy(), expected)
    given = stimuli.get_inter_presentation_intervals_for_stimulus(presentations, "flashes", intervals)
    assert given.equals(stimuli.get_inter_presentation_intervals_for_stimulus(presentations, "flashes"))


def test_stimulus_names_in_presentation_order(session):
    _, _, presentations, _ = session
    names = stimuli.stimulus_names(presentations)
    assert names[:3] == ["spontaneous", "gabors", "flashes"]
    assert "invalid_presentation" in names
    assert len(names) == len(set(names))


# -- invalid times, running, optotagging, eye tracking -----------------------------------


def test_invalid_times_match_allensdk(session, ref):
    _, h5file, _, _ = session
    table = stimuli.invalid_times(h5file)
    assert_frame_matches_reference(table, ref / "invalid_times.json", check_value_types=True)
    assert_csv_matches_reference(table, ref / "invalid_times.csv")
    assert all(isinstance(tag, str) for tags in table["tags"] for tag in tags)


def test_optogenetic_stimulation_epochs_match_allensdk(session, ref):
    _, h5file, _, _ = session
    table = stimuli.optogenetic_stimulation_epochs(h5file)
    assert_frame_matches_reference(table, ref / "optogenetic_stimulation_epochs.json", check_value_types=True)
    assert_csv_matches_reference(table, ref / "optogenetic_stimulation_epochs.csv")


@pytest.mark.parametrize(
    ("name", "read"),
    [
        ("running_speed", stimuli.running_speed),
        ("get_pupil_data", stimuli.pupil_data),
        ("get_screen_gaze_data", stimuli.screen_gaze_data),
        (
            "get_screen_gaze_data_include_filtered_data_True",
            lambda h5file: stimuli.screen_gaze_data(h5file, include_filtered_data=True),
        ),
    ],
)
def test_behaviour_tables_match_allensdk(session, ref, name, read):
    _, h5file, _, _ = session
    assert_frame_matches_schema(read(h5file), ref / f"{name}.schema.json")


def test_running_speed_can_add_wheel_rotation(session):
    _, h5file, _, _ = session
    table = stimuli.running_speed(h5file, include_rotation=True)
    assert list(table.columns) == ["start_time", "end_time", "velocity", "net_rotation"]
    np.testing.assert_array_equal(
        table["net_rotation"].to_numpy(), h5file["processing/running/running_wheel_rotation/data"][()]
    )


def test_pupil_sizes_are_doubled_half_axes(session):
    _, h5file, _, _ = session
    table = stimuli.pupil_data(h5file)
    np.testing.assert_array_equal(
        table["pupil_width"].to_numpy(), 2 * h5file["processing/eye_tracking/pupil_ellipse_fits/width"][()]
    )


# -- synthetic files: the pipeline's rules one at a time ---------------------------------


def _grating_rows(n: int, start: float = 0.0, **extra) -> dict:
    columns = {
        "start_time": start + np.arange(n, dtype=float),
        "stop_time": start + np.arange(n, dtype=float) + 0.5,
        "stimulus_name": ["static_gratings"] * n,
        "stimulus_block": np.full(n, 1.0),
        "stimulus_index": np.full(n, 1.0),
        "orientation": np.resize([0.0, 90.0], n),
    }
    columns.update(extra)
    return columns


@pytest.fixture
def make_file(tmp_path):
    def make(tables: dict, invalid: list | None = None) -> h5py.File:
        path = tmp_path / f"session_{len(list(tmp_path.iterdir()))}.nwb"
        with h5py.File(path, "w") as h5file:
            write_presentations(h5file, tables)
            if invalid is not None:
                write_invalid_times(h5file, invalid)
        return h5py.File(path, "r")

    return make


def test_binary_float_columns_become_booleans_but_index_columns_do_not(make_file):
    h5file = make_file(
        {"static_gratings": _grating_rows(4, opacity=np.ones(4), flag=np.array([0.0, 1.0, np.nan, 1.0]))}
    )
    table = stimuli.read_stimulus_presentations(h5file)
    assert table["opacity"].tolist() == [True] * 4
    assert table["flag"].tolist() == [False, True, "null", True]
    assert all(type(v) is bool for v in table["opacity"])
    assert "stimulus_index" not in table.columns


def test_text_na_and_missing_values_become_null(make_file):
    h5file = make_file(
        {
            "static_gratings": _grating_rows(2, phase=["0.25", "N/A"]),
            "spontaneous": {"start_time": [10.0], "stop_time": [20.0], "stimulus_name": ["spontaneous"]},
        }
    )
    table = stimuli.read_stimulus_presentations(h5file)
    assert table["phase"].tolist() == ["0.25", "null", "null"]
    assert table["stimulus_block"].tolist() == [1.0, 1.0, "null"]
    assert table["stimulus_block"].dtype == object
    assert table["start_time"].dtype == np.float64


def test_colour_splits_into_number_and_triplet(make_file):
    color = ["[1.0, 1.0, 1.0]", "-1.0", "1.0", "[-1.0, 0.5, .5]"]
    h5file = make_file({"flashes": _grating_rows(4, stimulus_name=["flashes"] * 4, color=color)})
    table = stimuli.read_stimulus_presentations(h5file)
    assert table["color"].tolist() == ["null", -1.0, 1.0, "null"]
    assert table["color_triplet"].tolist() == ["[1.0, 1.0, 1.0]", "null", "null", "[-1.0, 0.5, .5]"]
    assert list(table.columns[-3:]) == ["color_triplet", "duration", "stimulus_condition_id"]


def test_legacy_names_are_standardised(make_file):
    rows = {
        "start_time": [0.0, 1.0, 2.0, 3.0],
        "stop_time": [1.0, 2.0, 3.0, 4.0],
        "stimulus_name": ["natural_movie_1", "", "flash_250ms", "natural_movie_shuffled"],
        "Ori": [np.nan, np.nan, 45.0, np.nan],
        "Image": [1.0, np.nan, np.nan, np.nan],
        "image": [np.nan, np.nan, np.nan, 7.0],
    }
    table = stimuli.read_stimulus_presentations(make_file({"legacy": rows}))
    assert table["stimulus_name"].tolist() == [
        "natural_movie_one",
        "spontaneous",
        "flashes",
        "natural_movie_one_shuffled",
    ]
    assert table["orientation"].tolist() == ["null", "null", 45.0, "null"]
    # "Image" is folded into "image" (they never overlap), which keeps its own name.
    assert "Image" not in table.columns and "frame" not in table.columns
    assert table["image"].tolist() == [1.0, "null", "null", 7.0]


def test_ambiguous_shuffled_movie_is_a_format_error(make_file):
    rows = {
        "start_time": [0.0, 1.0, 2.0],
        "stop_time": [1.0, 2.0, 3.0],
        "stimulus_name": ["natural_movie_one", "natural_movie_three", "natural_movie_shuffled"],
    }
    with pytest.raises(NWBFormatError, match="movie number is ambiguous"):
        stimuli.read_stimulus_presentations(make_file({"movies": rows}))


def test_condition_ids_count_distinct_parameters_in_order_of_appearance(make_file):
    h5file = make_file({"static_gratings": _grating_rows(6, orientation=[90.0, 0.0, 90.0, 45.0, 0.0, 45.0])})
    table = stimuli.read_stimulus_presentations(h5file)
    assert table["stimulus_condition_id"].tolist() == [0, 1, 0, 2, 1, 2]
    assert table["stimulus_condition_id"].dtype == np.int64
    conditions = stimuli.stimulus_conditions(table)
    assert conditions.index.name == "stimulus_condition_id"
    assert conditions["orientation"].tolist() == [90.0, 0.0, 45.0]


def test_sorting_by_start_time_keeps_file_order_for_ties(make_file):
    h5file = make_file(
        {
            "a": {"start_time": [5.0, 1.0], "stop_time": [6.0, 2.0], "stimulus_name": ["a", "a"]},
            "b": {"start_time": [1.0, 0.0], "stop_time": [2.0, 1.0], "stimulus_name": ["b", "b"]},
        }
    )
    table = stimuli.read_stimulus_presentations(h5file)
    assert table["stimulus_name"].tolist() == ["b", "a", "b", "a"]
    assert table.index.tolist() == [0, 1, 2, 3]


def test_masking_uses_closed_intervals_and_only_stimulus_tags(make_file):
    h5file = make_file(
        {"static_gratings": _grating_rows(5)},
        invalid=[
            (1.5, 2.0, ["EcephysSession", "1", "stimulus"]),
            (3.0, 3.2, ["EcephysProbe", "2", "probeA"]),
        ],
    )
    raw = stimuli.read_stimulus_presentations(h5file)
    masked = stimuli.mask_invalid_presentations(raw, stimuli.invalid_times(h5file))
    # rows [1, 1.5] and [2, 2.5] touch [1.5, 2.0]; the probe interval masks nothing
    assert masked["stimulus_name"].tolist()[:4] == [
        "static_gratings",
        "invalid_presentation",
        "invalid_presentation",
        "static_gratings",
    ]
    assert np.isnan(masked.loc[1, "stimulus_condition_id"]) and np.isnan(masked.loc[2, "duration"])
    assert masked.loc[1, "start_time"] == 1.0 and masked.loc[2, "stop_time"] == 2.5
    assert masked["stimulus_condition_id"].dtype == np.float64
    assert raw["stimulus_condition_id"].dtype == np.int64  # the input is left alone


def test_nothing_to_mask_keeps_integer_condition_ids(make_file):
    h5file = make_file({"static_gratings": _grating_rows(3)})
    presentations, conditions = stimuli.load_stimulus_tables(h5file)
    assert presentations["stimulus_condition_id"].dtype == np.int64
    assert len(conditions) == 2


def test_missing_invalid_times_give_a_typed_empty_table(make_file):
    table = stimuli.invalid_times(make_file({"static_gratings": _grating_rows(2)}))
    assert table.empty and list(table.columns) == ["start_time", "stop_time", "tags"]
    assert table.index.name == "id" and table["start_time"].dtype == np.float64
    assert stimuli.filter_invalid_times_by_tags(table, ["stimulus"]).empty


def test_filter_invalid_times_by_tags(session):
    _, h5file, _, _ = session
    table = stimuli.invalid_times(h5file)
    assert stimuli.filter_invalid_times_by_tags(table, ["probeB", "all_probes"]).index.tolist() == [1]
    assert stimuli.filter_invalid_times_by_tags(table, ["stimulus"]).index.tolist() == [0]
    assert stimuli.filter_invalid_times_by_tags(table, ["probeA"]).empty


def test_stimulus_table_takes_a_single_name_and_unknown_names(session):
    _, _, presentations, _ = session
    one = stimuli.get_stimulus_table(presentations, "flashes")
    assert set(one["stimulus_name"]) == {"flashes"}
    assert stimuli.get_stimulus_table(presentations, ["no_such_stimulus"]).shape == (0, 0)


def test_parameter_values_for_chosen_presentations(session):
    _, _, presentations, _ = session
    flashes = presentations.index[presentations["stimulus_name"] == "flashes"]
    values = stimuli.get_stimulus_parameter_values(presentations, flashes[0])
    assert values["color"].tolist() == [1.0]
    assert values["color"].dtype == object


def test_epochs_of_an_empty_table():
    empty = pd.DataFrame(
        {
            "start_time": [],
            "stop_time": [],
            "stimulus_name": pd.Series([], dtype=object),
            "stimulus_block": [],
        }
    )
    epochs = stimuli.get_stimulus_epochs(empty)
    assert epochs.empty
    assert list(epochs.columns) == ["start_time", "stop_time", "duration", "stimulus_name", "stimulus_block"]


@pytest.mark.parametrize(
    ("read", "match"),
    [
        (stimuli.read_stimulus_presentations, "no stimulus presentation tables"),
        (stimuli.running_speed, "no running data"),
    ],
)
def test_missing_parts_raise_missing_data_error(tmp_path, read, match):
    path = tmp_path / "empty.nwb"
    h5py.File(path, "w").close()
    with h5py.File(path, "r") as h5file, pytest.raises(MissingDataError, match=match) as info:
        read(h5file)
    assert str(path) in str(info.value)
    assert isinstance(info.value, KeyError)


def test_70000_presentations_load_well_under_a_second(make_file):
    n = 10_000
    tables = {
        f"stimulus_{k}": {
            "start_time": k * n + np.arange(n, dtype=float),
            "stop_time": k * n + np.arange(n, dtype=float) + 0.25,
            "stimulus_name": [f"stimulus_{k}"] * n,
            "stimulus_block": np.full(n, float(k)),
            "stimulus_index": np.full(n, k),
            "frame": np.arange(n, dtype=float) % 900,
            "orientation": np.resize([0.0, 45.0, np.nan], n),
            "size": ["[250.0, 250.0]"] * n,
            "phase": np.resize(["0.0", "0.25", "N/A"], n),
            "color": np.resize(["[1.0, 1.0, 1.0]", "-1.0"], n),
            "mask": ["None"] * n,
            "units": ["deg"] * n,
            "opacity": np.ones(n),
        }
        for k in range(7)
    }
    h5file = make_file(tables, invalid=[(100.0, 105.0, ["EcephysSession", "1", "stimulus"])])
    began = time.perf_counter()
    presentations, _ = stimuli.load_stimulus_tables(h5file)
    elapsed = time.perf_counter() - began
    assert len(presentations) == 70_000
    assert (presentations["stimulus_name"] == "invalid_presentation").sum() == 6
    assert elapsed < 1.0, f"{elapsed:.2f} s"


def test_reference_json_and_csv_agree_on_the_fixture_layouts():
    # Guards the comparison itself: both layouts hold the same presentations.
    a = load_json(reference_dir("vcn2020_tiny", "default") / "stimulus_presentations.json")
    b = load_json(reference_dir("sdk2162_tiny", "default") / "stimulus_presentations.json")
    assert sorted(a["columns"]) == sorted(b["columns"]) and a["shape"] == b["shape"]
