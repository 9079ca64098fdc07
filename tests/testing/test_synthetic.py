"""ecephys.testing.make_session: the files mirror the AllenSDK-written fixtures, are
deterministic for a seed, and hold the invariants a reader relies on."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pytest

import ecephys.testing
from ecephys.testing import SessionFiles, make_session
from ecephys.testing import _allen_layout as A
from ecephys.testing import _experiment as X
from ecephys.testing import _nwb_writer as W

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
FIXTURES = SHARED / "fixtures"
SID = 999000001
DURATION = 200.0
REFERENCE_CHANNELS = (36, 75, 112, 151, 188, 191, 227, 264, 303, 340, 379)
LAYOUTS = ("vcn2020", "sdk2162")
FIXTURE_DIR = {"vcn2020": "vcn2020_tiny", "sdk2162": "sdk2162_tiny"}

# Intended differences from the AllenSDK-written fixtures (everything else must match):
# the cached schema (/specifications) and the root attribute pointing at it are not written.
NOT_WRITTEN_PATHS = ("/specifications",)
NOT_WRITTEN_ROOT_ATTRS = (".specloc",)
# Attribute values compared verbatim (besides names and value types of all attributes).
COMPARED_ATTR_VALUES = ("neurodata_type", "namespace", "colnames", "description", "unit", "interval")

needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"AllenSDK fixtures not found in {FIXTURES}"
)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SessionFiles]:
    """One tiny session per layout, with the defaults that mirror the fixtures' parameters."""
    return {layout: make_session(tmp_path_factory.mktemp(layout), layout=layout) for layout in LAYOUTS}


def _value_kind(value: object) -> str:
    """What kind of value an attribute holds: str, ref, or numpy kind and size."""
    if isinstance(value, str):
        return "str"
    if isinstance(value, h5py.Reference):
        return "ref"
    if isinstance(value, np.ndarray) and value.dtype == object:
        return "str[]"
    return f"{np.asarray(value).dtype.kind}{np.asarray(value).dtype.itemsize}"


def _dtype_kind(dtype: np.dtype) -> object:
    """A dataset's element type: str, ref, compound fields, or numpy kind and size."""
    if dtype.names:
        return tuple((name, _dtype_kind(dtype[name])) for name in dtype.names)
    if h5py.check_string_dtype(dtype):
        return "str"
    if h5py.check_ref_dtype(dtype):
        return "ref"
    return f"{dtype.kind}{dtype.itemsize}"


def _attrs(obj: h5py.HLObject) -> tuple:
    """Attribute names with value kinds, and the values of the descriptive attributes."""
    out = []
    for name in sorted(obj.attrs):
        if name == "object_id":
            assert len(obj.attrs[name]) == 36, f"{obj.name}: object_id is not a uuid4 string"
            out.append((name, "uuid"))
            continue
        value = obj.attrs[name]
        shown = value.tolist() if isinstance(value, np.ndarray) else value
        out.append((name, _value_kind(value), repr(shown) if name in COMPARED_ATTR_VALUES else None))
    return tuple(out)


def describe(path: Path) -> dict[str, tuple]:
    """Every object of an NWB file (but /specifications) → its kind, type, shape structure,
    storage and attributes; soft links → their target."""
    out: dict[str, tuple] = {}
    with h5py.File(path, "r") as nwb:
        out["/"] = ("group", _attrs(nwb))

        def visit(group: h5py.Group) -> None:
            for key in group:
                name = f"{group.name.rstrip('/')}/{key}"
                if name.startswith(NOT_WRITTEN_PATHS):
                    continue
                link = group.get(key, getlink=True)
                if isinstance(link, h5py.SoftLink):
                    out[name] = ("softlink", link.path)
                    continue
                obj = group[key]
                if isinstance(obj, h5py.Group):
                    out[name] = ("group", _attrs(obj))
                    visit(obj)
                else:
                    storage = (obj.chunks, obj.compression, obj.compression_opts)
                    out[name] = (
                        "dataset",
                        _dtype_kind(obj.dtype),
                        obj.ndim,
                        obj.shape[1:],
                        storage,
                        _attrs(obj),
                    )

        visit(nwb)
    return out


