"""Time and peak memory of the spike analyses on a synthetic, Allen-sized request.

Default: 700 Poisson units (~50 M spikes over 10,000 s), 6,000 presentations 1.65 s apart,
200 bins of 5 ms (-0.2 ... 0.8 s). The answer of presentationwise_spike_counts is then
840 M cells (1.7 GB as uint16). Peak memory is what tracemalloc saw numpy allocate during the
call, the answer included; the spike arrays made beforehand are not counted.

"AllenSDK-style" is a straightforward reimplementation of the AllenSDK 2.16.2's approach
(per unit, two searchsorted calls of every bin's start and end into the spikes, written into
the unit's column), for comparison.

    python bench/bench_spikes.py                 # the full request (needs ~6 GB of RAM)
    python bench/bench_spikes.py --units 70      # a tenth of it
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

from ecephys.spikes import (
    conditionwise_spike_statistics,
    presentationwise_spike_counts,
    presentationwise_spike_times,
    spike_counts_per_presentation,
)


def synthetic_spikes(n_units: int, duration: float, mean_rate: float, seed: int = 0):
    """Homogeneous Poisson spike trains: ``(flat, offsets, unit_ids)``."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(2.0, mean_rate / 2.0, n_units)
    counts = rng.poisson(rates * duration)
    offsets = np.zeros(n_units + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    flat = np.empty(int(offsets[-1]))
    for k in range(n_units):
        block = flat[offsets[k] : offsets[k + 1]]
        block[:] = rng.uniform(0.0, duration, counts[k])
        block.sort()
    return flat, offsets, np.arange(950_000_000, 950_000_000 + n_units, dtype=np.int64)


def allensdk_style_counts(flat: np.ndarray, offsets: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """Closed bins [a, b], one column per unit, as the AllenSDK 2.16.2 counts them."""
    n_pres, n_edges = domain.shape
    out = np.zeros((n_pres, n_edges - 1, offsets.size - 1), dtype=np.uint16)
    left = domain[:, :-1].ravel()
    right = domain[:, 1:].ravel()
    for k in range(offsets.size - 1):
        unit = flat[offsets[k] : offsets[k + 1]]
        inside = np.searchsorted(unit, right, side="right") - np.searchsorted(unit, left, side="left")
        out[:, :, k] = inside.reshape(n_pres, n_edges - 1)
    return out


def measure(call: Callable[[], object]) -> tuple[object, float, float]:
    """``(result, seconds, peak MiB)`` of one call."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak / 2**20


def nbytes(result: object) -> int:
    if hasattr(result, "nbytes"):
        return int(result.nbytes)
    if hasattr(result, "memory_usage"):
        return int(result.memory_usage(index=True, deep=False).sum())
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=700)
    parser.add_argument("--presentations", type=int, default=6000)
    parser.add_argument("--bins", type=int, default=200)
    parser.add_argument("--duration", type=float, default=10_000.0, help="seconds of recording")
    parser.add_argument("--rate", type=float, default=7.14, help="mean firing rate, spikes/s")
    parser.add_argument("--conditions", type=int, default=40)
    parser.add_argument("--no-allensdk-style", action="store_true", help="skip the slow comparison")
    parser.add_argument("--spike-times", action="store_true", help="also time presentationwise_spike_times")
    parser.add_argument("--repeat", type=int, default=3, help="report the fastest of this many runs")
    args = parser.parse_args()

    t0 = time.perf_counter()
    flat, offsets, unit_ids = synthetic_spikes(args.units, args.duration, args.rate)
    made = time.perf_counter() - t0
    period = (args.duration - 100.0) / args.presentations  # 1.65 s by default
    starts = 50.0 + np.arange(args.presentations) * period
    stops = starts + 0.25 * args.bins / 200  # 250 ms stimuli by default
    edges = np.linspace(-0.2, 0.8, args.bins + 1)  # 5 ms bins by default
    pres_ids = np.arange(args.presentations, dtype=np.int64)
    conditions = (pres_ids % args.conditions).astype(np.float64)
    print(
        f"{args.units} units, {flat.size / 1e6:.1f} M spikes over {args.duration:.0f} s "
        f"(made in {made:.1f} s); {args.presentations} presentations x {args.bins} bins of "
        f"{1e3 * (edges[1] - edges[0]):.2f} ms"
    )

    # Touch as much memory as the largest answer once, so that the first timed call does not
    # pay a virtual machine's first-touch cost for fresh pages. A VM that hands freed pages back
    # to its host (free page reporting) makes the next touch slow again: hence --repeat 3.
    warm = np.ones(args.presentations * args.bins * args.units * 2, dtype=np.uint8)
    del warm

    rows: list[tuple[str, str, float, float, float]] = []

    def run(name: str, call: Callable[[], object]) -> object:
        result, seconds, peak = measure(call)
        for _ in range(args.repeat - 1):
            del result
            result, again, peak = measure(call)
            seconds = min(seconds, again)
        shape = "x".join(map(str, getattr(result, "shape", ())))
        rows.append((name, shape, seconds, peak, nbytes(result) / 2**20))
        print(f"  done: {name} ({seconds:.2f} s)", flush=True)
        return result

    counts = run(
        "presentationwise_spike_counts",
        lambda: presentationwise_spike_counts(flat, offsets, unit_ids, edges, pres_ids, starts),
    )
    if not args.no_allensdk_style:
        domain = starts[:, None] + edges[None, :]
        theirs = run("  AllenSDK-style counts", lambda: allensdk_style_counts(flat, offsets, domain))
        same = np.array_equal(theirs, counts.values)
        print(f"  AllenSDK-style answer identical: {same} (differs only for spikes on bin edges)")
        del theirs, domain
    del counts
    binary = run(
        "  binarize=True",
        lambda: presentationwise_spike_counts(
            flat, offsets, unit_ids, edges, pres_ids, starts, binarize=True, large_bin_size_threshold=1.0
        ),
    )
    del binary
    overlapping = run(
        "  overlapping windows, -0.2..1.6 s",
        lambda: presentationwise_spike_counts(
            flat, offsets, unit_ids, np.linspace(edges[0], 2 * edges[-1], args.bins + 1), pres_ids, starts
        ),
    )
    del overlapping
    per_presentation = run(
        "spike_counts_per_presentation", lambda: spike_counts_per_presentation(flat, offsets, starts, stops)
    )
    run(
        "conditionwise_spike_statistics",
        lambda: conditionwise_spike_statistics(per_presentation, unit_ids, conditions),
    )
    run(
        "  use_rates=True",
        lambda: conditionwise_spike_statistics(
            per_presentation, unit_ids, conditions, durations=stops - starts, use_rates=True
        ),
    )
    if args.spike_times:
        table = run(
            "presentationwise_spike_times",
            lambda: presentationwise_spike_times(flat, offsets, unit_ids, pres_ids, starts, stops),
        )
        del table

    print()
    print(f"load average during the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'call':<34} {'result shape':>16} {'time s':>8} {'peak MiB':>10} {'result MiB':>11}")
    print("-" * 83)
    for name, shape, seconds, peak, size in rows:
        print(f"{name:<34} {shape:>16} {seconds:>8.2f} {peak:>10.1f} {size:>11.1f}")


if __name__ == "__main__":
    main()
