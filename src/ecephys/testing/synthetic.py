"""Synthetic Allen Visual Coding – Neuropixels sessions written in the AllenSDK's NWB layout.

``make_session`` writes ``session_<sid>/session_<sid>.nwb`` and one
``session_<sid>/probe_<pid>_lfp.nwb`` per probe, with plain h5py, mirroring the files the
AllenSDK writers produce (layout ``"vcn2020"``: the released 2020 files; ``"sdk2162"``: the
2.16.2 writer). The data are made up but shaped like real ones; see ``make_session``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ecephys.errors import MissingDependency
from ecephys.testing import _allen_layout as A
from ecephys.testing import _experiment as X
from ecephys.testing import _nwb_writer as W
from ecephys.testing import _plan as P
from ecephys.testing import _signals as S

__all__ = ["SessionFiles", "make_session"]

SESSION_START = "2019-01-08T13:39:03-08:00"
LFP_INSTITUTION = "Allen Institute for Brain Science"  # both writers' LFP files say so
LFP_BLOCK_SAMPLES = 2**16
_COPY_ROWS = 2**22
# makes a progress bar: called with tqdm's keyword arguments, used as a context manager
BarFactory = Callable[..., contextlib.AbstractContextManager[Any]]


@dataclass(frozen=True)
class SessionFiles:
    """Where ``make_session`` wrote one session: the session file and the probe LFP files."""

    session_path: Path
    lfp_paths: dict[int, Path]
    session_id: int
    probe_ids: list[int]


# --------------------------------------------------------------------------- public API


def make_session(
    path: str | os.PathLike,
    *,
    n_probes: int = 2,
    units_per_probe: int = 8,
    duration: float = 200.0,
    seed: int = 0,
    layout: str = "vcn2020",
    session_id: int = 999000001,
    channels_per_probe: int = 96,
    noise_units_per_probe: int = 1,
    waveform_samples: int = 82,
    lfp: bool = True,
    lfp_duration: float = 10.0,
    lfp_channels: int = 8,
    lfp_rate: float = 1250.0,
    csd_channels: int = 16,
    median_rate: float = 3.0,
    progress: bool = False,
    session_type: str = "brain_observatory_1.1",
    stimulus_schedule: str = "compact",
    all_nan_stimulus: bool = False,
    eye_tracking: bool = True,
    optotagging: bool = True,
    invalid_times: bool = True,
) -> SessionFiles:
    """Write a synthetic session in the AllenSDK cache layout under the folder ``path``.

    Parameters
    ----------
    path
        Folder to write ``session_<sid>/session_<sid>.nwb`` and ``probe_<pid>_lfp.nwb`` into.
    n_probes, units_per_probe, noise_units_per_probe
        Probes (named probeA…), 'good' units and extra ``quality='noise'`` units per probe.
    duration
        Recording length in seconds; the stimulus schedule is scaled to it.
    seed
        Everything except ``object_id`` attributes and ``file_create_date`` follows from it.
    layout
        ``"vcn2020"`` (AllenSDK v2.0.0 writer, the released files) or ``"sdk2162"``.
    session_id
        Session id; probe (…1018, …2018), channel, unit and donor ids derive from it.
    channels_per_probe, waveform_samples
        Neuropixels 1.0 channels per probe (≤ 384) and mean-waveform samples (30 kHz).
    lfp, lfp_duration, lfp_channels, lfp_rate, csd_channels
        Whether to write LFP files; LFP window length (s, placed around the first flashes),
        channels (every 4th valid channel, in-brain first), nominal rate (Hz) and CSD
        virtual channels.
    median_rate
        Median base firing rate of the units, Hz.
    progress
        Show tqdm progress bars (needs the ``progress`` extra).
    session_type
        The stimulus set: ``"brain_observatory_1.1"`` (gabors, flashes, drifting and static
        gratings, natural scenes and movies) or ``"functional_connectivity"`` (gabors,
        flashes, ``drifting_gratings_contrast``, ``drifting_gratings_75_repeats``,
        ``natural_movie_one_more_repeats``, ``natural_movie_one_shuffled`` and ``dot_motion``
        with the real files' oddly cased columns ``Dir``, ``Speed``, ``dotLife``,
        ``fieldSize``, ...), also written to ``/general/stimulus``.
    stimulus_schedule
        ``"compact"``: each stimulus in a few blocks, ~2.3 presentations per second (~450 in
        the default 200 s). ``"full"``: a real session's block order and shares, where the
        one-row-per-frame 30 Hz movie blocks give ~7 presentations per second: ~70,000
        (brain_observatory_1.1, with ``natural_movie_three``) or ~77,000
        (functional_connectivity) in 10,000 s, as real sessions have.
    all_nan_stimulus
        Add a short block of ``"all_nan_stimulus"`` presentations whose parameter columns
        (``contrast``, ``frame``, ``orientation``, ``x_position``, ``opacity``) are all NaN.
    eye_tracking, optotagging, invalid_times
        Whether the session has eye tracking (the ``eye_tracking``, ``raw_gaze_mapping``,
        ``filtered_gaze_mapping`` and ``eye_tracking_rig_metadata`` modules), optotagging
        (the ``optotagging`` module; units then get no laser responses) and
        ``/intervals/invalid_times``. Everything else stays as with them.

    Returns
    -------
    SessionFiles
        Paths, session id and probe ids.

    Notes
    -----
    Unit roles are fixed by position within each probe (``local_index``): 0 has its peak
    channel out of the brain, 1 on a reference channel (``valid_data`` False), the last
    ``noise_units_per_probe`` are noise; of the others, every 8th from 2 drops out for a
    third of the session (presence_ratio < 0.95), from 4 is contaminated (isi_violations
    > 0.5) and from 6 has amplitude_cutoff > 0.1.
    """
    _validate(locals())
    bar_factory = _progress_factory(progress)
    plan = P.plan_session(
        session_id=session_id,
        seed=seed,
        duration=float(duration),
        layout=A.LAYOUTS[layout],
        n_probes=n_probes,
        units_per_probe=units_per_probe,
        noise_units=noise_units_per_probe,
        channels=channels_per_probe,
        lfp_duration=float(lfp_duration),
        lfp_rate=float(lfp_rate),
        median_rate=float(median_rate),
        session_type=session_type,
        stimulus_schedule=stimulus_schedule,
        all_nan_stimulus=bool(all_nan_stimulus),
        optotagging=bool(optotagging),
        invalid_times=bool(invalid_times),
        eye_tracking=bool(eye_tracking),
    )
    folder = Path(path) / f"session_{session_id}"
    folder.mkdir(parents=True, exist_ok=True)
    session_path = folder / f"session_{session_id}.nwb"
    scratch = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=folder))
    try:
        counts = _generate_spikes(plan, scratch, bar_factory)
        with _atomic_h5(session_path) as nwb:
            _write_session_file(nwb, plan, counts, scratch, waveform_samples)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    lfp_paths: dict[int, Path] = {}
    if lfp:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for probe in plan.probes:
                lfp_path = folder / f"probe_{probe.probe_id}_lfp.nwb"
                with _atomic_h5(lfp_path) as nwb:
                    _write_lfp_file(
                        nwb,
                        plan,
                        probe,
                        lfp_duration=float(lfp_duration),
                        n_channels=lfp_channels,
                        csd_channels=csd_channels,
                        pool=pool,
                        bar_factory=bar_factory,
                    )
                lfp_paths[probe.probe_id] = lfp_path
    return SessionFiles(session_path, lfp_paths, session_id, [p.probe_id for p in plan.probes])


def _validate(args: dict[str, Any]) -> None:
    """Check make_session's arguments; the message names the parameter and the accepted range."""
    for name, accepted in (
        ("layout", sorted(A.LAYOUTS)),
        ("session_type", list(X.SESSION_TYPES)),
        ("stimulus_schedule", list(X.SCHEDULES)),
    ):
        if args[name] not in accepted:
            raise ValueError(f"{name}={args[name]!r}: expected one of {accepted}")
    checks = (
        ("n_probes", 1, 26),
        ("units_per_probe", 1, 9000),
        ("noise_units_per_probe", 0, 999),
        ("channels_per_probe", 4, 384),
        ("waveform_samples", 1, 10_000),
        ("lfp_channels", 1, 384),
        ("csd_channels", 3, 10_000),
        ("seed", 0, 2**63 - 1),
        ("session_id", 1, 2**31 - 10**6),
    )
    for name, low, high in checks:
        value = args[name]
        if not isinstance(value, int | np.integer) or not low <= value <= high:
            raise ValueError(f"{name}={value!r}: expected an integer from {low} to {high}")
    for name, low in (("duration", 20.0), ("lfp_duration", 0.01), ("lfp_rate", 1.0), ("median_rate", 0.01)):
        if not float(args[name]) >= low:
            raise ValueError(f"{name}={args[name]!r}: expected a number of at least {low}")
    if args["lfp"] and args["lfp_duration"] > args["duration"]:
        raise ValueError(
            f"lfp_duration={args['lfp_duration']!r}: expected at most duration={args['duration']!r} seconds"
        )
    available = len(P.lfp_candidates(np.arange(args["channels_per_probe"])))
    if args["lfp"] and args["lfp_channels"] > available:
        raise ValueError(
            f"lfp_channels={args['lfp_channels']}: a {args['channels_per_probe']}-channel probe has only "
            f"{available} valid channels at every 4th position; ask for at most {available}"
        )


