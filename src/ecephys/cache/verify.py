"""Is a file whole? Length checks, and the HDF5 superblock's end-of-file address.

An HDF5 file records, in its superblock at the start, the address one past its last byte.
A download or copy cut short keeps that superblock (it comes first) but loses the end, so
``size < end-of-file address`` tells a truncated ``.nwb`` apart from a whole one without
opening it with h5py. This module reads the superblock itself (versions 0 and 1, 2 and 3 of
the format) so the cache layer does not depend on the NWB readers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ecephys.cache.progress import human_size
from ecephys.errors import IntegrityError

__all__ = [
    "HDF5_SIGNATURE",
    "HDF5_SUFFIXES",
    "Superblock",
    "Verdict",
    "check_file",
    "is_complete",
    "is_hdf5_name",
    "read_superblock",
    "verify_file",
]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
HDF5_SUFFIXES = frozenset({".nwb", ".h5", ".hdf5", ".hdf", ".he5"})
# Bytes from the signature to the base address: v0 has 16 bytes of version/size fields,
# v1 adds 4 (indexed-storage K and reserved); v2/v3 have 4 (version, sizes, flags).
_BASE_ADDRESS_AT = {0: 24, 1: 28, 2: 12, 3: 12}


@dataclass(frozen=True)
class Superblock:
    """The fields of an HDF5 superblock that tell the file's extent (addresses in bytes)."""

    version: int
    offset: int  # where the signature sits: 0, or the size of a user block (512, 1024, ...)
    size_of_offsets: int
    base_address: int
    eof_address: int  # one past the last byte of the file, as HDF5 wrote it


@dataclass(frozen=True)
class Verdict:
    """Whether a file is whole (``ok``), why not (``reason``), and its size in bytes."""

    ok: bool
    reason: str
    size: int | None


def is_hdf5_name(path: str | os.PathLike) -> bool:
    """Whether the file name says HDF5 (``.nwb``, ``.h5``, ``.hdf5``, ...), ignoring ``.part``."""
    name = Path(path).name
    if name.endswith(".part"):
        name = name[: -len(".part")]
    return Path(name).suffix.lower() in HDF5_SUFFIXES


def read_superblock(fh: BinaryIO, size: int) -> Superblock | None:
    """The superblock of an open HDF5 file of ``size`` bytes; None if no signature is found.

    The signature is looked for at 0, 512, 1024, 2048, … (after a user block). Raises
    ValueError for a superblock version this reader does not know, or one cut short.
    """
    offset = 0
    while offset + len(HDF5_SIGNATURE) <= size:
        fh.seek(offset)
        if fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
            return _parse_superblock(fh, offset)
        offset = 512 if offset == 0 else offset * 2
    return None


def _parse_superblock(fh: BinaryIO, offset: int) -> Superblock:
    """Decode the superblock whose signature sits at ``offset``."""
    fh.seek(offset + 8)
    head = fh.read(16)
    if not head:
        raise ValueError(f"the HDF5 superblock at byte {offset} is cut short after its signature")
    version = head[0]
    if version not in _BASE_ADDRESS_AT:
        raise ValueError(f"HDF5 superblock version {version} at byte {offset}; expected 0, 1, 2 or 3")
    width = head[5] if version < 2 else head[1]  # "size of offsets" in bytes
    if width not in (2, 4, 8, 16):
        raise ValueError(f"HDF5 superblock at byte {offset}: size of offsets {width}, expected 2, 4, 8 or 16")
    fh.seek(offset + _BASE_ADDRESS_AT[version])
    fields = fh.read(3 * width)  # base address, (free-space | extension) address, end of file
    if len(fields) < 3 * width:
        raise ValueError(f"the HDF5 superblock at byte {offset} is cut short")
    base = int.from_bytes(fields[:width], "little")
    eof = int.from_bytes(fields[2 * width : 3 * width], "little")
    return Superblock(version, offset, width, base, eof)


def check_file(
    path: str | os.PathLike, expected_size: int | None = None, *, hdf5: bool | None = None
) -> Verdict:
    """Check that ``path`` is whole: its length (bytes) and, for HDF5, the superblock's EOF.

    ``hdf5`` None decides from the file name (:func:`is_hdf5_name`). A file with no expected
    size that is not HDF5 passes: nothing contradicts it.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return Verdict(False, f"{path.name} does not exist", None)
    if expected_size is not None and size != expected_size:
        return Verdict(False, _size_reason(size, expected_size), size)
    if not (is_hdf5_name(path) if hdf5 is None else hdf5):
        return Verdict(True, "size matches" if expected_size is not None else "nothing to check", size)
    return _check_hdf5(path, size)


def _size_reason(size: int, expected: int) -> str:
    """'holds X of Y bytes (truncated)' or 'holds X bytes, Y more than ...'."""
    if size < expected:
        share = 100.0 * size / expected if expected else 0.0
        return (
            f"holds {size:,} of {expected:,} bytes ({human_size(size)} of {human_size(expected)}, "
            f"{share:.1f}%): truncated"
        )
    return f"holds {size:,} bytes, {size - expected:,} more than the {expected:,} expected"


def _check_hdf5(path: Path, size: int) -> Verdict:
    """Compare the file's length with the end-of-file address its HDF5 superblock records."""
    with open(path, "rb") as fh:
        try:
            block = read_superblock(fh, size)
        except ValueError as exc:
            return Verdict(False, f"is not a readable HDF5 file: {exc}", size)
        if block is None:
            fh.seek(0)
            head = fh.read(16)
    if block is None:
        kind = "an HTML or text page" if head.lstrip()[:1] in (b"<", b"{") else "not HDF5"
        return Verdict(False, f"has no HDF5 signature (starts with {head!r}): {kind}", size)
    if size < block.eof_address:
        return Verdict(False, _size_reason(size, block.eof_address) + " (HDF5 end-of-file address)", size)
    if size > block.eof_address:
        return Verdict(
            False,
            f"holds {size:,} bytes but its HDF5 superblock ends the file at {block.eof_address:,}: "
            "trailing bytes after the HDF5 data",
            size,
        )
    return Verdict(True, f"HDF5 end-of-file address matches the {size:,} bytes", size)


def is_complete(
    path: str | os.PathLike, expected_size: int | None = None, *, hdf5: bool | None = None
) -> bool:
    """Whether ``path`` exists and passes :func:`check_file` (e.g. not left truncated by an older tool)."""
    return check_file(path, expected_size, hdf5=hdf5).ok


def verify_file(
    path: str | os.PathLike,
    expected_size: int | None = None,
    *,
    hdf5: bool | None = None,
    what: str | None = None,
) -> int:
    """Raise IntegrityError unless :func:`check_file` passes; returns the size in bytes."""
    verdict = check_file(path, expected_size, hdf5=hdf5)
    if not verdict.ok:
        name = what or Path(path).name
        raise IntegrityError(
            f"{name}: the file {verdict.reason}.",
            path=path,
            expected=expected_size,
            actual=verdict.size,
        )
    return verdict.size or 0
