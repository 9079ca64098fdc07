"""The built-in demo: write a synthetic Allen-format session, open it, print its units summary.

Runs offline on a fresh machine (``make demo`` or ``python -m ecephys.demo``). The session is
written once into ``<cache>/demo`` (``ECEPHYS_CACHE_DIR``) and reused on later runs.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ecephys import config
from ecephys.errors import EcephysWarning
from ecephys.session import EcephysSession, open_session

__all__ = ["main", "summarize_units"]

DEMO_SESSION = dict(n_probes=3, units_per_probe=30, duration=600.0, seed=7)


def summarize_units(session: EcephysSession) -> pd.DataFrame:
    """Units per probe and structure with their median firing rate (spikes/s) and SNR."""
    units = session.units
    return (
        units.groupby(["probe_description", "structure_acronym"], sort=True)
        .agg(
            units=("firing_rate", "size"),
            median_firing_rate_hz=("firing_rate", "median"),
            median_snr=("snr", "median"),
        )
        .round(2)
    )


def _demo_session_path(folder: Path) -> Path:
    from ecephys.testing import make_session

    sid = 999000001
    path = folder / f"session_{sid}" / f"session_{sid}.nwb"
    if not path.exists():
        print(f"writing a synthetic session into {folder} ...", flush=True)
        start = time.perf_counter()
        make_session(folder, session_id=sid, **DEMO_SESSION)
        print(f"  done in {time.perf_counter() - start:.1f} s", flush=True)
    return path


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m ecephys.demo", description=__doc__)
    parser.add_argument("--folder", type=Path, default=None, help="where to write the demo session")
    args = parser.parse_args(argv)
    folder = args.folder or config.cache_dir() / "demo"
    path = _demo_session_path(folder)

    start = time.perf_counter()
    session = open_session(path)
    _ = session.units  # the units table is built here, so the timing includes it
    opened = time.perf_counter() - start
    print(f"\nsession {session.ecephys_session_id} ({session.session_type})")
    mouse = f"{session.specimen_name}: {session.full_genotype}, {session.sex}"
    print(f"  mouse {mouse}, {session.age_in_days:.0f} days old")
    print(
        f"  {session.num_probes} probes, {session.num_channels} channels; {session.num_units} units pass the"
    )
    print(
        "  default quality filters (amplitude cutoff <= 0.1, presence ratio >= 0.95, ISI violations <= 0.5)"
    )
    print(f"  opened and built the units table in {opened * 1000:.0f} ms\n")
    with pd.option_context("display.width", 120, "display.max_rows", 60):
        print(summarize_units(session))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EcephysWarning)
        spike_times = session.spike_times
    n_spikes = sum(len(t) for t in spike_times.values())
    busiest = max(spike_times, key=lambda u: len(spike_times[u]))
    print(f"\n{n_spikes:,} spikes in {len(spike_times)} units; the busiest unit, {busiest}, fired")
    print(f"  {len(spike_times[busiest]):,} spikes, the first at {spike_times[busiest][0]:.3f} s")
    waveform = session.mean_waveforms[busiest]
    peak = int(np.argmax(np.abs(waveform.values).max(axis=1)))
    print(
        f"  its mean waveform spans {waveform.sizes['channel_id']} channels and peaks on channel "
        f"{int(waveform['channel_id'][peak])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