def _progress_factory(progress: bool) -> BarFactory:
    """A callable making tqdm bars, or no-op bars when ``progress`` is False."""
    if not progress:
        return lambda **kwargs: contextlib.nullcontext(_NoBar())
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:
        raise MissingDependency(
            "make_session(progress=True) needs tqdm, which is not installed; "
            "install it with `pip install 'ecephys[progress]'` or pass progress=False."
        ) from exc
    return lambda **kwargs: tqdm(**kwargs)


class _NoBar:
    """Stands in for a tqdm bar when progress is off."""

    def update(self, n: int = 1) -> None:
        """Ignore progress."""


@contextlib.contextmanager
def _atomic_h5(target: Path) -> Iterator[h5py.File]:
    """Write an HDF5 file beside ``target`` and move it into place only once it is complete."""
    part = target.with_name(target.name + ".part")
    try:
        with h5py.File(part, "w") as nwb:
            yield nwb
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)


# --------------------------------------------------------------------------- spikes


def _generate_spikes(plan: P.Plan, scratch: Path, bar_factory: BarFactory) -> list[np.ndarray]:
    """Draw every unit's spikes probe by probe; spill each probe's times and amplitudes to
    ``scratch`` and fill in the computed metrics. Returns spike counts per probe."""
    events, params = X.events(plan.schedule, plan.opto)
    counts = []
    n_units = sum(len(u["id"]) for u in plan.units)
    with bar_factory(total=n_units, desc="units", unit="unit") as bar:
        for probe, units in zip(plan.probes, plan.units, strict=True):
            times, amps, n_spikes = [], [], np.zeros(len(units["id"]), dtype=np.int64)
            for key in ("firing_rate", "presence_ratio", "isi_violations"):
                units[key] = np.zeros(len(units["id"]))
            for j in range(len(units["id"])):
                rng = np.random.default_rng((plan.seed, 2, probe.index, j))
                t = _unit_spikes(rng, units, j, events, params, plan.duration)
                times.append(t)
                amps.append(S.spike_amplitudes(rng, t, float(units["amplitude"][j])))
                n_spikes[j] = t.size
                units["firing_rate"][j] = t.size / plan.duration
                units["presence_ratio"][j] = S.presence_ratio(t, plan.duration)
                units["isi_violations"][j] = S.isi_violations(t, plan.duration)
                bar.update(1)
            np.save(scratch / f"times_{probe.index}.npy", np.concatenate(times))
            np.save(scratch / f"amplitudes_{probe.index}.npy", np.concatenate(amps))
            counts.append(n_spikes)
    return counts