def _assert_same_structure(fixture: Path, ours: Path) -> None:
    """Compare ``describe`` of both files, allowing only the intended differences."""
    expected, actual = describe(fixture), describe(ours)
    root = expected.pop("/")
    expected["/"] = ("group", tuple(a for a in root[1] if a[0] not in NOT_WRITTEN_ROOT_ATTRS))
    assert sorted(set(expected) - set(actual)) == [], "objects missing from the synthetic file"
    assert sorted(set(actual) - set(expected)) == [], "objects the fixture does not have"
    different = {k: (expected[k], actual[k]) for k in expected if expected[k] != actual[k]}
    assert different == {}


@needs_fixtures
@pytest.mark.parametrize("layout", LAYOUTS)
def test_session_file_structure_matches_the_fixture(sessions: dict[str, SessionFiles], layout: str) -> None:
    fixture = FIXTURES / FIXTURE_DIR[layout] / f"session_{SID}" / f"session_{SID}.nwb"
    with h5py.File(fixture, "r") as f, h5py.File(sessions[layout].session_path, "r") as g:
        # the same stimuli, hence the same per-stimulus tables
        assert sorted(f["intervals"]) == sorted(g["intervals"])
    _assert_same_structure(fixture, sessions[layout].session_path)


@needs_fixtures
@pytest.mark.parametrize("layout", LAYOUTS)
def test_lfp_file_structure_matches_the_fixture(sessions: dict[str, SessionFiles], layout: str) -> None:
    ours = sessions[layout]
    assert sorted(ours.lfp_paths) == ours.probe_ids == [999001018, 999002018]
    for probe_id, path in ours.lfp_paths.items():
        fixture = FIXTURES / FIXTURE_DIR[layout] / f"session_{SID}" / f"probe_{probe_id}_lfp.nwb"
        _assert_same_structure(fixture, path)


@needs_fixtures
@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_specific_values_match_the_fixture(sessions: dict[str, SessionFiles], layout: str) -> None:
    folder = FIXTURES / FIXTURE_DIR[layout] / f"session_{SID}"
    ours = sessions[layout]
    paths = (
        "general/institution",
        "general/session_id",
        "general/stimulus",
        "identifier",
        "session_description",
    )
    with h5py.File(folder / f"session_{SID}.nwb", "r") as f, h5py.File(ours.session_path, "r") as g:
        for path in paths:
            assert g[path][()] == f[path][()], path
        out_of_brain = f["general/extracellular_ephys/electrodes/location"][-1]
        assert g["general/extracellular_ephys/electrodes/location"][-1] == out_of_brain
        spontaneous = "intervals/spontaneous_presentations"
        assert ("stimulus_index" in g[spontaneous]) == ("stimulus_index" in f[spontaneous])
        if "stimulus_index" in f[spontaneous]:
            assert set(g[spontaneous]["stimulus_index"][:]) == set(f[spontaneous]["stimulus_index"][:])
    probe_id = ours.probe_ids[0]
    with (
        h5py.File(folder / f"probe_{probe_id}_lfp.nwb", "r") as f,
        h5py.File(ours.lfp_paths[probe_id], "r") as g,
    ):
        for path in ("general/institution", "general/session_id", "identifier", "session_description"):
            assert g[path][()] == f[path][()], path
        ratio = lambda h: h["general/extracellular_ephys/probeA"].attrs["lfp_sampling_rate"] / 1250  # noqa: E731
        assert ratio(g) == pytest.approx(ratio(f), rel=1e-4)  # halved in the LFP file in vcn2020 only
    expected_halving = {"vcn2020": 0.5, "sdk2162": 1.0}[layout]
    assert ratio(h5py.File(ours.lfp_paths[probe_id], "r")) == pytest.approx(expected_halving, rel=1e-4)


def _datasets(path: Path) -> dict[str, object]:
    """Every dataset's values, references as target names; file_create_date left out."""
    out: dict[str, object] = {}
    with h5py.File(path, "r") as nwb:

        def visit(name: str, obj: h5py.HLObject) -> None:
            if not isinstance(obj, h5py.Dataset) or name == "file_create_date":
                return
            values = obj[()]
            if obj.dtype.names:
                values = [(int(a), int(b), nwb[r].name) for a, b, r in values]
            elif h5py.check_ref_dtype(obj.dtype):
                values = [nwb[r].name for r in values]
            out[name] = values

        nwb.visititems(visit)
    return out


