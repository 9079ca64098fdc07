"""Bad files give a specific EcephysError that names the file and the next step."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

import ecephys
from ecephys.errors import (
    EcephysError,
    EcephysWarning,
    NotEcephysSessionError,
    NotHDF5Error,
    NWBFormatError,
    SessionFileNotFound,
    TruncatedFileError,
)
from tests.reference import FIXTURES, session_path

SESSION = session_path("vcn2020_tiny")
LFP = FIXTURES / "vcn2020_tiny" / "session_999000001" / "probe_999001018_lfp.nwb"


def test_missing_path(tmp_path):
    missing = tmp_path / "session_1" / "session_1.nwb"
    with pytest.raises(SessionFileNotFound, match="no such session NWB file") as info:
        ecephys.open_session(missing)
    assert str(missing) in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(SessionFileNotFound, match="is a folder"):
        ecephys.open_session(tmp_path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"<html><body>503 Service Unavailable</body></html>", "an HTML page"),
        (b"unit_id,spike_time\n1,0.5\n" * 100, "not an HDF5 file"),
        (b"PK\x03\x04" + bytes(2000), "not an HDF5 file"),
    ],
    ids=["html", "csv", "zip"],
)
def test_foreign_file(tmp_path, content, match):
    path = tmp_path / "session_1.nwb"
    path.write_bytes(content)
    with pytest.raises(NotHDF5Error, match=match) as info:
        ecephys.open_session(path)
    assert str(path) in str(info.value)
    assert "download it again" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_empty_file(tmp_path):
    path = tmp_path / "session_1.nwb"
    path.touch()
    with pytest.raises(TruncatedFileError, match="empty"):
        ecephys.open_session(path)


@pytest.mark.parametrize("fraction", [0.0001, 0.01, 0.2, 0.5, 0.9, 0.9999])
def test_truncated_session_file(tmp_path, fraction):
    size = SESSION.stat().st_size
    cut = max(9, int(size * fraction))
    path = tmp_path / "session_999000001.nwb"
    with open(SESSION, "rb") as src, open(path, "wb") as dst:
        dst.write(src.read(cut))
    with pytest.raises(TruncatedFileError, match="truncated") as info:
        ecephys.open_session(path)
    assert str(path) in str(info.value)
    assert f"{cut:,} bytes" in str(info.value)


def test_hdf5_that_is_not_nwb(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(NotEcephysSessionError, match="an HDF5 file but not an ecephys session file"):
        ecephys.open_session(path)


def test_probe_lfp_file_given_as_session(tmp_path):
    with pytest.raises(NotEcephysSessionError, match="an NWB file but not an ecephys session file") as info:
        ecephys.open_session(LFP)
    assert "not a probe LFP file" in str(info.value)


def test_units_index_past_the_data_is_reported(tmp_path):
    path = tmp_path / "session_999000001.nwb"
    shutil.copy(SESSION, path)
    path.chmod(0o644)
    with h5py.File(path, "r+") as f:
        index = f["units/spike_times_index"]
        index[-1] = index[-1] - 1
    session = ecephys.open_session(path, filter_by_validity=False)
    assert len(session.spike_amplitudes) == 18  # its own index is intact
    with (
        pytest.warns(EcephysWarning, match="invalid time intervals"),
        pytest.raises(NWBFormatError, match="spike_times has .* values but its index ends at"),
    ):
        _ = session.spike_times


def test_every_error_is_an_ecephys_error():
    for name in ecephys.errors.__all__:
        cls = getattr(ecephys.errors, name)
        assert issubclass(cls, EcephysError | UserWarning), name
