"""EcephysSession: one Allen ecephys session, with the AllenSDK's names and answers.

A thin facade over :class:`ecephys.nwb.allen.AllenSessionFile`: tables come back as pandas
DataFrames, waveforms as xarray DataArrays, spike trains as read-on-demand mappings. Each
property is read from the file once and cached on the session.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import IO, Any

import numpy as np
import pandas as pd
import xarray as xr

from ecephys import spikes, stimuli
from ecephys.errors import (
    EcephysWarning,
    MissingDataError,
    NWBFormatError,
    SessionFileNotFound,
    UnknownIdError,
    UnknownProbeError,
)
from ecephys.export import Exportable
from ecephys.nwb.allen import AllenSessionFile
from ecephys.nwb.lfp import ProbeLFPFile, TimeWindow, lfp_path_beside
from ecephys.nwb.table import read_ragged_lists
from ecephys.sources.base import Source
from ecephys.sources.remote_file import RemoteFile, key_beside, source_for_url
from ecephys.sources.retry import RetryPolicy
from ecephys.unit_data import UnitArrays, UnitWaveforms
from ecephys.units import (
    UnitFilters,
    build_channels_table,
    build_units_table,
    filter_units,
    merge_external_channel_columns,
    shape_units,
)

__all__ = ["EcephysSession", "UnitArrays", "UnitWaveforms", "open_session", "stream_session"]

PathLike = str | os.PathLike


class _TableLookup:
    """A table's rows found by id with numpy: its index sorted once, its columns as arrays.

    A session's tables do not change, and a few numpy calls per analysis cost less than pandas'
    ``get_indexer`` and column access run with caches the counting has just emptied (~0.5 ms).
    """

    def __init__(self, table: pd.DataFrame) -> None:
        self.table = table
        self.ids = table.index.to_numpy()
        self._fast = self.ids.dtype.kind in "iu" and table.index.is_unique and len(self.ids) > 0
        if self._fast:
            self._order = np.argsort(self.ids, kind="stable")
            self._sorted = self.ids[self._order]
        self._columns: dict[str, np.ndarray] = {}

    def positions(self, wanted: np.ndarray) -> np.ndarray:
        """Row of each id of ``wanted``, -1 where the table has none."""
        if not self._fast or wanted.dtype.kind not in "iu" or wanted.ndim != 1:
            return self.table.index.get_indexer(wanted)
        at = np.searchsorted(self._sorted, wanted).clip(0, len(self._sorted) - 1)
        return np.where(self._sorted[at] == wanted, self._order[at], -1)

    def column(self, name: str) -> np.ndarray:
        """The column ``name`` as an array (read once)."""
        if name not in self._columns:
            self._columns[name] = self.table[name].to_numpy()
        return self._columns[name]


class EcephysSession(Exportable):
    """One Allen Visual Coding – Neuropixels session, read from its NWB file.

    Build it with :func:`open_session` or :meth:`from_nwb_path`. Unit quality filters are the
    AllenSDK's (``amplitude_cutoff_maximum=0.1``, ``presence_ratio_minimum=0.95``,
    ``isi_violations_maximum=0.5``, ``filter_by_validity=True``,
    ``filter_out_of_brain_units=True``); ``None`` or ±inf switches one off.
    """

    def __init__(
        self,
        nwb: AllenSessionFile,
        *,
        filters: UnitFilters | None = None,
        lfp_paths: Mapping[int, PathLike] | None = None,
        external_channel_columns: pd.DataFrame | None = None,
        lfp_fetcher: Callable[[int], PathLike | IO[bytes]] | None = None,
        owned: Sequence[IO[bytes]] = (),
    ) -> None:
        self._nwb = nwb
        self.filters = filters if filters is not None else UnitFilters()
        self.lfp_paths = {int(k): v for k, v in (lfp_paths or {}).items()}
        #: Columns by channel id merged into ``channels`` (and so ``units``) over the file's own:
        #: what :class:`ecephys.project.EcephysProjectCache` passes from its ``channels.csv``
        #: (``ecephys_structure_id``, ``ecephys_structure_acronym``, CCF coordinates).
        self.external_channel_columns = external_channel_columns
        #: probe id → local path of its LFP file, downloading it if needed (the project cache's),
        #: or a file object (a streamed session's RemoteFile), which the session then owns.
        self._lfp_fetcher = lfp_fetcher
        self._lfp_files: dict[int, ProbeLFPFile] = {}
        #: File objects ecephys opened for this session (remote files): closed with it.
        self._owned: list[IO[bytes]] = list(owned)
        self._warned_invalid_spikes = False
        self._spikes_sorted = False
        self._lookups: dict[str, _TableLookup] = {}  # the analyses' tables, by what they hold

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_nwb_path(
        cls,
        path: PathLike | IO[bytes],
        nwb_version: int = 2,
        api_kwargs: dict[str, Any] | None = None,
        **kwargs,
    ) -> EcephysSession:
        """Open a session file, AllenSDK spelling: unit filters go in ``api_kwargs``."""
        if int(nwb_version) != 2:
            raise ValueError(f"nwb_version={nwb_version}: ecephys reads NWB 2 session files only.")
        api_kwargs = dict(api_kwargs or {})
        lfp_paths = api_kwargs.pop("probe_lfp_paths", None) or kwargs.pop("lfp_paths", None)
        return open_session(path, lfp_paths=lfp_paths, **api_kwargs, **kwargs)

    def close(self) -> None:
        """Close the session file and any open LFP files; cached tables stay usable."""
        for lfp in self._lfp_files.values():
            lfp.close()
        self._lfp_files.clear()
        self._nwb.close()
        for stream in self._owned:
            stream.close()

    @property
    def bytes_fetched(self) -> int:
        """Bytes received over the network for this session so far: its file and its LFP files.

        0 for a session read from local files.
        """
        return sum(int(getattr(stream, "bytes_fetched", 0)) for stream in self._owned)

    def __enter__(self) -> EcephysSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as a recipe that reopens the file where it is unpickled (a Dask worker, say).

        A local session travels as its path, a streamed one as its RemoteFile (source and key),
        with its filters, LFP paths or LFP rule and external channel columns; tables read so far
        stay behind.
        """
        source = self._nwb.path if self._nwb.path is not None else self._nwb.source
        if not isinstance(source, os.PathLike | RemoteFile):
            raise TypeError(
                f"{self!r} was opened from a {type(source).__name__}, which cannot travel to another "
                "process; open the session from a path or URL (ecephys.open_session) to pickle it"
            )
        options = dict(
            filters=self.filters,
            lfp_paths=self.lfp_paths,
            external_channel_columns=self.external_channel_columns,
            lfp_fetcher=self._lfp_fetcher,
        )
        return (_reopen_session, (source, options))

    def __repr__(self) -> str:
        return f"<EcephysSession {self.ecephys_session_id} ({self._nwb.name})>"

    def _repr_html_(self) -> str:
        """Jupyter: id, type, units (filtered and in the file), probes, duration, local LFP files."""
        from ecephys._display import html_table, session_summary

        return html_table("EcephysSession", session_summary(self))

    # -- identity and metadata -----------------------------------------------------------
    @property
    def ecephys_session_id(self) -> int:
        """The session id (int)."""
        return self._nwb.session_id

    @property
    def session_start_time(self) -> datetime:
        """When the session started, timezone-aware."""
        return self._nwb.session_start_time

    @property
    def session_type(self) -> str:
        """The stimulus set, e.g. ``brain_observatory_1.1`` or ``functional_connectivity``."""
        return self._nwb.metadata["stimulus_name"]  # type: ignore[return-value]

    @property
    def specimen_name(self) -> str:
        return self._nwb.metadata["specimen_name"]  # type: ignore[return-value]

    @property
    def age_in_days(self) -> float:
        return self._nwb.metadata["age_in_days"]  # type: ignore[return-value]

    @property
    def sex(self) -> str:
        return self._nwb.metadata["sex"]  # type: ignore[return-value]

    @property
    def full_genotype(self) -> str:
        return self._nwb.metadata["full_genotype"]  # type: ignore[return-value]

    @property
    def rig_geometry_data(self) -> pd.DataFrame | None:
        """Eye-tracking rig geometry: positions (mm) and rotations (degrees) by x/y/z, or None."""
        rig = self._nwb.rig_metadata
        return None if rig is None else rig["geometry"].copy()  # type: ignore[union-attr]

    @property
    def rig_equipment_name(self) -> str | None:
        rig = self._nwb.rig_metadata
        return None if rig is None else rig["equipment"]  # type: ignore[return-value]

    @property
    def metadata(self) -> dict[str, Any]:
        """The AllenSDK's session summary dict."""
        return {
            "specimen_name": self.specimen_name,
            "session_type": self.session_type,
            "full_genotype": self.full_genotype,
            "sex": self.sex,
            "age_in_days": self.age_in_days,
            "rig_equipment_name": self.rig_equipment_name,
            "num_units": self.num_units,
            "num_channels": self.num_channels,
            "num_probes": self.num_probes,
            "num_stimulus_presentations": self.num_stimulus_presentations,
            "session_start_time": self.session_start_time,
            "ecephys_session_id": self.ecephys_session_id,
            "structure_acronyms": self.structure_acronyms,
            "stimulus_names": self.stimulus_names,
        }

    # -- probes, channels, units ---------------------------------------------------------
    @cached_property
    def probes(self) -> pd.DataFrame:
        """Probes indexed by ``id``: description (probeA…), location, sampling rates (Hz), has_lfp_data."""
        return self._nwb.probes.copy()

    @cached_property
    def _channels_all(self) -> pd.DataFrame:
        return build_channels_table(self._nwb.electrodes, filter_by_validity=False)

    @cached_property
    def channels(self) -> pd.DataFrame:
        """Channels indexed by ``id``; invalid ones dropped when ``filter_by_validity``.

        With ``external_channel_columns`` those columns replace the file's ones of the same name
        and only the channels they list are kept (see :func:`merge_external_channel_columns`).
        """
        channels = self._channels_all
        if self.external_channel_columns is not None:
            channels = merge_external_channel_columns(channels, self.external_channel_columns)
        if self.filters.filter_by_validity:
            channels = channels[channels["valid_data"]].drop(columns=["valid_data"])
        return channels.copy()

    @cached_property
    def _channel_structures(self) -> pd.Series:
        """Unstripped structure acronym per channel id (NaN out of brain), from the file's locations."""
        location = self._nwb.electrodes["location"].astype(object)
        return location.where(~location.isin(["", "None"]) & location.notna(), np.nan)

    @cached_property
    def _units_shaped(self) -> pd.DataFrame:
        return shape_units(self._nwb.units, self._channels_all["probe_id"], self._nwb.probes.index)

    @cached_property
    def _units_filtered(self) -> pd.DataFrame:
        return filter_units(self._units_shaped, self._channels_all, self.filters)

    @cached_property
    def units(self) -> pd.DataFrame:
        """Units that pass the filters, merged with their peak channel and probe, index ``unit_id``."""
        return build_units_table(self._units_filtered, self.channels, self.probes)

    @cached_property
    def _retained_unit_ids_file_order(self) -> np.ndarray:
        retained = self._retained_unit_set
        return np.array([u for u in self._units_shaped.index if int(u) in retained], dtype=np.int64)

    @cached_property
    def _retained_unit_set(self) -> frozenset[int]:
        return frozenset(int(u) for u in self.units.index)

    @property
    def num_units(self) -> int:
        return int(self.units.shape[0])

    @property
    def num_probes(self) -> int:
        return int(self.probes.shape[0])

    @property
    def num_channels(self) -> int:
        return int(self.channels.shape[0])

    @property
    def structure_acronyms(self) -> list:
        """Structures the channels pass through, in channel order, NaN for out of brain.

        The AllenSDK answers this only through its project cache (from ``channels.csv``); without
        it the AllenSDK raises KeyError. ecephys reads the same acronyms from the file's
        electrode locations, so the answer is there with or without the cache.
        """
        if "ecephys_structure_acronym" in self.channels:
            return self.channels["ecephys_structure_acronym"].unique().tolist()
        return self._channel_structures.loc[self.channels.index].unique().tolist()

    @property
    def structurewise_unit_counts(self) -> pd.Series:
        """Number of units per structure (unstripped acronym), most first."""
        if "ecephys_structure_acronym" in self.units:
            acronyms = self.units["ecephys_structure_acronym"]
        else:
            acronyms = self._channel_structures.reindex(self.units["peak_channel_id"].to_numpy())
        counts = acronyms.value_counts()
        return pd.Series(
            counts.to_numpy(dtype=np.int64),
            index=pd.Index(counts.index.to_numpy(), dtype=object),
            name="ecephys_structure_acronym",
        )

    # -- spike data ----------------------------------------------------------------------
    @cached_property
    def _spike_times(self) -> UnitArrays:
        return UnitArrays(self._nwb.spike_times, self._nwb.unit_ids, self._retained_unit_ids_file_order)

    @property
    def spike_times(self) -> UnitArrays:
        """unit id → spike times (float64 s, sorted) for the units that pass the filters.

        The first use warns, as the AllenSDK does, when invalid intervals touch the session's
        probes. A streamed session defers that check until it reads ``/intervals`` anyway
        (stimulus tables, invalid times, spike analyses): there it would cost ~5 round trips.
        """
        self._warn_invalid_spikes_once(deferrable=True)
        return self._spike_times

    @cached_property
    def spike_amplitudes(self) -> UnitArrays:
        """unit id → spike amplitudes (float64 V) for every unit in the file (not only filtered ones).

        This follows the AllenSDK, whose ``spike_amplitudes`` is not restricted by the unit filters.
        """
        return UnitArrays(self._nwb.spike_amplitudes, self._nwb.unit_ids, self._units_shaped.index.to_numpy())

    @cached_property
    def mean_waveforms(self) -> UnitWaveforms:
        """unit id → mean waveform (µV), DataArray over (channel_id, time in s), for filtered units."""
        return UnitWaveforms(self)

    @cached_property
    def _channel_lookup(self) -> dict[int, np.ndarray]:
        """Per probe: array whose entry i is the id of channel number i (-1 where not in channels)."""
        lookup: dict[int, np.ndarray] = {}
        channels = self.channels
        for probe_id, group in channels.groupby("probe_id"):
            numbers = group["probe_channel_number"].to_numpy()
            table = np.full(int(numbers.max()) + 1 if len(numbers) else 0, -1, dtype=np.int64)
            table[numbers] = group.index.to_numpy()
            lookup[int(probe_id)] = table
        return lookup

    @cached_property
    def _waveform_rows(self) -> dict[int, int]:
        return {int(u): i for i, u in enumerate(self._nwb.unit_ids)}

    def _mean_waveform(self, unit_id: int) -> xr.DataArray:
        if unit_id not in self._retained_unit_set:
            raise KeyError(unit_id)
        probe_id = int(self.units.at[unit_id, "probe_id"])
        data = np.asarray(self._nwb.waveform_mean.row(self._waveform_rows[unit_id]))
        lookup = self._channel_lookup.get(probe_id, np.empty(0, dtype=np.int64))
        numbers = np.arange(data.shape[0])
        channel_ids = np.full(data.shape[0], -1, dtype=np.int64)
        known = numbers < len(lookup)
        channel_ids[known] = lookup[numbers[known]]
        keep = channel_ids != -1
        sampling_rate = float(self.probes.at[probe_id, "sampling_rate"])
        return xr.DataArray(
            data=data[keep],
            dims=["channel_id", "time"],
            coords={"channel_id": channel_ids[keep], "time": np.arange(data.shape[1]) / sampling_rate},
        )

    # -- stimuli and behaviour -------------------------------------------------------------
    @cached_property
    def _stimulus_tables(self) -> stimuli.StimulusTables:
        return stimuli.load_stimulus_tables(self._nwb.file)

    @property
    def stimulus_presentations(self) -> pd.DataFrame:
        """Every presentation (index ``stimulus_presentation_id``; times in s), detailed parameters hidden.

        Inapplicable parameters are the string ``"null"``; presentations overlapping an invalid
        ``stimulus`` epoch are ``invalid_presentation`` rows with NaN parameters, as in the AllenSDK.
        """
        return stimuli.remove_detailed_parameters(self._stimulus_tables.presentations)

    @property
    def stimulus_conditions(self) -> pd.DataFrame:
        """The unique parameter combinations, indexed by ``stimulus_condition_id``."""
        return self._stimulus_tables.conditions

    @property
    def stimulus_names(self) -> list[str]:
        """Stimulus names in order of first presentation (``invalid_presentation`` included)."""
        return stimuli.stimulus_names(self._stimulus_tables.presentations)

    @property
    def num_stimulus_presentations(self) -> int:
        return int(self._stimulus_tables.presentations.shape[0])

    def get_stimulus_table(
        self,
        stimulus_names: str | list[str] | None = None,
        include_detailed_parameters: bool = False,
        include_unused_parameters: bool = False,
    ) -> pd.DataFrame:
        """Presentations of the named stimuli (all when None), optionally with detailed/unused columns."""
        return stimuli.get_stimulus_table(
            self._stimulus_tables.presentations,
            stimulus_names,
            include_detailed_parameters=include_detailed_parameters,
            include_unused_parameters=include_unused_parameters,
        )

    def get_stimulus_epochs(self, duration_thresholds: dict[str, float] | None = None) -> pd.DataFrame:
        """Blocks of consecutive presentations of one stimulus, with start/stop/duration (s).

        Unlike the AllenSDK, the default drops ``spontaneous`` epochs shorter than 90 s (its
        default names ``spontaneous_activity``, which never matches); pass ``{}`` to keep all.
        """
        return stimuli.get_stimulus_epochs(self._stimulus_tables.presentations, duration_thresholds)

    def get_stimulus_parameter_values(
        self, stimulus_presentation_ids: list[int] | None = None, drop_nulls: bool = True
    ) -> dict[str, np.ndarray]:
        """Parameter name → the unique values it takes over the given presentations (all when None)."""
        return stimuli.get_stimulus_parameter_values(
            self._stimulus_tables.presentations, stimulus_presentation_ids, drop_nulls=drop_nulls
        )

    def get_parameter_values_for_stimulus(
        self, stimulus_name: str, drop_nulls: bool = True
    ) -> dict[str, np.ndarray]:
        """Parameter name → unique values, over the presentations of one stimulus."""
        return stimuli.get_parameter_values_for_stimulus(
            self._stimulus_tables.presentations, stimulus_name, drop_nulls=drop_nulls
        )

    @cached_property
    def inter_presentation_intervals(self) -> pd.DataFrame:
        """Gap (s) from each presentation's stop to the next one's start, by (from, to) ids."""
        return stimuli.inter_presentation_intervals(self._stimulus_tables.presentations)

    def get_inter_presentation_intervals_for_stimulus(self, stimulus_names: str | list[str]) -> pd.DataFrame:
        """The inter-presentation intervals between presentations of the named stimuli."""
        return stimuli.get_inter_presentation_intervals_for_stimulus(
            self._stimulus_tables.presentations, stimulus_names, intervals=self.inter_presentation_intervals
        )

    @cached_property
    def invalid_times(self) -> pd.DataFrame:
        """Invalid intervals: start_time, stop_time (s) and tags ([scope, id, label])."""
        return stimuli.invalid_times(self._nwb.file)

    def get_invalid_times(self) -> pd.DataFrame:
        """The invalid intervals (a copy of ``invalid_times``)."""
        return self.invalid_times.copy()

    @cached_property
    def running_speed(self) -> pd.DataFrame:
        """Running speed: start_time, end_time (s) and velocity (cm/s)."""
        return stimuli.running_speed(self._nwb.file)

    @cached_property
    def optogenetic_stimulation_epochs(self) -> pd.DataFrame:
        """Optotagging laser epochs: start/stop (s), condition, level, stimulus_name, duration (s)."""
        return stimuli.optogenetic_stimulation_epochs(self._nwb.file)

    def get_pupil_data(self) -> pd.DataFrame:
        """Pupil, corneal-reflection and eye ellipse fits by frame time (index ``Time (s)``)."""
        return stimuli.pupil_data(self._nwb.file)

    def get_screen_gaze_data(self, include_filtered_data: bool = False) -> pd.DataFrame:
        """Gaze position on the screen (cm, degrees) and eye/pupil areas by frame time."""
        return stimuli.screen_gaze_data(self._nwb.file, include_filtered_data=include_filtered_data)

    # -- spike analysis aligned to stimuli -------------------------------------------------
    def _lookup(self, table: pd.DataFrame, what: str) -> _TableLookup:
        lookup = self._lookups.get(what)
        if lookup is None or lookup.table is not table:
            lookup = self._lookups[what] = _TableLookup(table)
        return lookup

    def _positions(self, lookup: _TableLookup, ids: object, what: str) -> np.ndarray:
        """Rows of ``ids`` in the lookup's table, in the order given; clear error for unknown ids."""
        wanted = np.atleast_1d(np.asarray(ids))
        positions = lookup.positions(wanted)
        if bool(np.any(positions < 0)):
            unknown = pd.unique(wanted[positions < 0])
            raise UnknownIdError(
                f"session {self.ecephys_session_id}: {len(unknown)} {what} id(s) not in session.{what}s "
                f"(for example {unknown[:5].tolist()}); pick ids from its index"
            )
        return positions

    def _select(
        self, table: pd.DataFrame, ids: object | None, what: str, columns: list[str]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The index values and ``columns`` (as arrays) of the rows of ``table`` for ``ids``, in the
        order given (all rows when None): only what an analysis uses, not whole rows of a wide table."""
        lookup = self._lookup(table, what)
        if ids is None:
            return lookup.ids, {c: lookup.column(c) for c in columns}
        positions = self._positions(lookup, ids, what)
        return lookup.ids[positions], {c: lookup.column(c)[positions] for c in columns}

    def _spike_arrays(self, unit_ids: object | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All spike times (s), the selected units' (n, 2) bounds in them, and their ids (units order)."""
        lookup = self._lookup(self.units, "unit")
        ids = lookup.ids.astype(np.int64, copy=False)
        if unit_ids is not None:
            ids = ids[self._positions(lookup, unit_ids, "unit")]
        self._warn_invalid_spikes_once()
        flat, bounds = self._spike_times.bounds(ids)
        self._check_spikes_sorted()
        return flat, bounds, ids

    def _check_spikes_sorted(self) -> None:
        """Check once per session that every unit's spike times are sorted (the analyses rely on it)."""
        if self._spikes_sorted:
            return
        flat, bounds = self._spike_times.bounds()
        ids = self._spike_times.unit_ids
        try:
            spikes.check_spike_arrays(flat, bounds, ids)
        except ValueError as err:
            raise NWBFormatError(
                f"{self._nwb.name}: {err}; the file's spike times are out of order, so they cannot be "
                "binned. Download the file again, or report the file if it is whole.",
                path=self._nwb.name,
            ) from err
        self._spikes_sorted = True

    def presentationwise_spike_counts(
        self,
        bin_edges: np.ndarray,
        stimulus_presentation_ids: object,
        unit_ids: object,
        binarize: bool = False,
        dtype: np.dtype | str | None = None,
        large_bin_size_threshold: float = 0.001,
        time_domain_callback: object = None,
        rates: bool = False,
    ) -> xr.DataArray:
        """Spikes per bin around each presentation's onset: DataArray 'spike_counts'.

        Dims (stimulus_presentation_id, time_relative_to_stimulus_onset, unit_id); ``bin_edges``
        in seconds relative to onset; bins are half-open ``[a, b)``; ``rates=True`` gives
        spikes/s. Overlapping windows are each counted in full (AllenSDK issue 813).
        """
        presentation_ids, columns = self._select(
            self._stimulus_tables.presentations,
            stimulus_presentation_ids,
            "stimulus_presentation",
            ["start_time"],
        )
        flat, offsets, ids = self._spike_arrays(unit_ids)
        return spikes.presentationwise_spike_counts(
            flat,
            offsets,
            ids,
            bin_edges,
            presentation_ids,
            columns["start_time"],
            binarize=binarize,
            dtype=dtype,
            large_bin_size_threshold=large_bin_size_threshold,
            time_domain_callback=time_domain_callback,
            rates=rates,
            check_sorted=False,
        )

    def presentationwise_spike_times(
        self, stimulus_presentation_ids: object | None = None, unit_ids: object | None = None
    ) -> pd.DataFrame:
        """Each spike inside a presentation (start < t <= stop), indexed by ``spike_time`` (s)."""
        presentation_ids, columns = self._select(
            self._stimulus_tables.presentations,
            stimulus_presentation_ids,
            "stimulus_presentation",
            ["start_time", "stop_time"],
        )
        flat, offsets, ids = self._spike_arrays(unit_ids)
        return spikes.presentationwise_spike_times(
            flat,
            offsets,
            ids,
            presentation_ids,
            columns["start_time"],
            columns["stop_time"],
            check_sorted=False,
        )

    def conditionwise_spike_statistics(
        self,
        stimulus_presentation_ids: object | None = None,
        unit_ids: object | None = None,
        use_rates: bool = False,
    ) -> pd.DataFrame:
        """Spike count (or rate, spikes/s) mean, std and sem per (unit_id, stimulus_condition_id).

        Without ``unit_ids``, as in the AllenSDK, only units that spiked in the selected
        presentations are listed.
        """
        _, columns = self._select(
            self._stimulus_tables.presentations,
            stimulus_presentation_ids,
            "stimulus_presentation",
            ["start_time", "stop_time", "stimulus_condition_id", "duration"],
        )
        flat, offsets, ids = self._spike_arrays(unit_ids)
        counts = spikes.spike_counts_per_presentation(
            flat, offsets, columns["start_time"], columns["stop_time"], check_sorted=False
        )
        if unit_ids is None:
            spiked = counts.sum(axis=0) > 0
            counts, ids = counts[:, spiked], ids[spiked]
        return spikes.conditionwise_spike_statistics(
            counts,
            ids,
            columns["stimulus_condition_id"],
            durations=columns["duration"],
            use_rates=use_rates,
        )

    # -- LFP and CSD -------------------------------------------------------------------------
    def _probe_row(self, probe_id: int) -> pd.Series:
        try:
            return self.probes.loc[int(probe_id)]
        except (KeyError, TypeError, ValueError) as err:
            raise UnknownProbeError(
                f"session {self.ecephys_session_id} has no probe {probe_id!r}; its probes are "
                f"{self.probes.index.tolist()} (see session.probes)"
            ) from err

    def _lfp_file(self, probe_id: int) -> ProbeLFPFile:
        """The open LFP file of a probe: from ``lfp_paths``, else beside the session file."""
        probe = self._probe_row(probe_id)
        probe_id = int(probe_id)
        if probe_id in self._lfp_files:
            return self._lfp_files[probe_id]
        with_lfp = self.probes.index[self.probes["has_lfp_data"]].tolist()
        if not bool(probe["has_lfp_data"]):
            raise MissingDataError(
                f"probe {probe_id} ({probe['description']}) of session {self.ecephys_session_id} has no LFP "
                f"data (has_lfp_data is False); probes with LFP: {with_lfp}"
            )
        source = self.lfp_paths.get(probe_id)
        if source is None and self._lfp_fetcher is not None:
            source = self._lfp_fetcher(probe_id)
            if hasattr(source, "read"):
                self._owned.append(source)
        if source is None:
            if self._nwb.path is None:
                raise MissingDataError(
                    f"probe {probe_id}: no LFP file given for this session; pass "
                    "lfp_paths={probe_id: path} to open_session, or open it through an EcephysProjectCache."
                )
            source = lfp_path_beside(self._nwb.path, probe_id)
        if isinstance(source, str | os.PathLike) and not os.path.exists(source):
            raise SessionFileNotFound(
                f"probe {probe_id} ({probe['description']}): its LFP file {source} does not exist; "
                "download it (EcephysProjectCache.get_session_data(...).get_lfp downloads it, as does "
                "`ecephys download --lfp`) or pass lfp_paths={probe_id: path} to open_session.",
                path=source,
            )
        self._lfp_files[probe_id] = ProbeLFPFile(source, probe_id)
        return self._lfp_files[probe_id]

    def get_lfp(
        self,
        probe_id: int,
        mask_invalid_intervals: bool = True,
        *,
        time: TimeWindow = None,
        channels: list[int] | np.ndarray | None = None,
        lazy: bool = False,
    ) -> xr.DataArray:
        """LFP of one probe in volts: DataArray 'LFP' over (time in s, channel id).

        ``time=slice(start, stop)`` (inclusive, as ``.sel``) and ``channels=[ids]`` read only that
        part of the file; ``lazy=True`` returns a dask-backed array of the whole series. Samples in
        invalid intervals tagged with this probe or ``all_probes`` are NaN unless
        ``mask_invalid_intervals=False``.
        """
        lfp_file = self._lfp_file(probe_id)
        lfp = lfp_file.read_lazy(channels) if lazy else lfp_file.read(time, channels)
        if lazy and time is not None:
            lfp = lfp.sel(time=time if isinstance(time, slice) else slice(*time))
        if not mask_invalid_intervals:
            return lfp
        tags = [self._probe_row(probe_id)["description"], "all_probes"]
        invalid = stimuli.filter_invalid_times_by_tags(self.invalid_times, tags)
        masked = _invalid_samples(lfp["time"].to_numpy(), invalid)
        if not masked.any():
            return lfp
        if lazy:
            return lfp.where(xr.DataArray(~masked, dims=["time"]))
        lfp.values[masked, :] = np.nan
        return lfp

    def get_current_source_density(self, probe_id: int) -> xr.DataArray:
        """Flash-evoked current source density of one probe (V/cm²) over (virtual channel, time in s)."""
        return self._lfp_file(probe_id).current_source_density()

    def channel_structure_intervals(
        self, channel_ids: list[int] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Runs of consecutive channels in the same structure: labels and (n + 1) boundary indices.

        Channels are taken in the order given. Without the project cache (whose structure ids the
        AllenSDK needs, else KeyError) the unstripped acronyms of the file's locations are used.
        """
        channel_ids = np.asarray(channel_ids)
        table = self.channels.loc[channel_ids]
        if table["probe_id"].nunique() > 1:
            warnings.warn(
                "channel_structure_intervals: the channels come from several probes; "
                "structure boundaries across probes are not meaningful.",
                EcephysWarning,
                stacklevel=2,
            )
        if "ecephys_structure_id" in table:
            keys = table["ecephys_structure_id"].to_numpy()
            labels = table["ecephys_structure_acronym"].to_numpy()
        else:
            labels = self._channel_structures.reindex(channel_ids).to_numpy()
            keys = labels
        intervals = _run_boundaries(keys)
        return labels[intervals[:-1]], intervals

    # -- other tools -------------------------------------------------------------------------
    def to_pynapple(self) -> dict[str, Any]:
        """The session as pynapple objects (needs ``ecephys[pynapple]``): ``units`` (TsGroup of the
        filtered units, their columns as metadata), IntervalSets ``stimulus_presentations``,
        ``stimulus_epochs`` and ``invalid_times``, and ``running_speed`` (Tsd, cm/s)."""
        from ecephys.interop import to_pynapple

        intervals = {
            "stimulus_presentations": self.stimulus_presentations,
            "stimulus_epochs": self.get_stimulus_epochs(),
            "invalid_times": self.invalid_times,
        }
        return to_pynapple(self.spike_times, self.units, intervals, running_speed=self.running_speed)

    def _warn_invalid_spikes_once(self, *, deferrable: bool = False) -> None:
        """Make the invalid-interval check once; ``deferrable``: not yet if it costs round trips."""
        if self._warned_invalid_spikes:
            return
        if deferrable and self._owned and "_stimulus_tables" not in self.__dict__:
            return  # streamed and /intervals not read yet: the group lookup alone is ~5 requests
        self._warned_invalid_spikes = True
        self._warn_invalid_spike_intervals()

    def _warn_invalid_spike_intervals(self) -> None:
        """Warn when invalid intervals touch this session's probes (the AllenSDK's notice)."""
        tags = {*self.probes["description"], "all_probes"}
        group = self._nwb.file.get("intervals/invalid_times")
        if group is None or "tags" not in group:
            return
        # Only the tags are needed: cheaper than building the invalid_times table on this path.
        if any(tags.intersection(row) for row in read_ragged_lists(group, "tags")):
            warnings.warn(
                f"session {self.ecephys_session_id} has invalid time intervals (see "
                "session.invalid_times); spikes inside them may need to be excluded from analysis.",
                EcephysWarning,
                stacklevel=4,
            )


def _invalid_samples(times: np.ndarray, invalid: pd.DataFrame) -> np.ndarray:
    """Boolean mask of samples inside any invalid interval (closed: start <= t <= stop)."""
    masked = np.zeros(len(times), dtype=bool)
    if invalid.empty:
        return masked
    starts = np.searchsorted(times, invalid["start_time"].to_numpy(), side="left")
    stops = np.searchsorted(times, invalid["stop_time"].to_numpy(), side="right")
    change = np.zeros(len(times) + 1, dtype=np.int64)
    np.add.at(change, starts, 1)
    np.add.at(change, stops, -1)
    return np.cumsum(change[:-1]) > 0


def _run_boundaries(values: np.ndarray) -> np.ndarray:
    """Start indices of runs of equal values (NaN equal to NaN), plus len(values) at the end."""
    if len(values) == 0:
        return np.array([0], dtype=np.int64)
    codes, _ = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    starts = np.flatnonzero(np.diff(codes) != 0) + 1
    return np.concatenate([[0], starts, [len(values)]]).astype(np.int64)


def open_session(
    path: PathLike | IO[bytes],
    *,
    amplitude_cutoff_maximum: float | None = 0.1,
    presence_ratio_minimum: float | None = 0.95,
    isi_violations_maximum: float | None = 0.5,
    filter_by_validity: bool = True,
    filter_out_of_brain_units: bool = True,
    lfp_paths: Mapping[int, PathLike] | None = None,
    endpoint_url: str | None = None,
    retries: int | RetryPolicy = 5,
    timeout: float = 30.0,
    block_cache: PathLike | None = None,
) -> EcephysSession:
    """Open an Allen ecephys session NWB file (cheap: tables are read when first used).

    ``path`` is a local path, a seekable binary file object, or a URL: ``s3://bucket/key.nwb``
    or ``https://host/path.nwb`` (any server that honours Range). A URL is streamed, not
    downloaded: only the parts of the file that are read come over the network (see
    :attr:`EcephysSession.bytes_fetched`), and LFP files are streamed from beside it
    (``probe_<id>_lfp.nwb`` in the same folder). ``endpoint_url`` points ``s3://`` URLs at
    another S3-compatible server; ``retries`` (or a :class:`~ecephys.sources.RetryPolicy`)
    and ``timeout`` (seconds per socket read) apply to every request. ``block_cache``, a
    folder, keeps the blocks read on disk so that opening the URL again reads them locally.

    The other keyword arguments are the AllenSDK's unit filters; ``None`` or ±inf turns one off.
    ``lfp_paths`` maps probe id → LFP file; by default the files beside the session file
    (``probe_<id>_lfp.nwb``, the cache layout) are used.
    """
    filters = UnitFilters.from_kwargs(
        amplitude_cutoff_maximum=amplitude_cutoff_maximum,
        presence_ratio_minimum=presence_ratio_minimum,
        isi_violations_maximum=isi_violations_maximum,
        filter_by_validity=filter_by_validity,
        filter_out_of_brain_units=filter_out_of_brain_units,
    )
    if isinstance(path, str) and "://" in path and not path.lower().startswith("file://"):
        source, key = source_for_url(path, endpoint_url=endpoint_url, timeout=timeout)
        try:
            session = stream_session(
                source, key, filters=filters, lfp_paths=lfp_paths, retries=retries, block_cache=block_cache
            )
        except BaseException:
            source.close()
            raise
        session._owned.append(source)  # made for this URL: its connections close with the session
        return session
    return EcephysSession(AllenSessionFile(path), filters=filters, lfp_paths=lfp_paths)


def stream_session(
    source: Source,
    key: str,
    *,
    filters: UnitFilters | None = None,
    lfp_key: Callable[[int], str] | None = None,
    retries: int | RetryPolicy = 5,
    block_cache: PathLike | None = None,
    **kwargs: Any,
) -> EcephysSession:
    """A session read from ``key`` of ``source`` through a :class:`RemoteFile`, LFP files too.

    ``lfp_key(probe_id)`` names a probe's LFP file in ``source``; by default the file
    ``probe_<id>_lfp.nwb`` beside ``key``. ``block_cache``: a folder for an on-disk copy of
    the blocks read (see :class:`RemoteFile`). Other keyword arguments go to :class:`EcephysSession`.
    """
    open_lfp = _RemoteLFP(source, lfp_key or _LFPKeyBeside(key), retries, block_cache)
    remote = RemoteFile(source, key, retries=retries, block_cache=block_cache)
    return _reopen_session(remote, dict(filters=filters, lfp_fetcher=open_lfp, **kwargs))


@dataclass(frozen=True)
class _LFPKeyBeside:
    """The key of a probe's LFP file beside a session's ``key``; a class so that it pickles."""

    key: str

    def __call__(self, probe_id: int) -> str:
        return key_beside(self.key, f"probe_{int(probe_id)}_lfp.nwb")


@dataclass(frozen=True)
class _RemoteLFP:
    """Opens a streamed session's LFP files from ``source``; a class so that the session pickles."""

    source: Source
    lfp_key: Callable[[int], str]
    retries: int | RetryPolicy = 5
    block_cache: PathLike | None = None

    def __call__(self, probe_id: int) -> RemoteFile:
        key = self.lfp_key(probe_id)
        return RemoteFile(self.source, key, retries=self.retries, block_cache=self.block_cache)


def _reopen_session(source: PathLike | RemoteFile, options: dict[str, Any]) -> EcephysSession:
    """A session over a path or a RemoteFile (then closed with it): how a pickled one comes back."""
    owned = [source] if isinstance(source, RemoteFile) else []
    try:
        nwb = AllenSessionFile(source)
    except BaseException:
        for stream in owned:
            stream.close()
        raise
    return EcephysSession(nwb, owned=owned, **options)
