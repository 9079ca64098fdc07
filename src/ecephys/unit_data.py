"""Per-unit data of a session as read-on-demand mappings: spike times, amplitudes, waveforms.

:class:`UnitArrays` serves one ragged units column (``spike_times``, ``spike_amplitudes``) as
unit id → array, reading one unit's slice on demand or the whole flat dataset once;
:class:`UnitWaveforms` builds mean-waveform DataArrays when first asked for. They behave as
the AllenSDK's dicts do (same keys, same values) without building them whole.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from ecephys.nwb.allen import RaggedColumn

if TYPE_CHECKING:
    from ecephys.session import EcephysSession

__all__ = ["UnitArrays", "UnitWaveforms"]


class UnitArrays(Mapping[int, np.ndarray]):
    """unit id → per-unit array (spike times in s, amplitudes in V), read from the file on demand.

    Indexing one unit reads only that unit's slice; iterating over values reads the whole flat
    dataset once and hands out views of it. ``flat`` and ``offsets`` give the concatenated data
    of the units in this mapping for vectorised analysis.
    """

    def __init__(self, column: RaggedColumn, file_unit_ids: np.ndarray, unit_ids: np.ndarray) -> None:
        self._column = column
        self._row_of = {int(u): i for i, u in enumerate(file_unit_ids)}
        self._unit_ids = np.asarray(unit_ids, dtype=np.int64)
        self._keys = frozenset(int(u) for u in self._unit_ids)
        # The keys sorted, with their rows in the file: a whole selection is looked up at once.
        self._sorted_keys = np.unique(self._unit_ids)
        self._sorted_rows = np.fromiter(
            (self._row_of[int(u)] for u in self._sorted_keys), dtype=np.int64, count=len(self._sorted_keys)
        )

    def __getitem__(self, unit_id: int) -> np.ndarray:
        key = int(unit_id)
        if key not in self._keys:
            raise KeyError(unit_id)
        return self._column.row(self._row_of[key])

    def __iter__(self) -> Iterator[int]:
        return (int(u) for u in self._unit_ids)

    def __len__(self) -> int:
        return len(self._unit_ids)

    def __contains__(self, unit_id: object) -> bool:
        try:
            return int(unit_id) in self._keys  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return False

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {len(self)} units, {self._column.name}>"

    def load(self) -> UnitArrays:
        """Read every unit's data now (one read of the flat dataset); returns self."""
        self._column.load()
        return self

    def values(self):  # type: ignore[override]
        self.load()
        return super().values()

    def items(self):  # type: ignore[override]
        self.load()
        return super().items()

    @property
    def unit_ids(self) -> np.ndarray:
        """The unit ids of this mapping, in its order (int64)."""
        return self._unit_ids.copy()

    @property
    def row_slices(self) -> tuple[np.ndarray, np.ndarray]:
        """Start and stop offsets of each unit (in ``unit_ids`` order) in the file's flat dataset."""
        return self._slices_of(self._unit_ids)

    def _slices_of(self, unit_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        wanted = np.asarray(unit_ids, dtype=np.int64).reshape(-1)
        at = np.searchsorted(self._sorted_keys, wanted).clip(0, max(len(self._sorted_keys) - 1, 0))
        found = self._sorted_keys[at] == wanted if len(self._sorted_keys) else np.zeros(len(wanted), bool)
        if not bool(np.all(found)):
            raise KeyError(int(wanted[np.argmin(found)]))
        rows = self._sorted_rows[at]
        offsets = self._column.offsets
        return offsets[rows], offsets[rows + 1]

    def bounds(self, unit_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The file's whole flat dataset (read once) and each unit's ``[start, stop)`` in it, (n, 2).

        No spike is copied: this is what the spike analyses take (:mod:`ecephys.spikes`).
        """
        starts, stops = self.row_slices if unit_ids is None else self._slices_of(unit_ids)
        return self._column.load(), np.stack([starts, stops], axis=1)

    def flat(self, unit_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Concatenated data of ``unit_ids`` (default: all, in order) and the (n + 1,) offsets into it."""
        starts, stops = self.row_slices if unit_ids is None else self._slices_of(unit_ids)
        lengths = stops - starts
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        data = self._column.load()
        if np.array_equal(starts[1:], stops[:-1]) and (len(starts) == 0 or starts[0] == 0):
            return data[: offsets[-1]], offsets
        if len(starts) == 0:
            return data[:0].copy(), offsets
        index = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return data[index], offsets


class UnitWaveforms(Mapping[int, xr.DataArray]):
    """unit id → mean waveform DataArray (channel_id × time), µV, built when first asked for."""

    def __init__(self, session: EcephysSession) -> None:
        self._session = session
        self._cache: dict[int, xr.DataArray] = {}

    def _unit_ids(self) -> np.ndarray:
        return self._session._retained_unit_ids_file_order

    def __getitem__(self, unit_id: int) -> xr.DataArray:
        key = int(unit_id)
        if key not in self._cache:
            self._cache[key] = self._session._mean_waveform(key)
        return self._cache[key]

    def __iter__(self) -> Iterator[int]:
        return (int(u) for u in self._unit_ids())

    def __len__(self) -> int:
        return len(self._unit_ids())

    def __contains__(self, unit_id: object) -> bool:
        try:
            return int(unit_id) in self._session._retained_unit_set  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return False

    def __repr__(self) -> str:
        return f"<UnitWaveforms: {len(self)} units>"
