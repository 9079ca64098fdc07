"""Read any NWB 2 ecephys file with h5py: metadata, subject, tables, events, running speed, LFP.

Nothing here knows Allen- or lab-specific layouts beyond the NWB standard and two common
habits (ndx-events event types; ``running_speed`` series). Tables are read column by column
(:func:`read_dynamic_table`): text decoded once per distinct value, object references turned
into the name of the object they point to (``electrodes.group`` → ``probeA``), ragged text
columns (``tags``) as one array of str per row, ragged numeric and multi-dimensional columns
(``spike_times``, ``waveform_mean``, ``obs_intervals``) left out. Times are float64 seconds.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import IO

import h5py
import numpy as np
import pandas as pd

from ecephys.errors import MissingDataError, NotEcephysSessionError, NWBFormatError
from ecephys.nwb.allen import RaggedColumn
from ecephys.nwb.h5 import decode_str, decode_str_array, open_hdf5
from ecephys.nwb.intervals import read_ragged_text, read_text_column
from ecephys.nwb.series import n_samples, series_times, series_unit, series_values
from ecephys.nwb.table import column_names, is_ragged, read_ids

__all__ = ["GenericNWBFile", "neurodata_type", "read_dynamic_table", "read_event_table"]

ELECTRODES = "general/extracellular_ephys/electrodes"
BOOKKEEPING_ATTRS = frozenset({"namespace", "neurodata_type", "object_id"})
#: ndx-events types (0.2: Events, LabeledEvents, TTLs; 0.4 and NWB core ≥ 2.9: EventsTable).
EVENT_TYPES = frozenset({"Events", "LabeledEvents", "TTLs", "EventsTable"})
ROOT_FIELDS = ("identifier", "session_description", "session_start_time", "timestamps_reference_time")
GENERAL_FIELDS = (
    "session_id",
    "experimenter",
    "experiment_description",
    "institution",
    "lab",
    "keywords",
    "notes",
    "protocol",
    "stimulus",
    "surgery",
    "virus",
    "pharmacology",
    "related_publications",
    "source_script",
    "data_collection",
)


def neurodata_type(obj: h5py.HLObject) -> str:
    """The ``neurodata_type`` attribute of a group or dataset ('' when it has none)."""
    return decode_str(obj.attrs.get("neurodata_type", ""))


def _value(dataset: h5py.Dataset) -> object:
    """A metadata dataset as Python: str, list of str, or a number."""
    value = dataset[()]
    if isinstance(value, np.ndarray):
        return decode_str_array(value.ravel()).tolist() if value.dtype.kind in "OS" else value.tolist()
    if isinstance(value, bytes | str):
        return decode_str(value)
    return value.item() if isinstance(value, np.generic) else value


def _reference_names(dataset: h5py.Dataset) -> np.ndarray:
    """The names (last path part) of the objects a column of object references points to.

    Each distinct reference is resolved once: the references' raw addresses are read as
    integers and only one row per distinct address is dereferenced.
    """
    file = dataset.file
    if dataset.id.get_type().get_size() != 8:  # not a classic object reference: resolve each row
        return np.array([posixpath.basename(file[r].name) for r in dataset[()]], dtype=object)
    raw = np.empty(dataset.shape, dtype=np.uint64)
    if raw.size:
        dataset.id.read(h5py.h5s.ALL, h5py.h5s.ALL, raw, mtype=h5py.h5t.STD_REF_OBJ)
    _, first, inverse = np.unique(raw, return_index=True, return_inverse=True)
    names = np.array([posixpath.basename(file[dataset[int(i)]].name) for i in first], dtype=object)
    return names[inverse.reshape(-1)]


def _is_text(dataset: h5py.Dataset) -> bool:
    return (
        dataset.dtype.kind in "OSU"
        and dataset.dtype.names is None
        and h5py.check_ref_dtype(dataset.dtype) is None
    )


def _read_flat_column(table: h5py.Group, name: str) -> np.ndarray | None:
    """A one-dimensional column: numbers as stored, text as str, references as names; else None."""
    dataset = table[name]
    if not isinstance(dataset, h5py.Dataset) or dataset.ndim != 1 or dataset.dtype.names is not None:
        return None
    reference = h5py.check_ref_dtype(dataset.dtype)
    if reference is h5py.RegionReference:
        return None
    if reference is not None:
        return _reference_names(dataset)
    return read_text_column(dataset) if _is_text(dataset) else dataset[()]


def _read_ragged_column(table: h5py.Group, name: str) -> np.ndarray | None:
    """A ragged text column (``tags``) as one array of str per row; None for other ragged columns."""
    dataset = table[name]
    if f"{name}_index_index" in table or not isinstance(dataset, h5py.Dataset) or dataset.ndim != 1:
        return None
    return read_ragged_text(table, name) if _is_text(dataset) else None


def _table_columns(table: h5py.Group) -> list[str]:
    """Column names from ``colnames``, or (older files) every dataset but ``id`` and the indexes."""
    names = column_names(table)
    if names:
        return names
    return [k for k in table if k != "id" and not (k.endswith("_index") and k[: -len("_index")] in table)]


def _frame(columns: dict[str, np.ndarray], index: pd.Index) -> pd.DataFrame:
    """A DataFrame that keeps object columns object (pandas 3 would make text columns ``str``)."""
    return pd.DataFrame(
        {
            name: pd.Series(values, index=index, dtype=values.dtype, copy=False)
            for name, values in columns.items()
        },
        index=index,
    )


def read_dynamic_table(
    table: h5py.Group, *, ragged_text: bool = True, skip: tuple[str, ...] = ()
) -> pd.DataFrame:
    """A DynamicTable's one-dimensional columns as a DataFrame indexed by ``id``.

    Text is object dtype; object references (``group``, ``electrode_group``) become the name of
    the object referred to; with ``ragged_text`` a ragged text column gives one array of str
    per row. Ragged numeric, multi-dimensional and compound columns are left out.
    """
    if "id" not in table:
        raise NWBFormatError(
            f"{table.file.filename}: {table.name} is not a DynamicTable (no 'id' dataset).",
            path=table.file.filename,
        )
    ids = read_ids(table)
    columns: dict[str, np.ndarray] = {}
    for name in _table_columns(table):
        if name in skip or name not in table:
            continue
        if is_ragged(table, name):
            values = _read_ragged_column(table, name) if ragged_text else None
        else:
            values = _read_flat_column(table, name)
        if values is None:
            continue
        if len(values) != len(ids):
            raise NWBFormatError(
                f"{table.file.filename}: column {table.name}/{name} has {len(values)} rows but the table "
                f"has {len(ids)}; the file is corrupt, download it again.",
                path=table.file.filename,
            )
        columns[name] = values
    return _frame(columns, pd.Index(ids, name="id"))


def read_event_table(group: h5py.Group) -> pd.DataFrame:
    """Events as a DataFrame with ``timestamps`` (float64 s) and whatever else the file has.

    ndx-events ``EventsTable`` (its ``timestamp`` column renamed ``timestamps``) and tables
    with a ``timestamps`` column keep their ids and columns; ndx-events 0.2 ``Events``,
    ``LabeledEvents`` (``data`` plus ``label``) and TimeSeries give ``timestamps`` and
    ``data`` (scaled by ``conversion``) over a 0-based ``id``.
    """
    if "id" in group:
        return read_dynamic_table(group).rename(columns={"timestamp": "timestamps"})
    times = np.asarray(group["timestamps"][()], dtype=np.float64)
    columns: dict[str, np.ndarray] = {"timestamps": times}
    data = group.get("data")
    if isinstance(data, h5py.Dataset) and data.ndim == 1 and data.shape[0] == len(times):
        columns["data"] = series_values(group) if "unit" in data.attrs else data[()]
        labels = group.attrs.get("labels", data.attrs.get("labels"))
        if labels is not None and data.dtype.kind in "iu":
            names = decode_str_array(np.asarray(labels).ravel())
            columns["label"] = names[np.clip(columns["data"].astype(np.int64), 0, len(names) - 1)]
    return _frame(columns, pd.RangeIndex(len(times), name="id"))


def _groups_below(group: h5py.Group | None, depth: int) -> Iterator[h5py.Group]:
    """Subgroups down to ``depth`` levels, not descending into series or tables; file order."""
    if group is None or depth <= 0:
        return
    for name in group:
        try:
            child = group[name]
        except KeyError:  # a dangling soft or external link
            continue
        if isinstance(child, h5py.Group):
            yield child
            if "data" not in child and "id" not in child:
                yield from _groups_below(child, depth - 1)


def _collect(groups: Iterator[h5py.Group], keep: Callable[[h5py.Group], bool]) -> dict[str, h5py.Group]:
    """Groups ``keep`` accepts, by name; a name seen before is keyed by its path instead.

    An object reached by two paths (hard links, as in the Allen LFP files) is listed once.
    """
    found: dict[str, h5py.Group] = {}
    seen: set[h5py.Group] = set()
    for group in groups:
        if group not in seen and keep(group):
            seen.add(group)
            name = posixpath.basename(group.name)
            found[group.name.strip("/") if name in found else name] = group
    return found


def _is_loose_event(group: h5py.Group) -> bool:
    """A timestamps-only TimeSeries or a table with a ``timestamps`` column (npc_sessions' licks)."""
    kind = neurodata_type(group)
    if kind == "DynamicTable" and "id" in group:
        return any(n in group for n in ("timestamps", "timestamp"))
    if kind != "TimeSeries" or "timestamps" not in group:
        return False
    data = group.get("data")
    return data is None or data.size == 0 or series_unit(group) in ("s", "seconds")


def _is_electrical_series(group: h5py.Group) -> bool:
    return neurodata_type(group).endswith("ElectricalSeries") and "data" in group


def _is_lfp(group: h5py.Group) -> bool:
    """An ElectricalSeries inside an LFP container, or with 'lfp' in its or its container's name."""
    parent = group.parent
    names = f"{group.name.rsplit('/', 1)[-1]} {parent.name.rsplit('/', 1)[-1]}".lower()
    return neurodata_type(parent) == "LFP" or "lfp" in names


class GenericNWBFile:
    """An open NWB 2 file; each part is read the first time it is asked for.

    Parameters
    ----------
    source
        Path of the ``.nwb`` file, or a seekable binary file-like object (a streamed file).
    """

    def __init__(self, source: str | os.PathLike | IO[bytes]) -> None:
        self.source = source
        self.path = None if hasattr(source, "read") else Path(os.fspath(source))
        self.file = open_hdf5(source, what="NWB file")
        if "nwb_version" not in self.file.attrs and "identifier" not in self.file:
            self.file.close()
            raise NotEcephysSessionError(
                f"{self.name}: an HDF5 file but not an NWB file (no nwb_version attribute, no /identifier); "
                "give the path of an NWB 2 file.",
                path=self.name,
            )

    def __repr__(self) -> str:
        return f"GenericNWBFile({self.name!r})"

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else str(getattr(self.source, "name", self.source))

    def close(self) -> None:
        """Close the HDF5 handle; the object can no longer read."""
        self.file.close()

    @property
    def _open(self) -> h5py.File:
        """The HDF5 file, or ValueError when it was closed (h5py would answer 'absent' instead)."""
        if not self.file:
            raise ValueError(f"{self.name}: the file is closed; open it again with ecephys.open_nwb.")
        return self.file

    def _get(self, path: str) -> h5py.HLObject | None:
        return self._open.get(path)

    # -- metadata --------------------------------------------------------------------------
    @cached_property
    def metadata(self) -> dict[str, object]:
        """The file's session metadata: identifier, description, institution, lab, keywords ..."""
        out: dict[str, object] = {"nwb_version": decode_str(self._open.attrs.get("nwb_version", ""))}
        general = self._get("general")
        for name in ROOT_FIELDS:
            if isinstance(self._get(name), h5py.Dataset):
                out[name] = _value(self._open[name])
        for name in GENERAL_FIELDS:
            if general is not None and isinstance(general.get(name), h5py.Dataset):
                out[name] = _value(general[name])
        return out

    @property
    def identifier(self) -> str:
        return str(self.metadata.get("identifier", ""))

    @property
    def session_id(self) -> str:
        """``/general/session_id``, else the NWB ``identifier``."""
        return str(self.metadata.get("session_id") or self.identifier)

    @cached_property
    def session_start_time(self) -> datetime | None:
        """Session start, timezone-aware when the file says its zone; None when absent."""
        text = self.metadata.get("session_start_time")
        return None if text is None else pd.Timestamp(str(text)).to_pydatetime()

    @cached_property
    def subject(self) -> dict[str, object]:
        """``/general/subject`` datasets and attributes (``date_of_birth`` as a datetime); {} when absent."""
        group = self._get("general/subject")
        if group is None:
            return {}
        out: dict[str, object] = {
            k: decode_str(v) if isinstance(v, bytes) else (v.item() if isinstance(v, np.generic) else v)
            for k, v in group.attrs.items()
            if k not in BOOKKEEPING_ATTRS
        }
        for name, obj in group.items():
            if isinstance(obj, h5py.Dataset):
                out[name] = _value(obj)
        if isinstance(out.get("date_of_birth"), str):
            out["date_of_birth"] = pd.Timestamp(out["date_of_birth"]).to_pydatetime()
        return out

    # -- tables ----------------------------------------------------------------------------
    @cached_property
    def interval_names(self) -> list[str]:
        """Names of the tables under ``/intervals`` (trials, epochs, invalid_times, ...), file order."""
        group = self._get("intervals")
        if group is None:
            return []
        return [n for n in group if isinstance(group[n], h5py.Group) and "id" in group[n]]

    def interval_table(self, name: str) -> pd.DataFrame:
        """``/intervals/<name>`` as a DataFrame indexed by ``id`` (``tags`` as arrays of str)."""
        if name not in self.interval_names:
            raise MissingDataError(
                f"{self.name}: no /intervals/{name} table; the file's interval tables are "
                f"{self.interval_names}."
            )
        return read_dynamic_table(self._open["intervals"][name], skip=("timeseries",))

    def _required(self, path: str, what: str) -> h5py.Group:
        group = self._get(path)
        if group is None:
            raise MissingDataError(
                f"{self.name}: no /{path}, so this file holds no {what}; open a file that has them."
            )
        return group

    @cached_property
    def units(self) -> pd.DataFrame:
        """The units table's one-dimensional columns, indexed by unit ``id`` (ragged ones left out)."""
        return read_dynamic_table(self._required("units", "sorted units"), ragged_text=False)

    @cached_property
    def unit_ids(self) -> np.ndarray:
        """Unit ids in file order (int64)."""
        return read_ids(self._required("units", "sorted units"))

    @cached_property
    def spike_times(self) -> RaggedColumn:
        """Spike times (s) per unit, file order."""
        units = self._required("units", "sorted units")
        if "spike_times" not in units or "spike_times_index" not in units:
            raise MissingDataError(f"{self.name}: the units table has no spike_times column.")
        return RaggedColumn(units, "spike_times")

    @cached_property
    def electrodes(self) -> pd.DataFrame:
        """The electrodes table indexed by electrode ``id``; ``group`` as the electrode group's name."""
        return read_dynamic_table(self._required(ELECTRODES, "electrodes table"))

    # -- behaviour and continuous data -----------------------------------------------------
    @cached_property
    def event_groups(self) -> dict[str, h5py.Group]:
        """name → group of every event series: ndx-events types anywhere in processing,
        acquisition or /events; timestamp tables and timestamps-only TimeSeries in
        ``processing/behavior`` and ``acquisition``."""
        loose_homes = {"/processing/behavior", "/acquisition"}

        def keep(group: h5py.Group) -> bool:
            if neurodata_type(group) in EVENT_TYPES:
                return True
            return group.parent.name in loose_homes and _is_loose_event(group)

        homes = [
            self._get("processing/behavior"),
            self._get("processing"),
            self._get("acquisition"),
        ]
        found = (g for home, depth in zip(homes, (1, 2, 1), strict=True) for g in _groups_below(home, depth))
        return _collect(_chain(found, _groups_below(self._get("events"), 1)), keep)

    def _series_named(self, name: str) -> h5py.Group | None:
        """The first TimeSeries called ``name`` in processing (modules, containers) or acquisition."""
        candidates = _chain(
            _groups_below(self._get("processing"), 3), _groups_below(self._get("acquisition"), 2)
        )
        return next((g for g in candidates if g.name.endswith(f"/{name}") and "data" in g), None)

    def running_speed(self) -> pd.DataFrame | None:
        """Running speed per sample: ``start_time``, ``end_time`` (s) and ``velocity`` (the file's unit,
        cm/s in Allen and npc_sessions files, in ``.attrs['unit']``); None when the file has none.

        ``end_time`` is the ``running_speed_end_times`` series beside it (Allen files), else the
        next sample's time, the last sample's being its time plus the median sampling interval.
        """
        series = self._series_named("running_speed")
        if series is None:
            return None
        start = series_times(series)
        ends = series.parent.get("running_speed_end_times")
        end = series_times(ends) if ends is not None and n_samples(ends) == len(start) else _next_times(start)
        frame = pd.DataFrame({"start_time": start, "end_time": end, "velocity": series_values(series)})
        frame.attrs["unit"] = series_unit(series)
        return frame

    @cached_property
    def electrical_series(self) -> dict[str, h5py.Group]:
        """name → group of every ElectricalSeries in acquisition and processing, LFP ones first."""
        groups = _chain(_groups_below(self._get("acquisition"), 2), _groups_below(self._get("processing"), 3))
        found = _collect(groups, _is_electrical_series)
        return dict(sorted(found.items(), key=lambda item: not _is_lfp(item[1])))

    @property
    def lfp_names(self) -> list[str]:
        """Names of the LFP series (in an LFP container, or 'lfp' in their name)."""
        return [name for name, group in self.electrical_series.items() if _is_lfp(group)]


def _chain(*iterables: Iterator[h5py.Group]) -> Iterator[h5py.Group]:
    for iterable in iterables:
        yield from iterable


def _next_times(start: np.ndarray) -> np.ndarray:
    """Each sample's end as the next sample's start; the last ends one median interval later."""
    end = np.empty_like(start)
    end[:-1] = start[1:]
    if len(start):
        end[-1] = start[-1] + (float(np.median(np.diff(start))) if len(start) > 1 else np.nan)
    return end
