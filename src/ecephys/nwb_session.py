"""NWBSession: any NWB 2 ecephys session (Dynamic Routing, DANDI, Allen) as tables and arrays.

:func:`open_nwb` opens a local file or streams a URL, as :func:`ecephys.open_session` does,
and reads nothing until a property is asked for; each part is then read once and cached.
The standard NWB parts keep their NWB names: ``subject``, ``epochs``, ``trials``,
``intervals``, ``invalid_times``, ``units``, ``electrodes``; ndx-events licks and rewards
are in ``events``; LFP windows come from :meth:`NWBSession.get_lfp`. Tables are DataFrames
indexed by the file's ``id``; times are float64 seconds; LFP is in volts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from functools import cached_property
from typing import IO, Any

import numpy as np
import pandas as pd
import xarray as xr

from ecephys import spikes
from ecephys.errors import MissingDataError, MissingDependency, NWBFormatError, UnknownIdError
from ecephys.export import Exportable
from ecephys.nwb.generic import GenericNWBFile, read_event_table
from ecephys.nwb.lfp import TimeWindow
from ecephys.nwb.series import ElectricalSeriesReader
from ecephys.sources.remote_file import RemoteFile, source_for_url
from ecephys.sources.retry import RetryPolicy
from ecephys.unit_data import UnitArrays

__all__ = ["NWBSession", "open_nwb"]

PathLike = str | os.PathLike
Intervals = str | pd.DataFrame


class _LazyTables(Mapping[str, pd.DataFrame]):
    """name → DataFrame, each table read the first time it is asked for."""

    def __init__(self, names: Sequence[str], read: Callable[[str], pd.DataFrame]) -> None:
        self._names = list(names)
        self._read = read
        self._cache: dict[str, pd.DataFrame] = {}

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._names:
            raise KeyError(name)
        if name not in self._cache:
            self._cache[name] = self._read(name)
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"<tables: {', '.join(self._names) or 'none'}>"


def _empty_intervals(*, tags: bool) -> pd.DataFrame:
    """A table with no rows and the columns an intervals table always has (typed, index ``id``)."""
    index = pd.Index([], dtype=np.int64, name="id")
    columns = {"start_time": np.float64, "stop_time": np.float64, **({"tags": object} if tags else {})}
    return pd.DataFrame({n: pd.Series([], dtype=t, index=index) for n, t in columns.items()}, index=index)


def _select_rows(table: pd.DataFrame, ids: object | None, what: str) -> pd.DataFrame:
    """Rows of ``table`` for ``ids`` in the order given (all when None); UnknownIdError for others."""
    if ids is None:
        return table
    wanted = np.atleast_1d(np.asarray(ids))
    positions = table.index.get_indexer(wanted)
    unknown = wanted[positions < 0]
    if unknown.size:
        raise UnknownIdError(
            f"{unknown.size} id(s) not in {what} (for example {unknown[:5].tolist()}); "
            "pick ids from its index"
        )
    return table.iloc[positions]


class NWBSession(Exportable):
    """One NWB ecephys session; build it with :func:`open_nwb`.

    Tables are indexed by the file's row ``id`` (``units`` by unit id; a ``unit_id`` column,
    as npc_sessions writes, stays a column). Parts a file lacks: ``trials``, ``epochs`` and
    ``invalid_times`` are empty tables with ``start_time``/``stop_time``; ``events`` and
    ``intervals`` have no entry; ``running_speed`` is None; ``units``, ``electrodes``,
    ``spike_times`` and :meth:`get_lfp` raise :class:`~ecephys.errors.MissingDataError`.
    """

    def __init__(self, nwb: GenericNWBFile, *, owned: Sequence[IO[bytes]] = ()) -> None:
        self._nwb = nwb
        #: File objects ecephys opened for this session (a streamed file): closed with it.
        self._owned: list[IO[bytes]] = list(owned)
        self._io: Any = None
        self._spikes_sorted = False

    def close(self) -> None:
        """Close the file (and pynwb's reader of it); cached tables stay usable."""
        if self._io is not None:
            self._io.close()
        self._nwb.close()
        for stream in self._owned:
            stream.close()

    def __enter__(self) -> NWBSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        try:
            return f"<NWBSession {self.session_id} ({self._nwb.name})>"
        except ValueError:  # closed before its id was read
            return f"<NWBSession (closed) {self._nwb.name}>"

    @property
    def bytes_fetched(self) -> int:
        """Bytes received over the network for this session so far; 0 for a local file."""
        return sum(int(getattr(stream, "bytes_fetched", 0)) for stream in self._owned)

    # -- identity and metadata -------------------------------------------------------------
    @property
    def session_id(self) -> str:
        """``/general/session_id`` (e.g. ``668755_2023-08-31``), else the NWB identifier."""
        return self._nwb.session_id

    @property
    def session_start_time(self) -> datetime | None:
        """When the session started (timezone-aware when the file gives a zone)."""
        return self._nwb.session_start_time

    @property
    def metadata(self) -> dict[str, object]:
        """The file's metadata: identifier, session_description, institution, lab, keywords, ..."""
        return dict(self._nwb.metadata)

    @property
    def subject(self) -> dict[str, object]:
        """The subject as a dict: subject_id, species, sex, age (ISO 8601, e.g. ``P166D``), genotype,
        date_of_birth (datetime) and whatever else the file holds; {} when the file has none."""
        return dict(self._nwb.subject)

    # -- intervals -------------------------------------------------------------------------
    @cached_property
    def intervals(self) -> Mapping[str, pd.DataFrame]:
        """Every table under ``/intervals`` by name (trials, epochs, invalid_times, ...), read when used.

        Times in seconds; ragged text columns (``tags``) hold an array of str per row.
        """
        return _LazyTables(self._nwb.interval_names, self._nwb.interval_table)

    def _interval_or_empty(self, name: str, *, tags: bool) -> pd.DataFrame:
        return self.intervals[name] if name in self.intervals else _empty_intervals(tags=tags)

    @property
    def trials(self) -> pd.DataFrame:
        """The ``trials`` table (start_time, stop_time in s, task columns); empty when absent."""
        return self._interval_or_empty("trials", tags=False)

    @property
    def epochs(self) -> pd.DataFrame:
        """The ``epochs`` table (start_time, stop_time in s, tags, ...); empty when absent."""
        return self._interval_or_empty("epochs", tags=True)

    @property
    def invalid_times(self) -> pd.DataFrame:
        """The ``invalid_times`` table (start_time, stop_time in s, tags, ...); empty when absent."""
        return self._interval_or_empty("invalid_times", tags=True)

    # -- units and electrodes ----------------------------------------------------------------
    @property
    def units(self) -> pd.DataFrame:
        """Units indexed by unit ``id`` with every one-dimensional column (``default_qc``, metrics,
        ``electrode_group`` as the group's name); ragged ones (spike_times, waveforms) are not in it."""
        return self._nwb.units

    @property
    def electrodes(self) -> pd.DataFrame:
        """Electrodes indexed by ``id``: location, ``group`` (name), x/y/z (CCF, µm in Allen and
        npc_sessions files) and the file's other columns."""
        return self._nwb.electrodes

    @cached_property
    def spike_times(self) -> UnitArrays:
        """unit id → spike times (float64 s) of every unit in the file, read on demand."""
        return UnitArrays(self._nwb.spike_times, self._nwb.unit_ids, self._nwb.unit_ids)

    # -- behaviour and LFP -------------------------------------------------------------------
    @cached_property
    def events(self) -> Mapping[str, pd.DataFrame]:
        """Event series by name (``licks``, ``rewards``, ...): DataFrames with ``timestamps`` (s)
        and any other columns (``duration``, ``data``). See :func:`ecephys.nwb.generic.read_event_table`."""
        groups = self._nwb.event_groups
        return _LazyTables(list(groups), lambda name: read_event_table(groups[name]))

    @cached_property
    def running_speed(self) -> pd.DataFrame | None:
        """Running speed: start_time, end_time (s) and velocity (cm/s in Allen and npc_sessions
        files; the unit is in ``.attrs['unit']``), as the Allen session gives it; None when absent."""
        return self._nwb.running_speed()

    @property
    def lfp_names(self) -> list[str]:
        """Names of the file's LFP series (for :meth:`get_lfp`); [] when it has none."""
        return self._nwb.lfp_names

    def _lfp_series(self, key: str | int) -> ElectricalSeriesReader:
        """The ElectricalSeries named ``key``, or the LFP series of electrode group / probe id ``key``."""
        series = self._nwb.electrical_series
        if isinstance(key, str) and key in series:
            return ElectricalSeriesReader(series[key])
        for name in self.lfp_names:
            if key in self._series_probes(series[name]):
                return ElectricalSeriesReader(series[name])
        raise MissingDataError(
            f"session {self.session_id}: no LFP series or probe {key!r}; its LFP series are "
            f"{self.lfp_names or 'none'}. (Allen sessions keep LFP in probe_<id>_lfp.nwb files: "
            "open_nwb that file.)"
        )

    def _series_probes(self, group: Any) -> set[object]:
        """Electrode group names and probe ids of the electrodes a series records from."""
        electrodes = self._optional(lambda: self.electrodes)
        if electrodes is None or "electrodes" not in group:
            return set()
        rows = electrodes.iloc[np.asarray(group["electrodes"][()], dtype=np.int64)]
        found: set[object] = set()
        for column in ("group_name", "group", "probe_id"):
            if column in rows:
                found.update(rows[column].tolist())
        return found

    def get_lfp(
        self, probe_or_series: str | int, time: TimeWindow = None, channels: object | None = None
    ) -> xr.DataArray:
        """LFP in volts: DataArray 'LFP' over (time in s, channel = electrode id).

        ``probe_or_series`` is a series name (see :attr:`lfp_names`), an electrode group name
        (``"probeA"``) or a probe id. ``time=slice(start, stop)`` (inclusive) and
        ``channels=[electrode ids]`` read only that part of the file.
        """
        return self._lfp_series(probe_or_series).read(time, channels)

    # -- pynwb, export, pynapple -------------------------------------------------------------
    @cached_property
    def nwb(self) -> Any:
        """The file as a pynwb ``NWBFile``, opened on the same HDF5 handle (needs ``ecephys[nwb]``)."""
        try:
            import pynwb
        except ImportError as err:
            raise MissingDependency(
                "NWBSession.nwb needs pynwb, which is not installed: pip install 'ecephys[nwb]'"
            ) from err
        self._io = pynwb.NWBHDF5IO(file=self._nwb.file, mode="r")
        return self._io.read()

    def _optional(self, read: Callable[[], pd.DataFrame]) -> pd.DataFrame | None:
        try:
            return read()
        except MissingDataError:
            return None

    def export_tables(self) -> dict[str, pd.DataFrame]:
        """Every table worth exporting, by name: units, electrodes, each intervals table (trials,
        epochs, invalid_times, ...), running_speed, ``events_<name>`` per event series, subject
        (one row; dates as ISO 8601 text). Parts the file lacks are left out."""
        tables: dict[str, pd.DataFrame | None] = {
            "units": self._optional(lambda: self.units),
            "electrodes": self._optional(lambda: self.electrodes),
            **dict(self.intervals.items()),
            "running_speed": self.running_speed,
            **{f"events_{name}": frame for name, frame in self.events.items()},
        }
        if self._nwb.subject:
            subject = {k: [_portable(v)] for k, v in self.subject.items()}
            tables["subject"] = pd.DataFrame(subject, index=pd.Index([self.session_id], name="session_id"))
        return {name: frame for name, frame in tables.items() if frame is not None}

    def to_pynapple(self) -> dict[str, Any]:
        """The session as pynapple objects (needs ``ecephys[pynapple]``): ``units`` (TsGroup with
        the units columns as metadata), one IntervalSet per intervals table, ``running_speed``
        (Tsd) and each event series (Ts). See :func:`ecephys.interop.to_pynapple`."""
        from ecephys.interop import to_pynapple

        units = self._optional(lambda: self.units)
        return to_pynapple(
            self.spike_times if units is not None else {},
            units,
            dict(self.intervals.items()),
            running_speed=self.running_speed,
            events=dict(self.events.items()),
        )

    # -- spike analyses over any intervals table ---------------------------------------------
    def _interval_table(self, intervals: Intervals) -> tuple[str, pd.DataFrame]:
        """(label, table) for a table name in :attr:`intervals` or a DataFrame."""
        if isinstance(intervals, pd.DataFrame):
            return "the intervals table given", intervals
        if not isinstance(intervals, str):
            raise TypeError(
                f"intervals={intervals!r}: expected a name in session.intervals or a DataFrame with "
                "start_time and stop_time columns"
            )
        if intervals not in self.intervals:
            raise MissingDataError(
                f"session {self.session_id} has no intervals table {intervals!r}; its tables are "
                f"{list(self.intervals)}"
            )
        return f"session.intervals[{intervals!r}]", self.intervals[intervals]

    def _interval_times(
        self, intervals: Intervals, ids: object | None, columns: Sequence[str]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The selected rows' ids and their ``columns`` as float64 seconds, checked to be finite."""
        label, table = self._interval_table(intervals)
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise ValueError(f"{label} has no column(s) {missing}; its columns are {list(table.columns)}")
        not_times = [c for c in columns if table[c].dtype.kind not in "fiu"]
        if not_times:
            raise ValueError(f"{label}: column(s) {not_times} hold no times in seconds; pick a time column")
        rows = _select_rows(table, ids, label)
        times = rows[list(columns)].to_numpy(dtype=np.float64)
        bad = ~np.isfinite(times).all(axis=1)
        if bad.any():
            raise ValueError(
                f"{label}: {int(bad.sum())} row(s) have no {' or '.join(columns)} (NaN), e.g. ids "
                f"{rows.index[bad][:5].tolist()}; pass stimulus_presentation_ids of rows that have them"
            )
        return rows.index.to_numpy(), list(times.T)

    def _spike_arrays(self, unit_ids: object | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All spike times (s), the selected units' (n, 2) bounds in them and their ids."""
        ids = _select_rows(self.units, unit_ids, "session.units").index.to_numpy(dtype=np.int64)
        flat, bounds = self.spike_times.bounds(ids)
        if not self._spikes_sorted:
            every_flat, every_bounds = self.spike_times.bounds()
            try:
                spikes.check_spike_arrays(every_flat, every_bounds, self.spike_times.unit_ids)
            except ValueError as err:
                raise NWBFormatError(
                    f"{self._nwb.name}: {err}; spike times out of order cannot be binned. Report the file, "
                    "or sort each unit's spikes before writing it.",
                    path=self._nwb.name,
                ) from err
            self._spikes_sorted = True
        return flat, bounds, ids

    def presentationwise_spike_counts(
        self,
        bin_edges: np.ndarray,
        stimulus_presentation_ids: object | None = None,
        unit_ids: object | None = None,
        binarize: bool = False,
        dtype: np.dtype | str | None = None,
        large_bin_size_threshold: float = 0.001,
        time_domain_callback: Callable[[np.ndarray], np.ndarray] | None = None,
        rates: bool = False,
        *,
        intervals: Intervals = "trials",
        align_to: str = "start_time",
    ) -> xr.DataArray:
        """Spikes per bin around each interval's ``align_to`` time: DataArray 'spike_counts'.

        ``intervals`` is a name in :attr:`intervals` (default ``"trials"``) or a DataFrame with
        ``start_time``/``stop_time``; ``stimulus_presentation_ids`` are its row ids. Dims keep
        the AllenSDK's names so plotting code works: (stimulus_presentation_id,
        time_relative_to_stimulus_onset, unit_id). ``bin_edges`` in s relative to the
        alignment time; bins are half-open ``[a, b)``; ``rates=True`` gives spikes/s.
        """
        row_ids, (onsets,) = self._interval_times(intervals, stimulus_presentation_ids, [align_to])
        options = {
            "binarize": binarize,
            "dtype": dtype,
            "large_bin_size_threshold": large_bin_size_threshold,
            "time_domain_callback": time_domain_callback,
            "rates": rates,
        }
        return spikes.presentationwise_spike_counts(
            *self._spike_arrays(unit_ids), bin_edges, row_ids, onsets, check_sorted=False, **options
        )

    def presentationwise_spike_times(
        self,
        stimulus_presentation_ids: object | None = None,
        unit_ids: object | None = None,
        *,
        intervals: Intervals = "trials",
    ) -> pd.DataFrame:
        """Each spike inside an interval (start_time < t <= stop_time), indexed by ``spike_time`` (s).

        Columns keep the AllenSDK's names: ``stimulus_presentation_id`` (the interval's row id),
        ``unit_id``, ``time_since_stimulus_presentation_onset`` (s after start_time).
        """
        row_ids, (start, stop) = self._interval_times(
            intervals, stimulus_presentation_ids, ["start_time", "stop_time"]
        )
        return spikes.presentationwise_spike_times(
            *self._spike_arrays(unit_ids), row_ids, start, stop, check_sorted=False
        )

    def get_conditions(
        self, intervals: Intervals = "trials", condition_columns: str | Sequence[str] | None = None
    ) -> pd.DataFrame:
        """The conditions of an intervals table: its unique ``condition_columns`` combinations,
        indexed by ``stimulus_condition_id`` (0, 1, ... in sorted order, NaN last)."""
        label, table = self._interval_table(intervals)
        codes, columns = _condition_codes(table, label, condition_columns)
        if not columns:
            return pd.DataFrame(index=pd.Index(np.unique(codes.dropna()), name="stimulus_condition_id"))
        conditions = table[columns].assign(stimulus_condition_id=codes.to_numpy())
        return (
            conditions.drop_duplicates("stimulus_condition_id")
            .set_index("stimulus_condition_id")
            .sort_index()
        )

    def conditionwise_spike_statistics(
        self,
        stimulus_presentation_ids: object | None = None,
        unit_ids: object | None = None,
        use_rates: bool = False,
        *,
        intervals: Intervals = "trials",
        condition_columns: str | Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Spike count (or rate, spikes/s) mean, std and sem per (unit_id, stimulus_condition_id).

        Conditions are the table's ``stimulus_condition_id`` column, or the unique combinations
        of ``condition_columns`` (required for tables without that column), numbered as in
        :meth:`get_conditions`. Spikes count when start_time < t <= stop_time. Without
        ``unit_ids``, as in the AllenSDK, only units that spiked in the intervals are listed.
        """
        label, table = self._interval_table(intervals)
        codes, _ = _condition_codes(table, label, condition_columns)
        row_ids, (start, stop) = self._interval_times(
            intervals, stimulus_presentation_ids, ["start_time", "stop_time"]
        )
        flat, bounds, ids = self._spike_arrays(unit_ids)
        counts = spikes.spike_counts_per_presentation(flat, bounds, start, stop, check_sorted=False)
        if unit_ids is None:  # as the AllenSDK: only the units that spiked
            spiked = counts.sum(axis=0) > 0
            counts, ids = counts[:, spiked], ids[spiked]
        conditions = codes.loc[row_ids].to_numpy()
        return spikes.conditionwise_spike_statistics(
            counts, ids, conditions, durations=stop - start, use_rates=use_rates
        )


def _portable(value: object) -> object:
    """A metadata value as a table cell any format holds: dates as ISO 8601 text, lists as text."""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value) if isinstance(value, list | dict) else value


def _condition_codes(
    table: pd.DataFrame, label: str, condition_columns: str | Sequence[str] | None
) -> tuple[pd.Series, list[str]]:
    """Each row's condition id, and the columns that define the conditions ([] for the file's own ids)."""
    if condition_columns is None:
        if "stimulus_condition_id" in table.columns:
            return table["stimulus_condition_id"], []
        raise ValueError(
            f"{label} has no stimulus_condition_id column: pass condition_columns=[...] naming the columns "
            "whose unique combinations are the conditions, e.g. condition_columns=['stim_name']"
        )
    columns = [condition_columns] if isinstance(condition_columns, str) else list(condition_columns)
    missing = [c for c in columns if c not in table.columns]
    if missing or not columns:
        raise ValueError(
            f"condition_columns {missing or columns}: not columns of {label} ({list(table.columns)})"
        )
    codes = table.groupby(columns, dropna=False, sort=True).ngroup()
    return codes.rename("stimulus_condition_id"), columns


def open_nwb(
    path_or_url: PathLike | IO[bytes],
    *,
    endpoint_url: str | None = None,
    retries: int | RetryPolicy = 5,
    timeout: float = 30.0,
    block_cache: PathLike | None = None,
) -> NWBSession:
    """Open any NWB 2 ecephys file (cheap: parts are read when first used).

    ``path_or_url`` is a local path, a seekable binary file object, or a URL —
    ``s3://bucket/key.nwb`` or ``https://host/path.nwb`` — which is streamed, not downloaded:
    only the parts read come over the network (see :attr:`NWBSession.bytes_fetched`).
    ``endpoint_url`` points ``s3://`` URLs at another S3-compatible server; ``retries`` (or a
    :class:`~ecephys.sources.RetryPolicy`) and ``timeout`` (seconds per socket read) apply to
    every request. ``block_cache``, a folder, keeps the blocks read on disk so that opening the
    URL again reads them locally. Allen session files open too (NWB names, no unit filters).
    """
    if (
        isinstance(path_or_url, str)
        and "://" in path_or_url
        and not path_or_url.lower().startswith("file://")
    ):
        source, key = source_for_url(path_or_url, endpoint_url=endpoint_url, timeout=timeout)
        try:
            remote = RemoteFile(source, key, retries=retries, block_cache=block_cache)
        except BaseException:
            source.close()
            raise
        try:  # the source was made for this URL: its connections close with the session
            return NWBSession(GenericNWBFile(remote), owned=[remote, source])
        except BaseException:
            remote.close()
            source.close()
            raise
    return NWBSession(GenericNWBFile(path_or_url))
