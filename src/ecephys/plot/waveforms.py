"""Each unit's mean spike waveform on its peak channel."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ecephys.errors import UnknownIdError
from ecephys.plot._common import figure_and_axes

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _peak_channel_of(peak_channels: Any, unit_ids: list, position: int) -> int:
    """The peak channel of ``unit_ids[position]``: looked up by unit id, or by position."""
    unit_id = unit_ids[position]
    if isinstance(peak_channels, pd.Series):
        return int(peak_channels.loc[unit_id])
    if isinstance(peak_channels, Mapping):
        return int(peak_channels[unit_id])
    return int(np.asarray(peak_channels)[position])


def plot_mean_waveforms(
    mean_waveforms: Mapping[int, xr.DataArray],
    unit_ids: Iterable[int],
    peak_channels: pd.Series | Mapping[int, int] | Iterable[int],
    *,
    ax: Axes | None = None,
    figsize: tuple[float, float] = (10, 10),
    legend: bool = True,
) -> Figure:
    """Plot each unit's mean waveform on its peak channel against time.

    Parameters
    ----------
    mean_waveforms : Mapping of unit id to xarray.DataArray
        As ``session.mean_waveforms``: per unit a DataArray (channel_id × time), in µV, with
        ``time`` in seconds from the start of the waveform snippet.
    unit_ids : iterable of int
        The units to plot, in legend order.
    peak_channels : pandas.Series, Mapping or sequence of int
        Each unit's peak channel id: a Series or Mapping keyed by unit id (such as
        ``session.units.peak_channel_id``), or a sequence in the order of ``unit_ids``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure is made when None.
    figsize : (float, float)
        Size in inches of a new figure; unused when ``ax`` is given.
    legend : bool
        Whether to add a legend of unit ids.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn into. The waveforms' Axes is ``ax`` when given, else
        ``fig.axes[0]``; it holds one line per unit, labelled with the unit id.
    """
    unit_ids = list(unit_ids)
    if not isinstance(peak_channels, Mapping | pd.Series):
        n_peaks = len(np.asarray(peak_channels))
        if n_peaks != len(unit_ids):
            raise ValueError(
                f"plot_mean_waveforms: peak_channels has {n_peaks} entries for {len(unit_ids)} "
                "unit_ids; pass one per unit, or a Series keyed by unit id "
                "(session.units.peak_channel_id)"
            )

    traces = []
    for position, unit_id in enumerate(unit_ids):
        waveform = mean_waveforms[unit_id]
        try:
            channel_id = _peak_channel_of(peak_channels, unit_ids, position)
        except KeyError as err:
            raise UnknownIdError(
                f"plot_mean_waveforms: no peak channel for unit {unit_id}; peak_channels must "
                "hold every unit in unit_ids (see session.units.peak_channel_id)"
            ) from err
        try:
            trace = waveform.sel(channel_id=channel_id)
        except KeyError as err:
            raise UnknownIdError(
                f"plot_mean_waveforms: unit {unit_id}'s peak channel {channel_id} is not among "
                f"the {waveform.sizes.get('channel_id', 0)} channels of its mean waveform; "
                "check that peak_channels comes from the same session"
            ) from err
        traces.append((unit_id, trace["time"].to_numpy() * 1e3, trace.to_numpy()))

    fig, ax = figure_and_axes(ax, figsize)
    for unit_id, time_ms, values in traces:
        ax.plot(time_ms, values, label=str(unit_id))
    if legend and traces:
        ax.legend(title="unit")
    ax.set_xlabel("time (ms)", fontsize=16)
    ax.set_ylabel("mean waveform (µV)", fontsize=16)
    if traces:
        ax.set_xlim(min(t[1][0] for t in traces), max(t[1][-1] for t in traces))
    return fig