def _unit_spikes(
    rng: np.random.Generator,
    units: dict[str, np.ndarray],
    j: int,
    events: S.Events,
    params: dict[str, np.ndarray],
    duration: float,
) -> np.ndarray:
    """One unit's spike train, shaped by its role (dropout, contamination, clean refractoriness)."""
    drive = S.UnitDrive(
        base_rate=float(units["base_rate"][j]),
        gains=X.unit_gains(rng, params),
        latency=float(rng.uniform(0.03, 0.08)),
        drift_period=float(rng.uniform(600, 3000)),
        drift_phase=float(rng.uniform(0, 2 * np.pi)),
        dropout_start=float(rng.uniform(0.1, 0.55) * duration) if units["dropout"][j] else None,
    )
    times = S.enforce_refractory(S.spike_train(rng, drive, events, duration))
    if not units["dropout"][j]:
        times = _fill_empty_bins(rng, times, duration)
    if units["contaminated"][j]:
        times = S.contaminate(rng, times, duration, target=2.0)
    return times


def _fill_empty_bins(rng: np.random.Generator, times: np.ndarray, duration: float) -> np.ndarray:
    """Put one spike in each empty presence bin, ≥ 2 ms from its edges, so that units meant to
    pass the presence filter do (matters only for short sessions and low rates)."""
    width = duration / S.PRESENCE_BINS
    counts, _ = np.histogram(times, bins=S.PRESENCE_BINS, range=(0.0, duration))
    empty = np.flatnonzero(counts == 0)
    if not empty.size:
        return times
    added = empty * width + 0.002 + rng.random(empty.size) * (width - 0.004)
    return np.sort(np.concatenate((times, added)))


