"""The experiment around the recording, for ``make_session``: the stimulus schedule of a
brain_observatory_1.1 or functional_connectivity session, optotagging, each unit's stimulus
tuning, the running wheel and eye tracking. Each part is planned as numpy arrays and written in
the AllenSDK's layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np
import pandas as pd

from ecephys.testing import _allen_layout as A
from ecephys.testing import _nwb_writer as W
from ecephys.testing._signals import Events

WHEEL_RADIUS_CM = 8.255
RUNNING_RATE_HZ = 60.0
EYE_RATE_HZ = 30.0
SCREEN_DISTANCE_CM = 15.0
PARAM_ORDER = (
    "color",
    "contrast",
    "frame",
    "orientation",
    "phase",
    "size",
    "spatial_frequency",
    "temporal_frequency",
    "x_position",
    "y_position",
    "mask",
    "opacity",
    "units",
    # dot_motion (PsychoPy DotStim), cased as the real files have them
    "Dir",
    "Speed",
    "coherence",
    "dotLife",
    "dotSize",
    "fieldPos",
    "fieldShape",
    "fieldSize",
    "nDots",
    "noiseDots",
)
ALL_NAN_STIMULUS = "all_nan_stimulus"
"""The stimulus ``make_session(all_nan_stimulus=True)`` adds: every parameter NaN."""
STIMULUS_INDEX = {
    "gabors": 0,
    "flashes": 1,
    "drifting_gratings": 2,
    "natural_movie_one": 3,
    "static_gratings": 4,
    "natural_scenes": 5,
    "natural_movie_three": 6,
    "drifting_gratings_contrast": 7,
    "natural_movie_one_more_repeats": 8,
    "natural_movie_one_shuffled": 9,
    "dot_motion": 10,
    "drifting_gratings_75_repeats": 11,
    ALL_NAN_STIMULUS: 12,
}
# Response models of the spiking drive: an event's kind is its index here.
KINDS = (
    "gabors",
    "flashes",
    "drifting_gratings",
    "natural_movie_one",
    "static_gratings",
    "natural_scenes",
    "optotagging",
    "dot_motion",
    "blank",
)
TRANSIENT = np.array([1.0, 1.5, 1.0, 0.0, 0.8, 0.8, 0.0, 1.0, 0.5])  # onset transient weight per kind
MODEL = {  # stimulus name: the response model (kind) its presentations drive
    **{name: KINDS.index(name) for name in KINDS[:6]},
    "natural_movie_three": KINDS.index("natural_movie_one"),
    "natural_movie_one_more_repeats": KINDS.index("natural_movie_one"),
    "natural_movie_one_shuffled": KINDS.index("natural_movie_one"),
    "drifting_gratings_contrast": KINDS.index("drifting_gratings"),
    "drifting_gratings_75_repeats": KINDS.index("drifting_gratings"),
    "dot_motion": KINDS.index("dot_motion"),
    ALL_NAN_STIMULUS: KINDS.index("blank"),
}
SESSION_TYPES = ("brain_observatory_1.1", "functional_connectivity")
SCHEDULES = ("compact", "full")
# Block plans by (session type, schedule): (stimulus, fraction of the session, spontaneous gap
# after it as a fraction of the session). "compact" shows each kind of stimulus in a few
# blocks (~2.3 presentations/s); "full" follows a real session's order and shares, where the
# 30 Hz one-row-per-frame movie blocks give ~7 presentations/s (~70,000 in 10,000 s).
BLOCK_PLANS = {
    ("brain_observatory_1.1", "compact"): (
        ("gabors", 0.08, 0.005),
        ("flashes", 0.05, 0.005),
        ("drifting_gratings", 0.18, 0.05),
        ("natural_movie_one", 0.03, 0.005),
        ("static_gratings", 0.06, 0.0),
        ("natural_scenes", 0.06, 0.005),
        ("static_gratings", 0.06, 0.0),
        ("natural_scenes", 0.06, 0.025),
    ),
    ("brain_observatory_1.1", "full"): (
        ("gabors", 0.09, 0.005),
        ("flashes", 0.03, 0.005),
        ("drifting_gratings", 0.06, 0.005),
        ("natural_movie_three", 0.065, 0.003),
        ("natural_movie_one", 0.03, 0.003),
        ("static_gratings", 0.05, 0.003),
        ("natural_scenes", 0.05, 0.005),
        ("natural_scenes", 0.05, 0.003),
        ("static_gratings", 0.05, 0.003),
        ("natural_movie_three", 0.065, 0.003),
        ("drifting_gratings", 0.04, 0.003),
        ("natural_movie_one", 0.03, 0.01),
    ),
    ("functional_connectivity", "compact"): (
        ("gabors", 0.08, 0.005),
        ("flashes", 0.05, 0.005),
        ("drifting_gratings_contrast", 0.05, 0.005),
        ("natural_movie_one_more_repeats", 0.03, 0.005),
        ("natural_movie_one_shuffled", 0.02, 0.005),
        ("dot_motion", 0.08, 0.005),
        ("drifting_gratings_75_repeats", 0.15, 0.025),
    ),
    ("functional_connectivity", "full"): (
        ("gabors", 0.09, 0.005),
        ("flashes", 0.03, 0.005),
        ("drifting_gratings_contrast", 0.03, 0.005),
        ("natural_movie_one_more_repeats", 0.09, 0.003),
        ("natural_movie_one_shuffled", 0.06, 0.005),
        ("dot_motion", 0.025, 0.005),
        ("drifting_gratings_75_repeats", 0.06, 0.005),
        ("natural_movie_one_more_repeats", 0.09, 0.005),
        ("dot_motion", 0.025, 0.005),
        ("drifting_gratings_75_repeats", 0.06, 0.01),
    ),
}
ALL_NAN_BLOCK = (ALL_NAN_STIMULUS, 0.01, 0.005)  # appended to the plan when asked for
GABOR_GRID = (-40.0, -20.0, 0.0, 20.0, 40.0)
DG_DIRECTIONS = tuple(float(d) for d in range(0, 360, 45))
DG_TEMPORAL = (1.0, 2.0, 4.0, 8.0, 15.0)
SG_ORIENTATIONS = tuple(float(d) for d in range(0, 180, 30))
SG_SPATIAL = (0.02, 0.04, 0.08, 0.16, 0.32)
SG_PHASES = (0.0, 0.25, 0.5, 0.75)
FC_ORIENTATIONS = (0.0, 45.0, 90.0, 135.0)
FC_CONTRASTS = (0.01, 0.02, 0.04, 0.08, 0.13, 0.2, 0.35, 0.6, 1.0)
DOT_DIRECTIONS = tuple(float(d) for d in range(0, 360, 45))
DOT_SPEEDS = (0.0, 0.0005, 0.001, 0.005, 0.01, 0.02, 0.04)  # PsychoPy units per frame
MOVIE_FRAMES = {"natural_movie_one": 900, "natural_movie_three": 3600}
_TEXT_KEYS = {
    "color",
    "phase",
    "size",
    "spatial_frequency",
    "mask",
    "units",
    "fieldPos",
    "fieldShape",
    "fieldSize",
    "noiseDots",
}


@dataclass(frozen=True)
class Schedule:
    """All presentations in time (CSV) order, spontaneous rows included.

    ``columns`` holds the parameter columns (text as object arrays, numbers as float64 with
    NaN) plus hidden numeric ``_color``/``_sf``/``_direction``/``_contrast_gain`` used by the
    spiking model; ``params_of`` lists which parameter columns each stimulus' table has and
    ``dtype_of`` their dtypes there (``spatial_frequency`` is text in most tables but a
    number in drifting_gratings_75_repeats, as in the real files).
    """

    start: np.ndarray
    stop: np.ndarray
    name: np.ndarray
    block: np.ndarray
    columns: dict[str, np.ndarray]
    params_of: dict[str, tuple[str, ...]]
    dtype_of: dict[str, dict[str, np.dtype]]


def _text(value: str, n: int) -> np.ndarray:
    """``n`` copies of a string as an object array."""
    return W.text_array([value] * n)


def _blanks(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    """Blank-sweep mask with probability ``p``; at least one blank once there are 5 rows."""
    blank = rng.random(n) < p
    if n >= 5 and not blank.any():
        blank[rng.integers(n)] = True
    return blank


def _gabors(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Gabor patches: 3 orientations on a 5 x 5 position grid, 0.25 s each."""
    return {
        "color": _text("[1.0, 1.0, 1.0]", n),
        "contrast": np.full(n, 0.8),
        "orientation": rng.choice([0.0, 45.0, 90.0], n),
        "phase": _text("[3644.93333333, 3644.93333333]", n),
        "size": _text("[20.0, 20.0]", n),
        "spatial_frequency": _text("0.08", n),
        "temporal_frequency": np.full(n, 4.0),
        "x_position": rng.choice(GABOR_GRID, n),
        "y_position": rng.choice(GABOR_GRID, n),
        "mask": _text("circle", n),
        "opacity": np.full(n, 1.0),
        "units": _text("deg", n),
        "_sf": np.full(n, 0.08),
    }


