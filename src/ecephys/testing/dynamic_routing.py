"""A synthetic Mindscope "Dynamic Routing" session written with pynwb, as npc_sessions lays one out.

``make_dynamic_routing_session`` writes one standard NWB file through pynwb's own writer (not
h5py), so the generic reader (:mod:`ecephys.nwb.generic`, :func:`ecephys.open_nwb`) is tested
on files that a standard NWB writer made. The layout follows the npc_sessions files: subject,
epochs with tags, a task ``trials`` table, RF-mapping interval tables, ``invalid_times``,
electrodes with CCF coordinates, units with a ``default_qc`` column, running speed, licks and
rewards in ``processing/behavior`` and subsampled LFP in ``processing/ecephys/LFP``. The data
are made up: Poisson spike trains with stimulus-evoked spikes, a random-walk running speed,
lick bursts after responses, sinusoids plus noise for the LFP.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from ecephys.errors import MissingDependency

__all__ = ["make_dynamic_routing_session"]

PROBE_LETTERS = "ABCDEF"
STIM_NAMES = np.array(["vis1", "vis2", "sound1", "sound2", "catch"], dtype=object)
STIM_PROBABILITIES = np.array([0.225, 0.225, 0.225, 0.225, 0.1])
#: Structures from probe tip (deepest) to top, with the share of channels in each.
PROBE_TRACK = (("MRN", 0.2), ("SCm", 0.15), ("SCs", 0.1), ("VISp6a", 0.1), ("VISp5", 0.15))
PROBE_TRACK_TOP = (("VISp2/3", 0.15), ("VISp1", 0.05), ("root", 0.1))
LFP_CONVERSION = 0.195e-6  # volts per bit, Open Ephys
LFP_RATE = 1250.0  # Hz
RUNNING_RATE = 60.0  # Hz, one sample per stimulus frame
ACTIVITY_DRIFT_THRESHOLD = 0.2
TRIAL_PERIOD = 5.0  # s, mean trial length


@dataclass(frozen=True)
class _Epoch:
    """One epoch: a stimulus script run between ``start`` and ``stop`` (s)."""

    start: float
    stop: float
    script_name: str
    tags: tuple[str, ...]
    interval_names: tuple[str, ...]


def make_dynamic_routing_session(
    path: str | os.PathLike,
    *,
    n_units: int = 40,
    n_probes: int = 2,
    duration: float = 600.0,
    n_trials: int | None = None,
    seed: int = 0,
    lfp: bool = True,
    lfp_duration: float = 10.0,
    lfp_channels: int = 8,
    channels_per_probe: int = 384,
    trials: bool = True,
    events: bool = True,
    subject_id: str = "668755",
    session_date: str = "2023-08-31",
) -> Path:
    """Write a Dynamic-Routing-like NWB session with pynwb and return the file's path.

    Parameters
    ----------
    path
        The ``.nwb`` file to write, or an existing folder to write ``<session_id>.nwb`` into.
    n_units, n_probes, channels_per_probe
        Sorted units (spread over the probes), probes (``probeA``…) and channels per probe.
    duration
        Session length in seconds: spontaneous activity, the task, RF mapping, spontaneous.
    n_trials
        Task trials; by default one per 5 s of the task epoch (60 % of ``duration``).
    seed
        Everything but ``object_id`` attributes and ``file_create_date`` follows from it.
    lfp, lfp_duration, lfp_channels
        Whether to write LFP (one ElectricalSeries per probe, named as the probe, int16 with a
        conversion of 0.195 µV per bit, 1250 Hz), its length (s, from the task's start) and
        channels per probe. The first probe's series has explicit timestamps; the others a
        starting time and rate plus a ``channel_conversion``, so readers meet both encodings.
    trials, events
        Whether to write the task ``trials`` table, and the licks, rewards and quiescent
        violations (``processing/behavior``) and ``lick_sensor_events`` (``acquisition``).
    subject_id, session_date
        The session id is ``f"{subject_id}_{session_date}"``, e.g. ``668755_2023-08-31``.

    Returns
    -------
    pathlib.Path
        The file written. Writes ~2 MB in well under a second with the defaults.
    """
    pynwb = _require_pynwb()
    if n_probes < 1 or n_probes > len(PROBE_LETTERS):
        raise ValueError(f"n_probes={n_probes}: expected 1 to {len(PROBE_LETTERS)}")
    if n_units < 1 or lfp_channels < 1 or lfp_channels > channels_per_probe:
        raise ValueError("n_units and lfp_channels must be ≥ 1, lfp_channels ≤ channels_per_probe")
    session_id = f"{subject_id}_{session_date}"
    target = Path(path)
    if target.is_dir():
        target = target / f"{session_id}.nwb"
    rng = np.random.default_rng(seed)
    epochs = _epoch_plan(duration)
    task = next(e for e in epochs if e.script_name == "DynamicRouting1")
    count = n_trials if n_trials is not None else max(int((task.stop - task.start) / TRIAL_PERIOD), 1)
    task_trials = _task_trials(rng, task.start, task.stop, count)
    nwb = _nwb_file(pynwb, session_id, subject_id, session_date)
    nwb.epochs = _time_intervals("epochs", "one row per stimulus script run", _epoch_columns(epochs))
    if trials:
        nwb.trials = _time_intervals("trials", "Dynamic Routing task trials", task_trials)
    rf_epoch = next(e for e in epochs if e.script_name == "RFMapping")
    for name, columns in _rf_mapping_tables(rng, rf_epoch.start, rf_epoch.stop).items():
        nwb.add_time_intervals(_time_intervals(name, name.replace("_", " "), columns))
    nwb.invalid_times = _time_intervals("invalid_times", "invalid intervals", _invalid_times(duration))
    electrodes = _add_electrodes(nwb, n_probes, channels_per_probe)
    _add_units(nwb, rng, electrodes, n_units, duration, session_id, task_trials)
    behavior = nwb.create_processing_module("behavior", "processed behavior data")
    behavior.add(_running_speed(pynwb, rng, duration))
    if events:
        _add_events(pynwb, nwb, behavior, rng, task_trials, task)
    if lfp:
        _add_lfp(pynwb, nwb, rng, electrodes, task.start, lfp_duration, lfp_channels)
    with pynwb.NWBHDF5IO(str(target), "w") as io:
        io.write(nwb)
    return target


def _require_pynwb() -> Any:
    """The pynwb module, or MissingDependency naming the ``nwb`` extra."""
    try:
        import pynwb
    except ImportError as err:
        raise MissingDependency(
            "make_dynamic_routing_session writes with pynwb, which is not installed; "
            "install it with `pip install 'ecephys[nwb]'`."
        ) from err
    return pynwb


def _events_table_class() -> Any:
    """ndx-events' ``EventsTable``: in NWB core since 2.9 (pynwb ≥ 3.1), else from ndx-events."""
    try:
        from pynwb.event import EventsTable
    except ImportError:
        try:
            from ndx_events import EventsTable
        except ImportError as err:
            raise MissingDependency(
                "licks and rewards are written as ndx-events EventsTables; install "
                "`pip install 'ecephys[nwb]'` or pass events=False."
            ) from err
    return EventsTable


# --------------------------------------------------------------------------- the file


def _nwb_file(pynwb: Any, session_id: str, subject_id: str, session_date: str) -> Any:
    """The NWBFile with the session's and the subject's metadata."""
    zone = ZoneInfo("America/Los_Angeles")
    start = datetime.fromisoformat(f"{session_date}T12:04:15").replace(tzinfo=zone)
    subject = pynwb.file.Subject(
        subject_id=subject_id,
        species="Mus musculus",
        sex="M",
        age="P166D",
        genotype="VGAT-ChR2-YFP/wt",
        strain="C57BL6J(NP)",
        date_of_birth=datetime(2023, 3, 18, tzinfo=zone),
        description="synthetic mouse for ecephys tests",
    )
    return pynwb.NWBFile(
        session_description="Synthetic Dynamic Routing session: task, RF mapping, spontaneous activity",
        identifier=session_id,
        session_id=session_id,
        session_start_time=start,
        institution="Neural Circuits & Behavior | MindScope program | Allen Institute for Neural Dynamics",
        lab="Mindscope",
        experimenter=["Synthetic, Data"],
        experiment_description="visual-auditory task-switching behavior experiment",
        keywords=["ecephys", "behavior", "task", "synthetic"],
        stimulus_notes="DynamicRouting1",
        subject=subject,
    )


def _time_intervals(name: str, description: str, columns: dict[str, Any]) -> Any:
    """A TimeIntervals table built column by column; list-of-list columns become ragged."""
    from pynwb.epoch import TimeIntervals

    return TimeIntervals(name=name, description=description, columns=_vector_columns(columns))


def _vector_columns(columns: dict[str, Any]) -> list[Any]:
    """hdmf VectorData (plus VectorIndex for ragged columns given as lists of lists)."""
    from hdmf.common import VectorData, VectorIndex

    out: list[Any] = []
    for name, values in columns.items():
        if isinstance(values, list) and values and isinstance(values[0], list | tuple):
            flat = VectorData(name=name, description=name, data=[v for row in values for v in row])
            ends = np.cumsum([len(row) for row in values])
            out += [flat, VectorIndex(name=f"{name}_index", data=ends, target=flat)]
        else:
            out.append(VectorData(name=name, description=name.replace("_", " "), data=values))
    return out


# --------------------------------------------------------------------------- intervals


def _epoch_plan(duration: float) -> list[_Epoch]:
    """Spontaneous (10 %), task (60 %), RF mapping (20 %), spontaneous (10 %)."""
    edges = np.array([0.0, 0.1, 0.7, 0.9, 1.0]) * duration
    return [
        _Epoch(edges[0], edges[1], "Spontaneous", ("spontaneous", "invalid_times"), ()),
        _Epoch(edges[1], edges[2], "DynamicRouting1", ("task", "rewards"), ("trials", "performance")),
        _Epoch(
            edges[2], edges[3], "RFMapping", ("mapping",), ("vis_rf_mapping_trials", "aud_rf_mapping_trials")
        ),
        _Epoch(edges[3], edges[4], "Spontaneous", ("spontaneous",), ()),
    ]


def _epoch_columns(epochs: list[_Epoch]) -> dict[str, Any]:
    return {
        "start_time": np.array([e.start for e in epochs]),
        "stop_time": np.array([e.stop for e in epochs]),
        "script_name": [e.script_name for e in epochs],
        "notes": ["includes invalid times: sync glitch" if "invalid_times" in e.tags else "" for e in epochs],
        "interval_names": [list(e.interval_names) for e in epochs],
        "tags": [list(e.tags) for e in epochs],
    }


def _task_trials(rng: np.random.Generator, start: float, stop: float, n: int) -> dict[str, Any]:
    """The task's trials: six blocks alternating the rewarded modality, go/nogo outcomes."""
    period = (stop - start) / n
    start_time = start + np.arange(n) * period + rng.uniform(0.0, 0.1 * period, n)
    stim_start = start_time + 1.5 + rng.uniform(0.0, 0.5, n)
    stim_name = rng.choice(STIM_NAMES, size=n, p=STIM_PROBABILITIES)
    block_index = np.minimum(np.arange(n) * 6 // n, 5)
    vis_context = block_index % 2 == 0
    is_vis = np.char.startswith(stim_name.astype(str), "vis")
    is_aud = np.char.startswith(stim_name.astype(str), "sound")
    is_catch = stim_name == "catch"
    is_go = (vis_context & (stim_name == "vis1")) | (~vis_context & (stim_name == "sound1"))
    is_nogo = ~is_go & ~is_catch
    p_response = np.where(is_go, 0.85, np.where(is_catch, 0.1, 0.25))
    is_response = rng.uniform(size=n) < p_response
    response_time = np.where(is_response, stim_start + rng.uniform(0.2, 0.9, n), np.nan)
    is_hit = is_go & is_response
    in_block = np.arange(n) - np.searchsorted(block_index, block_index)
    return {
        "start_time": start_time,
        "stop_time": start_time + 0.85 * period,
        "quiescent_start_time": start_time,
        "quiescent_stop_time": stim_start,
        "stim_start_time": stim_start,
        "stim_stop_time": stim_start + 0.5,
        "response_window_start_time": stim_start + 0.1,
        "response_window_stop_time": stim_start + 1.0,
        "response_time": response_time,
        "reward_time": np.where(is_hit, response_time + 0.01, np.nan),
        "stim_name": list(stim_name),
        "block_index": block_index,
        "rewarded_modality": list(np.where(vis_context, "vis", "aud").astype(object)),
        "trial_index": np.arange(n),
        "trial_index_in_block": in_block,
        "is_vis_stim": is_vis,
        "is_aud_stim": is_aud,
        "is_catch": is_catch,
        "is_vis_target": stim_name == "vis1",
        "is_aud_target": stim_name == "sound1",
        "is_go": is_go,
        "is_nogo": is_nogo,
        "is_response": is_response,
        "is_hit": is_hit,
        "is_miss": is_go & ~is_response,
        "is_false_alarm": is_nogo & is_response,
        "is_correct_reject": is_nogo & ~is_response,
        "is_rewarded": is_hit,
        "is_vis_context": vis_context,
        "is_aud_context": ~vis_context,
        "is_opto": np.zeros(n, dtype=bool),
    }


def _rf_mapping_tables(rng: np.random.Generator, start: float, stop: float) -> dict[str, dict[str, Any]]:
    """Visual (gratings, flashes) and auditory (tones, AM noise) RF-mapping trials, interleaved."""
    n = max(int((stop - start) / 0.5), 2)
    onsets = start + np.arange(n) * (stop - start) / n
    vis, aud = onsets[0::2], onsets[1::2]
    is_flash = rng.uniform(size=len(vis)) < 0.2
    orientation = np.where(is_flash, np.nan, rng.choice([0.0, 45.0, 90.0, 135.0], len(vis)))
    is_tone = rng.uniform(size=len(aud)) < 0.6
    return {
        "vis_rf_mapping_trials": {
            "start_time": vis,
            "stop_time": vis + 0.45,
            "stim_start_time": vis + 0.05,
            "stim_stop_time": vis + 0.3,
            "is_small_field_grating": ~is_flash,
            "is_full_field_flash": is_flash,
            "grating_orientation": orientation,
            "grating_x": np.where(is_flash, np.nan, rng.choice([-200.0, 0.0, 200.0], len(vis))),
            "grating_y": np.where(is_flash, np.nan, rng.choice([-100.0, 0.0, 100.0], len(vis))),
            "trial_index": np.arange(len(vis)),
        },
        "aud_rf_mapping_trials": {
            "start_time": aud,
            "stop_time": aud + 0.45,
            "stim_start_time": aud + 0.05,
            "stim_stop_time": aud + 0.3,
            "is_pure_tone": is_tone,
            "is_AM_noise": ~is_tone,
            "freq": np.where(
                is_tone, rng.choice([4e3, 8e3, 16e3], len(aud)), rng.choice([12.0, 40.0], len(aud))
            ),
            "trial_index": np.arange(len(aud)),
        },
    }


def _invalid_times(duration: float) -> dict[str, Any]:
    return {
        "start_time": np.array([0.05 * duration]),
        "stop_time": np.array([0.06 * duration]),
        "reason": ["sync glitch"],
        "tags": [["all_probes", "sync"]],
    }


# --------------------------------------------------------------------------- probes and units


def _add_electrodes(nwb: Any, n_probes: int, channels: int) -> dict[str, Any]:
    """Probes, electrode groups and the electrodes table (CCF µm, structure per depth).

    Returns each probe's ElectrodeGroup and its rows in the electrodes table.
    """
    from pynwb.ecephys import ElectrodesTable

    groups, rows = [], []
    columns: dict[str, list] = {"location": [], "group": [], "group_name": [], "structure": []}
    numeric: dict[str, list] = {k: [] for k in ("x", "y", "z", "channel", "rel_x", "rel_y", "imp")}
    for p in range(n_probes):
        name = f"probe{PROBE_LETTERS[p]}"
        device = nwb.create_device(name=name, description="Neuropixels 1.0 probe (imec)")
        group = nwb.create_electrode_group(
            name=name, description=f"{name} electrode group", location="VISp, SC, MRN", device=device
        )
        groups.append(group)
        rows.append(np.arange(channels) + p * channels)
        location = _probe_locations(channels)
        columns["location"] += location
        columns["structure"] += [_strip_layer(s) for s in location]
        columns["group"] += [group] * channels
        columns["group_name"] += [name] * channels
        depth = np.arange(channels) // 2 * 20.0  # µm from the tip
        track = np.array([8000.0 + 300.0 * p, 4000.0, 5700.0 + 200.0 * p])  # tip, CCF µm (AP, DV, ML)
        numeric["x"] += list(track[0] - 0.1 * depth)
        numeric["y"] += list(track[1] - 0.9 * depth)
        numeric["z"] += list(track[2] + 0.3 * depth)
        numeric["channel"] += list(range(channels))
        numeric["rel_x"] += list(np.array([43.0, 11.0, 59.0, 27.0])[np.arange(channels) % 4])
        numeric["rel_y"] += list(depth)
        numeric["imp"] += [150e3] * channels
    n = n_probes * channels
    data = {**columns, **{k: np.asarray(v) for k, v in numeric.items()}}
    data["reference"] = ["tip"] * n
    data["filtering"] = ["AP 300-10000 Hz; LFP 0.5-500 Hz"] * n
    nwb.electrodes = ElectrodesTable(columns=_vector_columns(data))
    return {"groups": groups, "rows": rows}


def _probe_locations(channels: int) -> list[str]:
    """Structure acronym of each channel, tip (channel 0) first."""
    names = [name for name, _ in PROBE_TRACK + PROBE_TRACK_TOP]
    shares = np.array([share for _, share in PROBE_TRACK + PROBE_TRACK_TOP])
    bounds = np.round(np.cumsum(shares) / shares.sum() * channels).astype(int)
    return [names[i] for i in np.searchsorted(bounds, np.arange(channels), side="right")]


def _strip_layer(acronym: str) -> str:
    """``VISp5`` → ``VISp``: the structure without its cortical layer."""
    return re.sub(r"\d.*$", "", acronym) if acronym.startswith("VIS") else acronym


def _spike_trains(
    rng: np.random.Generator, n_units: int, duration: float, trials: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Spike times (s) sorted within each unit, and each unit's end offset into them.

    Background Poisson spiking (log-normal rates around 4 Hz) plus, for units tuned to one
    modality, ~3 extra spikes 30-150 ms after the onset of each trial of that modality.
    """
    rates = rng.lognormal(np.log(4.0), 0.6, n_units)
    counts = rng.poisson(rates * duration)
    unit = np.repeat(np.arange(n_units), counts)
    times = rng.uniform(0.0, duration, counts.sum())
    modality = rng.integers(0, 3, n_units)  # 0: untuned, 1: visual, 2: auditory
    onsets = np.asarray(trials["stim_start_time"])
    driven = ((modality[:, None] == 1) & trials["is_vis_stim"][None, :]) | (
        (modality[:, None] == 2) & trials["is_aud_stim"][None, :]
    )
    extra = rng.poisson(3.0, driven.shape) * driven
    evoked_unit, evoked_trial = np.nonzero(extra)
    repeats = extra[evoked_unit, evoked_trial]
    evoked = np.repeat(onsets[evoked_trial], repeats) + rng.uniform(0.03, 0.15, repeats.sum())
    unit = np.concatenate([unit, np.repeat(evoked_unit, repeats)])
    times = np.concatenate([times, evoked])
    order = np.lexsort((times, unit))
    ends = np.cumsum(np.bincount(unit, minlength=n_units))
    return times[order], ends


def _unit_metrics(rng: np.random.Generator, n_units: int) -> dict[str, np.ndarray]:
    """Quality metrics and the npc_sessions ``default_qc`` rule over them."""
    metrics = {
        "amplitude_cutoff": rng.uniform(0.0, 0.2, n_units),
        "presence_ratio": rng.uniform(0.6, 1.0, n_units),
        "isi_violations_ratio": rng.exponential(0.3, n_units),
        "snr": rng.uniform(1.0, 8.0, n_units),
        "activity_drift": rng.uniform(0.0, 0.4, n_units),
        "decoder_label": rng.choice(
            np.array(["sua", "mua", "noise"], dtype=object), n_units, p=[0.5, 0.35, 0.15]
        ),
    }
    metrics["is_not_drift"] = metrics["activity_drift"] < ACTIVITY_DRIFT_THRESHOLD
    metrics["default_qc"] = (
        metrics["is_not_drift"]
        & (metrics["isi_violations_ratio"] <= 0.5)
        & (metrics["amplitude_cutoff"] <= 0.1)
        & (metrics["presence_ratio"] >= 0.7)
        & (metrics["decoder_label"] != "noise")
    )
    return metrics


def _add_units(
    nwb: Any,
    rng: np.random.Generator,
    electrodes: dict[str, Any],
    n_units: int,
    duration: float,
    session_id: str,
    trials: dict[str, Any],
) -> None:
    """The units table: ragged spike_times, electrodes and obs_intervals; metrics; CCF of the peak."""
    times, ends = _spike_trains(rng, n_units, duration, trials)
    starts = np.concatenate([[0], ends[:-1]])
    metrics = _unit_metrics(rng, n_units)
    probe = np.arange(n_units) % len(electrodes["groups"])
    channels = len(electrodes["rows"][0])
    peak_channel = rng.integers(0, channels, n_units)
    table = nwb.electrodes
    scalar: dict[str, np.ndarray] = {
        "unit_id": np.array(
            [f"{session_id}_{PROBE_LETTERS[p]}-{i}" for i, p in enumerate(probe)], dtype=object
        ),
        "electrode_group_name": np.array([electrodes["groups"][p].name for p in probe], dtype=object),
        "peak_channel": peak_channel,
        "peak_electrode": probe * channels + peak_channel,
        **metrics,
        "firing_rate": (ends - starts) / duration,
    }
    scalar["is_qc_pass"] = scalar["default_qc"]
    peak_rows = scalar["peak_electrode"]
    scalar["location"] = np.asarray(table["location"].data, dtype=object)[peak_rows]
    scalar["structure"] = np.asarray(table["structure"].data, dtype=object)[peak_rows]
    for axis, name in (("x", "ccf_ap"), ("y", "ccf_dv"), ("z", "ccf_ml")):
        scalar[name] = np.asarray(table[axis].data)[peak_rows]
    near = np.clip(peak_channel[:, None] + np.arange(-4, 5), 0, channels - 1)  # 9 channels per unit
    rows = [np.unique(r).tolist() for r in near + (probe * channels)[:, None]]
    nwb.units = _units_table(
        nwb, times, ends, rows, [electrodes["groups"][p] for p in probe], duration, scalar
    )


def _units_table(
    nwb: Any,
    spike_times: np.ndarray,
    ends: np.ndarray,
    electrode_rows: list[list[int]],
    groups: list[Any],
    duration: float,
    scalar: dict[str, np.ndarray],
) -> Any:
    """A Units table built column by column, so the spike times are written as one array."""
    from hdmf.common import DynamicTableRegion, VectorData, VectorIndex
    from pynwb.misc import Units

    n = len(ends)
    spikes = VectorData(name="spike_times", description="spike times (s)", data=spike_times)
    intervals = VectorData(
        name="obs_intervals", description="observed", data=np.tile([[0.0, duration]], (n, 1))
    )
    region = DynamicTableRegion(
        name="electrodes",
        description="channels the unit was recorded on",
        data=[r for rows in electrode_rows for r in rows],
        table=nwb.electrodes,
    )
    columns = [
        spikes,
        VectorIndex(name="spike_times_index", data=ends, target=spikes),
        intervals,
        VectorIndex(name="obs_intervals_index", data=np.arange(1, n + 1), target=intervals),
        region,
        VectorIndex(name="electrodes_index", data=np.cumsum([len(r) for r in electrode_rows]), target=region),
        VectorData(name="electrode_group", description="the unit's probe", data=groups),
        *_vector_columns(scalar),
    ]
    return Units(
        name="units", description="spike-sorted units (Kilosort 2.5)", columns=columns, id=np.arange(n)
    )


# --------------------------------------------------------------------------- behaviour


def _running_speed(pynwb: Any, rng: np.random.Generator, duration: float) -> Any:
    """Running speed (cm/s) at ~60 Hz with frame-time jitter, a smoothed random walk."""
    n = int(duration * RUNNING_RATE)
    timestamps = np.sort(np.arange(n) / RUNNING_RATE + rng.normal(0.0, 2e-4, n))
    walk = np.convolve(rng.normal(0.0, 2.0, n).cumsum(), np.ones(30) / 30, mode="same")
    speed = (np.abs(walk) % 60.0 - 5.0).astype(np.float32)
    return pynwb.TimeSeries(
        name="running_speed",
        description="linear forward running speed on a rotating disk, low-pass filtered",
        data=speed,
        timestamps=timestamps,
        unit="cm/s",
    )


def _lick_times(rng: np.random.Generator, trials: dict[str, Any], start: float, stop: float) -> np.ndarray:
    """Bursts of 3-8 licks at ~7 Hz from each response, plus sparse licks through the task (s)."""
    responses = trials["response_time"][np.isfinite(trials["response_time"])]
    burst = rng.integers(3, 9, len(responses))
    offsets = np.arange(burst.sum()) - np.repeat(np.cumsum(burst) - burst, burst)
    bursts = np.repeat(responses, burst) + offsets / 7.0 + rng.uniform(0.0, 0.02, burst.sum())
    sparse = rng.uniform(start, stop, rng.poisson(0.05 * (stop - start)))
    return np.sort(np.concatenate([bursts, sparse]))


def _add_events(
    pynwb: Any, nwb: Any, behavior: Any, rng: np.random.Generator, trials: dict[str, Any], task: _Epoch
) -> None:
    """Licks and rewards as EventsTables, quiescent violations as a timestamps table, lick sensor edges."""
    from hdmf.common import DynamicTable
    from pynwb.event import DurationVectorData, TimestampVectorData

    events_table = _events_table_class()
    licks = _lick_times(rng, trials, task.start, task.stop)
    durations = rng.uniform(0.02, 0.08, len(licks))
    rewards = np.sort(trials["reward_time"][np.isfinite(trials["reward_time"])])
    lick_columns = [
        TimestampVectorData(name="timestamp", description="lick sensor contact onset (s)", data=licks),
        DurationVectorData(name="duration", description="lick sensor contact (s)", data=durations),
    ]
    behavior.add(events_table(name="licks", description="lick sensor contacts", columns=lick_columns))
    reward_columns = [
        TimestampVectorData(name="timestamp", description="reward trigger time (s)", data=rewards),
        *_vector_columns({"is_manual": np.zeros(len(rewards), dtype=bool)}),
    ]
    behavior.add(events_table(name="rewards", description="water rewards", columns=reward_columns))
    violations = np.sort(rng.uniform(task.start, task.stop, 12))
    behavior.add(
        DynamicTable(
            name="quiescent_interval_violations",
            description="lick spout contacts during a pre-trial quiescent interval",
            columns=_vector_columns({"timestamps": violations}),
        )
    )
    nwb.add_acquisition(
        pynwb.TimeSeries(
            name="lick_sensor_events",
            description="lick sensor rising edges; data are the contact durations",
            data=durations,
            timestamps=licks,
            unit="seconds",
        )
    )


# --------------------------------------------------------------------------- LFP


def _add_lfp(
    pynwb: Any,
    nwb: Any,
    rng: np.random.Generator,
    electrodes: dict[str, Any],
    start: float,
    duration: float,
    n_channels: int,
) -> None:
    """One int16 ElectricalSeries per probe in processing/ecephys/LFP (0.195 µV per bit)."""
    from pynwb.ecephys import LFP, ElectricalSeries

    container = LFP(name="LFP")
    nwb.create_processing_module("ecephys", "processed ecephys data").add(container)
    n = int(duration * LFP_RATE)
    t = np.arange(n) / LFP_RATE
    for p, (group, rows) in enumerate(zip(electrodes["groups"], electrodes["rows"], strict=True)):
        picked = rows[np.linspace(0, len(rows) - 1, n_channels).astype(int)]
        phase = rng.uniform(0, 2 * np.pi, n_channels)
        microvolts = 120 * np.sin(2 * np.pi * 8 * t[:, None] + phase) + 30 * rng.standard_normal(
            (n, n_channels)
        )
        region = nwb.create_electrode_table_region(picked.tolist(), f"LFP channels of {group.name}")
        timing: dict[str, Any]
        if p == 0:
            timing = {"timestamps": start + t + rng.normal(0.0, 2e-6, n)}
            timing["timestamps"].sort()
        else:
            timing = {"starting_time": start, "rate": LFP_RATE}
            timing["channel_conversion"] = 1.0 + 0.01 * np.arange(n_channels)
        container.add_electrical_series(
            ElectricalSeries(
                name=group.name,
                description=f"subsampled LFP (0.5-500 Hz) from {group.name}",
                data=np.round(microvolts / 0.195).astype(np.int16),
                electrodes=region,
                conversion=LFP_CONVERSION,
                filtering="0.5-500 Hz",
                **timing,
            )
        )