# --------------------------------------------------------------------------- session file


def _write_session_file(
    nwb: h5py.File, plan: P.Plan, counts: list[np.ndarray], scratch: Path, waveform_samples: int
) -> None:
    """The session NWB file: metadata, probes, channels, stimuli, behaviour and units."""
    layout = plan.layout
    W.start_nwb_file(
        nwb,
        identifier=str(plan.session_id),
        session_description="Data and metadata for an Ecephys session",
        session_start_time=SESSION_START,
    )
    A.write_general(
        nwb, session_id=plan.session_id, institution=layout.institution, stimulus=plan.session_type
    )
    A.write_subject(nwb, plan.subject)
    A.write_probes(nwb, [_probe_meta(p, plan) for p in plan.probes])
    electrodes = {k: np.concatenate([p.channels[k] for p in plan.probes]) for k in plan.probes[0].channels}
    A.write_electrodes(nwb, electrodes, layout)
    X.write_stimulus(nwb, plan.schedule, layout)
    if plan.invalid is not None:
        invalid = plan.invalid
        A.invalid_times_table(
            nwb.require_group("intervals"), invalid["start"], invalid["stop"], invalid["tags"]
        )
    if plan.opto["start"].size:
        X.write_optotagging(nwb, plan.opto)
    X.write_running(nwb, np.random.default_rng((plan.seed, 3)), plan.duration)
    if plan.eye_tracking:
        X.write_eye_tracking(nwb, np.random.default_rng((plan.seed, 4)), plan.duration)
    _write_units(nwb, plan, counts, scratch, waveform_samples)


def _probe_meta(probe: P.Probe, plan: P.Plan) -> A.ProbeMeta:
    """The file-level description of a probe (LFP rate 2500/2 Hz with a clock correction)."""
    return A.ProbeMeta(probe.name, probe.probe_id, probe.sampling_rate, P.lfp_rate(plan, probe), True)


def _write_units(
    nwb: h5py.File, plan: P.Plan, counts: list[np.ndarray], scratch: Path, n_samples: int
) -> None:
    """/units: metrics, ragged spike times and amplitudes copied from scratch, mean waveforms."""
    metrics = {k: np.concatenate([u[k] for u in plan.units]) for k in A.LIMS_UNIT_COLUMNS}
    all_counts = np.concatenate(counts)
    n_channels = [p.channels["id"].size for p in plan.probes]
    wf_rows = np.repeat(n_channels, [len(u["id"]) for u in plan.units])
    big = A.start_units_table(
        nwb,
        ids=np.concatenate([u["id"] for u in plan.units]),
        metrics=metrics,
        n_spikes=int(all_counts.sum()),
        waveform_rows=int(wf_rows.sum()),
        waveform_samples=n_samples,
        layout=plan.layout,
    )
    spike_at, row_at = 0, 0
    for probe, units, n in zip(plan.probes, plan.units, counts, strict=True):
        for kind, name in (("times", "spike_times"), ("amplitudes", "spike_amplitudes")):
            values = np.load(scratch / f"{kind}_{probe.index}.npy", mmap_mode="r")
            for a in range(0, values.size, _COPY_ROWS):
                piece = values[a : a + _COPY_ROWS]
                big[name][spike_at + a : spike_at + a + piece.size] = piece
        spike_at += int(n.sum())
        waves = _probe_waveforms(plan, probe, units, n_samples)
        big["waveform_mean"][row_at : row_at + waves.shape[0]] = waves
        row_at += waves.shape[0]
    group = nwb["units"]
    for name in ("spike_times", "spike_amplitudes"):
        W.vector_index(group, big[name], np.cumsum(all_counts))
    W.vector_index(group, big["waveform_mean"], np.cumsum(wf_rows))


