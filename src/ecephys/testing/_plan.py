"""The plan of a synthetic session, decided before anything is written: ids, probes and
their channels, the subject, the stimulus schedule and behaviour, invalid epochs and the units'
roles and drawn metrics, and which optional parts the session has. ``synthetic`` turns a
``Plan`` into files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ecephys.testing import _allen_layout as A
from ecephys.testing import _experiment as X

REFERENCE_CHANNELS = (36, 75, 112, 151, 188, 191, 227, 264, 303, 340, 379)
HORIZONTAL_UM = (43, 11, 59, 27)
TRACKS = (  # structure acronyms from tip to surface, one track per probe (cycled)
    ("APN", "MB", "DG-mo", "CA1", "VISam"),
    ("LP", "DG", "CA3", "CA1", "VISpm"),
    ("LGd-sh", "LP", "CA3", "CA1", "VISp"),
    ("POL", "SGN", "DG", "CA1", "VISl"),
    ("MGv", "LGv", "DG", "CA1", "VISrl"),
    ("TH", "LP", "CA3", "CA1", "VISal"),
)
HIPPOCAMPUS = ("CA1", "CA3", "DG", "DG-mo")


@dataclass
class Probe:
    """One probe's identity, rates (Hz, clock-corrected) and channel table (local order)."""

    index: int
    name: str
    probe_id: int
    sampling_rate: float
    channels: dict[str, np.ndarray]


@dataclass
class Plan:
    """Everything decided before writing: ids, probes, schedule, behaviour and unit roles."""

    session_id: int
    seed: int
    duration: float
    layout: A.Layout
    probes: list[Probe]
    subject: dict[str, Any]
    session_type: str
    schedule: X.Schedule
    opto: dict[str, np.ndarray]  # no rows when the session has no optotagging
    invalid: dict[str, Any] | None  # None: no invalid_times table
    eye_tracking: bool
    lfp_start: float
    lfp_nominal_rate: float
    units: list[dict[str, np.ndarray]]


def derive_ids(session_id: int) -> dict[str, int]:
    """Id bases derived from the session id (all stay below 2**31, like real ids)."""
    base = session_id // 1000 * 1000
    return {"probe": base + 1000, "channel": base + 100_001, "unit": base + 500_001, "donor": base + 900_001}


def plan_session(
    *,
    session_id: int,
    seed: int,
    duration: float,
    layout: A.Layout,
    n_probes: int,
    units_per_probe: int,
    noise_units: int,
    channels: int,
    lfp_duration: float,
    lfp_rate: float,
    median_rate: float,
    session_type: str = "brain_observatory_1.1",
    stimulus_schedule: str = "compact",
    all_nan_stimulus: bool = False,
    optotagging: bool = True,
    invalid_times: bool = True,
    eye_tracking: bool = True,
) -> Plan:
    """Decide ids, probes and channels, the stimulus schedule, behaviour and unit roles.

    Parts a session lacks (optotagging, invalid times) are still drawn, so that everything
    else is the same as in the session that has them.
    """
    rng = np.random.default_rng((seed, 1))
    id_bases = derive_ids(session_id)
    probes = [_plan_probe(rng, i, channels, id_bases, layout) for i in range(n_probes)]
    blocks = X.block_plan(session_type, stimulus_schedule, all_nan_stimulus)
    schedule, stim_end = X.schedule(rng, duration, blocks)
    opto = X.optotagging(rng, stim_end + 0.015 * duration, 0.97 * duration)
    if not optotagging:
        opto = {key: values[:0] for key, values in opto.items()}
    flashes = schedule.start[schedule.name == "flashes"]
    lfp_start = float(np.clip(flashes[0] - lfp_duration / 2, 0.0, duration - lfp_duration))
    invalid = _invalid_epochs(schedule, probes[-1], session_id, lfp_start, lfp_duration)
    units = [
        _plan_units(rng, p, units_per_probe, noise_units, id_bases, duration, median_rate) for p in probes
    ]
    return Plan(
        session_id=session_id,
        seed=seed,
        duration=duration,
        layout=layout,
        probes=probes,
        subject=_subject(rng, id_bases["donor"]),
        session_type=session_type,
        schedule=schedule,
        opto=opto,
        invalid=invalid if invalid_times else None,
        eye_tracking=eye_tracking,
        lfp_start=lfp_start,
        lfp_nominal_rate=lfp_rate,
        units=units,
    )


