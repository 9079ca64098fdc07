"""The offline tour: the AllenSDK's Visual Coding – Neuropixels tutorials, run with ecephys.

``make demo``, ``ecephys demo`` or ``python -m ecephys.demo``. The first run writes a small
synthetic project (three sessions of the two session types, three mice) into
``<cache>/demo-project`` (``ECEPHYS_CACHE_DIR``, else the platform cache folder); later runs
reuse it. The warehouse emulator serves that folder on 127.0.0.1, and the tour walks the steps
of the AllenSDK's "Accessing Neuropixels Visual Coding Data" and "Full example of accessing
Visual Coding Neuropixels data" notebooks through the public API: every download is real (into a
temporary cache folder, with a progress bar on a terminal). It prints the tables and writes the
figures as PNG files into ``./demo-output/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecephys import config
from ecephys.errors import EcephysError
from ecephys.project import EcephysProjectCache
from ecephys.session import EcephysSession

__all__ = ["DEFAULT_OUTPUT", "default_folder", "ensure_demo_project", "main", "run_tour"]

DEFAULT_OUTPUT = Path("demo-output")
MARKER = "demo-project.json"  # written last: a folder without it is not a finished demo project
_WIDTH = 120


# -- the demo project --------------------------------------------------------------------------
def default_folder() -> Path:
    """``<cache>/demo-project``: where the demo project lives unless ``--folder`` says otherwise."""
    return config.cache_dir() / "demo-project"


def ensure_demo_project(
    folder: str | os.PathLike | None = None, *, say: Callable[[str], Any] = print
) -> Path:
    """The demo project folder, written first (into a sibling temporary folder, then renamed)
    when it is not there yet. A folder that exists, is not empty and is not a demo project is
    an error: nothing in it is touched.
    """
    from ecephys.testing.project import TUTORIAL_SESSIONS, make_tutorial_project

    folder = Path(folder) if folder is not None else default_folder()
    folder = folder.expanduser().absolute()
    if (folder / MARKER).exists():
        say(f"demo project: {folder} (made earlier)")
        return folder
    if folder.exists() and any(folder.iterdir()):
        raise EcephysError(
            f"{folder} is not empty and holds no {MARKER}, so it is not a demo project; give another "
            "--folder, or empty this one"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    say(f"demo project: writing 3 synthetic sessions into {folder} (once) ...")
    start = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix=".demo-project-", dir=folder.parent))
    try:
        make_tutorial_project(scratch)
        ids = [s.session_id for s in TUTORIAL_SESSIONS]
        (scratch / MARKER).write_text(
            json.dumps({"made_by": "ecephys.testing.make_tutorial_project", "sessions": ids})
        )
        if folder.exists():
            folder.rmdir()  # empty, checked above
        os.replace(scratch, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    say(f"  done in {time.perf_counter() - start:.1f} s ({size / 1e6:.0f} MB)")
    return folder


# -- printing ----------------------------------------------------------------------------------
class _Tour:
    """Numbered steps, tables and figures of one run."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.figures: list[Path] = []
        self.number = 0

    def step(self, title: str, code: str | None = None) -> None:
        self.number += 1
        print(f"\n{self.number}. {title}")
        if code:
            for line in code.strip("\n").splitlines():
                print(f"   >>> {line}")

    @staticmethod
    def say(text: str) -> None:
        for line in text.splitlines():
            print(f"   {line}")

    def show(self, frame: pd.DataFrame | pd.Series, columns: list[str] | None = None, rows: int = 5) -> None:
        if columns is not None:
            frame = frame[[c for c in columns if c in frame.columns]]
        with pd.option_context("display.precision", 3):
            self.say(frame.head(rows).to_string(max_colwidth=40, line_width=_WIDTH - 3))

    def save(self, fig: Any, name: str) -> None:
        import matplotlib.pyplot as plt

        path = self.output / name
        fig.savefig(path, dpi=90)
        plt.close(fig)
        self.figures.append(path)
        self.say(f"-> {path}")


