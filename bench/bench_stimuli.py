"""Time building the stimulus presentations table: ecephys against the AllenSDK 2.16.2.

Usage::

    python bench/bench_stimuli.py SESSION.nwb [--repeat K] [--rounds N] [--no-allensdk]
    python bench/bench_stimuli.py --full [--session-type functional_connectivity] [...]

ecephys: ``load_stimulus_tables`` (read every ``*_presentations`` table, build the table,
mask invalid presentations) on an open file. AllenSDK (when ``/work/venvs/allensdk`` exists):
``EcephysSession.from_nwb_path(path).stimulus_presentations`` in that interpreter, timed
inside the subprocess so its import time is reported apart. ``--repeat K`` first writes a copy
whose presentation tables are the originals repeated K times, shifted in time (e.g. K=280
turns the 252-presentation fixture into ~70,000 presentations). ``--full`` times a full-size
synthetic session instead, written once with ``make_session`` (6 probes of 117 units, 10,000 s,
a real session's stimulus schedule: ~70,000 presentations) into ``bench/_data/``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from ecephys import stimuli
from ecephys.nwb.intervals import presentation_table_names

ALLENSDK_PYTHON = Path("/work/venvs/allensdk/bin/python")
DATA = Path(__file__).resolve().parent / "_data"
FULL_SIZE = dict(n_probes=6, units_per_probe=117, duration=10_000.0, stimulus_schedule="full", lfp=False)

ALLENSDK_SCRIPT = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
began = time.perf_counter()
from allensdk.brain_observatory.ecephys.ecephys_session import EcephysSession
imported = time.perf_counter() - began
times = []
for _ in range(int(sys.argv[2])):
    began = time.perf_counter()
    table = EcephysSession.from_nwb_path(sys.argv[1]).stimulus_presentations
    times.append(time.perf_counter() - began)
print(json.dumps({"import": imported, "times": times, "rows": len(table)}))
"""


def repeat_presentations(source: Path, target: Path, repeat: int) -> None:
    """Copy ``source`` to ``target``, presentation tables repeated ``repeat`` times and shifted in time."""
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as h5file:
        names = presentation_table_names(h5file)
        intervals = h5file["intervals"]
        first = min(intervals[n]["start_time"][()].min() for n in names)
        last = max(intervals[n]["stop_time"][()].max() for n in names)
        period = last - first + 1.0
        for name in names:
            _repeat_table(intervals, name, repeat, period)


def _repeat_table(intervals: h5py.Group, name: str, repeat: int, period: float) -> None:
    """Replace table ``name`` by one ``repeat`` times longer, object-reference attributes re-pointed."""
    old, new = intervals[name], intervals.create_group(f"{name}__repeated")
    for attr, value in old.attrs.items():
        new.attrs[attr] = value
    for key in old:
        values, dtype = old[key][()], old[key].dtype
        if key == "id":
            values = np.arange(len(values) * repeat, dtype=values.dtype)
        elif key.endswith("_index") and key.removesuffix("_index") in old:  # a VectorIndex
            step = int(values[-1]) if len(values) else 0
            values = np.concatenate([values.astype(np.int64) + k * step for k in range(repeat)])
            dtype = np.dtype(np.uint32) if values.size and values[-1] > np.iinfo(dtype).max else dtype
        elif key in ("start_time", "stop_time"):
            values = np.concatenate([values + k * period for k in range(repeat)])
        else:
            values = np.concatenate([values] * repeat)
        new.create_dataset(key, data=values.astype(dtype) if dtype.kind in "iuf" else values, dtype=dtype)
    for key in old:
        for attr, value in old[key].attrs.items():
            if isinstance(value, h5py.Reference):
                target = intervals.file[value].name
                inside = target.startswith(old.name + "/")
                value = (new[target.rsplit("/", 1)[1]] if inside else intervals.file[target]).ref
            new[key].attrs[attr] = value
    del old
    del intervals[name]
    intervals.move(f"{name}__repeated", name)


