"""Read NWB ``TimeSeries`` and ``ElectricalSeries`` with h5py: sample times, values, windows.

A series' times are either a ``timestamps`` dataset or ``starting_time`` plus its ``rate``
attribute; both are searched the same way (binary search on the time of sample ``i``), so a
time window costs a few small reads, never the whole timestamps dataset. Values are scaled
as NWB says: ``data * conversion (* channel_conversion[channel]) + offset``, in the series'
unit (volts for an ElectricalSeries).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

import h5py
import numpy as np
import pandas as pd
import xarray as xr

from ecephys.errors import MissingDataError, NWBFormatError
from ecephys.nwb.h5 import decode_str
from ecephys.nwb.lfp import TimeWindow, _read_columns, _window_bounds
from ecephys.nwb.table import read_ids

__all__ = ["ElectricalSeriesReader", "n_samples", "sample_range", "series_times", "series_values"]


def n_samples(series: h5py.Group) -> int:
    """Samples in a series: the length of ``data`` (or of ``timestamps`` when it has no data)."""
    if "data" in series:
        return int(series["data"].shape[0]) if series["data"].ndim else 0
    return int(series["timestamps"].shape[0]) if "timestamps" in series else 0


def _rate_clock(series: h5py.Group) -> tuple[float, float]:
    """``(starting_time, rate)`` of a series without timestamps, in s and Hz."""
    start = series.get("starting_time")
    if start is None:
        raise NWBFormatError(
            f"{series.file.filename}: {series.name} has neither timestamps nor starting_time; "
            "its samples have no times.",
            path=series.file.filename,
        )
    rate = float(start.attrs.get("rate", np.nan))
    if not np.isfinite(rate) or rate <= 0:
        raise NWBFormatError(
            f"{series.file.filename}: {series.name}/starting_time has rate {rate}; expected samples per "
            "second > 0.",
            path=series.file.filename,
        )
    return float(start[()]), rate


def _time_of(series: h5py.Group) -> Callable[[int], float]:
    """The time (s) of sample ``i``, reading one timestamp or computing it from the rate."""
    if "timestamps" in series:
        timestamps = series["timestamps"]
        return lambda i: float(timestamps[i])
    start, rate = _rate_clock(series)
    return lambda i: start + i / rate


def series_times(series: h5py.Group, i0: int = 0, i1: int | None = None) -> np.ndarray:
    """Times (float64 s) of samples ``[i0, i1)``."""
    stop = n_samples(series) if i1 is None else i1
    if "timestamps" in series:
        return np.asarray(series["timestamps"][i0:stop], dtype=np.float64)
    start, rate = _rate_clock(series)
    return start + np.arange(i0, stop, dtype=np.float64) / rate


def sample_range(series: h5py.Group, start: float | None, stop: float | None) -> tuple[int, int]:
    """Samples ``[i0, i1)`` with ``start <= t <= stop`` (an end is open when None); times sorted."""
    n = n_samples(series)
    time_of = _time_of(series)
    i0 = 0 if start is None else bisect.bisect_left(range(n), start, key=time_of)
    i1 = n if stop is None else bisect.bisect_right(range(n), stop, key=time_of)
    return i0, max(i0, i1)


def _scale(series: h5py.Group) -> tuple[float, float]:
    """The ``conversion`` and ``offset`` attributes of a series' data (1 and 0 when absent)."""
    attrs = series["data"].attrs
    return float(attrs.get("conversion", 1.0)), float(attrs.get("offset", 0.0))


def series_values(series: h5py.Group, i0: int = 0, i1: int | None = None) -> np.ndarray:
    """Values of samples ``[i0, i1)`` in the series' unit: ``data * conversion + offset``."""
    raw = series["data"][i0 : n_samples(series) if i1 is None else i1]
    conversion, offset = _scale(series)
    if conversion == 1.0 and offset == 0.0 and raw.dtype.kind == "f":
        return raw
    return raw.astype(np.float64) * conversion + offset


def series_unit(series: h5py.Group) -> str:
    """The unit of a series' data (``attrs['unit']``), or '' when it has none."""
    return decode_str(series["data"].attrs.get("unit", "")) if "data" in series else ""


class ElectricalSeriesReader:
    """One ElectricalSeries (LFP or raw): windows of it by time and electrode id, in volts."""

    def __init__(self, series: h5py.Group) -> None:
        self.series = series
        self.name = series.name.rsplit("/", 1)[-1]
        data = series.get("data")
        if not isinstance(data, h5py.Dataset) or data.ndim not in (1, 2):
            raise NWBFormatError(
                f"{series.file.filename}: {series.name} has no (time × channel) data dataset; "
                "it is not an ElectricalSeries ecephys can read.",
                path=series.file.filename,
            )
        self.data = data
        if "timestamps" in series and series["timestamps"].shape[0] != data.shape[0]:
            raise NWBFormatError(
                f"{series.file.filename}: {series.name} has {data.shape[0]} samples but "
                f"{series['timestamps'].shape[0]} timestamps; the file is corrupt.",
                path=series.file.filename,
            )

    @property
    def n_channels(self) -> int:
        return int(self.data.shape[1]) if self.data.ndim == 2 else 1

    @property
    def channel_ids(self) -> np.ndarray:
        """The electrode ids (rows of the electrodes table) of the data's columns, int64."""
        region = self.series.get("electrodes")
        if region is None:
            return np.arange(self.n_channels, dtype=np.int64)
        rows = np.asarray(region[()], dtype=np.int64)
        table = self.series.file[region.attrs["table"]] if "table" in region.attrs else None
        return rows if table is None else read_ids(table)[rows]

    def channel_columns(self, channels: object | None) -> np.ndarray:
        """Column indices of the requested electrode ids (all when None), in the requested order."""
        ids = self.channel_ids
        if channels is None:
            return np.arange(len(ids))
        wanted = np.atleast_1d(np.asarray(channels, dtype=np.int64))
        columns = pd.Index(ids).get_indexer(wanted)
        if (columns < 0).any():
            raise MissingDataError(
                f"{self.series.name}: electrode(s) {wanted[columns < 0][:10].tolist()} are not in this "
                "series; "
                f"it holds electrodes {ids[:10].tolist()}{' ...' if len(ids) > 10 else ''} "
                "(see get_lfp(...)['channel'])."
            )
        return columns

    def read(self, time: TimeWindow = None, channels: object | None = None) -> xr.DataArray:
        """Volts over (time in s, channel = electrode id); only the window and channels asked for are read.

        ``time=slice(start, stop)`` keeps samples with start <= t <= stop.
        """
        start, stop = _window_bounds(time)
        i0, i1 = sample_range(self.series, start, stop)
        columns = self.channel_columns(channels)
        if self.data.ndim == 2:
            raw = _read_columns(self.data, i0, i1, columns)
        else:
            raw = self.data[i0:i1][:, None][:, columns]
        return xr.DataArray(
            name="LFP",
            data=self._volts(raw, columns),
            dims=["time", "channel"],
            coords=[series_times(self.series, i0, i1), self.channel_ids[columns]],
            attrs={"units": "V", "series": self.series.name},
        )

    def _volts(self, raw: np.ndarray, columns: np.ndarray) -> np.ndarray:
        conversion, offset = _scale(self.series)
        per_channel = self.series.get("channel_conversion")
        if per_channel is None and conversion == 1.0 and offset == 0.0 and raw.dtype.kind == "f":
            return raw
        scale = np.full(len(columns), conversion)
        if per_channel is not None:
            scale = scale * np.asarray(per_channel[()], dtype=np.float64)[columns]
        return raw.astype(np.float64) * scale[None, :] + offset
