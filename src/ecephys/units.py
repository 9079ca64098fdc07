"""The AllenSDK-compatible channels and units tables: unit quality filters, merges and renames.

Pure pandas over what :class:`ecephys.nwb.allen.AllenSessionFile` read, so the same rules serve
the session and (later) the project cache. The filters run in the AllenSDK's order: peak
channel valid and in the brain, ``quality == "good"``, then the three metric thresholds.

Deliberate differences from the AllenSDK 2.16.2 (docs/differences.md):

* a threshold of ``0`` means zero, not "no filter" (the AllenSDK's ``value or np.inf``);
* an infinite threshold (``np.inf``/``-np.inf``/``None``) applies no filter at all, so units
  whose metric is NaN are kept (the AllenSDK drops them even when asked for everything).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "UNIT_FILTER_DEFAULTS",
    "UnitFilters",
    "build_channels_table",
    "build_units_table",
    "filter_units",
    "merge_external_channel_columns",
    "shape_units",
    "strip_substructure",
]

#: Default thresholds and what ``None`` stands for, as in the AllenSDK.
UNIT_FILTER_DEFAULTS: dict[str, tuple[float, float]] = {
    "amplitude_cutoff_maximum": (0.1, np.inf),
    "presence_ratio_minimum": (0.95, -np.inf),
    "isi_violations_maximum": (0.5, np.inf),
}

#: The unit metrics the AllenSDK's ``Unit`` object carries, in its (sorted) column order.
#: ``waveform_halfwidth`` is stored in the 2020 files but the AllenSDK never shows it.
UNIT_COLUMNS: tuple[str, ...] = tuple(
    sorted(
        [
            "PT_ratio",
            "amplitude",
            "amplitude_cutoff",
            "cluster_id",
            "cumulative_drift",
            "d_prime",
            "firing_rate",
            "isi_violations",
            "isolation_distance",
            "l_ratio",
            "local_index",
            "max_drift",
            "nn_hit_rate",
            "nn_miss_rate",
            "peak_channel_id",
            "presence_ratio",
            "quality",
            "recovery_slope",
            "repolarization_slope",
            "silhouette_score",
            "snr",
            "spread",
            "velocity_above",
            "velocity_below",
            "waveform_duration",
        ]
    )
)

#: Unit metric names as users know them: waveform metrics get a ``waveform_`` prefix.
METRIC_RENAMES = {
    "PT_ratio": "waveform_PT_ratio",
    "amplitude": "waveform_amplitude",
    "duration": "waveform_duration",
    "halfwidth": "waveform_halfwidth",
    "recovery_slope": "waveform_recovery_slope",
    "repolarization_slope": "waveform_repolarization_slope",
    "spread": "waveform_spread",
    "velocity_above": "waveform_velocity_above",
    "velocity_below": "waveform_velocity_below",
    "l_ratio": "L_ratio",
}

UNIT_RENAMES = {
    "description": "probe_description",
    "local_index_channel": "channel_local_index",
    **METRIC_RENAMES,
    "sampling_rate": "probe_sampling_rate",
    "lfp_sampling_rate": "probe_lfp_sampling_rate",
    "has_lfp_data": "probe_has_lfp_data",
    "pref_images_multi_ns": "pref_image_multi_ns",
}

SORT_UNITS_BY = ["probe_description", "probe_vertical_position", "probe_horizontal_position"]


@dataclass(frozen=True)
class UnitFilters:
    """Which units a session shows: the AllenSDK's quality filters, with its defaults."""

    amplitude_cutoff_maximum: float = 0.1
    presence_ratio_minimum: float = 0.95
    isi_violations_maximum: float = 0.5
    filter_by_validity: bool = True
    filter_out_of_brain_units: bool = True

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> UnitFilters:
        """Build from AllenSDK-style keyword arguments; ``None`` means no limit (±inf)."""
        unknown = set(kwargs) - set(cls.__dataclass_fields__)
        if unknown:
            raise TypeError(
                f"unknown unit filter argument(s) {sorted(unknown)}; "
                f"expected some of {sorted(cls.__dataclass_fields__)}"
            )
        values: dict[str, Any] = {}
        for key, (default, missing) in UNIT_FILTER_DEFAULTS.items():
            value = kwargs.get(key, default)
            values[key] = missing if value is None else float(value)
        values["filter_by_validity"] = bool(kwargs.get("filter_by_validity", True))
        values["filter_out_of_brain_units"] = bool(kwargs.get("filter_out_of_brain_units", True))
        return cls(**values)


def strip_substructure(acronyms: pd.Series) -> pd.Series:
    """Structure acronyms without the sub-region (``LGd-sh`` → ``LGd``); None when out of brain."""
    text = acronyms.astype(object)
    missing = text.isna() | text.isin(["", "None"])
    stripped = text.where(missing, text.str.split("-").str[0])
    return stripped.where(~missing, None).astype(object)


