"""Read an Allen Visual Coding – Neuropixels session NWB file with h5py.

The reader returns the file's contents as plain arrays and DataFrames, close to how they are
stored; the AllenSDK-compatible shaping (unit filters, merges, renames) lives in
:mod:`ecephys.units` and :class:`ecephys.session.EcephysSession`. Every read is lazy and
done once: the file is opened once and nothing is re-parsed per property.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import IO

import h5py
import numpy as np
import pandas as pd

from ecephys.errors import MissingDataError, NotEcephysSessionError, NWBFormatError
from ecephys.nwb.h5 import decode_str, open_hdf5, read_scalar
from ecephys.nwb.table import column_names, object_text_columns, ragged_offsets, read_column, read_ids

__all__ = ["AllenSessionFile", "RaggedColumn"]

ELECTRODES = "general/extracellular_ephys/electrodes"
ELECTRODE_GROUPS = "general/extracellular_ephys"
DEFAULT_FILTERING = "AP band: 500 Hz high-pass; LFP band: 1000 Hz low-pass"


class RaggedColumn:
    """One ragged NWB column (``x`` + ``x_index``): rows read on demand, or all at once.

    ``offsets`` has n_rows + 1 entries; row ``i`` is ``data[offsets[i]:offsets[i+1]]``.
    Reading one row touches only its bytes; :meth:`load` reads the flat dataset once.
    """

    def __init__(self, table: h5py.Group, name: str) -> None:
        self._dataset = table[name]
        self.name = name
        self.offsets = ragged_offsets(table, name)
        self._flat: np.ndarray | None = None
        self._lock = threading.Lock()
        if self.offsets[-1] != self._dataset.shape[0]:
            raise NWBFormatError(
                f"{table.file.filename}: column {table.name}/{name} has {self._dataset.shape[0]} values "
                f"but its index ends at {self.offsets[-1]}; the file is corrupt, download it again."
            )

    @property
    def n_rows(self) -> int:
        return len(self.offsets) - 1

    @property
    def dtype(self) -> np.dtype:
        return self._dataset.dtype

    @property
    def loaded(self) -> bool:
        return self._flat is not None

    def load(self) -> np.ndarray:
        """Read the whole flat dataset (once) and return it."""
        with self._lock:
            if self._flat is None:
                flat = np.empty(self._dataset.shape, dtype=self._dataset.dtype)
                if flat.size:
                    self._dataset.read_direct(flat)
                self._flat = flat
            return self._flat

    def row(self, i: int) -> np.ndarray:
        """Row ``i``: a view of the loaded data, or a read of just that row's slice."""
        start, stop = int(self.offsets[i]), int(self.offsets[i + 1])
        if self._flat is not None:
            return self._flat[start:stop]
        return self._dataset[start:stop]


