"""Open HDF5 files and read NWB datasets with h5py, mapping failures to ecephys errors.

Nothing here knows about the network or about Allen-specific layout: it turns paths (or
file-like objects) into open ``h5py.File`` handles and datasets into numpy arrays.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import h5py
import numpy as np

from ecephys.errors import NotHDF5Error, NWBFormatError, SessionFileNotFound, TruncatedFileError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

__all__ = ["HDF5_SIGNATURE", "decode_str", "decode_str_array", "open_hdf5", "read_scalar"]


def _describe_bad_file(path: Path) -> NWBFormatError:
    """Work out why h5py refused ``path`` and build the error that says so."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if size == 0:
        return TruncatedFileError(
            f"{path}: the file is empty (0 bytes), probably an interrupted download; "
            "delete it and download it again.",
            path=path,
        )
    # The HDF5 signature sits at offset 0 (or 512, 1024, ... with a user block).
    if HDF5_SIGNATURE not in head and not _has_signature_at_powers_of_two(path, size):
        kind = "an HTML page" if head.lstrip()[:1] == b"<" else "not an HDF5 file"
        return NotHDF5Error(
            f"{path}: this is {kind} ({size:,} bytes, starts with {head[:16]!r}), not an NWB/HDF5 "
            "file; if it came from a download, delete it and download it again.",
            path=path,
        )
    return TruncatedFileError(
        f"{path}: HDF5 could not open the file ({size:,} bytes); it looks truncated or corrupt, "
        "as after an interrupted download or copy. Delete it and download it again.",
        path=path,
    )


def _has_signature_at_powers_of_two(path: Path, size: int) -> bool:
    offset = 512
    with open(path, "rb") as fh:
        while offset + 8 <= size:
            fh.seek(offset)
            if fh.read(8) == HDF5_SIGNATURE:
                return True
            offset *= 2
    return False


def open_hdf5(source: str | os.PathLike | IO[bytes], *, what: str = "NWB file") -> h5py.File:
    """Open an HDF5 file read-only, or raise an ecephys error naming the file and the remedy.

    ``source`` is a path or a seekable binary file-like object (for remote reads).
    """
    if hasattr(source, "read") and hasattr(source, "seek"):
        try:
            return h5py.File(source, "r")
        except OSError as err:
            name = getattr(source, "name", repr(source))
            raise TruncatedFileError(
                f"{name}: HDF5 could not open this {what} ({err}); it may be truncated, corrupt or "
                "not an HDF5 file.",
                path=str(name),
            ) from err
    path = Path(os.fspath(source)).expanduser()
    if not path.exists():
        raise SessionFileNotFound(
            f"{path}: no such {what}; check the path, or let an EcephysProjectCache download it.",
            path=path,
        )
    if path.is_dir():
        raise SessionFileNotFound(
            f"{path}: is a folder, not an {what}; give the path of the file.", path=path
        )
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise _describe_bad_file(path) from err


def decode_str(value: object) -> str:
    """Return a str from what h5py gives for a string scalar (bytes, str or a 0-d array)."""
    if isinstance(value, np.ndarray):
        value = value[()] if value.shape == () else value.ravel()[0]
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def decode_str_array(values: np.ndarray) -> np.ndarray:
    """Return an object array of Python str from an HDF5 variable-length string dataset's values."""
    out = np.empty(len(values), dtype=object)
    out[:] = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]
    return out


def read_scalar(group: h5py.Group, name: str, default: object = None) -> object:
    """Read a scalar dataset (strings decoded), or ``default`` when it is absent."""
    if name not in group:
        return default
    value = group[name][()]
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
        return decode_str(value)
    return value
