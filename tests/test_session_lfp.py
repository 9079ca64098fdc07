"""LFP and CSD through the session: AllenSDK answers, windowed reads, and clear errors."""

from __future__ import annotations

import hashlib
import io
import shutil

import h5py
import numpy as np
import pytest

import ecephys
from ecephys.errors import MissingDataError, NotEcephysSessionError, SessionFileNotFound, UnknownProbeError
from ecephys.nwb.lfp import ProbeLFPFile
from tests.reference import FIXTURE_NAMES, FIXTURES, load_json, reference_dir, session_path

PROBES = (999001018, 999002018)


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@pytest.fixture(scope="module", params=FIXTURE_NAMES)
def fixture_session(request):
    session = ecephys.open_session(session_path(request.param))
    yield request.param, session
    session.close()


@pytest.mark.parametrize("probe_id", PROBES)
@pytest.mark.parametrize("masked", [True, False])
def test_lfp_matches_allensdk(fixture_session, probe_id, masked):
    fixture, session = fixture_session
    expected = load_json(reference_dir(fixture, "default") / "lfp_csd_summary.json")[str(probe_id)]
    expected = expected[f"masked={masked}"]
    lfp = session.get_lfp(probe_id, mask_invalid_intervals=masked)
    assert lfp.name == expected["name"]
    assert list(lfp.dims) == expected["dims"]
    assert list(lfp.shape) == expected["shape"]
    assert str(lfp.dtype) == expected["dtype"]
    assert sha256(lfp.values) == expected["sha256"]
    assert int(np.isnan(lfp.values).sum()) == expected["n_nan"]
    assert sha256(lfp["time"].values) == expected["time_sha256"]
    assert lfp["channel"].values.tolist() == expected["channel_ids"]


@pytest.mark.parametrize("probe_id", PROBES)
def test_lfp_slices_match_allensdk(fixture_session, probe_id):
    fixture, session = fixture_session
    slices = np.load(reference_dir(fixture, "default") / f"lfp_probe_{probe_id}_slices.npz")
    lfp = session.get_lfp(probe_id)
    np.testing.assert_array_equal(lfp.values[:10, :5], slices["head"])
    np.testing.assert_array_equal(lfp["time"].values[:10], slices["head_time"])
    start = int(np.searchsorted(lfp["time"].values, slices["mid_time"][0]))
    np.testing.assert_array_equal(lfp.values[start : start + 10], slices["mid"])
    np.testing.assert_array_equal(lfp["channel"].values, slices["channel"])


