"""Read a probe's LFP file (``probe_<id>_lfp.nwb``) by window: only the HDF5 chunks asked for.

The AllenSDK reads the whole (T × C) series for every call; here the time window is found by
binary search on the timestamps (reading a few timestamp chunks, not all of them) and the
data read is ``data[i0:i1, channels]``, which touches only the chunks that cover it.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import IO

import h5py
import numpy as np
import xarray as xr

from ecephys.errors import MissingDataError, MissingDependency, NotEcephysSessionError, NWBFormatError
from ecephys.nwb.h5 import open_hdf5
from ecephys.nwb.table import read_ids

__all__ = ["ProbeLFPFile", "TimeWindow"]

TimeWindow = slice | tuple[float, float] | None


class ProbeLFPFile:
    """An open probe LFP file: LFP (volts) read by time window and channel, and the CSD."""

    def __init__(self, source: str | os.PathLike | IO[bytes], probe_id: int) -> None:
        self.probe_id = int(probe_id)
        self.name = str(getattr(source, "name", source))
        self.file = open_hdf5(source, what=f"LFP file of probe {self.probe_id}")
        base = f"acquisition/probe_{self.probe_id}_lfp"
        series = self.file.get(f"{base}/probe_{self.probe_id}_lfp_data")
        if series is None:
            found = decode_identifier(self.file)
            raise NotEcephysSessionError(
                f"{self.name}: no {base}/probe_{self.probe_id}_lfp_data in this file (its identifier is "
                f"{found!r}); it is not the LFP file of probe {self.probe_id}. Check the path given for it.",
                path=self.name,
            )
        self._series = series
        self.data: h5py.Dataset = series["data"]
        self._timestamps: h5py.Dataset = series["timestamps"]
        if self.data.shape[0] != self._timestamps.shape[0]:
            raise NWBFormatError(
                f"{self.name}: LFP data has {self.data.shape[0]} samples but {self._timestamps.shape[0]} "
                "timestamps; the file is corrupt, download it again.",
                path=self.name,
            )

    def close(self) -> None:
        self.file.close()

    @cached_property
    def channel_ids(self) -> np.ndarray:
        """Global channel ids of the LFP columns (the file's electrodes table ``id``)."""
        return read_ids(self.file["general/extracellular_ephys/electrodes"])

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[0])

    def _timestamp(self, i: int) -> float:
        return float(self._timestamps[i])

    def sample_range(self, start: float | None, stop: float | None) -> tuple[int, int]:
        """Sample indices [i0, i1) of timestamps with start <= t <= stop (either end open when None)."""
        n = self.n_samples
        i0 = 0 if start is None else self._search(start, side="left")
        i1 = n if stop is None else self._search(stop, side="right")
        return i0, max(i0, i1)

    @cached_property
    def _first_last(self) -> tuple[float, float]:
        """The first and last timestamps (s)."""
        return float(self._timestamps[0]), float(self._timestamps[self.n_samples - 1])

    def _search(self, value: float, side: str) -> int:
        """np.searchsorted over the timestamps dataset, reading as few timestamp chunks as it can.

        LFP is sampled almost uniformly, so the first guess (interpolated between the first and
        last timestamps) usually falls in the chunk that holds the answer: one chunk is read,
        and it is the one the window's own timestamps come from. Bisection takes over otherwise.
        """
        n = self.n_samples
        if n == 0:
            return 0
        step = (self._timestamps.chunks or (n,))[0]
        first, last = self._first_last
        lo, hi = 0, n  # the answer lies in [lo, hi]
        for attempt in range(128):
            if hi - lo <= step:
                return lo + int(np.searchsorted(self._timestamps[lo:hi], value, side=side))
            if attempt == 0 and last > first and np.isfinite(value):
                guess = int((value - first) / (last - first) * (n - 1))
            else:
                guess = (lo + hi) // 2
            c0 = min(max(guess, lo), hi - 1) // step * step
            block = self._timestamps[c0 : min(c0 + step, n)]  # exactly one chunk
            k = int(np.searchsorted(block, value, side=side))
            if 0 < k < len(block):
                return c0 + k
            if k == 0:
                hi = min(hi, c0)
            else:
                lo = max(lo, c0 + len(block))
            if lo >= hi:
                return lo
        raise NWBFormatError(
            f"{self.name}: LFP timestamps are not sorted; the file is corrupt.", path=self.name
        )

    def timestamps(self, i0: int = 0, i1: int | None = None) -> np.ndarray:
        """Timestamps (s) of samples [i0, i1)."""
        return self._timestamps[i0 : self.n_samples if i1 is None else i1]

    def channel_indices(self, channels: object | None) -> np.ndarray:
        """Column indices of the requested channel ids (all when None), in the requested order."""
        if channels is None:
            return np.arange(len(self.channel_ids))
        wanted = np.atleast_1d(np.asarray(channels, dtype=np.int64))
        order = np.argsort(self.channel_ids, kind="stable")
        pos = np.searchsorted(self.channel_ids, wanted, sorter=order)
        pos = np.minimum(pos, len(order) - 1)
        found = self.channel_ids[order[pos]] == wanted
        if not found.all():
            missing = wanted[~found].tolist()
            raise MissingDataError(
                f"probe {self.probe_id}: channel(s) {missing[:10]} have no LFP in {self.name}; the LFP file "
                f"holds {len(self.channel_ids)} channels (every few valid channels in the brain): see "
                "session.get_lfp(probe_id)['channel'] for them."
            )
        return order[pos]

    def read(self, time: TimeWindow = None, channels: object | None = None) -> xr.DataArray:
        """LFP in volts as DataArray 'LFP' (time, channel); reads only the window and channels asked for."""
        start, stop = _window_bounds(time)
        i0, i1 = self.sample_range(start, stop)
        columns = self.channel_indices(channels)
        data = _read_columns(self.data, i0, i1, columns)
        return xr.DataArray(
            name="LFP",
            data=data,
            dims=["time", "channel"],
            coords=[self.timestamps(i0, i1), self.channel_ids[columns]],
        )

    def read_lazy(self, channels: object | None = None) -> xr.DataArray:
        """The whole series as a dask-backed DataArray (needs ``dask``); nothing is read until computed."""
        try:
            import dask.array as da
        except ImportError as err:
            raise MissingDependency(
                "lazy LFP needs dask: pip install 'ecephys[dask]' (or pip install dask)"
            ) from err
        columns = self.channel_indices(channels)
        chunks = self.data.chunks or (min(self.n_samples, 2**16), self.data.shape[1])
        array = da.from_array(self.data, chunks=(chunks[0], self.data.shape[1]))
        if channels is not None:
            array = array[:, columns]
        return xr.DataArray(
            name="LFP",
            data=array,
            dims=["time", "channel"],
            coords=[self.timestamps(), self.channel_ids[columns]],
        )

    def current_source_density(self) -> xr.DataArray:
        """CSD (V/cm², float64) as DataArray 'CSD' (virtual_channel_index, time relative to flash onset)."""
        group = self.file.get("processing/current_source_density/ecephys_csd")
        if group is None:
            raise MissingDataError(
                f"probe {self.probe_id}: {self.name} has no processing/current_source_density; this probe "
                "has no precomputed CSD."
            )
        series = group["current_source_density"]
        data = np.asarray(series["data"][()]).T
        return xr.DataArray(
            name="CSD",
            data=data,
            dims=["virtual_channel_index", "time"],
            coords={
                "virtual_channel_index": np.arange(data.shape[0]),
                "time": series["timestamps"][()],
                "vertical_position": (("virtual_channel_index",), group["virtual_electrode_y_positions"][()]),
                "horizontal_position": (
                    ("virtual_channel_index",),
                    group["virtual_electrode_x_positions"][()],
                ),
            },
        )


