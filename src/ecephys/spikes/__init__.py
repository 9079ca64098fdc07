"""Spike analyses aligned to stimuli: pure numpy in, numpy / pandas / xarray out.

The functions take every selected unit's spike times as one flat array plus offsets (see
:mod:`ecephys.spikes.binning`); :func:`pack_spike_times` builds that from a mapping. Bins are
half-open, ``[start, stop)``, in seconds.
"""

from ecephys.errors import BinarizeWarning
from ecephys.spikes.binning import (
    bin_centers,
    check_bin_edges,
    check_spike_arrays,
    pack_spike_times,
    time_window_domain,
)
from ecephys.spikes.conditionwise import conditionwise_spike_statistics, spike_counts_per_presentation
from ecephys.spikes.presentationwise import presentationwise_spike_counts, presentationwise_spike_times

__all__ = [
    "BinarizeWarning",
    "bin_centers",
    "check_bin_edges",
    "check_spike_arrays",
    "conditionwise_spike_statistics",
    "pack_spike_times",
    "presentationwise_spike_counts",
    "presentationwise_spike_times",
    "spike_counts_per_presentation",
    "time_window_domain",
]
