"""A running-speed trace."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ecephys.plot._common import figure_and_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def plot_running_speed(
    timestamps: Any,
    values: Any,
    start_index: int = 0,
    stop_index: int | None = None,
    step: int = 1,
    ylabel: str = "running speed (cm/s)",
    xlabel: str = "time (s)",
    title: str | None = None,
    *,
    ax: Axes | None = None,
    figsize: tuple[float, float] = (8, 8),
) -> Figure:
    """Plot running speed against time, for samples ``start_index:stop_index:step``.

    Parameters
    ----------
    timestamps : array-like of float
        Sample times (s), e.g. the midpoints of ``session.running_speed``'s start_time and
        end_time.
    values : array-like of float
        Running speed (cm/s; negative is backwards), one per timestamp, e.g.
        ``session.running_speed["velocity"]``.
    start_index, stop_index, step : int
        The slice of samples drawn; ``stop_index=None`` runs to the end.
    ylabel, xlabel : str
        Axis labels.
    title : str, optional
        Axes title; None gives "running speed from <first> to <last> s".
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure is made when None.
    figsize : (float, float)
        Size in inches of a new figure; unused when ``ax`` is given.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn into. The trace's Axes is ``ax`` when given, else ``fig.axes[0]``;
        the trace is ``ax.lines[-1]``.
    """
    times = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    speed = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(times) != len(speed):
        raise ValueError(
            f"plot_running_speed: {len(times)} timestamps but {len(speed)} values; "
            "pass one value per timestamp"
        )
    window = slice(start_index, stop_index, step)
    times, speed = times[window], speed[window]
    if title is None:
        if len(times):
            title = f"running speed from {times[0]:2.2f} to {times[-1]:2.2f} s"
        else:
            title = "running speed (no samples)"

    fig, ax = figure_and_axes(ax, figsize)
    ax.plot(times, speed)
    if len(times) > 1:
        ax.set_xlim(times[0], times[-1])
    ax.set_xlabel(xlabel, fontsize=16)
    ax.set_ylabel(ylabel, fontsize=16)
    ax.set_title(title, fontsize=20)
    return fig
