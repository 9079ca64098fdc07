"""Completeness checks: file length, and the HDF5 superblock's end-of-file address."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecephys.cache.verify import (
    HDF5_SIGNATURE,
    check_file,
    is_complete,
    is_hdf5_name,
    read_superblock,
    verify_file,
)
from ecephys.errors import IntegrityError
from tests.transport import FIXTURES


def write_hdf5(path, *, libver="earliest", userblock=0):
    """A small HDF5 file written by h5py (superblock version from ``libver``)."""
    with h5py.File(path, "w", libver=libver, userblock_size=userblock) as f:
        f["x"] = np.arange(2000)
    return path


def write_superblock_v1(path, *, eof, width=8):
    """Bytes shaped like a version-1 superblock (h5py cannot write one) padded to ``eof``.

    Version 1 is version 0 plus the indexed-storage K and 2 reserved bytes before the addresses.
    """
    head = HDF5_SIGNATURE + bytes([1, 0, 0, 0, 0, width, width, 0]) + (4).to_bytes(2, "little") * 2
    head += b"\0\0\0\0" + (32).to_bytes(2, "little") + b"\0\0"
    addresses = [0, 2**64 - 1, eof, 2**64 - 1]
    head += b"".join(
        a.to_bytes(width, "little", signed=False) if a < 2 ** (8 * width) else b"\xff" * width
        for a in addresses
    )
    path.write_bytes(head + b"\0" * (eof - len(head)))
    return path


@pytest.mark.parametrize(
    ("options", "version"),
    [
        ({"libver": "earliest"}, 0),
        ({"libver": "earliest", "userblock": 512}, 0),
        ({"libver": ("v108", "v108")}, 2),
        ({"libver": "latest"}, 3),
        ({"libver": "latest", "userblock": 1024}, 3),
    ],
    ids=["v0", "v0-userblock", "v2", "v3", "v3-userblock"],
)
def test_superblock_versions(tmp_path, options, version):
    path = write_hdf5(tmp_path / "f.h5", **options)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        block = read_superblock(fh, size)
    assert block is not None
    assert block.version == version
    assert block.offset == options.get("userblock", 0)
    assert block.eof_address == size
    assert is_complete(path)


@pytest.mark.parametrize("width", [4, 8])
def test_superblock_version_1(tmp_path, width):
    path = write_superblock_v1(tmp_path / "v1.h5", eof=5000, width=width)
    with open(path, "rb") as fh:
        block = read_superblock(fh, 5000)
    assert (block.version, block.size_of_offsets, block.eof_address) == (1, width, 5000)
    assert is_complete(path)
    path.write_bytes(path.read_bytes()[:4000])
    assert not is_complete(path)


def test_unknown_superblock_version(tmp_path):
    path = tmp_path / "v9.h5"
    path.write_bytes(HDF5_SIGNATURE + bytes([9]) + b"\0" * 100)
    verdict = check_file(path)
    assert not verdict.ok and "version 9" in verdict.reason


@pytest.mark.parametrize(
    "name", ["session_999000001.nwb", "probe_999001018_lfp.nwb", "probe_999002018_lfp.nwb"]
)
@pytest.mark.parametrize("fixture", ["vcn2020_tiny", "sdk2162_tiny"])
def test_allensdk_written_files_are_complete(fixture, name):
    path = FIXTURES / fixture / "session_999000001" / name
    if not path.exists():
        pytest.skip(f"{path} is not available")
    verdict = check_file(path, path.stat().st_size)
    assert verdict.ok, verdict.reason


@pytest.fixture
def nwb_bytes(payload):
    return payload.read_bytes()


@pytest.mark.parametrize("keep", [0, 5, 8, 20, 60, 4096, 1_000_000, -1])
def test_truncated_nwb_is_detected(tmp_path, nwb_bytes, keep):
    path = tmp_path / "session.nwb"
    path.write_bytes(nwb_bytes[:keep])
    verdict = check_file(path)
    assert not verdict.ok
    assert verdict.size == len(nwb_bytes[:keep])


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(fraction=st.floats(min_value=0.0, max_value=0.9999))
def test_any_prefix_of_an_nwb_file_is_incomplete(tmp_path, nwb_bytes, fraction):
    path = tmp_path / "cut.nwb"
    path.write_bytes(nwb_bytes[: int(len(nwb_bytes) * fraction)])
    assert not is_complete(path)


def test_truncation_reason_gives_the_figures(tmp_path, nwb_bytes):
    path = tmp_path / "s.nwb"
    path.write_bytes(nwb_bytes[:1_000_000])
    reason = check_file(path).reason
    assert f"holds 1,000,000 of {len(nwb_bytes):,} bytes" in reason
    assert "truncated" in reason and "HDF5 end-of-file" in reason


def test_trailing_bytes_are_reported(tmp_path, nwb_bytes):
    path = tmp_path / "s.nwb"
    path.write_bytes(nwb_bytes + b"\0" * 10)
    assert "trailing bytes" in check_file(path).reason


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"<!DOCTYPE html><html><body>503 Service Unavailable</body></html>", "HTML or text page"),
        (b"PK\x03\x04 a zip file, not HDF5 at all" * 20, "not HDF5"),
    ],
)
def test_a_page_saved_as_nwb_is_not_hdf5(tmp_path, content, match):
    path = tmp_path / "session.nwb"
    path.write_bytes(content)
    verdict = check_file(path)
    assert not verdict.ok and "no HDF5 signature" in verdict.reason and match in verdict.reason


def test_expected_size_is_checked_for_any_file(tmp_path):
    path = tmp_path / "units.csv"
    path.write_bytes(b"id\n1\n")
    assert is_complete(path)  # nothing to contradict it
    assert is_complete(path, 5)
    assert not is_complete(path, 6)
    assert not is_complete(tmp_path / "missing.csv")


def test_hdf5_can_be_forced_or_disabled(tmp_path, nwb_bytes):
    path = tmp_path / "download.bin"
    path.write_bytes(nwb_bytes[:100_000])
    assert is_complete(path)
    assert not is_complete(path, hdf5=True)
    nwb = tmp_path / "x.nwb"
    nwb.write_bytes(b"not hdf5")
    assert is_complete(nwb, hdf5=False)


def test_verify_file_raises_with_context(tmp_path, nwb_bytes):
    path = tmp_path / "s.nwb"
    path.write_bytes(nwb_bytes[:50])
    with pytest.raises(IntegrityError, match="s.nwb: the file holds 50 of") as caught:
        verify_file(path)
    assert caught.value.path == str(path)
    assert caught.value.actual == 50
    assert verify_file(tmp_path / "s.nwb", hdf5=False) == 50


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.nwb", True),
        ("a.NWB.part", True),
        ("b.h5", True),
        ("c.hdf5", True),
        ("units.csv", False),
        ("x", False),
    ],
)
def test_is_hdf5_name(name, expected):
    assert is_hdf5_name(name) is expected
