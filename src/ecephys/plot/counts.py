"""A heat map of spike counts (or rates) per unit and time bin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ecephys.plot._common import figure_and_axes, label_rows

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure

_TIME_DIM = "time_relative_to_stimulus_onset"


def _unit_by_time(data_array: Any, n_times: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The values as a (unit, time) array, and the row ids when the input names them."""
    dims = getattr(data_array, "dims", None)
    if dims is not None and _TIME_DIM in dims and np.ndim(data_array) == 2:
        transposed = data_array.transpose(..., _TIME_DIM)
        row_dim = transposed.dims[0]
        ids = transposed[row_dim].to_numpy() if row_dim in transposed.coords else None
        return transposed.to_numpy(), ids
    values = np.asarray(data_array)
    if values.ndim != 2:
        raise ValueError(
            f"plot_spike_counts: data_array must be 2-D (unit × time); got shape {values.shape}. "
            "Reduce over presentations first, e.g. counts.sum('stimulus_presentation_id')"
        )
    if values.shape[0] == n_times:  # the AllenSDK's layout (time, unit); also the square case
        return values.T, None
    if values.shape[1] == n_times:
        return values, None
    raise ValueError(
        f"plot_spike_counts: data_array has shape {values.shape} but time_coords has {n_times} "
        "entries; one axis of data_array must be time"
    )


def _edges_from_centres(centres: np.ndarray) -> np.ndarray:
    """Bin edges halfway between centres; the outer edges half a bin beyond the outer centres."""
    if len(centres) == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    middles = (centres[:-1] + centres[1:]) / 2
    return np.concatenate([[2 * centres[0] - middles[0]], middles, [2 * centres[-1] - middles[-1]]])


def plot_spike_counts(
    data_array: Any,
    time_coords: Any,
    cbar_label: str,
    title: str,
    xlabel: str = "time relative to stimulus onset (s)",
    ylabel: str = "unit",
    xtick_step: int | None = 20,
    *,
    ax: Axes | None = None,
    figsize: tuple[float, float] = (12, 12),
    cmap: str | Colormap | None = None,
) -> Figure:
    """Show a 2-D array of spike counts (or rates) as an image: one row per unit, time along x.

    Parameters
    ----------
    data_array : xarray.DataArray or array-like, 2-D
        Values per unit and time bin, e.g.
        ``session.presentationwise_spike_counts(...).sum("stimulus_presentation_id")``. A
        DataArray with a ``time_relative_to_stimulus_onset`` dim may have its dims in either
        order. For a plain array, the axis whose length matches ``time_coords`` is time; a
        square array is read as (time, unit), the AllenSDK's layout.
    time_coords : array-like of float, or None
        Bin centres in seconds relative to stimulus onset; None takes them from the
        DataArray's ``time_relative_to_stimulus_onset`` coordinate.
    cbar_label : str
        Colour-bar label, e.g. ``"spike count"`` or ``"firing rate (spikes/s)"``.
    title : str
        Axes title.
    xlabel, ylabel : str
        Axis labels.
    xtick_step : int or None
        Put an x tick on every ``xtick_step``-th bin centre; None for matplotlib's ticks.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure is made when None.
    figsize : (float, float)
        Size in inches of a new figure; unused when ``ax`` is given.
    cmap : str or matplotlib.colors.Colormap, optional
        Colormap of the image; matplotlib's default when None.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn into. The image's Axes is ``ax`` when given, else ``fig.axes[0]``;
        the colour bar's Axes is ``fig.axes[-1]``. The x axis is in seconds, the first unit
        is at the top, and rows carry unit ids when there are at most 40.
    """
    if time_coords is None:
        try:
            time_coords = data_array[_TIME_DIM]
        except (KeyError, TypeError, IndexError) as err:
            raise ValueError(
                f"plot_spike_counts: time_coords is None but data_array has no {_TIME_DIM!r} "
                "coordinate; pass the bin centres (s)"
            ) from err
    times = np.asarray(time_coords, dtype=np.float64).reshape(-1)
    if len(times) == 0:
        raise ValueError("plot_spike_counts: time_coords is empty; there is no time bin to show")
    values, row_ids = _unit_by_time(data_array, len(times))
    n_rows = values.shape[0]
    edges = _edges_from_centres(times)

    fig, ax = figure_and_axes(ax, figsize)
    widths = np.diff(edges)
    if np.allclose(widths, widths[0], rtol=1e-6, atol=0):
        image = ax.imshow(
            values,
            interpolation="none",
            aspect="auto",
            cmap=cmap,
            extent=(edges[0], edges[-1], n_rows, 0),
        )
    else:  # uneven bins: one quadrilateral per bin
        image = ax.pcolormesh(edges, np.arange(n_rows + 1), values, cmap=cmap, shading="flat")
        ax.set_ylim(n_rows, 0)
    colorbar = fig.colorbar(image, ax=ax, pad=0.02)
    colorbar.set_label(cbar_label, fontsize=16)

    label_rows(ax, row_ids if row_ids is not None else [], np.arange(n_rows) + 0.5)
    if xtick_step is not None:
        ticks = times[::xtick_step]
        ax.set_xticks(ticks, [f"{t:1.3f}" for t in ticks], rotation=45)
    ax.set_xlabel(xlabel, fontsize=16)
    ax.set_ylabel(ylabel, fontsize=16)
    ax.set_title(title, fontsize=20)
    return fig
