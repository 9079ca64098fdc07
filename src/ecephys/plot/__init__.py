"""Plots of session data, named and called as in the AllenSDK.

Each function takes data (not a session), draws into ``ax`` when given or into a new figure,
and returns the figure, as the AllenSDK does. matplotlib is imported only when a plot is
drawn, so ``import ecephys`` and ``import ecephys.plot`` stay light.
"""

from ecephys.plot.counts import plot_spike_counts
from ecephys.plot.raster import raster_plot
from ecephys.plot.running import plot_running_speed
from ecephys.plot.waveforms import plot_mean_waveforms

__all__ = ["plot_mean_waveforms", "plot_running_speed", "plot_spike_counts", "raster_plot"]