def _flashes(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Full-field flashes, colour +1 or -1, 0.25 s on every 2 s."""
    color = rng.choice([1.0, -1.0], n)
    return {
        "color": W.text_array([repr(float(c)) for c in color]),
        "contrast": np.full(n, 0.8),
        "orientation": np.full(n, 45.0),
        "phase": _text("[0.0, 0.0]", n),
        "size": _text("[300.0, 300.0]", n),
        "spatial_frequency": _text("[0.0, 0.0]", n),
        "mask": _text("None", n),
        "opacity": np.full(n, 1.0),
        "units": _text("deg", n),
        "_color": color,
    }


def _drifting_gratings(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Drifting gratings: 8 directions x 5 temporal frequencies, 2 s on 1 s off, ~5 % blanks."""
    blank = _blanks(rng, n, 0.05)
    return {
        "color": _text("[1.0, 1.0, 1.0]", n),
        "contrast": np.full(n, 0.8),
        "orientation": np.where(blank, np.nan, rng.choice(DG_DIRECTIONS, n)),
        "phase": _text("[42471.86666667, 42471.86666667]", n),
        "size": _text("[250.0, 250.0]", n),
        "spatial_frequency": _text("0.04", n),
        "temporal_frequency": np.where(blank, np.nan, rng.choice(DG_TEMPORAL, n)),
        "mask": _text("None", n),
        "opacity": np.full(n, 1.0),
        "units": _text("deg", n),
        "_sf": np.full(n, 0.04),
    }


def _natural_movie_one(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """natural_movie_one: one row per frame at 30 Hz, 900 frames, repeated."""
    return _natural_movie(n, MOVIE_FRAMES["natural_movie_one"])


def _natural_movie_three(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """natural_movie_three: one row per frame at 30 Hz, 3600 frames, repeated."""
    return _natural_movie(n, MOVIE_FRAMES["natural_movie_three"])


def _natural_movie(n: int, frames: int) -> dict[str, np.ndarray]:
    """A brain_observatory_1.1 movie table: ``n`` rows cycling through ``frames`` frames."""
    return {
        "contrast": np.full(n, 1.0),
        "frame": (np.arange(n) % frames).astype(np.float64),
        "size": _text("[1920.0, 1080.0]", n),
        "mask": _text("None", n),
        "opacity": np.full(n, 1.0),
        "units": _text("deg", n),
    }


def _static_gratings(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Static gratings: 6 orientations x 5 spatial frequencies x 4 phases, 0.25 s, ~4 % blanks."""
    blank = _blanks(rng, n, 0.04)
    sf = np.where(blank, np.nan, rng.choice(SG_SPATIAL, n))
    phase = rng.choice(SG_PHASES, n)
    return {
        "color": _text("[1.0, 1.0, 1.0]", n),
        "contrast": np.full(n, 0.8),
        "orientation": np.where(blank, np.nan, rng.choice(SG_ORIENTATIONS, n)),
        "phase": W.text_array(["N/A" if b else repr(float(p)) for b, p in zip(blank, phase, strict=True)]),
        "size": _text("[250.0, 250.0]", n),
        "spatial_frequency": W.text_array(
            ["N/A" if b else repr(float(s)) for b, s in zip(blank, sf, strict=True)]
        ),
        "mask": _text("None", n),
        "opacity": np.full(n, 1.0),
        "units": _text("deg", n),
        "_sf": sf,
    }


def _natural_scenes(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Natural scenes: 118 images and the blank (frame -1), 0.25 s each."""
    frame = rng.integers(-1, 118, n).astype(np.float64)
    if n >= 5 and not (frame == -1).any():
        frame[rng.integers(n)] = -1.0
    return {
        "frame": frame,
        "size": _text("[1174.0, 918.0]", n),
        "mask": _text("None", n),
        "opacity": np.full(n, 1.0),
        "units": _text("deg", n),
    }


# --------------------------------------------------------------------------- functional_connectivity


def _fc_movie(frame: np.ndarray) -> dict[str, np.ndarray]:
    """A functional_connectivity movie table (its columns differ from brain_observatory_1.1's)."""
    n = frame.size
    return {
        "color": _text("[1.0, 1.0, 1.0]", n),
        "contrast": np.full(n, 1.0),
        "frame": frame.astype(np.float64),
        "orientation": np.full(n, 0.0),
        "size": _text("[1920.0, 1080.0]", n),
        "opacity": np.full(n, 1.0),
        "units": _text("deg", n),
    }


def _natural_movie_one_more_repeats(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """natural_movie_one shown more often: one row per frame at 30 Hz, 900 frames, repeated."""
    return _fc_movie(np.arange(n) % MOVIE_FRAMES["natural_movie_one"])


def _natural_movie_one_shuffled(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """natural_movie_one with its frames in a new random order on every repeat."""
    frames = MOVIE_FRAMES["natural_movie_one"]
    repeats = -(-n // frames)
    return _fc_movie(np.argsort(rng.random((repeats, frames)), axis=1).ravel()[:n])


def _fc_gratings(rng: np.random.Generator, n: int, contrast: np.ndarray) -> dict[str, np.ndarray]:
    """Full-field drifting gratings at 2 Hz, 0.04 cycles/deg in 4 directions."""
    return {
        "color": _text("[1.0, 1.0, 1.0]", n),
        "contrast": contrast,
        "orientation": rng.choice(FC_ORIENTATIONS, n),
        "phase": _text("[0.0, 0.0]", n),
        "size": _text("[250.0, 250.0]", n),
        "spatial_frequency": _text("0.04", n),
        "temporal_frequency": np.full(n, 2.0),
        "mask": _text("None", n),
        "opacity": np.full(n, 1.0),
        "units": _text("deg", n),
        "_sf": np.full(n, 0.04),
        "_contrast_gain": contrast / 0.8,
    }


def _drifting_gratings_contrast(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Contrast tuning: 4 directions x 9 contrasts, 0.5 s on 0.5 s off."""
    return _fc_gratings(rng, n, rng.choice(FC_CONTRASTS, n))


def _drifting_gratings_75_repeats(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """4 directions at contrast 0.8, 2 s on 1 s off; ``spatial_frequency`` stored as a number."""
    table = _fc_gratings(rng, n, np.full(n, 0.8))
    table["spatial_frequency"] = np.full(n, 0.04)
    return table


def _dot_motion(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Moving dots (PsychoPy DotStim), 8 directions x 7 speeds, 1 s each, with the field's
    settings in the columns and casing of the real files (``Dir``, ``Speed``, ``dotLife``, ...)."""
    direction = rng.choice(DOT_DIRECTIONS, n)
    return {
        "color": _text("[1.0, 1.0, 1.0]", n),
        "contrast": np.full(n, 1.0),
        "opacity": np.full(n, 1.0),
        "units": _text("norm", n),
        "Dir": direction,
        "Speed": rng.choice(DOT_SPEEDS, n),
        "coherence": np.full(n, 0.9),
        "dotLife": np.full(n, 20.0),
        "dotSize": np.full(n, 15.0),
        "fieldPos": _text("[0.0, 0.0]", n),
        "fieldShape": _text("circle", n),
        "fieldSize": _text("[2.0, 2.0]", n),
        "nDots": np.full(n, 500.0),
        "noiseDots": _text("direction", n),
        "_direction": direction,
    }


def _all_nan(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """A stimulus whose parameter columns hold nothing but NaN."""
    return {key: np.full(n, np.nan) for key in ("contrast", "frame", "orientation", "x_position", "opacity")}


STIMULI = {  # name: (period s, on-time s, builder)
    "gabors": (0.25, 0.25, _gabors),
    "flashes": (2.0, 0.25, _flashes),
    "drifting_gratings": (3.0, 2.0, _drifting_gratings),
    "natural_movie_one": (1 / 30, 1 / 30, _natural_movie_one),
    "static_gratings": (0.25, 0.25, _static_gratings),
    "natural_scenes": (0.25, 0.25, _natural_scenes),
    "natural_movie_three": (1 / 30, 1 / 30, _natural_movie_three),
    "drifting_gratings_contrast": (1.0, 0.5, _drifting_gratings_contrast),
    "natural_movie_one_more_repeats": (1 / 30, 1 / 30, _natural_movie_one_more_repeats),
    "natural_movie_one_shuffled": (1 / 30, 1 / 30, _natural_movie_one_shuffled),
    "dot_motion": (1.0, 1.0, _dot_motion),
    "drifting_gratings_75_repeats": (3.0, 2.0, _drifting_gratings_75_repeats),
    ALL_NAN_STIMULUS: (0.5, 0.25, _all_nan),
}


def block_plan(
    session_type: str, schedule: str, all_nan_stimulus: bool
) -> tuple[tuple[str, float, float], ...]:
    """The blocks of a session type's schedule, the all-NaN stimulus appended when asked for."""
    plan = BLOCK_PLANS[session_type, schedule]
    return (*plan, ALL_NAN_BLOCK) if all_nan_stimulus else plan


def schedule(
    rng: np.random.Generator, duration: float, blocks: tuple[tuple[str, float, float], ...]
) -> tuple[Schedule, float]:
    """The stimulus schedule scaled to ``duration`` s, and the time (s) its last row ends.

    Spontaneous from 10 % to 15 % of the session, then ``blocks`` (see ``BLOCK_PLANS``) with
    spontaneous gaps; presentations of one stimulus never overlap.
    """
    parts: list[tuple[np.ndarray, np.ndarray, str, float, dict[str, np.ndarray]]] = []

    def spontaneous(a: float, b: float) -> None:
        """Append one spontaneous row from ``a`` to ``b`` s."""
        parts.append((np.array([a]), np.array([b]), "spontaneous", np.nan, {}))

    t = 0.15 * duration
    spontaneous(0.1 * duration, t)
    for block, (name, fraction, gap) in enumerate(blocks):
        period, on, build = STIMULI[name]
        n = max(1, int(fraction * duration / period))
        edges = t + np.arange(n + 1) * period
        stop = edges[1:] if on == period else edges[:-1] + on
        parts.append((edges[:-1], stop, name, float(block), build(rng, n)))
        t = float(edges[-1])
        if gap:
            spontaneous(t, t + gap * duration)
            t += gap * duration
    columns = {}
    keys = {k for *_, cols in parts for k in cols}
    for key in keys:
        pieces = []
        for start, *_, cols in parts:
            filler = _text("", start.size) if key in _TEXT_KEYS else np.full(start.size, np.nan)
            pieces.append(cols.get(key, filler))
        columns[key] = np.concatenate(pieces)
    params_of = {name: tuple(k for k in PARAM_ORDER if k in cols) for _, _, name, _, cols in parts}
    dtype_of = {name: {k: v.dtype for k, v in cols.items()} for _, _, name, _, cols in parts}
    result = Schedule(
        start=np.concatenate([p[0] for p in parts]),
        stop=np.concatenate([p[1] for p in parts]),
        name=W.text_array([p[2] for p in parts for _ in range(p[0].size)]),
        block=np.concatenate([np.full(p[0].size, p[3]) for p in parts]),
        columns=columns,
        params_of=params_of,
        dtype_of=dtype_of,
    )
    return result, float(result.stop[-1])


def optotagging(rng: np.random.Generator, t0: float, t1: float) -> dict[str, np.ndarray]:
    """Laser trials every ~2.25 s in [t0, t1): single pulses (5/10 ms), raised cosines and
    10 Hz pulse trains (1 s) at three power levels."""
    n = max(1, int((t1 - t0) / 2.25))
    kinds = rng.integers(0, 3, n)
    names = np.array(["pulse", "raised_cosine", "fast_pulses"], dtype=object)[kinds]
    conditions = np.array(
        ["a single square pulse", "half-period of a cosine wave", "2.5 ms pulses at 10 Hz"], dtype=object
    )[kinds]
    duration = np.where(kinds == 0, rng.choice([0.005, 0.01], n), 1.0)
    start = t0 + 2.25 * np.arange(n) + rng.uniform(0, 0.5, n)
    return {
        "start": start,
        "stop": start + duration,
        "duration": duration,
        "condition": conditions,
        "stimulus_name": names,
        "level": rng.choice([0.5, 1.0, 1.7], n),
    }


# --------------------------------------------------------------------------- spiking drive


def events(sched: Schedule, opto: dict[str, np.ndarray]) -> tuple[Events, dict[str, np.ndarray]]:
    """Stimulus presentations (spontaneous excluded) and laser trials as spiking events, with
    the parameters ``unit_gains`` needs per event."""
    stim = sched.name != "spontaneous"
    n_opto = opto["start"].size
    cols = sched.columns

    def param(key: str) -> np.ndarray:
        """A parameter per event: the presentations' values, then NaN for laser trials."""
        values = cols[key][stim] if key in cols else np.full(int(stim.sum()), np.nan)
        return np.concatenate((values, np.full(n_opto, np.nan)))

    codes, names = pd.factorize(sched.name[stim])
    models = np.array([MODEL[name] for name in names], dtype=np.int64)
    kind = np.concatenate((models[codes], np.full(n_opto, KINDS.index("optotagging"))))
    onset = np.concatenate((sched.start[stim], opto["start"]))
    duration = np.concatenate((sched.stop[stim] - sched.start[stim], opto["duration"]))
    order = np.argsort(onset, kind="stable")
    params = {
        key: param(key)[order]
        for key in ("orientation", "temporal_frequency", "x_position", "y_position", "frame")
    }
    direction = param("_direction")[order]  # dot motion: its Dir drives the direction tuning
    params["orientation"] = np.where(np.isnan(direction), params["orientation"], direction)
    params.update(
        kind=kind[order],
        sf=param("_sf")[order],
        color=param("_color")[order],
        level=np.concatenate((np.full(int(stim.sum()), np.nan), opto["level"]))[order],
        contrast_gain=np.nan_to_num(param("_contrast_gain")[order], nan=1.0),
    )
    return Events(onset=onset[order], duration=duration[order], transient=TRANSIENT[kind[order]]), params


def unit_gains(rng: np.random.Generator, p: dict[str, np.ndarray]) -> np.ndarray:
    """One unit's response gain per event: direction/orientation, temporal- and spatial-
    frequency tuning (gratings scaled by contrast), a gabor receptive field, flash ON/OFF,
    per-image scene and movie responses, dot-motion direction; about 10 % of units are
    optotagged. Blank sweeps and the all-NaN stimulus give 0 (an onset transient only)."""
    kind = p["kind"]
    responsiveness = rng.uniform(0.0, 1.6)
    pref, kappa = rng.uniform(0, 360), rng.uniform(0.5, 3.0)
    tf_pref, sf_pref = rng.choice(DG_TEMPORAL), rng.choice(SG_SPATIAL)
    x0, y0 = rng.uniform(-40, 40, 2)
    on, off = rng.uniform(-0.3, 2.0, 2)
    scenes = rng.gamma(1.0, 0.7, 119) - 0.2
    movie_freq, movie_phase = rng.uniform(2, 8), rng.uniform(0, 2 * np.pi)
    tagged = rng.random() < 0.1
    with np.errstate(invalid="ignore"):
        delta = np.radians(p["orientation"] - pref)
        direction = np.exp(kappa * (np.cos(delta) - 1))
        axis = np.exp(kappa * (np.cos(2 * delta) - 1))
        tf = np.exp(-0.5 * np.log2(p["temporal_frequency"] / tf_pref) ** 2)
        sf = np.exp(-0.5 * np.log2(p["sf"] / sf_pref) ** 2)
        rf = np.exp(-((p["x_position"] - x0) ** 2 + (p["y_position"] - y0) ** 2) / (2 * 25.0**2))
        frame = np.nan_to_num(p["frame"], nan=-1.0)
        movie = 1.2 * np.maximum(np.sin(2 * np.pi * frame / 900 * movie_freq + movie_phase), 0) - 0.2
        gains = np.select(
            [
                kind == 0,
                kind == 1,
                kind == 2,
                kind == 3,
                kind == 4,
                kind == 5,
                kind == KINDS.index("dot_motion"),
            ],
            [
                2.0 * rf * axis,
                np.where(p["color"] > 0, on, off),
                1.5 * direction * tf * p["contrast_gain"],
                movie,
                1.5 * axis * sf,
                scenes[np.clip(frame.astype(int) + 1, 0, 118)] * (frame >= 0),
                1.5 * direction,
            ],
            0.0,
        )
    gains = np.nan_to_num(gains) * responsiveness
    gains[kind == KINDS.index("optotagging")] = 0.0
    if tagged:
        opto = kind == KINDS.index("optotagging")
        gains[opto] = 6.0 * p["level"][opto]
    return np.clip(gains, -0.6, 12.0)


# --------------------------------------------------------------------------- writing


def write_stimulus(nwb: h5py.File, sched: Schedule, layout: A.Layout) -> None:
    """/processing/stimulus/timestamps and one ``<name>_presentations`` table per stimulus."""
    module = W.processing_module(nwb, "stimulus", "Stimulus Times processing")
    timestamps = W.time_series(module, "timestamps", sched.start, "s", timestamps=sched.start)
    intervals = nwb.require_group("intervals")
    for name in dict.fromkeys(sched.name):
        rows = np.flatnonzero(sched.name == name)
        n = rows.size
        cols = [
            W.Column("start_time", sched.start[rows]),
            W.Column("stop_time", sched.stop[rows]),
            W.Column("stimulus_name", W.text_array([name] * n)),
        ]
        if name != "spontaneous":
            index = np.full(n, STIMULUS_INDEX[name], dtype=layout.stimulus_index_dtype)
            cols += [W.Column("stimulus_block", sched.block[rows]), W.Column("stimulus_index", index)]
        elif layout.spontaneous_stimulus_index is not None:
            cols.append(
                W.Column("stimulus_index", np.full(n, layout.spontaneous_stimulus_index, dtype=np.int64))
            )
        dtypes = sched.dtype_of[name]
        cols += [W.Column(key, sched.columns[key][rows].astype(dtypes[key])) for key in sched.params_of[name]]
        A.presentation_table(intervals, name, cols, timestamps, rows, layout)


def write_optotagging(nwb: h5py.File, opto: dict[str, np.ndarray]) -> None:
    """/processing/optotagging: the laser-trial TimeSeries and the optogenetic_stimulation table."""
    module = W.processing_module(nwb, "optotagging", "optogenetic stimulution data")
    series = W.time_series(module, "optotagging", opto["duration"], "seconds", timestamps=opto["start"])
    n = opto["start"].size
    desc = A.PRESENTATION_DESCRIPTIONS
    cols = [
        W.Column("start_time", opto["start"], desc["start_time"]),
        W.Column("condition", opto["condition"]),
        W.Column("level", opto["level"]),
        W.Column("stop_time", opto["stop"], desc["stop_time"]),
        W.Column("stimulus_name", opto["stimulus_name"]),
        W.Column("duration", opto["duration"]),
    ]
    W.time_intervals(
        module,
        "optogenetic_stimulation",
        description="",
        columns=cols,
        tags=[("optical_stimulation",)] * n,
        timeseries=series,
        timeseries_rows=np.arange(n),
    )


def _smooth(rng: np.random.Generator, t: np.ndarray, knot_s: float, scale: float) -> np.ndarray:
    """A smooth random signal at times ``t``: normal knots every ``knot_s`` s, interpolated."""
    knots = rng.normal(0.0, scale, int(t[-1] / knot_s) + 2)
    return np.interp(t / knot_s, np.arange(knots.size), knots)


def write_running(nwb: h5py.File, rng: np.random.Generator, duration: float) -> None:
    """Running wheel at 60 Hz: raw rotation and encoder voltages under /acquisition, and
    /processing/running speed (cm/s), interval end times and rotation (radians)."""
    t = (np.arange(int(duration * RUNNING_RATE_HZ)) + 0.5) / RUNNING_RATE_HZ
    speed = np.maximum(_smooth(rng, t, 2.0, 12.0) + 4.0, 0.0) + np.abs(rng.normal(0, 0.3, t.size))
    dx = speed / RUNNING_RATE_HZ / WHEEL_RADIUS_CM
    angle = np.cumsum(dx)
    signal = 5.0 * (angle % (2 * np.pi)) / (2 * np.pi) + rng.normal(0, 0.005, t.size)
    supply = 4.99 + rng.normal(0, 0.002, t.size)
    acquisition = nwb["acquisition"]
    raw = "/acquisition/raw_running_wheel_rotation/timestamps"
    W.time_series(acquisition, "raw_running_wheel_rotation", dx, "radians", timestamps=t)
    W.time_series(acquisition, "running_wheel_signal_voltage", signal, "V", timestamps_link=raw)
    W.time_series(acquisition, "running_wheel_supply_voltage", supply, "V", timestamps_link=raw)
    module = W.processing_module(nwb, "running", "running speed data")
    W.time_series(
        module, "running_speed", dx[1:] * WHEEL_RADIUS_CM * RUNNING_RATE_HZ, "cm/s", timestamps=t[:-1]
    )
    W.time_series(module, "running_speed_end_times", np.full(t.size - 1, np.nan), "cm/s", timestamps=t[1:])
    W.time_series(
        module,
        "running_wheel_rotation",
        dx[1:],
        "radians",
        timestamps_link="/processing/running/running_speed/timestamps",
    )


def write_eye_tracking(nwb: h5py.File, rng: np.random.Generator, duration: float) -> None:
    """Eye tracking at ~30 Hz: pupil/CR/eye ellipse fits (half-axes, px), raw and filtered
    gaze mapping (areas px^2, screen coordinates [y, x] cm and degrees), rig geometry."""
    n = int((duration - 0.6) * EYE_RATE_HZ)
    t = np.round(0.3 + (np.arange(n) + 0.5) / EYE_RATE_HZ + rng.normal(0, 0.0003, n), 5)
    azimuth = _smooth(rng, t, 1.0, 8.0) + rng.normal(0, 0.3, n)
    elevation = _smooth(rng, t, 1.0, 6.0) + rng.normal(0, 0.3, n)
    pupil_w = 28.0 * (1 + 0.15 * _smooth(rng, t, 5.0, 1.0)) + rng.normal(0, 0.8, n)
    fits = {
        "pupil": (320 + 3 * azimuth, 240 + 3 * elevation, pupil_w, pupil_w * rng.uniform(0.88, 1.0, n)),
        "cr": (
            330 + rng.normal(0, 0.1, n),
            230 + rng.normal(0, 0.1, n),
            4 + rng.normal(0, 0.3, n),
            4 + rng.normal(0, 0.3, n),
        ),
        "eye": (
            320 + rng.normal(0, 0.1, n),
            240 + rng.normal(0, 0.1, n),
            140 + rng.normal(0, 5, n),
            90 + rng.normal(0, 4, n),
        ),
    }
    module = W.processing_module(nwb, "eye_tracking", "Eye tracking processing module")
    for name, (cx, cy, w, h) in fits.items():
        values = (cx, cy, w, h, rng.normal(0, 0.03, n), t)
        names = ("center_x", "center_y", "width", "height", "phi", "timestamps")
        cols = [W.Column(c, np.asarray(v, dtype=np.float64)) for c, v in zip(names, values, strict=True)]
        W.dynamic_table(module, f"{name}_ellipse_fits", ids=np.arange(n), columns=cols)
    screen_cm = SCREEN_DISTANCE_CM * np.tan(np.radians(np.stack((elevation, azimuth), axis=1)))
    raw = {
        "eye_area": (np.pi * fits["eye"][2] * fits["eye"][3], "Pixels ^ 2"),
        "pupil_area": (np.pi * fits["pupil"][2] * fits["pupil"][3], "Pixels ^ 2"),
        "screen_coordinates": (screen_cm, "Centimeters"),
        "screen_coordinates_spherical": (np.degrees(np.arctan(screen_cm / SCREEN_DISTANCE_CM)), "Degrees"),
    }
    blink = _blinks(rng, n, duration)
    for module_name, description, masked in (
        ("raw_gaze_mapping", "Gaze mapping processing module raw outputs", False),
        ("filtered_gaze_mapping", "Gaze mapping processing module filtered outputs", True),
    ):
        gaze = W.processing_module(nwb, module_name, description)
        for name, (values, unit) in raw.items():
            data = values.copy()
            if masked:
                data[blink] = np.nan
            W.time_series(gaze, name, data, unit, timestamps=t)
    rig = W.processing_module(nwb, "eye_tracking_rig_metadata", "Eye tracking rig metadata module")
    A.eye_tracking_rig(
        rig,
        {
            "monitor_position": ([170.0, 0.0, 0.0], "mm"),
            "camera_position": ([130.0, 0.0, 0.0], "mm"),
            "led_position": ([265.1, -39.3, 1.0], "mm"),
            "monitor_rotation": ([0.0, 0.0, 0.0], "deg"),
            "camera_rotation": ([0.0, 0.0, 13.1], "deg"),
        },
        "Neuropixels.Rig.3",
    )


def _blinks(rng: np.random.Generator, n: int, duration: float) -> np.ndarray:
    """Frames hidden by blinks (about one 5–12-frame blink per 20 s), as a boolean mask."""
    mask = np.zeros(n, dtype=bool)
    starts = rng.integers(0, max(n - 12, 1), max(1, int(duration / 20)))
    lengths = rng.integers(5, 13, starts.size)
    for a, k in zip(starts, lengths, strict=True):  # one loop step per blink
        mask[a : a + k] = True
    return mask
