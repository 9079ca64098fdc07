"""TimeIntervals tables read column by column with h5py."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from ecephys.errors import MissingDataError, NWBFormatError
from ecephys.nwb.intervals import (
    concat_columns,
    interval_table,
    presentation_table_names,
    read_interval_columns,
    read_interval_table,
    read_presentation_columns,
    read_ragged_text,
    read_text_column,
)
from tests.reference import FIXTURE_NAMES, session_path
from tests.synthetic_nwb import TEXT, write_time_intervals


@pytest.fixture(scope="module", params=FIXTURE_NAMES)
def h5file(request):
    with h5py.File(session_path(request.param), "r") as f:
        yield f


@pytest.fixture
def scratch(tmp_path):
    with h5py.File(tmp_path / "scratch.nwb", "w") as f:
        yield f


def test_presentation_tables_are_listed_in_file_order(h5file):
    assert presentation_table_names(h5file) == [
        "drifting_gratings_presentations",
        "flashes_presentations",
        "gabors_presentations",
        "natural_movie_one_presentations",
        "natural_scenes_presentations",
        "spontaneous_presentations",
        "static_gratings_presentations",
    ]


def test_presentation_columns_skip_tags_and_timeseries(h5file):
    tables = read_presentation_columns(h5file)
    assert len(tables) == 7
    flashes = tables[1]
    assert list(flashes)[:3] == ["start_time", "stop_time", "stimulus_name"]
    assert "tags" not in flashes and "timeseries" not in flashes
    assert flashes["start_time"].dtype == np.float64
    assert flashes["color"].dtype == object and flashes["color"][:3].tolist() == ["1.0", "1.0", "-1.0"]
    assert all(type(v) is str for v in flashes["stimulus_name"])
    assert len({len(v) for v in flashes.values()}) == 1


def test_stimulus_index_keeps_its_stored_type(h5file):
    gabors = read_interval_columns(h5file["intervals/gabors_presentations"])
    assert gabors["stimulus_index"].dtype.kind in "fi"  # float in 2020 files, int64 from the 2.16.2 writer


def test_interval_table_as_frame(h5file):
    table = read_interval_table(interval_table(h5file, "processing/optotagging/optogenetic_stimulation"))
    assert table.index.name == "id"
    assert list(table.columns) == [
        "start_time",
        "condition",
        "level",
        "stop_time",
        "stimulus_name",
        "duration",
    ]
    assert table["condition"].dtype == object


def test_ragged_text_rows(h5file):
    tags = read_ragged_text(h5file["intervals/invalid_times"], "tags")
    assert [row.tolist() for row in tags] == [
        ["EcephysSession", "999000001", "stimulus"],
        ["EcephysProbe", "999002018", "probeB"],
    ]
    assert tags[0].dtype == object


def test_text_column_decodes_each_value(scratch):
    scratch.create_dataset("vlen", data=np.array(["b", "a", "b", "é"], dtype=object), dtype=TEXT)
    scratch.create_dataset("fixed", data=np.array([b"x", b"yy"]))
    scratch.create_dataset("empty", shape=(0,), dtype=TEXT)
    assert read_text_column(scratch["vlen"]).tolist() == ["b", "a", "b", "é"]
    assert read_text_column(scratch["fixed"]).tolist() == ["x", "yy"]
    assert read_text_column(scratch["empty"]).dtype == object


def test_concat_follows_pandas_rules():
    parts = [
        {"n": np.array([1, 2], np.int32), "f": np.array([0.5, 1.5]), "t": np.array(["a", "b"], object)},
        {"n": np.array([3], np.int64), "x": np.array([7.0]), "t": np.array([2.0])},
        {"n": np.array([4], np.int64), "b": np.array([True])},
    ]
    out = concat_columns(parts)
    assert list(out) == ["n", "f", "t", "x", "b"]
    assert out["n"].dtype == np.int64 and out["n"].tolist() == [1, 2, 3, 4]
    assert out["f"].dtype == np.float64 and np.isnan(out["f"][2:]).all()
    assert out["t"].dtype == object and out["t"][:3].tolist() == ["a", "b", 2.0] and np.isnan(out["t"][3])
    assert out["b"].dtype == object and out["b"][3] is True and np.isnan(out["b"][0])
    expected = pd.concat([pd.DataFrame(p) for p in parts], ignore_index=True)
    assert [str(t) for t in expected.dtypes] == [str(out[c].dtype) for c in expected.columns]


def test_missing_table_is_missing_data(scratch):
    with pytest.raises(MissingDataError, match="no table at /intervals/invalid_times"):
        interval_table(scratch, "intervals/invalid_times")


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda g: g.__delitem__("id"), "is not a TimeIntervals table"),
        (lambda g: (g.__delitem__("stop_time"), g.create_dataset("stop_time", data=[1.0])), "has 1 rows"),
    ],
)
def test_malformed_tables_are_format_errors(scratch, damage, match):
    group = write_time_intervals(scratch, "t", {"start_time": [0.0, 1.0], "stop_time": [1.0, 2.0]})
    damage(group)
    with pytest.raises(NWBFormatError, match=match):
        read_interval_columns(interval_table(scratch, "t"))


def test_ragged_index_past_the_data_is_a_format_error(scratch):
    group = write_time_intervals(scratch, "t", {"start_time": [0.0]}, tags=[["a", "b"]])
    del group["tags_index"]
    group.create_dataset("tags_index", data=np.array([3], np.uint8))
    with pytest.raises(NWBFormatError, match="index ends at 3"):
        read_ragged_text(group, "tags")
