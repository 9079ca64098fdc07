"""What the plot functions share: matplotlib is imported here, and only when a plot is drawn."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ecephys.errors import MissingDependency

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Rows (units, presentations) up to this many get their ids as tick labels; more get none.
MAX_LABELLED_ROWS = 40


def require_matplotlib() -> Any:
    """The ``matplotlib`` module, or a MissingDependency that says how to install it."""
    try:
        import matplotlib
    except ImportError as err:
        raise MissingDependency("ecephys.plot needs matplotlib: pip install matplotlib") from err
    return matplotlib


def figure_and_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """The given Axes and its (root) figure, or a new pyplot figure of ``figsize`` inches and its Axes."""
    require_matplotlib()
    if ax is None:
        import matplotlib.pyplot as plt  # pyplot only for new figures, so notebooks display them

        # constrained layout keeps long tick labels (unit ids) and the colour bar inside the figure
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        return fig, ax
    try:
        fig = ax.get_figure(root=True)  # the Figure, even when ax sits in a SubFigure
    except TypeError:  # matplotlib < 3.10 has no root=
        fig = ax.figure
    return fig, ax


def label_rows(ax: Axes, ids: Any, centres: Any) -> None:
    """Tick each row with its id when there are few rows; otherwise leave the axis unticked."""
    if 0 < len(ids) <= MAX_LABELLED_ROWS:
        ax.set_yticks(centres, [str(i) for i in ids])
    else:
        ax.set_yticks([])
