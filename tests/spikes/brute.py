"""Brute-force Python references for the spike analyses, and hypothesis strategies.

Deliberately naive: a Python loop per spike, bin and presentation, so they are easy to
check by eye and independent of the kernels' searchsorted arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from hypothesis import strategies as st

from ecephys.spikes import pack_spike_times

# Multiples of 1/8 s are exact binary fractions: start + edge sums are exact, so spikes on
# the grid land exactly on bin edges and presentation boundaries.
GRID = st.integers(min_value=-8, max_value=170).map(lambda i: i / 8)
ANY_TIME = st.floats(min_value=-1.0, max_value=21.0, allow_nan=False, allow_infinity=False)
SPIKE = st.one_of(GRID, ANY_TIME)
UNIT = st.lists(SPIKE, max_size=40).map(sorted)
UNITS = st.lists(UNIT, max_size=5)
EDGES = st.lists(st.integers(min_value=-8, max_value=16), min_size=2, max_size=8).map(
    lambda v: [x / 8 for x in sorted(v)]
)
STARTS = st.lists(st.integers(min_value=0, max_value=150).map(lambda i: i / 8), max_size=8)


def pack(units: Sequence[Sequence[float]], ids: Sequence[int] | None = None):
    """``(flat, offsets, unit_ids)`` for a list of per-unit spike lists; ids default 100, 101, ..."""
    ids = list(range(100, 100 + len(units))) if ids is None else list(ids)
    return pack_spike_times({i: np.asarray(u, dtype=float) for i, u in zip(ids, units, strict=True)}, ids)


def brute_bin_counts(units, domain, *, closed_right=False) -> np.ndarray:
    """Count per (presentation, bin, unit); ``[a, b)`` or, with ``closed_right``, ``[a, b]``."""
    domain = np.asarray(domain, dtype=float)
    n_pres, n_edges = domain.shape
    out = np.zeros((n_pres, n_edges - 1, len(units)), dtype=np.int64)
    for p in range(n_pres):
        for b in range(n_edges - 1):
            lo, hi = float(domain[p, b]), float(domain[p, b + 1])
            for k, unit in enumerate(units):
                out[p, b, k] = sum(1 for s in unit if lo <= s and (s <= hi if closed_right else s < hi))
    return out


def brute_spike_times(units, ids, pres_ids, starts, stops) -> list[tuple[float, int, int, float]]:
    """Rows (spike_time, presentation, unit, time since onset), ``start < t <= stop``, sorted."""
    rows = []
    for k, unit in enumerate(units):
        for p, (a, b) in enumerate(zip(starts, stops, strict=True)):
            for s in unit:
                if a < s <= b:
                    rows.append(((s, k, p), (s, pres_ids[p], ids[k], s - a)))
    rows.sort(key=lambda r: r[0])
    return [r[1] for r in rows]


def brute_interval_counts(units, starts, stops) -> np.ndarray:
    """Spikes per (presentation, unit) with ``start < t <= stop``."""
    return np.array(
        [[sum(1 for s in unit if a < s <= b) for unit in units] for a, b in zip(starts, stops, strict=True)],
        dtype=np.int64,
    ).reshape(len(starts), len(units))


def brute_conditionwise(counts, unit_ids, conditions, durations=None, use_rates=False) -> dict:
    """``{(unit_id, condition): {column: value}}`` computed one group at a time."""
    result = {}
    levels = sorted({c for c in conditions if not (isinstance(c, float) and math.isnan(c))})
    for c in levels:
        rows = [p for p, cc in enumerate(conditions) if cc == c]
        for k, u in enumerate(unit_ids):
            values = [float(counts[p][k]) for p in rows]
            if use_rates:
                values = [v / durations[p] for v, p in zip(values, rows, strict=True)]
            n = len(values)
            mean = sum(values) / n
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
            entry = {
                "stimulus_presentation_count": n,
                "spike_mean": mean,
                "spike_std": std,
                "spike_sem": std / math.sqrt(n),
            }
            if not use_rates:
                entry["spike_count"] = int(sum(counts[p][k] for p in rows))
            result[(u, c)] = entry
    return result