class AllenSessionFile:
    """An open Allen ecephys session file; each part is read the first time it is asked for.

    Parameters
    ----------
    source
        Path of the ``session_<id>.nwb`` file, or a seekable binary file-like object.
    """

    def __init__(self, source: str | os.PathLike | IO[bytes]) -> None:
        self.source = source
        self.path = None if hasattr(source, "read") else Path(os.fspath(source))
        self.file = open_hdf5(source, what="session NWB file")
        self._check_layout()

    def __repr__(self) -> str:
        return f"AllenSessionFile({self.name!r})"

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else str(getattr(self.source, "name", self.source))

    def close(self) -> None:
        """Close the HDF5 handle; the object can no longer read."""
        self.file.close()

    def _check_layout(self) -> None:
        missing = [p for p in ("identifier", "units", ELECTRODES) if p not in self.file]
        if missing:
            kind = "an NWB file" if "nwb_version" in self.file.attrs else "an HDF5 file"
            raise NotEcephysSessionError(
                f"{self.name}: {kind} but not an ecephys session file (it has no {', '.join(missing)}); "
                "give the path of a session_<id>.nwb file, not a probe LFP file or another dataset.",
                path=self.name,
            )

    # -- session-level metadata ---------------------------------------------------------
    @cached_property
    def session_id(self) -> int:
        """The ecephys session id, from the NWB ``identifier``."""
        text = decode_str(self.file["identifier"][()])
        try:
            return int(text)
        except ValueError as err:
            raise NotEcephysSessionError(
                f"{self.name}: identifier {text!r} is not a numeric ecephys session id; "
                "this does not look like an Allen Visual Coding session file.",
                path=self.name,
            ) from err

    @cached_property
    def session_start_time(self) -> datetime:
        """Session start as a timezone-aware datetime."""
        return _parse_datetime(decode_str(self.file["session_start_time"][()]))

    @cached_property
    def metadata(self) -> dict[str, object]:
        """Subject and session-type fields, as the AllenSDK's ``api.get_metadata()`` gives them."""
        subject = self.file.get("general/subject")
        if subject is None:
            raise MissingDataError(
                f"{self.name}: the file has no /general/subject; it holds no subject metadata."
            )

        def field(name: str) -> object:
            if name in subject:
                return read_scalar(subject, name)
            value = subject.attrs.get(name)
            return decode_str(value) if isinstance(value, bytes) else value

        age_in_days = field("age_in_days")
        return {
            "specimen_name": field("specimen_name"),
            "age_in_days": None if age_in_days is None else float(age_in_days),
            "full_genotype": field("genotype"),
            "strain": field("strain"),
            "sex": field("sex"),
            "stimulus_name": read_scalar(self.file["general"], "stimulus"),
            "subject_id": field("subject_id"),
            "age": field("age"),
            "species": field("species"),
        }

    @cached_property
    def rig_metadata(self) -> dict[str, object] | None:
        """Eye-tracking rig geometry (mm, degrees) and equipment name, or None when absent."""
        group = self.file.get("processing/eye_tracking_rig_metadata/eye_tracking_rig_metadata")
        if group is None:
            return None
        columns = {}
        for name in (
            "monitor_position",
            "camera_position",
            "led_position",
            "monitor_rotation",
            "camera_rotation",
        ):
            dset = group[name]
            unit = decode_str(dset.attrs.get("unit", ""))
            columns[f"{name}_{unit}"] = np.asarray(dset[()], dtype=np.float64)
        geometry = pd.DataFrame(columns, index=pd.Index(["x", "y", "z"], dtype=object))
        equipment = group.attrs.get("equipment")
        return {"geometry": geometry, "equipment": None if equipment is None else decode_str(equipment)}

    # -- probes and channels -------------------------------------------------------------
    @cached_property
    def probes(self) -> pd.DataFrame:
        """One row per electrode group (probe), indexed by probe ``id``, in file (name) order."""
        rows = []
        for name, group in self.file[ELECTRODE_GROUPS].items():
            if not isinstance(group, h5py.Group) or "probe_id" not in group.attrs:
                continue
            device = group.get("device")
            rows.append(
                {
                    "id": int(group.attrs["probe_id"]),
                    "description": name,
                    "location": decode_str(group.attrs.get("location", "")),
                    "sampling_rate": float(device.attrs["sampling_rate"]) if device is not None else np.nan,
                    "lfp_sampling_rate": float(group.attrs.get("lfp_sampling_rate", np.nan)),
                    "has_lfp_data": bool(group.attrs.get("has_lfp_data", False)),
                }
            )
        frame = pd.DataFrame(
            rows,
            columns=["id", "description", "location", "sampling_rate", "lfp_sampling_rate", "has_lfp_data"],
        )
        frame = frame.astype({"id": np.int64, "has_lfp_data": bool}).set_index("id")
        return object_text_columns(frame)

    @cached_property
    def electrodes(self) -> pd.DataFrame:
        """The electrodes table's scalar columns as stored, indexed by channel ``id``.

        ``local_index`` (2020 files) and ``probe_channel_number`` (2.16.2 writer) both come back
        as ``probe_channel_number``.
        """
        table = self.file[ELECTRODES]
        names = set(column_names(table)) | set(table.keys())
        if "local_index" in names and "probe_channel_number" in names:
            raise NWBFormatError(
                f"{self.name}: the electrodes table has both 'local_index' and 'probe_channel_number'; "
                "it is unclear which numbers the channels on the probe.",
                path=self.name,
            )
        number = "local_index" if "local_index" in names else "probe_channel_number"
        wanted = {
            "probe_id": "probe_id",
            number: "probe_channel_number",
            "probe_vertical_position": "probe_vertical_position",
            "probe_horizontal_position": "probe_horizontal_position",
            "valid_data": "valid_data",
            "location": "location",
            "x": "x",
            "y": "y",
            "z": "z",
            "filtering": "filtering",
        }
        for required in ("probe_id", number, "location"):
            if required not in table:
                raise NotEcephysSessionError(
                    f"{self.name}: the electrodes table has no {required!r} column; "
                    "this is not an Allen ecephys session file.",
                    path=self.name,
                )
        data = {new: read_column(table, old) for old, new in wanted.items() if old in table}
        return pd.DataFrame(data, index=pd.Index(read_ids(table), name="id"))

    # -- units ---------------------------------------------------------------------------
    @cached_property
    def units_group(self) -> h5py.Group:
        return self.file["units"]

    @cached_property
    def unit_ids(self) -> np.ndarray:
        """Unit ids in file order (int64)."""
        return read_ids(self.units_group)

    def unit_columns(self) -> list[str]:
        """Scalar (non-ragged, 1-D) column names of the units table."""
        group = self.units_group
        names = column_names(group) or [k for k in group if k != "id"]
        return [
            n
            for n in names
            if n in group
            and f"{n}_index" not in group
            and not (n.endswith("_index") and n[: -len("_index")] in group)
            and group[n].ndim == 1
            and group[n].dtype.names is None
        ]

    @cached_property
    def units(self) -> pd.DataFrame:
        """The units table's scalar columns as stored, indexed by unit ``id``.

        A float metric that the 2020 writer stored as empty strings (missing for every unit)
        comes back as NaN.
        """
        group = self.units_group
        data = {}
        for name in self.unit_columns():
            values = read_column(group, name)
            if values.dtype == object and name != "quality" and _all_empty(values):
                values = np.full(len(values), np.nan)
            data[name] = values
        frame = pd.DataFrame(data, index=pd.Index(self.unit_ids, name="id"))
        return object_text_columns(frame)

    def ragged_unit_column(self, name: str) -> RaggedColumn:
        """A ragged units column (``spike_times``, ``spike_amplitudes``, ``waveform_mean``)."""
        if name not in self.units_group or f"{name}_index" not in self.units_group:
            raise MissingDataError(f"{self.name}: the units table has no ragged column {name!r}.")
        return RaggedColumn(self.units_group, name)

    @cached_property
    def spike_times(self) -> RaggedColumn:
        """Spike times in seconds per unit (file order)."""
        return self.ragged_unit_column("spike_times")

    @cached_property
    def spike_amplitudes(self) -> RaggedColumn:
        """Spike amplitudes in volts per unit (file order)."""
        return self.ragged_unit_column("spike_amplitudes")

    @cached_property
    def waveform_mean(self) -> RaggedColumn:
        """Mean waveforms per unit, (channels of its probe × samples) in µV, file order."""
        return self.ragged_unit_column("waveform_mean")

    # -- intervals -----------------------------------------------------------------------
    def interval_table_names(self) -> list[str]:
        """Names of the tables under ``/intervals``."""
        group = self.file.get("intervals")
        return [] if group is None else list(group.keys())


def _all_empty(values: np.ndarray) -> bool:
    return len(values) > 0 and all(v == "" for v in values)


def _parse_datetime(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return pd.Timestamp(text).to_pydatetime()