def _same_values(a: object, b: object) -> bool:
    """Equal arrays (NaN equal to NaN, same dtype) or equal Python values."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        return a.tobytes() == b.tobytes() if a.dtype != object else a.tolist() == b.tolist()
    return a == b


def _small(path: Path, **kwargs) -> SessionFiles:
    """A small, quick session."""
    args = dict(n_probes=2, units_per_probe=4, duration=60.0, channels_per_probe=48, lfp_duration=3.0)
    return make_session(path, **{**args, **kwargs})


def test_the_same_seed_gives_identical_datasets(tmp_path: Path) -> None:
    first, second = _small(tmp_path / "a", seed=3), _small(tmp_path / "b", seed=3)
    for path_a, path_b in [
        (first.session_path, second.session_path),
        *zip(first.lfp_paths.values(), second.lfp_paths.values(), strict=True),
    ]:  # noqa: E501
        a, b = _datasets(path_a), _datasets(path_b)
        assert sorted(a) == sorted(b)
        assert [name for name in a if not _same_values(a[name], b[name])] == []


def test_another_seed_gives_other_data(tmp_path: Path) -> None:
    first, second = _small(tmp_path / "a", seed=3), _small(tmp_path / "b", seed=4)
    a, b = _datasets(first.session_path), _datasets(second.session_path)
    for name in ("units/spike_times", "units/waveform_mean", "processing/running/running_speed/data"):
        assert not _same_values(a[name], b[name]), name
    pid = first.probe_ids[0]
    lfp = f"acquisition/probe_{pid}_lfp/probe_{pid}_lfp_data/data"
    la, lb = _datasets(first.lfp_paths[first.probe_ids[0]]), _datasets(second.lfp_paths[second.probe_ids[0]])
    assert not _same_values(la[lfp], lb[lfp])


def _ragged(group: h5py.Group, name: str) -> list[np.ndarray]:
    """A ragged column split per row, after checking its index."""
    data, index = group[name], group[f"{name}_index"][:]
    assert index.dtype == W.index_dtype(int(index[-1])), f"{name}_index is not the smallest unsigned type"
    assert np.all(np.diff(index.astype(np.int64)) >= 0) and index[-1] == data.shape[0]
    assert (
        group[f"{name}_index"].attrs["target"] is not None
        and group.file[group[f"{name}_index"].attrs["target"]] == data
    )
    return np.split(data[()], index[:-1].astype(np.int64))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_units_hold_what_a_reader_relies_on(sessions: dict[str, SessionFiles], layout: str) -> None:
    with h5py.File(sessions[layout].session_path, "r") as nwb:
        units = nwb["units"]
        trains = _ragged(units, "spike_times")
        assert len(trains) == units["id"].shape[0] == 2 * 9
        for times in trains:
            assert times.size and np.all(np.diff(times) >= 0) and times[0] >= 0 and times[-1] < DURATION
        amplitudes = np.concatenate(_ragged(units, "spike_amplitudes"))
        assert 2e-5 < np.median(amplitudes) < 5e-4  # volts
        counts = np.array([t.size for t in trains])
        np.testing.assert_allclose(units["firing_rate"][:], counts / DURATION)
        waves = _ragged(units, "waveform_mean")
        assert units["waveform_mean"].shape == (2 * 9 * 96, 82)
        assert all(w.shape == (96, 82) for w in waves)  # one block of all probe channels per unit


@pytest.mark.parametrize("layout", LAYOUTS)
def test_unit_roles_follow_their_positions(sessions: dict[str, SessionFiles], layout: str) -> None:
    with h5py.File(sessions[layout].session_path, "r") as nwb:
        units, electrodes = nwb["units"], nwb["general/extracellular_ephys/electrodes"]
        row = {cid: i for i, cid in enumerate(electrodes["id"][:])}
        peak = np.array([row[c] for c in units["peak_channel_id"][:]])
        location = electrodes["location"].asstr()[:][peak]
        valid = electrodes["valid_data"][:][peak]
        local = units["local_index"][:]
        quality = units["quality"].asstr()[:]
        out_of_brain = {"vcn2020": "", "sdk2162": "None"}[layout]
        assert np.all((location == out_of_brain) == (local == 0))
        assert np.all(~valid == (local == 1))
        assert np.all((quality == "noise") == (local == 8))
        assert np.all((units["presence_ratio"][:] < 0.95) == (local == 2))
        assert np.all((units["isi_violations"][:] > 0.5) == (local == 4))
        assert np.all((units["amplitude_cutoff"][:] > 0.1) == (local == 6))
        assert np.all(units["id"][:] < 2**31) and len(set(units["id"][:])) == units["id"].shape[0]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_channels_hold_what_a_reader_relies_on(sessions: dict[str, SessionFiles], layout: str) -> None:
    with h5py.File(sessions[layout].session_path, "r") as nwb:
        e = nwb["general/extracellular_ephys/electrodes"]
        local = e[A.LAYOUTS[layout].channel_number_column][:]
        assert np.array_equal(~e["valid_data"][:], np.isin(local, REFERENCE_CHANNELS))
        assert not e["valid_data"][:][local == 36].any()
        for ref, name in zip(e["group"][:], e["group_name"].asstr()[:], strict=True):
            assert nwb[ref].name == f"/general/extracellular_ephys/{name}"
        assert (
            nwb["general/extracellular_ephys/probeA/device"].name
            == "/general/extracellular_ephys/probeA/device"
        )
        assert nwb["general/extracellular_ephys/probeA/device"].attrs["probe_id"] == 999001018
        locations = set(e["location"].asstr()[:])
        assert any("-" in loc for loc in locations)  # a sub-region such as DG-mo
        inside = e["location"].asstr()[:] != A.LAYOUTS[layout].out_of_brain_location
        assert np.isnan(e["x"][:][~inside]).all() and not np.isnan(e["x"][:][inside]).any()
        assert np.array_equal(e["probe_vertical_position"][:96], 20 + 20 * (np.arange(96) // 2))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_stimulus_tables_hold_what_a_reader_relies_on(sessions: dict[str, SessionFiles], layout: str) -> None:
    with h5py.File(sessions[layout].session_path, "r") as nwb:
        stamps = nwb["processing/stimulus/timestamps/timestamps"][:]
        assert np.all(np.diff(stamps) >= 0)
        all_rows = []
        for name, table in nwb["intervals"].items():
            if name == "invalid_times":
                continue
            start, stop = table["start_time"][:], table["stop_time"][:]
            assert np.all(start < stop) and np.all(stop[:-1] <= start[1:]), f"{name} overlaps itself"
            refs = table["timeseries"][:]
            assert all(nwb[r].name == "/processing/stimulus/timestamps" for r in refs["timeseries"])
            np.testing.assert_array_equal(stamps[refs["idx_start"]], start)
            assert set(table["tags"].asstr()[:]) == {"stimulus_time_interval"}
            all_rows.extend(refs["idx_start"])
        assert sorted(all_rows) == list(range(stamps.size))
        sg = nwb["intervals/static_gratings_presentations"]
        assert sg["phase"].asstr()[:][np.isnan(sg["orientation"][:])].tolist() == ["N/A"] * int(
            np.isnan(sg["orientation"][:]).sum()
        )
        assert {"1.0", "-1.0"} >= set(nwb["intervals/flashes_presentations/color"].asstr()[:])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_invalid_times_and_lfp_window_line_up(sessions: dict[str, SessionFiles], layout: str) -> None:
    files = sessions[layout]
    with h5py.File(files.session_path, "r") as nwb:
        invalid = nwb["intervals/invalid_times"]
        tags = [t.tolist() for t in _ragged(invalid, "tags")]
        assert [t.decode() for t in tags[0]] == ["EcephysSession", str(SID), "stimulus"]
        assert [t.decode() for t in tags[1]] == ["EcephysProbe", str(files.probe_ids[-1]), "probeB"]
        start, stop = invalid["start_time"][:], invalid["stop_time"][:]
        sg = nwb["intervals/static_gratings_presentations"]
        overlap = (sg["start_time"][:] < stop[0]) & (sg["stop_time"][:] > start[0])
        assert overlap.sum() == 3
    with h5py.File(files.lfp_paths[files.probe_ids[-1]], "r") as lfp:
        t = lfp[f"acquisition/probe_{files.probe_ids[-1]}_lfp_data/timestamps"][:]
        assert t[0] <= start[1] < stop[1] <= t[-1]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_lfp_files_hold_what_a_reader_relies_on(sessions: dict[str, SessionFiles], layout: str) -> None:
    files = sessions[layout]
    with h5py.File(files.session_path, "r") as nwb:
        session_ids = nwb["general/extracellular_ephys/electrodes/id"][:]
    for probe_id, path in files.lfp_paths.items():
        with h5py.File(path, "r") as lfp:
            series = lfp[f"acquisition/probe_{probe_id}_lfp/probe_{probe_id}_lfp_data"]
            assert lfp[f"acquisition/probe_{probe_id}_lfp_data"] == series
            data, t = series["data"][:], series["timestamps"][:]
            assert data.dtype == np.float32 and data.shape == (12500, 8)
            steps = data.astype(np.float64) / 0.195e-6
            np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
            assert np.all(np.diff(t) > 0) and t[0] >= 0 and t[-1] <= DURATION
            assert np.diff(t).mean() == pytest.approx(1 / 1250, rel=1e-4)
            e = lfp["general/extracellular_ephys/electrodes"]
            assert np.isin(e["id"][:], session_ids).all() and e["valid_data"][:].all()
            assert np.all(e[A.LAYOUTS[layout].channel_number_column][:] % 4 == 0)
            assert lfp[series["electrodes"].attrs["table"]] == e
            assert np.array_equal(series["electrodes"][:], np.arange(8))
            csd = lfp["processing/current_source_density/ecephys_csd"]
            assert csd["current_source_density/data"].shape == (875, 16)
            y = csd["virtual_electrode_y_positions"][:]
            assert y[0] == e["probe_vertical_position"][0] and y[-1] == e["probe_vertical_position"][-1]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_behaviour_series_are_linked_and_shaped(sessions: dict[str, SessionFiles], layout: str) -> None:
    with h5py.File(sessions[layout].session_path, "r") as nwb:
        running = nwb["processing/running"]
        assert running["running_wheel_rotation/timestamps"] == running["running_speed/timestamps"]
        np.testing.assert_array_equal(
            running["running_speed_end_times/timestamps"][:-1], running["running_speed/timestamps"][1:]
        )
        raw = nwb["acquisition/raw_running_wheel_rotation"]
        assert nwb["acquisition/running_wheel_signal_voltage/timestamps"] == raw["timestamps"]
        assert raw["data"].shape[0] == running["running_speed/data"].shape[0] + 1
        for module in ("raw_gaze_mapping", "filtered_gaze_mapping"):
            assert nwb[f"processing/{module}/screen_coordinates/data"].shape[1] == 2
        assert np.isnan(nwb["processing/filtered_gaze_mapping/pupil_area/data"][:]).any()
        assert not np.isnan(nwb["processing/raw_gaze_mapping/pupil_area/data"][:]).any()
        opto = nwb["processing/optotagging/optogenetic_stimulation"]
        assert set(opto["stimulus_name"].asstr()[:]) <= {"pulse", "raised_cosine", "fast_pulses"}


def test_default_options_spelled_out_give_identical_files(tmp_path: Path) -> None:
    defaults = dict(
        session_type="brain_observatory_1.1",
        stimulus_schedule="compact",
        all_nan_stimulus=False,
        eye_tracking=True,
        optotagging=True,
        invalid_times=True,
    )
    a, b = (
        _datasets(_small(tmp_path / "a", lfp=False).session_path),
        _datasets(_small(tmp_path / "b", lfp=False, **defaults).session_path),
    )
    assert sorted(a) == sorted(b)
    assert [name for name in a if not _same_values(a[name], b[name])] == []


@pytest.mark.parametrize(
    ("option", "absent"),
    [
        (
            "eye_tracking",
            ("eye_tracking", "raw_gaze_mapping", "filtered_gaze_mapping", "eye_tracking_rig_metadata"),
        ),
        ("optotagging", ("optotagging",)),
        ("invalid_times", ()),
    ],
)
def test_optional_parts_can_be_left_out(tmp_path: Path, option: str, absent: tuple[str, ...]) -> None:
    full = _datasets(_small(tmp_path / "full", lfp=False).session_path)
    without = _datasets(_small(tmp_path / "without", lfp=False, **{option: False}).session_path)
    prefixes = tuple(f"processing/{m}/" for m in absent) or ("intervals/invalid_times/",)
    assert sorted(set(full) - set(without)) == sorted(n for n in full if n.startswith(prefixes))
    assert set(without) <= set(full)
    changed = [n for n in without if not _same_values(full[n], without[n])]
    # without the laser, the optotagged units' spikes change; nothing else does
    assert all(n.startswith("units/") for n in changed) and (option == "optotagging") == bool(changed)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_functional_connectivity_tables_mirror_the_real_files(tmp_path: Path, layout: str) -> None:
    files = _small(tmp_path, layout=layout, lfp=False, session_type="functional_connectivity")
    with h5py.File(files.session_path, "r") as nwb:
        assert nwb["general/stimulus"][()] == b"functional_connectivity"
        tables = {n.removesuffix("_presentations") for n in nwb["intervals"] if n.endswith("_presentations")}
        assert tables == {
            "spontaneous",
            "gabors",
            "flashes",
            "drifting_gratings_contrast",
            "natural_movie_one_more_repeats",
            "natural_movie_one_shuffled",
            "dot_motion",
            "drifting_gratings_75_repeats",
        }
        dots = nwb["intervals/dot_motion_presentations"]
        colnames = list(dots.attrs["colnames"])
        assert {"Dir", "Speed", "dotLife", "fieldSize", "nDots", "noiseDots"} <= set(colnames)
        assert not {"mask", "size", "orientation"} & set(colnames)
        assert dots["Dir"].dtype == np.float64 and h5py.check_string_dtype(dots["fieldSize"].dtype)
        assert dots["Speed"].attrs["description"] == "Speed of moving dot field"
        # spatial_frequency: text in drifting_gratings_contrast, a number in the 75-repeats table
        contrast = nwb["intervals/drifting_gratings_contrast_presentations/spatial_frequency"]
        repeats = nwb["intervals/drifting_gratings_75_repeats_presentations/spatial_frequency"]
        assert h5py.check_string_dtype(contrast.dtype) and repeats.dtype == np.float64
        movie = nwb["intervals/natural_movie_one_more_repeats_presentations"]
        assert "mask" not in movie and movie["frame"][:5].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
        index = nwb["intervals/dot_motion_presentations/stimulus_index"]
        assert index.dtype == A.LAYOUTS[layout].stimulus_index_dtype
        invalid = nwb["intervals/invalid_times"]
        gabors = nwb["intervals/gabors_presentations"]
        start, stop = invalid["start_time"][0], invalid["stop_time"][0]
        assert ((gabors["start_time"][:] < stop) & (gabors["stop_time"][:] > start)).sum() == 3


def test_all_nan_stimulus_table_holds_only_nan(tmp_path: Path) -> None:
    files = _small(tmp_path, lfp=False, all_nan_stimulus=True)
    with h5py.File(files.session_path, "r") as nwb:
        table = nwb[f"intervals/{X.ALL_NAN_STIMULUS}_presentations"]
        params = [c for c in table.attrs["colnames"] if c in X.PARAM_ORDER]
        assert params == ["contrast", "frame", "orientation", "x_position", "opacity"]
        assert all(np.isnan(table[c][:]).all() for c in params)
        assert table["start_time"].shape[0] > 0


@pytest.mark.parametrize(
    ("session_type", "schedule", "low", "high"),
    [
        ("brain_observatory_1.1", "compact", 20_000, 25_000),
        ("brain_observatory_1.1", "full", 65_000, 75_000),
        ("functional_connectivity", "compact", 18_000, 25_000),
        ("functional_connectivity", "full", 72_000, 82_000),
    ],
)
def test_full_schedules_give_real_presentation_counts(
    session_type: str, schedule: str, low: int, high: int
) -> None:
    duration = 10_000.0
    sched, end = X.schedule(np.random.default_rng(0), duration, X.block_plan(session_type, schedule, False))
    assert low <= sched.start.size <= high
    assert end < 0.9 * duration  # room for optotagging before the end
    assert np.all(sched.stop > sched.start)
    for name in set(sched.name.tolist()):
        rows = sched.name == name
        assert np.all(sched.stop[rows][:-1] <= sched.start[rows][1:]), f"{name} overlaps itself"


def test_session_ids_derive_from_the_session_id(tmp_path: Path) -> None:
    files = _small(tmp_path, session_id=715093703, n_probes=3)
    assert files.probe_ids == [715094018, 715095018, 715096018]
    assert files.session_path == tmp_path / "session_715093703" / "session_715093703.nwb"
    with h5py.File(files.session_path, "r") as nwb:
        assert nwb["identifier"][()] == b"715093703"
        assert (
            nwb["units/id"][0] == 715593001
            and nwb["general/extracellular_ephys/electrodes/id"][0] == 715193001
        )


def test_without_lfp_no_lfp_files_are_written(tmp_path: Path) -> None:
    files = _small(tmp_path, lfp=False)
    assert files.lfp_paths == {}
    assert sorted(p.name for p in files.session_path.parent.iterdir()) == [files.session_path.name]


def test_progress_bars_can_be_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _small(tmp_path, n_probes=1, progress=True)
    assert "units" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layout": "nwb2"}, "layout='nwb2': expected one of"),
        ({"n_probes": 0}, "n_probes=0"),
        ({"channels_per_probe": 385}, "channels_per_probe=385"),
        ({"session_id": 2**31}, "session_id="),
        ({"duration": 5.0}, "duration=5.0"),
        ({"lfp_duration": 100.0}, "lfp_duration=100.0: expected at most duration"),
        ({"lfp_channels": 20}, "lfp_channels=20: a 48-channel probe has only 11"),
        ({"seed": -1}, "seed=-1"),
        ({"session_type": "brain_observatory_2"}, "session_type='brain_observatory_2': expected one of"),
        ({"stimulus_schedule": "long"}, "stimulus_schedule='long': expected one of"),
    ],
)
def test_bad_arguments_are_named(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _small(tmp_path, **kwargs)


def test_direct_chunk_writes_round_trip(tmp_path: Path) -> None:
    data = np.random.default_rng(0).normal(size=(1000, 7)).astype(np.float32)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        for name, pool in (("threads", ThreadPoolExecutor(2)), ("inline", None)):
            dset = f.create_dataset(
                name, shape=data.shape, dtype=np.float32, chunks=(128, 7), compression="gzip"
            )
            writer = W.StreamWriter(dset, direct=True, pool=pool)
            for a in range(0, 1000, 256):
                writer.write(a, data[a : a + 256])
            writer.close()
            np.testing.assert_array_equal(dset[()], data)
        with pytest.raises(ValueError, match="chunk boundary"):
            W.StreamWriter(f["inline"], direct=True).write(5, data[:10])


def test_large_lfp_files_use_whole_channel_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(A, "DIRECT_WRITE_MIN_BYTES", 0)
    monkeypatch.setattr(A, "LFP_CHUNK_BYTES", 4 * 8 * 300)
    files = _small(tmp_path, n_probes=1, lfp_channels=8)
    probe_id = files.probe_ids[0]
    with h5py.File(files.lfp_paths[probe_id], "r") as lfp:
        series = lfp[f"acquisition/probe_{probe_id}_lfp_data"]
        data, t = series["data"], series["timestamps"]
        assert data.chunks == (300, 8) and data.compression == "gzip" and data.compression_opts == 9
        assert t.chunks[0] % 300 == 0 or t.chunks[0] == t.shape[0]
        values = data[()]
        steps = values.astype(np.float64) / 0.195e-6
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
        assert values.std() > 1e-6 and np.all(np.diff(t[()]) > 0)


@pytest.mark.parametrize(
    ("max_offset", "dtype"),
    [(0, "uint8"), (255, "uint8"), (256, "uint16"), (65535, "uint16"), (65536, "uint32"), (2**32, "uint64")],
)
def test_index_dtype_is_the_smallest_that_fits(max_offset: int, dtype: str) -> None:
    assert W.index_dtype(max_offset) == np.dtype(dtype)


def test_public_names_are_sorted() -> None:
    assert ecephys.testing.__all__ == sorted(ecephys.testing.__all__)
    assert callable(ecephys.testing.make_session)
