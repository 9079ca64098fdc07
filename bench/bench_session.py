"""Session-reader benchmark: ecephys vs the AllenSDK 2.16.2 vs raw h5py, on one session file.

    python bench/bench_session.py                      # full size (~700 units, 10,000 s), made once
    python bench/bench_session.py --size small         # a quick look
    python bench/bench_session.py --session path.nwb   # any existing session file

Each (tool, task) runs in a fresh process so that opening costs are counted and memory does
not carry over; times are the best of ``--repeat`` runs, peak memory is tracemalloc's peak of
the task (numpy and h5py buffers included). Before the clock starts each worker imports its
library, reads the file's index once (page cache) and touches as much memory as the spike
arrays need: on a virtual machine the first touch of fresh memory costs ~2 ms/MB, which would
otherwise land on whichever tool allocates first. The AllenSDK runs in its own virtual environment
(``bench/peers.sh`` makes it; or pass ``--allensdk-python``) and is skipped when absent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _compare import speed_cells  # bench/ is on sys.path when a script here runs

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE / "_data"
DEFAULT_ALLENSDK = Path(
    os.environ.get("ECEPHYS_BENCH_ALLENSDK_PYTHON", HERE / "_venvs" / "allensdk" / "bin" / "python")
)
SIZES = {
    "small": dict(n_probes=2, units_per_probe=20, duration=600.0),
    "medium": dict(n_probes=6, units_per_probe=40, duration=2000.0),
    "full": dict(n_probes=6, units_per_probe=117, duration=10_000.0),
}
TASKS = ("open+units", "all spike times", "one unit's spikes", "mean waveforms")
ALL_UNITS = dict(
    amplitude_cutoff_maximum=float("inf"),
    presence_ratio_minimum=float("-inf"),
    isi_violations_maximum=float("inf"),
    filter_by_validity=False,
    filter_out_of_brain_units=False,
)


# -- workers: run inside a child process, print one JSON line -------------------------------
def _ecephys_task(task: str, path: str) -> dict:
    import warnings

    import ecephys

    warnings.simplefilter("ignore")
    session = ecephys.open_session(path, **ALL_UNITS)
    if task == "open+units":
        return {"n": len(session.units)}
    if task == "all spike times":
        times = dict(session.spike_times.items())
        return {"n": int(sum(len(t) for t in times.values()))}
    if task == "one unit's spikes":
        unit_id = _busiest_unit(path)
        return {"n": len(session.spike_times[unit_id])}
    if task == "mean waveforms":
        waveforms = {u: session.mean_waveforms[u] for u in session.mean_waveforms}
        return {"n": len(waveforms)}
    raise ValueError(task)


def _allensdk_task(task: str, path: str) -> dict:
    import warnings

    warnings.simplefilter("ignore")
    from allensdk.brain_observatory.ecephys.ecephys_session import EcephysSession

    session = EcephysSession.from_nwb_path(path, api_kwargs={**ALL_UNITS})
    if task == "open+units":
        return {"n": len(session.units)}
    if task == "all spike times":
        times = session.spike_times
        return {"n": int(sum(len(t) for t in times.values()))}
    if task == "one unit's spikes":
        return {"n": len(session.spike_times[_busiest_unit(path)])}
    if task == "mean waveforms":
        return {"n": len(session.mean_waveforms)}
    raise ValueError(task)


def _h5py_task(task: str, path: str) -> dict:
    import h5py
    import numpy as np

    with h5py.File(path, "r") as f:
        units = f["units"]
        if task == "open+units":
            columns = [k for k in units if units[k].ndim == 1 and units[k].shape[0] == units["id"].shape[0]]
            data = {k: units[k][()] for k in columns}
            return {"n": len(data["id"])}
        if task == "all spike times":
            index = units["spike_times_index"][()]
            flat = units["spike_times"][()]
            times = np.split(flat, index[:-1].astype(np.int64))
            return {"n": int(sum(len(t) for t in times))}
        if task == "one unit's spikes":
            ids = units["id"][()]
            row = int(np.flatnonzero(ids == _busiest_unit(path))[0])
            index = units["spike_times_index"][()].astype(np.int64)
            start = 0 if row == 0 else index[row - 1]
            return {"n": len(units["spike_times"][start : index[row]])}
        if task == "mean waveforms":
            return {"n": int(units["waveform_mean"][()].shape[0])}
    raise ValueError(task)


def _busiest_unit(path: str) -> int:
    import h5py
    import numpy as np

    with h5py.File(path, "r") as f:
        ends = f["units/spike_times_index"][()].astype(np.int64)
        counts = np.diff(np.concatenate([[0], ends]))
        return int(f["units/id"][int(np.argmax(counts))])


def _import_library(tool: str) -> None:
    if tool == "ecephys":
        import ecephys  # noqa: F401
    elif tool == "allensdk":
        from allensdk.brain_observatory.ecephys import ecephys_session  # noqa: F401
    else:
        import h5py  # noqa: F401


def _touch_memory(n_bytes: int) -> None:
    """Allocate and write ``n_bytes`` once, so no tool pays the machine's first-touch cost."""
    import numpy as np

    np.ones(n_bytes // 8).sum()


def _worker(tool: str, task: str, path: str, measure: str) -> None:
    """Run one task in this fresh process: ``measure`` is "time" or "memory" (tracemalloc's peak).

    tracemalloc slows every Python allocation, so times are taken in runs without it.
    """
    import tracemalloc

    run = {"ecephys": _ecephys_task, "allensdk": _allensdk_task, "h5py": _h5py_task}[tool]
    _import_library(tool)  # import costs are not reading costs: paid before the clock starts
    _busiest_unit(path)  # warm the OS page cache equally for every tool
    _touch_memory(_spike_bytes(Path(path)))  # the VM's first touch of fresh memory is not the tool's cost
    if measure == "memory":
        tracemalloc.start()
    start = time.perf_counter()
    result = run(task, path)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] if measure == "memory" else None
    print(json.dumps({"seconds": seconds, "peak_bytes": peak, **result}))


