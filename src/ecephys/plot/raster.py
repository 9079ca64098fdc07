"""A spike raster of the spikes around stimulus presentations."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ecephys.plot._common import figure_and_axes, label_rows, require_matplotlib

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure

_RELATIVE_COLUMN = "time_since_stimulus_presentation_onset"
_ROW_LABELS = {"unit_id": "unit", "stimulus_presentation_id": "stimulus presentation"}
_TICK_HEIGHT = 0.8  # of a row, so neighbouring rows stay apart


def raster_plot(
    spike_times: pd.DataFrame,
    figsize: tuple[float, float] = (8, 8),
    cmap: str | Colormap = "tab20",
    title: str = "spike raster",
    cycle_colors: bool = False,
    *,
    ax: Axes | None = None,
    relative_time: bool = False,
    rows: str = "unit_id",
    seed: int = 0,
    linewidth: float | None = None,
) -> Figure:
    """Draw one vertical tick per spike, one row per unit (or per other column's value).

    Parameters
    ----------
    spike_times : pandas.DataFrame
        As from ``session.presentationwise_spike_times(...)``: indexed by ``spike_time`` (s),
        with columns ``stimulus_presentation_id``, ``unit_id`` and
        ``time_since_stimulus_presentation_onset`` (s).
    figsize : (float, float)
        Size in inches of a new figure; unused when ``ax`` is given.
    cmap : str or matplotlib.colors.Colormap
        Colormap the row colours are taken from.
    title : str
        Axes title.
    cycle_colors : bool
        True: row ``i`` gets colour ``i`` of ``cmap`` (cycling). False: each row gets a colour
        of ``cmap`` drawn at random, reproducibly from ``seed``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure is made when None.
    relative_time : bool
        False: x is the spike time (s, session clock). True: x is the time since the onset of
        the spike's presentation (s), so presentations lie on top of one another.
    rows : str
        Column whose values make the rows, in ascending order from the bottom: ``"unit_id"``,
        or e.g. ``"stimulus_presentation_id"`` for a trial raster of one unit. Rows are
        labelled with their ids when there are at most 40 of them.
    seed : int
        Seed of the random row colours (``cycle_colors=False``).
    linewidth : float, optional
        Width of the ticks in points; matplotlib's default when None.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn into. The raster's Axes is ``ax`` when given, else ``fig.axes[0]``;
        all ticks are one LineCollection, ``ax.collections[-1]``, with one segment per spike.
    """
    require_matplotlib()
    import matplotlib

    if rows not in spike_times.columns:
        raise ValueError(
            f"raster_plot: rows={rows!r} is not a column of spike_times; "
            f"its columns are {list(spike_times.columns)}"
        )
    if relative_time:
        if _RELATIVE_COLUMN not in spike_times.columns:
            raise ValueError(
                f"raster_plot: relative_time=True needs the column {_RELATIVE_COLUMN!r} "
                "(from session.presentationwise_spike_times); spike_times has "
                f"{list(spike_times.columns)}"
            )
        x = spike_times[_RELATIVE_COLUMN].to_numpy(dtype=np.float64)
        xlabel = "time relative to stimulus onset (s)"
    else:
        x = spike_times.index.to_numpy(dtype=np.float64)
        xlabel = "time (s)"

    row_ids, row_of_spike = np.unique(spike_times[rows].to_numpy(), return_inverse=True)
    row_of_spike = row_of_spike.reshape(-1)
    n_rows = len(row_ids)

    colormap = matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap
    if cycle_colors:
        color_index = np.arange(n_rows) % colormap.N
    else:
        color_index = np.random.default_rng(seed).integers(colormap.N, size=n_rows)
    row_colors = colormap(color_index).reshape(n_rows, 4)

    fig, ax = figure_and_axes(ax, figsize)
    bottom = row_of_spike + (1 - _TICK_HEIGHT) / 2
    # One call, one LineCollection for every spike: fast for hundreds of thousands of spikes.
    ax.vlines(x, bottom, bottom + _TICK_HEIGHT, colors=row_colors[row_of_spike], linewidth=linewidth)

    ax.set_ylim(0, max(n_rows, 1))
    label_rows(ax, row_ids, np.arange(n_rows) + 0.5)
    if len(x) and x.min() < x.max():
        ax.set_xlim(x.min(), x.max())
    ax.set_xlabel(xlabel, fontsize=16)
    ax.set_ylabel(_ROW_LABELS.get(rows, rows.replace("_", " ")), fontsize=16)
    ax.set_title(title, fontsize=20)
    return fig