@pytest.mark.parametrize("probe_id", PROBES)
def test_csd_matches_allensdk(fixture_session, probe_id):
    fixture, session = fixture_session
    expected = load_json(reference_dir(fixture, "default") / "lfp_csd_summary.json")[str(probe_id)]["csd"]
    csd = session.get_current_source_density(probe_id)
    assert (csd.name, list(csd.dims), list(csd.shape), str(csd.dtype)) == (
        expected["name"],
        expected["dims"],
        expected["shape"],
        expected["dtype"],
    )
    assert sha256(csd.values) == expected["sha256"]
    assert sha256(csd["time"].values) == expected["time"]["sha256"]
    assert csd["vertical_position"].values.tolist() == expected["vertical_position"]
    assert csd["horizontal_position"].values.tolist() == expected["horizontal_position"]
    reference_slice = np.load(reference_dir(fixture, "default") / f"csd_probe_{probe_id}_slice.npz")
    rows = csd.sel(time=reference_slice["time"]).isel(virtual_channel_index=[0, csd.shape[0] // 2])
    np.testing.assert_array_equal(rows.values, reference_slice["data"])


@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
def test_channel_structure_intervals_without_cache_equal_allensdk_cache_answer(fixture):
    session = ecephys.open_session(session_path(fixture))
    expected = load_json(reference_dir(fixture, "cache") / "channel_structure_intervals_probe0.json")
    channels = session.channels.index[session.channels["probe_id"] == session.probes.index[0]]
    labels, intervals = session.channel_structure_intervals(channels)
    assert intervals.tolist() == expected["intervals"]
    assert [None if isinstance(x, float) else x for x in labels] == [
        None if isinstance(x, float) else x for x in expected["labels"]
    ]


@pytest.mark.parametrize(
    "window",
    [
        slice(33.0, 34.0),
        slice(36.0, 37.5),  # crosses probe B's invalid interval
        slice(None, 33.1),
        slice(42.5, None),
        slice(0.0, 10.0),  # before the LFP starts: empty
        slice(100.0, 200.0),  # after it ends: empty
    ],
)
@pytest.mark.parametrize("channels", [None, "some", "reversed"])
def test_windowed_read_equals_selection_of_full_read(fixture_session, window, channels):
    _, session = fixture_session
    for probe_id in PROBES:
        full = session.get_lfp(probe_id)
        ids = full["channel"].values
        chosen = {"some": ids[[1, 4, 5]], "reversed": ids[::-1], None: None}[channels]
        part = session.get_lfp(probe_id, time=window, channels=chosen)
        expected = full.sel(time=window) if chosen is None else full.sel(time=window, channel=chosen)
        np.testing.assert_array_equal(part.values, expected.values)
        np.testing.assert_array_equal(part["time"].values, expected["time"].values)
        np.testing.assert_array_equal(part["channel"].values, expected["channel"].values)


def test_window_edges_are_inclusive_like_sel(fixture_session):
    _, session = fixture_session
    full = session.get_lfp(PROBES[0])
    t = full["time"].values
    part = session.get_lfp(PROBES[0], time=slice(t[100], t[200]))
    assert part.sizes["time"] == 101
    assert part["time"].values[0] == t[100] and part["time"].values[-1] == t[200]


class CountingFile(io.RawIOBase):
    """A read-only file that counts the bytes h5py asks for."""

    def __init__(self, path):
        self._f = open(path, "rb")  # noqa: SIM115 (closed in close())
        self.bytes_read = 0
        self.name = str(path)

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=0):
        return self._f.seek(offset, whence)

    def tell(self):
        return self._f.tell()

    def readinto(self, buffer):
        n = self._f.readinto(buffer)
        self.bytes_read += n
        return n

    def close(self):
        self._f.close()
        super().close()


def test_window_reads_only_the_chunks_that_cover_it():
    path = FIXTURES / "vcn2020_tiny" / "session_999000001" / "probe_999001018_lfp.nwb"
    full_file = CountingFile(path)
    ProbeLFPFile(full_file, 999001018).read()
    window_file = CountingFile(path)
    window = ProbeLFPFile(window_file, 999001018).read(time=slice(37.0, 37.5), channels=[999100005])
    assert window.sizes["time"] > 0
    assert window_file.bytes_read < 0.2 * full_file.bytes_read, (window_file.bytes_read, full_file.bytes_read)


def test_lazy_lfp_equals_eager(fixture_session):
    _, session = fixture_session
    for probe_id in PROBES:
        eager = session.get_lfp(probe_id)
        lazy = session.get_lfp(probe_id, lazy=True)
        assert lazy.chunks is not None
        np.testing.assert_array_equal(lazy.values, eager.values)
        window = session.get_lfp(
            probe_id, lazy=True, time=slice(36.0, 37.5), channels=eager["channel"].values[:3]
        )
        np.testing.assert_array_equal(
            window.values, eager.sel(time=slice(36.0, 37.5), channel=eager["channel"].values[:3]).values
        )


def test_unknown_probe(fixture_session):
    _, session = fixture_session
    with pytest.raises(UnknownProbeError, match="has no probe 123; its probes are"):
        session.get_lfp(123)


def test_probe_without_lfp_data_names_the_probe(tmp_path):
    folder = tmp_path / "session_999000001"
    shutil.copytree(session_path("vcn2020_tiny").parent, folder)
    path = folder / "session_999000001.nwb"
    path.chmod(0o644)
    with h5py.File(path, "r+") as f:
        f["general/extracellular_ephys/probeB"].attrs["has_lfp_data"] = False
    session = ecephys.open_session(path)
    with pytest.raises(MissingDataError, match=r"probe 999002018 \(probeB\).*has no LFP data.*\[999001018\]"):
        session.get_lfp(999002018)
    assert session.get_lfp(999001018).sizes["time"] == 12500


def test_missing_lfp_file_says_how_to_get_it(tmp_path):
    (tmp_path / "session_999000001").mkdir()
    path = tmp_path / "session_999000001" / "session_999000001.nwb"
    shutil.copy(session_path("vcn2020_tiny"), path)
    session = ecephys.open_session(path)
    with pytest.raises(SessionFileNotFound, match="probe_999001018_lfp.nwb does not exist; download it"):
        session.get_lfp(999001018)
    other = FIXTURES / "vcn2020_tiny" / "session_999000001"
    session = ecephys.open_session(path, lfp_paths={999001018: other / "probe_999001018_lfp.nwb"})
    assert session.get_lfp(999001018).sizes["channel"] == 8


def test_lfp_file_of_another_probe_is_refused(tmp_path):
    other = FIXTURES / "vcn2020_tiny" / "session_999000001" / "probe_999002018_lfp.nwb"
    session = ecephys.open_session(session_path("vcn2020_tiny"), lfp_paths={999001018: other})
    with pytest.raises(NotEcephysSessionError, match="not the LFP file of probe 999001018"):
        session.get_lfp(999001018)


def test_channels_without_lfp_are_named(fixture_session):
    _, session = fixture_session
    with pytest.raises(MissingDataError, match=r"channel\(s\) \[999100002\] have no LFP"):
        session.get_lfp(PROBES[0], channels=[999100001, 999100002])