def _probe_waveforms(
    plan: P.Plan, probe: P.Probe, units: dict[str, np.ndarray], n_samples: int
) -> np.ndarray:
    """One probe's mean waveforms as (units × channels, samples) float32 µV."""
    ch = probe.channels
    waves = S.mean_waveforms(
        np.random.default_rng((plan.seed, 6, probe.index)),
        peak_channel=units["peak_local"],
        vertical=ch["probe_vertical_position"].astype(float),
        horizontal=ch["probe_horizontal_position"].astype(float),
        amplitude_uv=units["amplitude"],
        spread_um=units["spread"],
        duration_ms=units["waveform_duration"],
        halfwidth_ms=units["waveform_halfwidth"],
        pt_ratio=units["PT_ratio"],
        is_noise=units["noise"],
        n_samples=n_samples,
    )
    return waves.reshape(-1, n_samples)


# --------------------------------------------------------------------------- LFP files


def _write_lfp_file(
    nwb: h5py.File,
    plan: P.Plan,
    probe: P.Probe,
    *,
    lfp_duration: float,
    n_channels: int,
    csd_channels: int,
    pool: ThreadPoolExecutor,
    bar_factory: BarFactory,
) -> None:
    """One probe's LFP file: its channels, the LFP ElectricalSeries (streamed) and the CSD."""
    layout = plan.layout
    ch = probe.channels
    rows = np.sort(P.lfp_candidates(ch["channel_number"], ch["in_brain"])[:n_channels])
    W.start_nwb_file(
        nwb,
        identifier=str(probe.probe_id),
        session_description=layout.lfp_session_description,
        session_start_time=SESSION_START,
    )
    A.write_general(
        nwb,
        session_id=plan.session_id,
        institution=LFP_INSTITUTION,
        stimulus=plan.session_type if layout.lfp_file_subject else None,
    )
    if layout.lfp_file_subject:
        A.write_subject(nwb, plan.subject)
    A.write_probes(nwb, [_probe_meta(probe, plan)], lfp_rate_divisor=layout.lfp_file_rate_divisor)
    table = A.write_electrodes(nwb, {k: v[rows] for k, v in ch.items()}, layout)
    rate = P.lfp_rate(plan, probe)
    n_samples = int(round(lfp_duration * rate))
    container = nwb["acquisition"].create_group(f"probe_{probe.probe_id}_lfp")
    W.mark(container, "LFP")
    series, data, stamps, direct = A.create_lfp_series(
        container,
        f"probe_{probe.probe_id}_lfp_data",
        n_samples=n_samples,
        n_channels=rows.size,
        compress=layout.compress_lfp,
    )
    W.electrodes_region(series, table, rows.size, f"lfp channels on probe {probe.probe_id}")
    nwb["acquisition"][f"probe_{probe.probe_id}_lfp_data"] = h5py.SoftLink(series.name)
    # direct writes need blocks starting on chunk boundaries: the timestamps' chunk is a
    # whole number of data chunks, so blocks of one timestamp chunk suit both datasets
    block_rows = stamps.chunks[0] if direct else LFP_BLOCK_SAMPLES
    flashes = plan.schedule.start[plan.schedule.name == "flashes"]
    rng = np.random.default_rng((plan.seed, 7, probe.index))
    vertical = ch["probe_vertical_position"][rows].astype(float)
    model, (wavelength, phase) = S.lfp_model(
        rng,
        start=plan.lfp_start,
        rate=rate,
        n_samples=n_samples,
        vertical_um=vertical,
        hippocampal=ch["hippocampal"][rows].astype(float),
        flash_onsets=flashes,
        block_rows=block_rows,
        seed=(plan.seed, 8, probe.index),
    )
    writers = [
        W.StreamWriter(data, direct=direct, pool=pool),
        W.StreamWriter(stamps, direct=direct, pool=pool),
    ]
    with bar_factory(total=n_samples, desc=f"LFP {probe.name}", unit="sample") as bar:
        for a in range(0, n_samples, block_rows):
            b = min(n_samples, a + block_rows)
            writers[0].write(a, model.block(a, b))
            writers[1].write(a, model.timestamps(a, b))
            bar.update(b - a)
    for writer in writers:
        writer.close()
    csd = S.current_source_density(
        rng, vertical_um=vertical, wavelength_um=wavelength, phase=phase, n_virtual=csd_channels
    )
    A.csd_module(
        nwb,
        description=layout.csd_description,
        timestamps=csd["timestamps"],
        data=csd["data"],
        x_positions=csd["x"],
        y_positions=csd["y"],
    )