def build_channels_table(electrodes: pd.DataFrame, *, filter_by_validity: bool = True) -> pd.DataFrame:
    """The AllenSDK's ``session.channels`` from the electrodes table (index ``id``)."""
    n = len(electrodes)
    filtering = (
        electrodes["filtering"]
        if "filtering" in electrodes
        else pd.Series(["AP band: 500 Hz high-pass; LFP band: 1000 Hz low-pass"] * n, index=electrodes.index)
    )
    nan = np.full(n, np.nan)
    channels = pd.DataFrame(
        {
            "anterior_posterior_ccf_coordinate": electrodes.get("x", nan),
            "dorsal_ventral_ccf_coordinate": electrodes.get("y", nan),
            "filtering": filtering.astype(object),
            "left_right_ccf_coordinate": electrodes.get("z", nan),
            "probe_channel_number": electrodes["probe_channel_number"].astype(np.int64),
            "probe_horizontal_position": electrodes["probe_horizontal_position"].astype(np.int64),
            "probe_id": electrodes["probe_id"].astype(np.int64),
            "probe_vertical_position": electrodes["probe_vertical_position"].astype(np.int64),
            "structure_acronym": strip_substructure(electrodes["location"]),
            "valid_data": electrodes["valid_data"].astype(bool) if "valid_data" in electrodes else True,
        },
        index=electrodes.index,
    )
    if filter_by_validity:
        channels = channels[channels["valid_data"]].drop(columns=["valid_data"])
    return channels


def merge_external_channel_columns(channels: pd.DataFrame, external: pd.DataFrame) -> pd.DataFrame:
    """Channels with columns from outside the file (a project cache's ``channels.csv``), by channel id.

    As the AllenSDK does with what its cache passes in: columns of ``external`` replace those of
    the same name, come after the file's other columns, and only channels listed in both are
    kept (an inner join on the index, in ``channels`` order).
    """
    kept = channels.drop(columns=[c for c in external.columns if c in channels.columns])
    return pd.merge(kept, external, left_index=True, right_index=True, how="inner")


def shape_units(units: pd.DataFrame, channel_probe_ids: pd.Series, probe_ids: pd.Index) -> pd.DataFrame:
    """Units as the AllenSDK lists them before filtering: grouped by probe, its columns, NaN for gaps.

    ``channel_probe_ids`` maps channel id → probe id; a unit whose peak channel belongs to no
    probe of the file is left out, as the AllenSDK does.
    """
    unit_probe = units["peak_channel_id"].map(channel_probe_ids)
    order = np.concatenate([np.flatnonzero((unit_probe == pid).to_numpy()) for pid in probe_ids] or [[]])
    shaped = units.iloc[order.astype(np.int64)]
    columns = {}
    for name in UNIT_COLUMNS:
        columns[name] = shaped[name] if name in shaped else pd.Series(np.nan, index=shaped.index)
    return pd.DataFrame(columns, index=shaped.index)


def filter_units(units: pd.DataFrame, channels_all: pd.DataFrame, filters: UnitFilters) -> pd.DataFrame:
    """Apply the quality filters in the AllenSDK's order; ``channels_all`` still has ``valid_data``."""
    if filters.filter_by_validity or filters.filter_out_of_brain_units:
        keep = pd.Series(True, index=channels_all.index)
        if filters.filter_by_validity:
            keep &= channels_all["valid_data"].astype(bool)
        if filters.filter_out_of_brain_units:
            keep &= channels_all["structure_acronym"].notna()
        units = units[units["peak_channel_id"].isin(channels_all.index[keep.to_numpy()])]
    if filters.filter_by_validity:
        units = units[units["quality"] == "good"].drop(columns=["quality"])
    units = _at_most(units, "amplitude_cutoff", filters.amplitude_cutoff_maximum)
    units = _at_least(units, "presence_ratio", filters.presence_ratio_minimum)
    units = _at_most(units, "isi_violations", filters.isi_violations_maximum)
    return units


def _at_most(units: pd.DataFrame, column: str, limit: float) -> pd.DataFrame:
    if np.isposinf(limit):
        return units
    return units[units[column] <= limit]


def _at_least(units: pd.DataFrame, column: str, limit: float) -> pd.DataFrame:
    if np.isneginf(limit):
        return units
    return units[units[column] >= limit]


def build_units_table(units: pd.DataFrame, channels: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    """Merge filtered units with their peak channel and probe, rename and sort as the AllenSDK does."""
    table = pd.merge(
        units, channels, left_on="peak_channel_id", right_index=True, suffixes=("_unit", "_channel")
    )
    table = pd.merge(table, probes, left_on="probe_id", right_index=True, suffixes=("_unit", "_probe"))
    table.index.name = "unit_id"
    table = table.rename(columns=UNIT_RENAMES)
    return table.sort_values(by=SORT_UNITS_BY)
