"""Synthetic signals for ``make_session``: spike trains, unit metrics, mean waveforms, LFP, CSD.

Everything is vectorised numpy; the only Python loops run over units, LFP blocks and flashes,
never over spikes or samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REFRACTORY_S = 0.0015  # dead time of clean units and the ISI-violation threshold
SUSTAINED = 0.5  # sustained response, relative to the unit's gain, while a stimulus is on
TRANSIENT_DELAY_S = 0.02  # onset transient peaks this long after the response latency
TRANSIENT_WIDTH_S = 0.015
DRIFT_DEPTH = 0.3  # slow state drift: rate x (1 + 0.3 sin(...))
LFP_STEP_UV = 0.195  # one int16 LFP step, µV
PRESENCE_BINS = 100


@dataclass(frozen=True)
class Events:
    """Stimulus and laser events that drive spiking, sorted by onset (s)."""

    onset: np.ndarray
    duration: np.ndarray
    transient: np.ndarray  # weight of the onset transient per event


@dataclass(frozen=True)
class UnitDrive:
    """How one unit responds: base rate (Hz), per-event gains, latency (s), drift and dropout."""

    base_rate: float
    gains: np.ndarray
    latency: float
    drift_period: float
    drift_phase: float
    dropout_start: float | None  # silent for a third of the session from here (s)


def spike_train(rng: np.random.Generator, drive: UnitDrive, events: Events, duration: float) -> np.ndarray:
    """Inhomogeneous Poisson spike times (s, sorted, in [0, duration)) by piecewise thinning.

    The session is cut at every event onset; inside each window the rate is bounded by a
    constant, so candidates are drawn per window and kept with probability rate / bound.
    """
    edges = np.concatenate(([0.0], events.onset, [duration]))
    lengths = np.diff(edges)
    gains = np.concatenate(([0.0], drive.gains))
    transient = np.concatenate(([0.0], events.transient))
    on_time = np.concatenate(([0.0], events.duration))
    bound = drive.base_rate * (1 + DRIFT_DEPTH) * (1 + np.maximum(gains, 0.0) * (transient + SUSTAINED))
    counts = rng.poisson(bound * lengths)
    window = np.repeat(np.arange(lengths.size), counts)
    since = rng.random(window.size) * lengths[window]
    times = edges[window] + since
    after = since - drive.latency
    shape = transient[window] * np.exp(-0.5 * ((after - TRANSIENT_DELAY_S) / TRANSIENT_WIDTH_S) ** 2)
    shape += SUSTAINED * ((after >= 0) & (after < on_time[window]))
    drift = 1 + DRIFT_DEPTH * np.sin(2 * np.pi * times / drive.drift_period + drive.drift_phase)
    rate = drive.base_rate * drift * np.maximum(1 + gains[window] * shape, 0.0)
    times = np.sort(times[rng.random(window.size) * bound[window] < rate])
    if drive.dropout_start is not None:
        silent = (times >= drive.dropout_start) & (times < drive.dropout_start + duration / 3)
        times = times[~silent]
    return times[times < duration]


def enforce_refractory(times: np.ndarray) -> np.ndarray:
    """Drop every spike closer than the dead time to its predecessor (one pass suffices)."""
    if times.size < 2:
        return times
    return times[np.concatenate(([True], np.diff(times) >= REFRACTORY_S))]


def contaminate(rng: np.random.Generator, times: np.ndarray, duration: float, target: float) -> np.ndarray:
    """Add spikes 0.2–1.2 ms after randomly chosen spikes until ``isi_violations`` ≳ ``target``.

    Each added spike makes at least one violation, so the count follows from the metric's
    definition: violations = target · 2 · n² · threshold / duration.
    """
    n = times.size
    if n == 0:
        return times
    extra = 0
    for _ in range(4):  # fixed point: n grows with the added spikes
        extra = min(n, int(np.ceil(target * 2 * (n + extra) ** 2 * REFRACTORY_S / duration)))
    parents = rng.choice(n, size=extra, replace=False)
    added = times[parents] + rng.uniform(0.0002, 0.0012, size=extra)
    return np.sort(np.concatenate((times, added[added < duration])))


def spike_amplitudes(rng: np.random.Generator, times: np.ndarray, amplitude_uv: float) -> np.ndarray:
    """Per-spike template amplitudes in volts (~1e-4): log-normal scatter plus a slow drift."""
    drift = 1 + 0.1 * np.sin(2 * np.pi * times / 1800.0 + rng.uniform(0, 2 * np.pi))
    return amplitude_uv * 1e-6 * 0.9 * drift * rng.lognormal(0.0, 0.18, times.size)


def isi_violations(times: np.ndarray, duration: float) -> float:
    """False-positive rate from refractory violations (ecephys_spike_sorting's definition).

    violations / (2 · n · threshold) divided by the overall rate n / duration; spikes at
    identical times count once.
    """
    times = times[np.concatenate(([True], np.diff(times) > 0))] if times.size else times
    n = times.size
    if n == 0:
        return 0.0
    violations = int(np.count_nonzero(np.diff(times) < REFRACTORY_S))
    return violations / (2 * n * REFRACTORY_S) / (n / duration)


def presence_ratio(times: np.ndarray, duration: float) -> float:
    """Fraction of 100 equal bins over the session that hold at least one spike."""
    counts, _ = np.histogram(times, bins=PRESENCE_BINS, range=(0.0, duration))
    return float(np.count_nonzero(counts)) / PRESENCE_BINS


def mean_waveforms(
    rng: np.random.Generator,
    *,
    peak_channel: np.ndarray,
    vertical: np.ndarray,
    horizontal: np.ndarray,
    amplitude_uv: np.ndarray,
    spread_um: np.ndarray,
    duration_ms: np.ndarray,
    halfwidth_ms: np.ndarray,
    pt_ratio: np.ndarray,
    is_noise: np.ndarray,
    n_samples: int,
) -> np.ndarray:
    """Mean waveforms (units, channels, samples) in µV at 30 kHz on every channel of the probe.

    A trough (half-width ``halfwidth_ms``) followed by a peak ``duration_ms`` later, scaled
    by exp(-distance / spread) from the peak channel, plus 1 µV noise; noise units are weak.
    """
    t_ms = (np.arange(n_samples) - 0.25 * n_samples) / 30.0
    sigma_trough = (halfwidth_ms / 2.355)[:, None]
    sigma_peak = (duration_ms / 1.5)[:, None]
    temporal = -np.exp(-0.5 * (t_ms / sigma_trough) ** 2)
    temporal += pt_ratio[:, None] * np.exp(-0.5 * ((t_ms - duration_ms[:, None]) / sigma_peak) ** 2)
    scale = np.where(is_noise, 0.15, 1.0) * amplitude_uv * 1.2
    dv = vertical[None, :] - vertical[peak_channel][:, None]
    dh = horizontal[None, :] - horizontal[peak_channel][:, None]
    spatial = scale[:, None] * np.exp(-np.hypot(dv, dh) / spread_um[:, None])
    out = spatial[:, :, None] * temporal[:, None, :]
    out += rng.normal(0.0, 1.0, out.shape) * np.where(is_noise, 4.0, 1.0)[:, None, None]
    return out.astype(np.float32)


# --------------------------------------------------------------------------- LFP and CSD


def erp_templates(dt: np.ndarray) -> np.ndarray:
    """Two flash-evoked components (early negative, late positive) at ``dt`` s after onset."""
    early = -np.exp(-0.5 * ((dt - 0.05) / 0.012) ** 2)
    late = np.exp(-0.5 * ((dt - 0.11) / 0.03) ** 2)
    out = np.stack((early, late), axis=-1)
    out[(dt < 0) | (dt > 0.4)] = 0.0
    return out


def erp_profiles(vertical_um: np.ndarray, wavelength_um: float, phase: float) -> np.ndarray:
    """Depth profiles (µV) of the two evoked components at the given vertical positions."""
    arg = 2 * np.pi * vertical_um / wavelength_um + phase
    return np.stack((80.0 * np.sin(arg), 50.0 * np.cos(arg)))


@dataclass(frozen=True)
class LfpModel:
    """Everything needed to synthesise any block of one probe's LFP deterministically.

    ``knot_rates``/``knots``: slow 1/f-like components, random values at a few Hz linearly
    interpolated; ``weights`` (components, channels) mixes slow components, theta (sin, cos)
    and the two evoked components into µV per channel; ``noise`` is a table of white noise
    from which each block takes a random slice.
    """

    start: float
    rate: float
    n_samples: int
    knot_rates: tuple[float, ...]
    knots: tuple[np.ndarray, ...]
    theta_hz: float
    weights: np.ndarray
    flash_onsets: np.ndarray
    noise: np.ndarray
    seed: tuple[int, ...]

    def timestamps(self, i0: int, i1: int) -> np.ndarray:
        """Sample times (s, master clock) of samples ``i0:i1``."""
        return self.start + np.arange(i0, i1, dtype=np.float64) / self.rate

    def block(self, i0: int, i1: int) -> np.ndarray:
        """LFP samples ``i0:i1`` as float32 volts, quantised to 0.195 µV int16 steps."""
        t = self.timestamps(i0, i1)
        basis = np.empty((t.size, self.weights.shape[0]), dtype=np.float32)
        rel = t - self.start
        for k, (fk, values) in enumerate(zip(self.knot_rates, self.knots, strict=True)):
            basis[:, k] = np.interp(rel * fk, np.arange(values.size), values)
        k = len(self.knots)
        phase = 2 * np.pi * self.theta_hz * t
        basis[:, k], basis[:, k + 1] = np.sin(phase), np.cos(phase)
        basis[:, k + 2 :] = 0.0
        near = self.flash_onsets[(self.flash_onsets > t[0] - 0.4) & (self.flash_onsets < t[-1])]
        for onset in near:
            a, b = np.searchsorted(t, (onset, onset + 0.4))
            basis[a:b, k + 2 :] += erp_templates(t[a:b] - onset)
        uv = basis @ self.weights
        rng = np.random.default_rng((*self.seed, i0))
        offset = int(rng.integers(0, self.noise.shape[0] - uv.shape[0] + 1))
        uv += self.noise[offset : offset + uv.shape[0]]
        uv *= np.float32(1 / LFP_STEP_UV)  # in place from here on: blocks are large
        np.rint(uv, out=uv)
        np.clip(uv, -32768, 32767, out=uv)
        uv *= np.float32(LFP_STEP_UV * 1e-6)
        return uv


def lfp_model(
    rng: np.random.Generator,
    *,
    start: float,
    rate: float,
    n_samples: int,
    vertical_um: np.ndarray,
    hippocampal: np.ndarray,
    flash_onsets: np.ndarray,
    block_rows: int,
    seed: tuple[int, ...],
) -> tuple[LfpModel, tuple[float, float]]:
    """Draw one probe's LFP model; also returns the evoked profile's (wavelength µm, phase)."""
    n_channels = vertical_um.size
    duration = n_samples / rate
    knot_rates = (0.5, 3.0, 20.0)
    amplitudes = (60.0, 30.0, 12.0)
    knots = tuple(rng.normal(0.0, 1.0, int(duration * fk) + 2).astype(np.float32) for fk in knot_rates)
    depth = (vertical_um - vertical_um.min()) / max(float(np.ptp(vertical_um)), 1.0)
    slow = np.stack(
        [
            a * (1 + 0.4 * np.sin(2 * np.pi * depth * rng.uniform(0.3, 1.2) + rng.uniform(0, 6.3)))
            for a in amplitudes
        ]
    )
    theta_phase = 2 * np.pi * depth * 0.5
    theta = 35.0 * hippocampal * np.stack((np.cos(theta_phase), np.sin(theta_phase)))
    wavelength, phase = float(rng.uniform(500, 900)), float(rng.uniform(0, 2 * np.pi))
    weights = np.concatenate((slow, theta, erp_profiles(vertical_um, wavelength, phase))).astype(np.float32)
    noise = rng.normal(0.0, 6.0, (block_rows + 2**15, n_channels)).astype(np.float32)
    model = LfpModel(
        start=start,
        rate=rate,
        n_samples=n_samples,
        knot_rates=knot_rates,
        knots=knots,
        theta_hz=7.5,
        weights=weights,
        flash_onsets=np.asarray(flash_onsets, dtype=np.float64),
        noise=noise,
        seed=seed,
    )
    return model, (wavelength, phase)


def current_source_density(
    rng: np.random.Generator,
    *,
    vertical_um: np.ndarray,
    wavelength_um: float,
    phase: float,
    n_virtual: int,
) -> dict[str, np.ndarray]:
    """Flash-triggered CSD on ``n_virtual`` evenly spaced virtual channels.

    -d²φ/dy² of the evoked potential (V, y in cm) by second differences, ends set to 0;
    timestamps -0.1 to 0.25 s at 2500 Hz relative to flash onset. Returns timestamps,
    data (time, channel) in V/cm², and x/y positions in µm.
    """
    timestamps = -0.1 + np.arange(875) / 2500.0
    y = np.floor(np.linspace(vertical_um.min(), vertical_um.max(), n_virtual))
    potential = erp_templates(timestamps) @ erp_profiles(y, wavelength_um, phase) * 1e-6
    potential += rng.normal(0.0, 2e-7, potential.shape)
    data = np.zeros_like(potential)
    if n_virtual >= 3:
        h_cm = np.diff(y).mean() * 1e-4
        data[:, 1:-1] = -(potential[:, :-2] - 2 * potential[:, 1:-1] + potential[:, 2:]) / h_cm**2
    return {"timestamps": timestamps, "data": data, "x": np.full(n_virtual, 24.0), "y": y}