def full_size_session(session_type: str) -> Path:
    """The full-size synthetic session of ``session_type`` under ``bench/_data``, written if absent."""
    from ecephys.testing import make_session

    folder = DATA / f"full-schedule-{session_type}"
    path = folder / "session_999000001" / "session_999000001.nwb"
    if not path.exists():
        print(
            f"writing a full-size {session_type} session to {folder} (under a minute, once)", file=sys.stderr
        )
        began = time.perf_counter()
        make_session(folder, session_type=session_type, **FULL_SIZE)
        print(f"  written in {time.perf_counter() - began:.0f} s", file=sys.stderr)
    return path


def time_ecephys(path: Path, rounds: int) -> tuple[list[float], int]:
    """Seconds per round for load_stimulus_tables on an already open file, and the row count."""
    times, rows = [], 0
    with h5py.File(path, "r") as h5file:
        for _ in range(rounds):
            began = time.perf_counter()
            presentations, _ = stimuli.load_stimulus_tables(h5file)
            times.append(time.perf_counter() - began)
            rows = len(presentations)
    return times, rows


def time_ecephys_session(path: Path, rounds: int) -> list[float]:
    """Seconds per round for ``open_session(path).stimulus_presentations``: what the AllenSDK run does."""
    import ecephys

    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        ecephys.open_session(path).stimulus_presentations  # noqa: B018 - the property is the work
        times.append(time.perf_counter() - began)
    return times


def time_allensdk(path: Path, rounds: int, timeout: float) -> dict | None:
    """The AllenSDK's timings from its own interpreter, or None where it is not installed."""
    if not ALLENSDK_PYTHON.exists():
        return None
    done = subprocess.run(
        [str(ALLENSDK_PYTHON), "-c", ALLENSDK_SCRIPT, str(path), str(rounds)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, nargs="?", help="session NWB file")
    parser.add_argument("--full", action="store_true", help="time a full-size synthetic session")
    parser.add_argument(
        "--session-type",
        default="brain_observatory_1.1",
        choices=("brain_observatory_1.1", "functional_connectivity"),
        help="stimulus set of the --full session",
    )
    parser.add_argument("--repeat", type=int, default=1, help="repeat the presentation tables K times")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per implementation")
    parser.add_argument("--no-allensdk", action="store_true", help="skip the AllenSDK")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed for the AllenSDK run")
    args = parser.parse_args(argv)
    if args.full == (args.path is not None):
        parser.error("give a session file or --full, not both")
    if args.full:
        args.path = full_size_session(args.session_type)

    with tempfile.TemporaryDirectory() as scratch:
        path = args.path
        if args.repeat > 1:
            path = Path(scratch) / f"repeated_{args.repeat}.nwb"
            repeat_presentations(args.path, path, args.repeat)
        ours, rows = time_ecephys(path, args.rounds)
        session = time_ecephys_session(path, args.rounds)
        theirs = None if args.no_allensdk else time_allensdk(path, max(1, min(args.rounds, 3)), args.timeout)

    print(f"stimulus_presentations of {args.path.name} (x{args.repeat}): {rows:,} presentations")
    print(f"{'implementation':<34}{'rounds':>7}{'best s':>10}{'median s':>10}")
    best, median = min(ours), statistics.median(ours)
    print(f"{'ecephys load_stimulus_tables':<34}{len(ours):>7}{best:>10.4f}{median:>10.4f}")
    session_median = statistics.median(session)
    print(f"{'ecephys open_session(...)':<34}{len(session):>7}{min(session):>10.4f}{session_median:>10.4f}")
    if theirs is None:
        print(f"{'AllenSDK 2.16.2':<34}{'not run':>7}")
    elif "error" in theirs:
        print(f"{'AllenSDK 2.16.2':<34}  failed: {theirs['error']}")
    else:
        t = theirs["times"]
        print(
            f"{'AllenSDK 2.16.2 (from_nwb_path)':<34}{len(t):>7}{min(t):>10.4f}{statistics.median(t):>10.4f}"
        )
        print(f"{'  (AllenSDK import, once)':<34}{1:>7}{theirs['import']:>10.4f}")
        speedup = statistics.median(t) / session_median
        print(f"speed-up, medians of from_nwb_path vs open_session (both open the file): {speedup:.0f}x")
        if theirs["rows"] != rows:
            print(f"warning: the AllenSDK gave {theirs['rows']:,} rows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