def _plan_probe(
    rng: np.random.Generator, index: int, n_channels: int, ids: dict[str, int], layout: A.Layout
) -> Probe:
    """A probe with NP1.0 geometry, a structure track from tip to surface and CCF positions."""
    local = np.arange(n_channels)
    vertical = 20 + 20 * (local // 2)
    n_in = int(np.clip(round(n_channels * rng.uniform(0.68, 0.76)), 1, n_channels - 2))
    track = TRACKS[index % len(TRACKS)]
    bounds = np.round(np.cumsum(rng.dirichlet(np.full(len(track), 4.0))) * n_in).astype(int)
    structure = np.minimum(np.searchsorted(bounds, local, side="right"), len(track) - 1)
    in_brain = local < n_in
    location = np.where(in_brain, np.array(track, dtype=object)[structure], layout.out_of_brain_location)
    tip = np.array([rng.uniform(7600, 9400), rng.uniform(4200, 5200), rng.uniform(6900, 8400)])
    direction = np.array([rng.uniform(0.05, 0.5), -1.0, rng.uniform(-0.1, 0.1)])
    direction /= np.linalg.norm(direction)
    ccf = np.round(tip[None, :] + (vertical - 20)[:, None] * direction[None, :])
    ccf[~in_brain] = np.nan
    name = f"probe{chr(ord('A') + index)}"
    channels = {
        "id": ids["channel"] + 1000 * index + local,
        "channel_number": local,
        "probe_vertical_position": vertical,
        "probe_horizontal_position": np.asarray(HORIZONTAL_UM)[local % 4],
        "valid_data": ~np.isin(local, REFERENCE_CHANNELS),
        "in_brain": in_brain,
        "location": location,
        "x": ccf[:, 0],
        "y": ccf[:, 1],
        "z": ccf[:, 2],
        "hippocampal": in_brain & np.isin(location, HIPPOCAMPUS),
        "group_name": np.full(n_channels, name, dtype=object),
    }
    channels["probe_id"] = np.full(n_channels, ids["probe"] + 1000 * index + 18)
    return Probe(
        index=index,
        name=name,
        probe_id=ids["probe"] + 1000 * index + 18,
        sampling_rate=30000.0 * (1 + rng.normal(0, 2e-6)),
        channels=channels,
    )


def _subject(rng: np.random.Generator, donor_id: int) -> dict[str, Any]:
    """A made-up EcephysSpecimen: Cre line, age (days), sex and ids."""
    lines = (("Sst-IRES-Cre", "Sst"), ("Pvalb-IRES-Cre", "Pvalb"), ("Vip-IRES-Cre", "Vip"))
    strain, _ = lines[int(rng.integers(len(lines)))]
    days = int(rng.integers(90, 150))
    return {
        "specimen_name": f"{strain};Ai32-{donor_id % 1_000_000:06d}",
        "age_in_days": float(days),
        "age": f"P{days}D",
        "genotype": f"{strain}/wt;Ai32(RCL-ChR2(H134R)_EYFP)/wt",
        "sex": str(rng.choice(["M", "F"])),
        "species": "Mus musculus",
        "strain": strain,
        "subject_id": str(donor_id),
    }


def _invalid_epochs(
    schedule: X.Schedule, last_probe: Probe, session_id: int, lfp_start: float, lfp_duration: float
) -> dict[str, Any]:
    """One session-wide 'stimulus' epoch over ~3 static gratings (gabors where there are
    none) and one epoch on the last probe, a third of the way into its LFP window."""
    sg = np.flatnonzero(schedule.name == "static_gratings")
    if not sg.size:
        sg = np.flatnonzero(schedule.name == "gabors")
    first = sg[len(sg) // 2] if len(sg) >= 4 else sg[0]
    s0 = float(schedule.start[first]) + 0.01
    p0 = lfp_start + lfp_duration / 3
    return {
        "start": np.array([s0, p0]),
        "stop": np.array([s0 + 0.6, p0 + min(1.0, lfp_duration / 10)]),
        "tags": [
            ("EcephysSession", str(session_id), "stimulus"),
            ("EcephysProbe", str(last_probe.probe_id), last_probe.name),
        ],
    }


def _roles(n_units: int, n_noise: int) -> dict[str, np.ndarray]:
    """Unit roles by position within the probe (see ``make_session`` Notes)."""
    pos = np.arange(n_units)
    noise = pos >= n_units - n_noise
    other = pos - 2
    plain = (other >= 0) & ~noise
    return {
        "noise": noise,
        "out_of_brain": pos == 0,
        "invalid_channel": pos == 1,
        "dropout": plain & (other % 8 == 0),
        "contaminated": plain & (other % 8 == 2),
        "high_cutoff": plain & (other % 8 == 4),
    }


def _peak_channels(
    rng: np.random.Generator, roles: dict[str, np.ndarray], ch: dict[str, np.ndarray]
) -> np.ndarray:
    """Peak channels (local index): valid in-brain ones, except for the two channel roles."""
    valid_in = np.flatnonzero(ch["valid_data"] & ch["in_brain"])
    peaks = rng.choice(valid_in, size=roles["noise"].size)
    outside = np.flatnonzero(~ch["in_brain"] & ch["valid_data"])
    peaks[roles["out_of_brain"]] = rng.choice(outside) if outside.size else np.flatnonzero(~ch["in_brain"])[0]
    refs = np.flatnonzero(~ch["valid_data"])
    if refs.size:
        inside_refs = refs[ch["in_brain"][refs]]
        peaks[roles["invalid_channel"]] = inside_refs[0] if inside_refs.size else refs[0]
    return peaks


def _plan_units(
    rng: np.random.Generator,
    probe: Probe,
    n_good: int,
    n_noise: int,
    ids: dict[str, int],
    duration: float,
    median_rate: float,
) -> dict[str, np.ndarray]:
    """Per-unit ids, roles, peak channels, base rates and the drawn (not computed) metrics."""
    n = n_good + n_noise
    roles = _roles(n, n_noise)
    peaks = _peak_channels(rng, roles, probe.channels)

    def u(low: float, high: float) -> np.ndarray:
        """One uniform draw per unit."""
        return rng.uniform(low, high, n)

    def velocity() -> np.ndarray:
        """Propagation velocity per unit; NaN for ~40 % of units, as when not measurable."""
        return np.where(rng.random(n) < 0.4, np.nan, rng.normal(0.6, 0.8, n))

    units = {
        "id": ids["unit"] + 10_000 * probe.index + np.arange(n),
        "peak_channel_id": probe.channels["id"][peaks],
        "peak_local": peaks,
        "local_index": np.arange(n),
        "cluster_id": np.sort(rng.choice(n + max(1, n // 8), size=n, replace=False)),
        "quality": np.where(roles["noise"], "noise", "good").astype(object),
        "base_rate": np.clip(rng.lognormal(np.log(median_rate), 1.3, n), max(0.2, 100 / duration), 100.0),
        "snr": u(1.5, 5.0),
        "amplitude_cutoff": np.where(roles["high_cutoff"], u(0.11, 0.3), u(0.002, 0.095)),
        "isolation_distance": u(20, 120),
        "l_ratio": u(0.001, 0.09),
        "d_prime": u(2.0, 7.5),
        "nn_hit_rate": u(0.6, 1.0),
        "nn_miss_rate": u(0.0, 0.012),
        "max_drift": u(10, 60),
        "cumulative_drift": u(50, 600),
        "silhouette_score": u(0.0, 0.21),
        "waveform_duration": u(0.25, 0.9),
        "waveform_halfwidth": u(0.1, 0.4),
        "PT_ratio": u(0.3, 0.8),
        "repolarization_slope": u(0.25, 0.95),
        "recovery_slope": u(-0.3, -0.03),
        "amplitude": u(60, 270),
        "spread": u(30, 90),
        "velocity_above": velocity(),
        "velocity_below": velocity(),
    }
    units.update(roles)
    return units


def lfp_rate(plan: Plan, probe: Probe) -> float:
    """The probe's LFP sampling rate after subsampling, with a small per-probe clock correction."""
    rng = np.random.default_rng((plan.seed, 5, probe.index))
    return plan.lfp_nominal_rate * (1 + rng.normal(0, 1.5e-6))


def lfp_candidates(local: np.ndarray, in_brain: np.ndarray | None = None) -> np.ndarray:
    """Every 4th valid channel, in-brain ones first (both groups in local order)."""
    pick = local[(local % 4 == 0) & ~np.isin(local, REFERENCE_CHANNELS)]
    if in_brain is None:
        return pick
    return np.concatenate((pick[in_brain[pick]], pick[~in_brain[pick]]))