def decode_identifier(file: h5py.File) -> str:
    value = file.get("identifier")
    if value is None:
        return "none"
    raw = value[()]
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _window_bounds(time: TimeWindow) -> tuple[float | None, float | None]:
    if time is None:
        return None, None
    if isinstance(time, slice):
        if time.step is not None:
            raise ValueError("time=slice(start, stop) takes no step; resample the result instead")
        return time.start, time.stop
    start, stop = time
    return start, stop


def _read_columns(data: h5py.Dataset, i0: int, i1: int, columns: np.ndarray) -> np.ndarray:
    """data[i0:i1, columns] read with one hyperslab, columns in any order."""
    n_columns = data.shape[1]
    if len(columns) == n_columns and np.array_equal(columns, np.arange(n_columns)):
        out = np.empty((i1 - i0, n_columns), dtype=data.dtype)
        if out.size:
            data.read_direct(out, source_sel=np.s_[i0:i1, :])
        return out
    unique, inverse = np.unique(columns, return_inverse=True)
    if len(unique) == 0 or i1 == i0:
        return np.empty((i1 - i0, len(columns)), dtype=data.dtype)
    if unique[-1] - unique[0] + 1 == len(unique):
        block = data[i0:i1, int(unique[0]) : int(unique[-1]) + 1]
    else:
        block = data[i0:i1, unique.tolist()]
    return np.ascontiguousarray(block[:, inverse])


def lfp_path_beside(session_path: Path, probe_id: int) -> Path:
    """Where the cache layout keeps a probe's LFP file: beside the session file."""
    return session_path.parent / f"probe_{int(probe_id)}_lfp.nwb"
