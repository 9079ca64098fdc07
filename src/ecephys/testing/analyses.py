"""Small per-session analyses for :meth:`EcephysProjectCache.map_sessions`, importable by Dask workers.

:func:`flash_response_table` is the kind of question ``map_sessions`` is for (every unit's
response to the full-field flashes, across sessions). :class:`FailFor` and :class:`ExitOnce`
wrap an analysis to fail on purpose — raise for some sessions, or end the worker process the
first time it meets a session — for tests and demonstrations of the failure handling.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ecephys.session import EcephysSession

__all__ = ["FLASH_BIN_EDGES", "ExitOnce", "FailFor", "flash_response_table", "unit_count"]

#: Seconds relative to each flash's onset: a baseline bin before it and a response bin after it.
FLASH_BIN_EDGES = np.array([-0.25, 0.0, 0.25])


def flash_response_table(session: EcephysSession) -> pd.DataFrame:
    """Each unit's mean firing rate (spikes/s) in the 250 ms before and after the flash onsets.

    Index ``unit_id`` (the session's filtered units); columns ``ecephys_structure_acronym``,
    ``baseline_rate``, ``flash_rate`` and ``n_flashes``. Bins are half-open ``[start, stop)``.
    """
    presentations = session.stimulus_presentations
    flashes = presentations.index[presentations["stimulus_name"] == "flashes"]
    units = session.units
    # Through a project cache the structures come from channels.csv; from a file alone, its own.
    structure = "ecephys_structure_acronym" if "ecephys_structure_acronym" in units else "structure_acronym"
    table = pd.DataFrame(
        {"ecephys_structure_acronym": units[structure].to_numpy(dtype=object)}, index=units.index
    )
    rates = np.full((len(FLASH_BIN_EDGES) - 1, len(units)), np.nan)
    if len(flashes) and len(units):
        counts = session.presentationwise_spike_counts(FLASH_BIN_EDGES, flashes, units.index, rates=True)
        rates = counts.mean(dim="stimulus_presentation_id").transpose(..., "unit_id").to_numpy()
    table["baseline_rate"], table["flash_rate"] = rates[0], rates[1]
    table["n_flashes"] = len(flashes)
    return table


def unit_count(session: EcephysSession) -> int:
    """How many units pass the session's filters (a cheap analysis: the units table only)."""
    return len(session.units)


@dataclass(frozen=True)
class FailFor:
    """``fn``, except that it raises ValueError for the sessions in ``session_ids``."""

    fn: Callable[[EcephysSession], Any]
    session_ids: tuple[int, ...]

    def __call__(self, session: EcephysSession) -> Any:
        if session.ecephys_session_id in self.session_ids:
            raise ValueError(f"session {session.ecephys_session_id}: failing on purpose (FailFor)")
        return self.fn(session)


@dataclass(frozen=True)
class ExitOnce:
    """``fn``, except that the process ends at once (``os._exit(1)``, as a killed worker would) the
    first time any process meets ``session_id``; the file ``marker``, created then, remembers."""

    fn: Callable[[EcephysSession], Any]
    session_id: int
    marker: str

    def __call__(self, session: EcephysSession) -> Any:
        if session.ecephys_session_id == self.session_id:
            try:
                with open(self.marker, "x"):
                    pass
            except FileExistsError:
                pass  # the second time: run as usual
            else:
                os._exit(1)
        return self.fn(session)