# -- driver ------------------------------------------------------------------------------------
def _run(python: Path, tool: str, task: str, path: Path, repeat: int) -> dict | None:
    """Best time of ``repeat`` runs, plus the peak memory of one more run under tracemalloc."""
    best = None
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")} if tool != "allensdk" else dict(os.environ)
    memory_run = [] if tool == "allensdk" else ["memory"]  # the AllenSDK takes minutes a run
    for measure in ["time"] * repeat + memory_run:
        proc = subprocess.run(
            [str(python), str(Path(__file__).resolve()), "--worker", tool, task, str(path), measure],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            print(f"  {tool} / {task} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
            return None
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        if measure == "memory":
            best["peak_bytes"] = result["peak_bytes"]
        elif best is None or result["seconds"] < best["seconds"]:
            best = result
    return best


def _ensure_session(size: str, data_dir: Path) -> Path:
    from ecephys.testing import make_session

    out = data_dir / size
    marker = out / "done.json"
    if marker.exists():
        return Path(json.loads(marker.read_text())["session_path"])
    print(f"writing a {size} synthetic session into {out} (once) ...", flush=True)
    start = time.perf_counter()
    files = make_session(out, seed=1, lfp=False, progress=True, **SIZES[size])
    marker.write_text(json.dumps({"session_path": str(files.session_path)}))
    print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
    return files.session_path


def _spike_bytes(path: Path) -> int:
    import h5py

    with h5py.File(path, "r") as f:
        dset = f["units/spike_times"]
        return dset.shape[0] * dset.dtype.itemsize


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument(
        "--session", type=Path, help="an existing session NWB file instead of a synthetic one"
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--allensdk-python", type=Path, default=DEFAULT_ALLENSDK)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tools", default="ecephys,allensdk,h5py", help="comma-separated subset to run")
    parser.add_argument(
        "--worker", nargs=4, metavar=("TOOL", "TASK", "PATH", "MEASURE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        _worker(*args.worker)
        return 0

    path = args.session or _ensure_session(args.size, args.data_dir)
    tools = {"ecephys": Path(sys.executable), "h5py": Path(sys.executable)}
    if args.allensdk_python.exists():
        tools["allensdk"] = args.allensdk_python
    else:
        print(f"AllenSDK interpreter {args.allensdk_python} not found: run bench/peers.sh", file=sys.stderr)
    tools = {name: python for name, python in tools.items() if name in args.tools.split(",")}

    spike_bytes = _spike_bytes(path)
    print(
        f"\nsession file: {path} ({path.stat().st_size / 1e9:.2f} GB; spike_times {spike_bytes / 1e6:.0f} MB)"
    )
    results: dict[tuple[str, str], dict | None] = {}
    for task in TASKS:
        for tool, python in tools.items():
            repeat = 1 if tool == "allensdk" else args.repeat
            results[tool, task] = _run(python, tool, task, path, repeat)

    header = (
        f"{'task':<20} {'ecephys s':>10} {'AllenSDK s':>11} {'h5py s':>8} "
        f"{'vs AllenSDK':>12} {'vs h5py':>8} {'ecephys peak MB':>16}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for task in TASKS:
        ours, theirs, raw = (results.get((t, task)) for t in ("ecephys", "allensdk", "h5py"))
        ours_s, theirs_s, raw_s, speedup, ratio = speed_cells(ours, theirs, raw)
        peak = f"{ours['peak_bytes'] / 1e6:.0f}" if ours else "-"
        print(f"{task:<20} {ours_s:>10} {theirs_s:>11} {raw_s:>8} {speedup:>12} {ratio:>8} {peak:>16}")
    ours = results.get(("ecephys", "all spike times"))
    if ours:
        print(f"\npeak memory loading all spikes: {ours['peak_bytes'] / spike_bytes:.2f}x the spike arrays")
    return 0


if __name__ == "__main__":
    sys.exit(main())