@contextmanager
def _noted_warnings(tour: _Tour) -> Iterator[None]:
    """Run a step and print the warnings it gives (the AllenSDK gives the same ones)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        tour.say(f"(warning, as in the AllenSDK: {str(w.message).splitlines()[0]})")


# -- the tour ----------------------------------------------------------------------------------
def _project_steps(tour: _Tour, cache: EcephysProjectCache) -> int:
    """The "Accessing Neuropixels Visual Coding Data" notebook; returns the session id it picks."""
    tour.step("The session table", "sessions = cache.get_session_table()")
    sessions = cache.get_session_table()
    tour.say("Total number of sessions: " + str(len(sessions)))
    tour.show(
        sessions,
        [
            "session_type",
            "age_in_days",
            "sex",
            "full_genotype",
            "unit_count",
            "probe_count",
            "ecephys_structure_acronyms",
        ],
    )

    tour.step(
        "Male Sst mice shown brain_observatory_1.1, with VISl units (the tutorial's query)",
        "filtered_sessions = sessions[(sessions.sex == 'M') &\n"
        "    (sessions.full_genotype.str.find('Sst') > -1) &\n"
        "    (sessions.session_type == 'brain_observatory_1.1') &\n"
        "    np.array(['VISl' in acronyms for acronyms in sessions.ecephys_structure_acronyms])]",
    )
    filtered_sessions = sessions[
        (sessions.sex == "M")
        & (sessions.full_genotype.str.find("Sst") > -1)
        & (sessions.session_type == "brain_observatory_1.1")
        & np.array(["VISl" in acronyms for acronyms in sessions.ecephys_structure_acronyms])
    ]
    tour.say(
        "(the tutorial writes the last condition as a plain list; pandas 3 no longer combines a Series\n"
        " with a list, so it is wrapped in np.array here: the only change to the tutorial's code)"
    )
    tour.show(filtered_sessions, ["session_type", "sex", "full_genotype", "unit_count"])
    tour.say(
        "session types: " + ", ".join(f"{k} ({v})" for k, v in sessions.session_type.value_counts().items())
    )

    tour.step(
        "Probes, channels and units of the whole project",
        "probes = cache.get_probes(); channels = cache.get_channels(); units = cache.get_units()",
    )
    probes = cache.get_probes()
    tour.say("Total number of probes: " + str(len(probes)))
    tour.show(
        probes,
        [
            "ecephys_session_id",
            "name",
            "lfp_sampling_rate",
            "has_lfp_data",
            "unit_count",
            "channel_count",
            "ecephys_structure_acronyms",
        ],
        rows=3,
    )
    channels = cache.get_channels()
    tour.say("Total number of channels: " + str(len(channels)))
    tour.show(
        channels,
        [
            "ecephys_probe_id",
            "local_index",
            "probe_vertical_position",
            "ecephys_structure_acronym",
            "unit_count",
        ],
        rows=3,
    )
    units = cache.get_units()
    tour.say("Total number of units: " + str(len(units)) + "  (the default quality filters)")
    units = cache.get_units(
        amplitude_cutoff_maximum=np.inf, presence_ratio_minimum=-np.inf, isi_violations_maximum=np.inf
    )
    tour.say(
        "Total number of units: " + str(len(units)) + "  (amplitude_cutoff_maximum=np.inf, "
        "presence_ratio_minimum=-np.inf, isi_violations_maximum=np.inf)"
    )
    return int(filtered_sessions.index.values[0])


def _download_session(tour: _Tour, cache: EcephysProjectCache, session_id: int) -> EcephysSession:
    tour.step(
        "Download one session and open it with every unit (quality filters off)",
        f"session = cache.get_session_data({session_id}, isi_violations_maximum=np.inf,\n"
        "    amplitude_cutoff_maximum=np.inf, presence_ratio_minimum=-np.inf)",
    )
    start = time.perf_counter()
    session = cache.get_session_data(
        session_id,
        isi_violations_maximum=np.inf,
        amplitude_cutoff_maximum=np.inf,
        presence_ratio_minimum=-np.inf,
    )
    took = time.perf_counter() - start
    size = cache.layout.session_nwb(session_id).stat().st_size
    tour.say(f"downloaded {size / 1e6:.1f} MB and opened it in {took:.2f} s: {session!r}")
    tour.say(f"{session.num_units} units without the quality filters")
    public = [name for name in dir(session) if name[0] != "_"]
    tour.say(f"{len(public)} public attributes and methods, e.g. {', '.join(public[:6])}, ...")
    return session


def _session_steps(
    tour: _Tour, cache: EcephysProjectCache, session_id: int
) -> tuple[EcephysSession, np.ndarray]:
    """The "Full example" notebook up to the spike data; returns the session and high-SNR units."""
    tour.step(
        "The same session with the default quality filters (no new download)",
        f"session = cache.get_session_data({session_id})",
    )
    session = cache.get_session_data(session_id)
    tour.say(f"session {session.ecephys_session_id} was acquired in {session.session_start_time}")
    meta = session.metadata
    tour.say(
        f"mouse {meta['specimen_name']}: {meta['full_genotype']}, {meta['sex']}, "
        f"{meta['age_in_days']:.0f} days"
    )
    counts = session.structurewise_unit_counts
    tour.say("units per structure: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    tour.show(
        session.units,
        [
            "probe_description",
            "structure_acronym",
            "peak_channel_id",
            "snr",
            "firing_rate",
            "isi_violations",
            "amplitude_cutoff",
            "presence_ratio",
        ],
    )

    tour.step(
        "Units with a signal-to-noise ratio above 4",
        "units_with_very_high_snr = session.units[session.units['snr'] > 4]",
    )
    units_with_very_high_snr = session.units[session.units["snr"] > 4]
    tour.say(f"{session.units.shape[0]} units total")
    tour.say(f"{units_with_very_high_snr.shape[0]} units have snr > 4")

    tour.step(
        "Stimulus presentations, names and epochs",
        "session.stimulus_presentations; session.stimulus_names; session.get_stimulus_epochs()",
    )
    tour.show(
        session.stimulus_presentations,
        [
            "stimulus_block",
            "start_time",
            "stop_time",
            "stimulus_name",
            "orientation",
            "contrast",
            "stimulus_condition_id",
        ],
        rows=3,
    )
    tour.say("stimulus names: " + ", ".join(session.stimulus_names))
    tour.show(session.get_stimulus_epochs(), rows=20)

    tour.step(
        "Drifting gratings and the stimulus conditions",
        "session.get_stimulus_table(['drifting_gratings']); session.stimulus_conditions",
    )
    tour.show(
        session.get_stimulus_table(["drifting_gratings"]),
        ["start_time", "stop_time", "orientation", "temporal_frequency", "contrast", "stimulus_condition_id"],
        rows=3,
    )
    parameters = session.get_stimulus_parameter_values()
    tour.say(
        f"{len(parameters)} stimulus parameters; orientation: {list(parameters.get('orientation', []))[:9]}"
    )
    tour.say(f"{len(session.stimulus_conditions)} stimulus conditions")

    high_snr_unit_ids = units_with_very_high_snr.index.values
    unit_id = high_snr_unit_ids[0]
    tour.step("One unit's spike times", "session.spike_times[unit_id]")
    with _noted_warnings(tour):
        times = session.spike_times[unit_id]
    tour.say(
        f"{len(times)} spikes were detected for unit {unit_id} at times: "
        f"{np.array2string(times[:4], precision=3)} ..."
    )
    return session, high_snr_unit_ids


def _spike_steps(tour: _Tour, session: EcephysSession, high_snr_unit_ids: np.ndarray) -> None:
    """Rasters, conditionwise statistics, flash spike counts and mean waveforms."""
    from ecephys.plot import plot_mean_waveforms, plot_spike_counts, raster_plot

    tour.step(
        "Spikes during drifting gratings, and a raster of one presentation",
        "times = session.presentationwise_spike_times(\n"
        "    stimulus_presentation_ids=drifting_gratings_presentation_ids, unit_ids=high_snr_unit_ids)\n"
        "raster_plot(times[times['stimulus_presentation_id'] == first_drifting_grating_presentation_id])",
    )
    presentations = session.stimulus_presentations
    drifting_gratings_presentation_ids = presentations.loc[
        presentations["stimulus_name"] == "drifting_gratings"
    ].index.values
    times = session.presentationwise_spike_times(
        stimulus_presentation_ids=drifting_gratings_presentation_ids, unit_ids=high_snr_unit_ids
    )
    tour.show(times)
    first = times["stimulus_presentation_id"].values[0]
    plot_times = times[times["stimulus_presentation_id"] == first]
    fig = raster_plot(plot_times, title=f"spike raster for stimulus presentation {first}")
    tour.save(fig, "raster_drifting_gratings.png")

    tour.step(
        "Spike statistics per unit and drifting-grating condition",
        "session.conditionwise_spike_statistics(drifting_gratings_presentation_ids, high_snr_unit_ids)",
    )
    stats = session.conditionwise_spike_statistics(
        stimulus_presentation_ids=drifting_gratings_presentation_ids, unit_ids=high_snr_unit_ids
    )
    stats = pd.merge(stats, session.stimulus_conditions, left_on="stimulus_condition_id", right_index=True)
    tour.show(
        stats,
        [
            "spike_count",
            "stimulus_presentation_count",
            "spike_mean",
            "spike_std",
            "orientation",
            "temporal_frequency",
        ],
        rows=4,
    )
    with_repeats = stats[stats["stimulus_presentation_count"] >= 2]
    best = with_repeats.loc[with_repeats.groupby("unit_id")["spike_mean"].idxmax()]
    tour.say(
        "the condition that evoked the most spikes, per unit (of those shown at least twice; the\n"
        "tutorial asks for 5 repeats, which the 10-minute demo session does not have):"
    )
    tour.show(best, ["spike_mean", "orientation", "temporal_frequency"], rows=4)

    tour.step(
        "Spike counts around each flash",
        "spike_counts_da = session.presentationwise_spike_counts(bin_edges=np.linspace(-0.01, 0.4, 200),\n"
        "    stimulus_presentation_ids=flash_ids, unit_ids=decent_snr_unit_ids)",
    )
    time_bin_edges = np.linspace(-0.01, 0.4, 200)
    flash_ids = presentations[presentations["stimulus_name"] == "flashes"].index.values
    decent_snr_unit_ids = session.units[session.units["snr"] >= 1.5].index.values
    spike_counts_da = session.presentationwise_spike_counts(
        bin_edges=time_bin_edges, stimulus_presentation_ids=flash_ids, unit_ids=decent_snr_unit_ids
    )
    tour.say(
        f"DataArray {spike_counts_da.name!r} {dict(spike_counts_da.sizes)}, "
        f"{int(spike_counts_da.sum())} spikes"
    )
    presentation_id = int(flash_ids[0])
    fig = plot_spike_counts(
        spike_counts_da.loc[{"stimulus_presentation_id": presentation_id}],
        spike_counts_da["time_relative_to_stimulus_onset"],
        "spike count",
        f"unitwise spike counts on presentation {presentation_id}",
        figsize=(8, 8),
    )
    tour.save(fig, "spike_counts_one_flash.png")
    mean_spike_counts = spike_counts_da.mean(dim="stimulus_presentation_id")
    fig = plot_spike_counts(
        mean_spike_counts,
        mean_spike_counts["time_relative_to_stimulus_onset"],
        "mean spike count",
        "mean spike counts on flash presentations",
        figsize=(8, 8),
    )
    tour.save(fig, "mean_spike_counts_flashes.png")

    tour.step(
        "Mean waveforms on each unit's peak channel",
        "plot_mean_waveforms(waveforms, units_of_interest, peak_channels)",
    )
    units_of_interest = high_snr_unit_ids[:35]
    waveforms = {uid: session.mean_waveforms[uid] for uid in units_of_interest}
    peak_channels = {uid: session.units.loc[uid, "peak_channel_id"] for uid in units_of_interest}
    first_waveform = waveforms[units_of_interest[0]]
    tour.say(f"one unit's: DataArray {dict(first_waveform.sizes)} in µV")
    fig = plot_mean_waveforms(waveforms, units_of_interest, peak_channels, legend=False)
    tour.save(fig, "mean_waveforms.png")


def _behaviour_and_lfp_steps(tour: _Tour, session: EcephysSession) -> None:
    """Running speed, optotagging, eye tracking, LFP and CSD."""
    import matplotlib.pyplot as plt

    from ecephys.plot import plot_running_speed

    tour.step("Running speed", "plot_running_speed(midpoints, session.running_speed['velocity'], 5000, 5100)")
    running = session.running_speed
    midpoints = running["start_time"] + (running["end_time"] - running["start_time"]) / 2
    tour.say(
        f"{len(running)} samples from {running['start_time'].iloc[0]:.2f} s "
        f"to {running['end_time'].iloc[-1]:.1f} s"
    )
    fig = plot_running_speed(midpoints, running["velocity"], start_index=5000, stop_index=5100)
    tour.save(fig, "running_speed.png")

    tour.step(
        "Optogenetic stimulation and eye tracking",
        "session.optogenetic_stimulation_epochs; session.get_pupil_data(); session.get_screen_gaze_data()",
    )
    tour.show(session.optogenetic_stimulation_epochs, rows=3)
    tour.say(
        f"pupil data: {session.get_pupil_data().shape}, "
        f"screen gaze data: {session.get_screen_gaze_data().shape}"
    )

    probe_id = session.probes.index.values[0]
    tour.step("LFP of one probe (downloads its LFP file)", f"lfp = session.get_lfp({probe_id})")
    start = time.perf_counter()
    lfp = session.get_lfp(probe_id)
    tour.say(
        f"{time.perf_counter() - start:.2f} s: DataArray {lfp.name!r} {dict(lfp.sizes)}, volts, "
        f"{float(lfp['time'][0]):.2f}–{float(lfp['time'][-1]):.2f} s"
    )
    structure_acronyms, intervals = session.channel_structure_intervals(lfp["channel"])
    tour.say(
        f"structures along the LFP channels: {[str(a) for a in structure_acronyms]}, "
        f"boundaries at channel indices {[int(i) for i in intervals]}"
    )
    window = np.where(lfp["time"] < float(lfp["time"][0]) + 1.0)[0]
    fig, ax = plt.subplots(figsize=(8, 6), layout="constrained")
    rows = np.arange(lfp.sizes["channel"])
    mesh = ax.pcolormesh(lfp["time"].values[window], rows, lfp[{"time": window}].T * 1e6, shading="nearest")
    fig.colorbar(mesh, ax=ax, label="µV")
    edges = np.asarray(intervals) - 0.5  # rows are centred on whole numbers
    ax.set_yticks(edges)
    ax.set_yticks((edges[:-1] + edges[1:]) / 2, labels=[str(a) for a in structure_acronyms], minor=True)
    ax.tick_params("y", which="major", labelleft=False, length=40)
    ax.tick_params("y", which="minor", length=0)
    ax.set_xlabel("time (s)")
    ax.set_title(f"LFP of probe {probe_id}, 1 s")
    tour.save(fig, "lfp.png")

    tour.step(
        "Current source density around the flashes", f"csd = session.get_current_source_density({probe_id})"
    )
    csd = session.get_current_source_density(probe_id)
    tour.say(f"DataArray {dict(csd.sizes)}")
    fig, ax = plt.subplots(figsize=(6, 6), layout="constrained")
    mesh = ax.pcolormesh(csd["time"], csd["vertical_position"], csd.data, shading="nearest", cmap="RdBu_r")
    fig.colorbar(mesh, ax=ax, label="V/cm²")
    ax.set_xlabel("time relative to stimulus onset (s)")
    ax.set_ylabel("vertical position (µm)")
    ax.set_title(f"CSD of probe {probe_id}")
    tour.save(fig, "csd.png")


def run_tour(folder: str | os.PathLike | None = None, output: str | os.PathLike | None = None) -> int:
    """Make (once) and serve the demo project, run the tutorial steps, write the figures."""
    import matplotlib

    matplotlib.use("Agg")
    from ecephys.testing.warehouse import WarehouseServer

    started = time.perf_counter()
    output = Path(output) if output is not None else DEFAULT_OUTPUT
    output.mkdir(parents=True, exist_ok=True)
    print("ecephys demo: the AllenSDK's Visual Coding – Neuropixels tutorials, offline, with ecephys")
    project = ensure_demo_project(folder)
    tour = _Tour(output)
    with (
        WarehouseServer(project) as server,
        tempfile.TemporaryDirectory(prefix="ecephys-demo-cache-") as local,
    ):
        host = server.base_url.split("://", 1)[1]
        print(f"warehouse emulator: {server.base_url} serves it (the Allen API, on 127.0.0.1)")
        tour.step(
            "A project cache that downloads from the warehouse",
            f"cache = EcephysProjectCache.from_warehouse(scheme='http', host='{host}',\n"
            f"    manifest='{Path(local) / 'manifest.json'}')",
        )
        cache = EcephysProjectCache.from_warehouse(
            scheme="http", host=host, manifest=Path(local) / "manifest.json", timeout=30
        )
        tour.say(repr(cache))
        session_id = _project_steps(tour, cache)
        _download_session(tour, cache, session_id)
        session, high_snr_unit_ids = _session_steps(tour, cache, session_id)
        _spike_steps(tour, session, high_snr_unit_ids)
        _behaviour_and_lfp_steps(tour, session)
        tour.step("What the cache holds now", "cache")
        tour.say(repr(cache))
        session.close()
    print(f"\n{len(tour.figures)} figures in {output.absolute()}:")
    for path in tour.figures:
        print(f"   {path.name}")
    print(
        f"done in {time.perf_counter() - started:.1f} s "
        "(the downloads went to a temporary folder, now deleted)."
    )
    print(REAL_DATA.format(project=project))
    return 0


REAL_DATA = """
The same steps on the real dataset (58 sessions, ~147 GB of session files, ~700 GB of LFP):

    import numpy as np
    from ecephys import EcephysProjectCache
    cache = EcephysProjectCache.from_warehouse(manifest="ecephys-cache/manifest.json")  # api.brain-map.org
    # or, from the public S3 bucket (often faster):
    cache = EcephysProjectCache.from_s3("ecephys-cache")
    sessions = cache.get_session_table()
    session = cache.get_session_data(715093703)   # a 2.7 GB download, resumed if interrupted

or from the shell:

    ecephys sessions --structure VISl --genotype Sst
    ecephys download 715093703 --lfp
    ecephys units --session 715093703

The demo project can be explored the same way: ecephys sessions --source local --cache {project}"""


def main(argv: list[str] | None = None) -> int:
    """Run the tour; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m ecephys.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--folder",
        type=Path,
        default=None,
        help="where the demo project lives (default: <cache>/demo-project)",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="where the figures go (default: ./demo-output)"
    )
    args = parser.parse_args(argv)
    try:
        return run_tour(args.folder, args.output)
    except EcephysError as err:
        print(f"ecephys demo: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
