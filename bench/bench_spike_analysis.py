"""Spike analysis aligned to stimuli: ecephys vs the AllenSDK 2.16.2 vs pynapple, on one session.

    python bench/bench_spike_analysis.py                      # full size (~700 units, 10,000 s), made once
    python bench/bench_spike_analysis.py --size small         # a quick look
    python bench/bench_spike_analysis.py --session path.nwb   # any existing session file

Tasks, on the units that pass the default filters (the ecephys session's ``units``; the same
ids are given to every tool):

* flashes: the first 150 flash presentations x 200 bins of 2 ms (-50 ... 350 ms);
* drifting gratings: the first 600 drifting-grating presentations x 30 bins of 80 ms
  (-0.2 ... 2.2 s);
* ``conditionwise_spike_statistics`` of all drifting-grating and of all static-grating
  presentations (ecephys and the AllenSDK: pynapple has no equivalent).

Each tool runs in one fresh process of its own interpreter (the AllenSDK's and pynapple's
virtual environments are made by ``bench/peers.sh``), ``--rounds`` times in turn, the best of
its rounds kept: this VM's speed drifts by tens of percent within minutes, and alternating
spreads that over every tool alike. That process imports the library and
loads the session its own way, untimed: ecephys ``open_session`` and every spike time; the
AllenSDK ``EcephysSession.from_nwb_path`` and its ``spike_times``, ``units`` and
``stimulus_presentations`` (~30 s on the full-size file); pynapple reads ``/units/spike_times``
with h5py into a ``nap.TsGroup`` and each task's onsets from
``/intervals/<stimulus>_presentations/start_time`` (sorted, the first n) into a ``nap.Ts`` or,
for ``build_tensor``, a ``nap.IntervalSet`` of the windows. It then touches as much fresh
memory as the spike arrays (a virtual machine's first touch of a page is not a tool's cost),
runs each task once on two units and two presentations (imports, numba's compilation) and times
each task without tracemalloc: the best of ``--repeat`` runs (the AllenSDK:
``--allensdk-repeat``), more for a fast task until 0.5 s are spent (at most 100, as ``timeit``
does), fewer once a task has used ``--budget`` seconds. pynapple is timed two ways:
``compute_perievent`` then ``count`` per unit (a ``TsGroup`` of shifted spike times per
unit), and ``build_tensor`` (``count`` over an ``IntervalSet`` of the windows); both answers
are turned into a (presentation, bin, unit) array inside the clock, as ecephys and the AllenSDK
return one. The answers are compared afterwards. A second table splits each ecephys call into
gathering the units' spike trains (``spike_times.flat``) and the analysis proper (the
``ecephys.spikes`` functions).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench_session import DEFAULT_ALLENSDK, DEFAULT_DATA, SIZES, _ensure_session, _spike_bytes, _touch_memory

HERE = Path(__file__).resolve().parent
DEFAULT_PYNAPPLE = Path(
    os.environ.get("ECEPHYS_BENCH_PYNAPPLE_PYTHON", HERE / "_venvs" / "pynapple" / "bin" / "python")
)
COUNT_TASKS = {  # task -> (stimulus_name, presentations wanted, bin edges in s relative to onset)
    "flashes": ("flashes", 150, np.linspace(-0.05, 0.35, 201)),
    "drifting gratings": ("drifting_gratings", 600, np.linspace(-0.2, 2.2, 31)),
}
CONDITIONWISE_TASKS = {  # task -> stimulus_name (all its presentations)
    "conditionwise drifting gratings": "drifting_gratings",
    "conditionwise static gratings": "static_gratings",
}
TARGETS = {"counts vs AllenSDK": 50.0, "counts vs pynapple": 3.0, "conditionwise vs AllenSDK": 20.0}
STAT_COLUMNS = ("spike_count", "stimulus_presentation_count", "spike_mean", "spike_std", "spike_sem")


# -- the tools: each loads the session in __init__ (untimed) and answers the tasks -----------------
class _SessionCounts:
    """``counts`` through ``self.session.presentationwise_spike_counts``: one API, both libraries."""

    session: object

    def counts(self, task: dict, unit_ids: list[int], n: int) -> dict[str, np.ndarray]:
        answer = self.session.presentationwise_spike_counts(
            np.asarray(task["edges"]), task["presentation_ids"][:n], unit_ids
        )
        return {
            "counts": answer.values,
            "presentation_ids": answer["stimulus_presentation_id"].values,
            "unit_ids": answer["unit_id"].values,
        }


class EcephysTool(_SessionCounts):
    name = "ecephys"

    def __init__(self, path: str) -> None:
        import warnings

        import ecephys

        warnings.simplefilter("ignore")
        self.session = ecephys.open_session(path)
        self.session.spike_times.load()
        _ = self.session.units, self.session.stimulus_presentations
        self._gathered: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def conditionwise(self, task: dict, unit_ids: list[int], n: int) -> dict[str, np.ndarray]:
        table = self.session.conditionwise_spike_statistics(task["presentation_ids"][:n], unit_ids)
        return _table_arrays(table)

    # the parts of a call, for the breakdown: gathering the units' spikes, then the analysis
    def gather(self, task: dict, unit_ids: list[int], n: int) -> dict[str, np.ndarray]:
        flat, offsets = self.session.spike_times.flat(np.asarray(unit_ids, dtype=np.int64))
        return {"n_spikes": np.asarray(flat.size)}

    def _flat(self, unit_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        if len(unit_ids) not in self._gathered:
            self._gathered[len(unit_ids)] = self.session.spike_times.flat(
                np.asarray(unit_ids, dtype=np.int64)
            )
        return self._gathered[len(unit_ids)]

    def counts_kernel(self, task: dict, unit_ids: list[int], n: int) -> dict[str, np.ndarray]:
        from ecephys import spikes

        flat, offsets = self._flat(unit_ids)
        rows = self.session.stimulus_presentations.loc[task["presentation_ids"][:n]]
        answer = spikes.presentationwise_spike_counts(
            flat, offsets, unit_ids, task["edges"], rows.index.to_numpy(), rows["start_time"].to_numpy()
        )
        return {"n_spikes": np.asarray(answer.values.sum())}

    def conditionwise_kernel(self, task: dict, unit_ids: list[int], n: int) -> dict[str, np.ndarray]:
        from ecephys import spikes

        flat, offsets = self._flat(unit_ids)
        rows = self.session.stimulus_presentations.loc[task["presentation_ids"][:n]]
        counts = spikes.spike_counts_per_presentation(
            flat, offsets, rows["start_time"].to_numpy(), rows["stop_time"].to_numpy()
        )
        table = spikes.conditionwise_spike_statistics(
            counts, unit_ids, rows["stimulus_condition_id"].to_numpy(), durations=rows["duration"].to_numpy()
        )
        return {"n_rows": np.asarray(len(table))}


class AllenSDKTool(_SessionCounts):
    name = "allensdk"

    def __init__(self, path: str) -> None:
        import warnings

        warnings.simplefilter("ignore")
        from allensdk.brain_observatory.ecephys.ecephys_session import EcephysSession

        self.session = EcephysSession.from_nwb_path(path)
        _ = self.session.spike_times, self.session.units, self.session.stimulus_presentations
        self.default_unit_ids = self.session.units.index.to_numpy(dtype=np.int64)

    def conditionwise(self, task: dict, unit_ids: list[int], n: int) -> dict[str, np.ndarray]:
        ids = task["presentation_ids"][:n]
        table = self.session.conditionwise_spike_statistics(stimulus_presentation_ids=ids, unit_ids=unit_ids)
        return _table_arrays(table)

    def start_times(self, ids: list[int]) -> np.ndarray:
        return self.session.stimulus_presentations.loc[ids, "start_time"].to_numpy(dtype=np.float64)


class PynappleTool:
    """pynapple's objects built from the file with h5py: a TsGroup of the units, onsets as Ts."""

    name = "pynapple"

    def __init__(self, path: str, unit_ids: list[int], tasks: dict[str, dict]) -> None:
        import h5py
        import pynapple as nap

        self.nap = nap
        with h5py.File(path, "r") as f:
            file_ids = f["units/id"][()].astype(np.int64)
            ends = f["units/spike_times_index"][()].astype(np.int64)
            flat = f["units/spike_times"][()]
            # each task's onsets, read from the stimulus's own interval table, as pynapple users do
            self.onsets = {
                name: np.sort(f[f"intervals/{task['stimulus_name']}_presentations/start_time"][()])
                for name, task in tasks.items()
            }
        starts = np.concatenate([[0], ends[:-1]])
        row = {int(u): i for i, u in enumerate(file_ids)}
        support = nap.IntervalSet(start=0.0, end=float(flat.max()) + 1.0)
        self.group = nap.TsGroup(
            {u: nap.Ts(t=flat[starts[row[u]] : ends[row[u]]]) for u in unit_ids}, time_support=support
        )
        self.support = support

    def _group(self, unit_ids: list[int]):
        if len(unit_ids) == len(self.group):
            return self.group
        return self.nap.TsGroup({u: self.group[u] for u in unit_ids}, time_support=self.support)

    def counts(self, task: dict, unit_ids: list[int], n: int) -> dict[str, np.ndarray]:
        """``compute_perievent`` (one TsGroup of shifted spikes per unit), then ``count`` per unit."""
        edges = np.asarray(task["edges"])
        group = self._group(unit_ids)
        onsets = self.nap.Ts(t=self.onsets[task["name"]][:n])
        aligned = self.nap.compute_perievent(group, onsets, window=(-edges[0], edges[-1]))
        per_unit = [aligned[u].count(float(edges[1] - edges[0])).values for u in unit_ids]
        counts = np.stack(per_unit, axis=-1).transpose(1, 0, 2)  # (presentation, bin, unit)
        return {"counts": counts, "start_times": onsets.t}

    def counts_tensor(self, task: dict, unit_ids: list[int], n: int) -> dict[str, np.ndarray]:
        """``build_tensor``: ``count`` over an IntervalSet of the windows, cut into trials."""
        edges = np.asarray(task["edges"])
        group = self._group(unit_ids)
        onsets = self.onsets[task["name"]][:n]
        windows = self.nap.IntervalSet(start=onsets + edges[0], end=onsets + edges[-1])
        tensor = self.nap.build_tensor(group, windows, bin_size=float(edges[1] - edges[0]))
        row = {int(u): i for i, u in enumerate(group.keys())}  # a TsGroup sorts its keys
        tensor = tensor[[row[int(u)] for u in unit_ids]]
        return {"counts": tensor.transpose(1, 2, 0), "start_times": onsets}  # (presentation, bin, unit)


def _table_arrays(table) -> dict[str, np.ndarray]:
    flat = table.reset_index()
    out = {"unit_id": flat["unit_id"].to_numpy(dtype=np.int64)}
    out["stimulus_condition_id"] = flat["stimulus_condition_id"].to_numpy(dtype=np.float64)
    for column in STAT_COLUMNS:
        out[column] = flat[column].to_numpy(dtype=np.float64)
    return out


#: A task is run at least ``--repeat`` times, and more (up to MAX_RUNS) until this many seconds
#: are spent, as ``timeit`` does: a best of 5 of a 10 ms task is a best of the machine's noise.
MIN_TIME = 0.5
MAX_RUNS = 100


def _best_of(call: Callable[[], dict], repeat: int, budget: float) -> tuple[float, int, dict]:
    """Best wall time of ``repeat`` calls or more (see MIN_TIME); fewer once ``budget`` s are spent."""
    best, spent, runs, answer = float("inf"), 0.0, 0, {}
    while runs == 0 or (spent < budget and (runs < repeat or (spent < MIN_TIME and runs < MAX_RUNS))):
        answer = {}  # let the previous answer go before the next run
        start = time.perf_counter()
        answer = call()
        seconds = time.perf_counter() - start
        best, spent, runs = min(best, seconds), spent + seconds, runs + 1
    return best, runs, answer


def _worker(tool_name: str, plan_file: str) -> None:
    """Load the session in this fresh process, time every task, save the answers beside the plan."""
    plan = json.loads(Path(plan_file).read_text())
    path, unit_ids, tasks = plan["path"], plan["unit_ids"], plan["tasks"]
    repeat, budget = plan["repeat"][tool_name], plan["budget"]
    start = time.perf_counter()
    if tool_name.startswith("ecephys"):
        tool = EcephysTool(path)
    elif tool_name == "allensdk":
        tool = AllenSDKTool(path)
    else:
        tool = PynappleTool(path, unit_ids, {k: v for k, v in tasks.items() if k in COUNT_TASKS})
    report: dict = {"load_s": time.perf_counter() - start, "times": {}, "runs": {}}
    _touch_memory(_spike_bytes(Path(path)))
    arrays: dict[str, np.ndarray] = {}
    if isinstance(tool, AllenSDKTool):
        arrays["default_unit_ids"] = tool.default_unit_ids
    for name, task in tasks.items():
        task = {**task, "name": name}
        n = len(task["presentation_ids"])
        methods = {}
        if name in COUNT_TASKS:
            methods[name] = tool.counts
            if isinstance(tool, PynappleTool):
                methods[name + " [build_tensor]"] = tool.counts_tensor
            if isinstance(tool, AllenSDKTool):
                arrays[name + "/start_times"] = tool.start_times(task["presentation_ids"])
        elif not isinstance(tool, PynappleTool):
            methods[name] = tool.conditionwise
        if isinstance(tool, EcephysTool):
            methods[name + " [gather]"] = tool.gather
            kernel = tool.counts_kernel if name in COUNT_TASKS else tool.conditionwise_kernel
            methods[name + " [analysis]"] = kernel
        for key, method in methods.items():
            method(task, unit_ids[:2], 2)  # warm-up: lazy imports, numba compilation
            seconds, runs, answer = _best_of(lambda m=method, t=task, n=n: m(t, unit_ids, n), repeat, budget)
            report["times"][key], report["runs"][key] = seconds, runs
            arrays.update({f"{key}/{k}": np.asarray(v) for k, v in answer.items()})
            del answer
    np.savez(Path(plan_file).with_name(f"{tool_name}.npz"), **arrays)
    report["loadavg"] = os.getloadavg()
    print(json.dumps(report))


# -- driver ------------------------------------------------------------------------------------------
def _plan(path: Path, out_dir: Path, repeat: dict[str, int], budget: float) -> tuple[dict, list[str]]:
    """Unit and presentation ids from the ecephys session with its default filters."""
    import warnings

    import ecephys

    notes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session = ecephys.open_session(path)
        presentations = session.stimulus_presentations.sort_values("start_time", kind="stable")
        unit_ids = session.units.index.to_numpy(dtype=np.int64)
    tasks: dict[str, dict] = {}
    for name, (stimulus, wanted, edges) in COUNT_TASKS.items():
        rows = presentations[presentations["stimulus_name"] == stimulus]
        if len(rows) < wanted:
            notes.append(f"{name}: the session has only {len(rows)} presentations (wanted {wanted})")
        rows = rows.iloc[:wanted]
        tasks[name] = {
            "stimulus_name": stimulus,
            "presentation_ids": rows.index.to_numpy(dtype=np.int64).tolist(),
            "start_times": rows["start_time"].to_numpy(dtype=np.float64).tolist(),
            "edges": edges.tolist(),
        }
    for name, stimulus in CONDITIONWISE_TASKS.items():
        rows = presentations[presentations["stimulus_name"] == stimulus]
        tasks[name] = {"stimulus_name": stimulus, "presentation_ids": rows.index.tolist()}
    plan = {
        "path": str(path),
        "unit_ids": unit_ids.tolist(),
        "tasks": tasks,
        "repeat": repeat,
        "budget": budget,
    }
    (out_dir / "plan.json").write_text(json.dumps(plan))
    return plan, notes


def _run(python: Path, tool: str, out_dir: Path) -> dict | None:
    env = dict(os.environ)
    if tool.startswith("ecephys"):
        env["PYTHONPATH"] = str(HERE.parent / "src")
    if tool == "ecephys-numpy":
        env["ECEPHYS_NO_NUMBA"] = "1"  # the numpy kernels, as without the fast extra
    print(f"  {tool}: loading and timing in {python} ...", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(
        [str(python), str(Path(__file__).resolve()), "--worker", tool, str(out_dir / "plan.json")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        print(f"  {tool} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
        return None
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    counted = "; ".join(f"{k} {_fmt(t)} s" for k, t in report["times"].items() if k in COUNT_TASKS)
    whole = time.perf_counter() - start
    print(f"    loaded in {report['load_s']:.1f} s; whole process {whole:.0f} s; {counted}", flush=True)
    return report


def _merge(before: dict | None, report: dict | None) -> dict | None:
    """One tool's reports of several rounds: each task's best time, runs added up."""
    if report is None or before is None:
        return None  # a failed round fails the tool
    if not before:
        return report
    merged = dict(report)
    merged["times"] = {k: min(t, before["times"].get(k, t)) for k, t in report["times"].items()}
    merged["runs"] = {k: n + before["runs"].get(k, 0) for k, n in report["runs"].items()}
    merged["load_s"] = min(report["load_s"], before["load_s"])
    return merged


def _counts_in_plan_order(arrays, key: str, task: dict, unit_ids: np.ndarray) -> np.ndarray:
    """An answer's counts reordered to the plan's presentations and units (by their labels)."""
    counts = arrays[f"{key}/counts"]
    if f"{key}/presentation_ids" not in arrays:  # pynapple: already in plan order
        return counts
    pres = {int(p): i for i, p in enumerate(arrays[f"{key}/presentation_ids"])}
    units = {int(u): i for i, u in enumerate(arrays[f"{key}/unit_ids"])}
    rows = [pres[int(p)] for p in task["presentation_ids"]]
    columns = [units[int(u)] for u in unit_ids]
    return counts[np.ix_(rows, range(counts.shape[1]), columns)]


def _compare_counts(ours: np.ndarray, theirs: np.ndarray) -> str:
    if ours.shape != theirs.shape:
        return f"shapes differ: {ours.shape} vs {theirs.shape}"
    diff = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
    spikes = int(ours.astype(np.int64).sum())
    return (
        f"max |diff| {diff.max():.0f}, {int(np.count_nonzero(diff))} of {diff.size:,} cells differ "
        f"({spikes:,} spikes counted by ecephys)"
    )


def _compare_tables(ours, theirs) -> str:
    def keyed(arrays) -> dict:
        keys = zip(arrays["unit_id"].tolist(), arrays["stimulus_condition_id"].tolist(), strict=True)
        return {k: i for i, k in enumerate(keys)}

    mine, other = keyed(ours), keyed(theirs)
    if set(mine) != set(other):
        return f"(unit, condition) rows differ: {len(set(mine) ^ set(other))} not in both"
    order = [other[k] for k in mine]
    parts = []
    for column in STAT_COLUMNS:
        a, b = ours[column], theirs[column][order]
        same_nan = np.array_equal(np.isnan(a), np.isnan(b))
        worst = float(np.nanmax(np.abs(a - b))) if len(a) else 0.0
        parts.append(f"{column} {worst:.2g}" + ("" if same_nan else " (NaNs differ)"))
    return f"{len(mine):,} rows; max |diff|: " + ", ".join(parts)


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.4f}" if seconds < 1 else f"{seconds:.2f}"  # milliseconds count below 1 s


def _ratio(theirs: float | None, ours: float | None) -> str:
    if theirs is None or ours is None:
        return "-"
    return f"{theirs / ours:.1f}x" if theirs < 10 * ours else f"{theirs / ours:.0f}x"


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
    parser.add_argument("--pynapple-python", type=Path, default=DEFAULT_PYNAPPLE)
    parser.add_argument("--repeat", type=int, default=5, help="runs per task (best is kept)")
    parser.add_argument("--allensdk-repeat", type=int, default=2)
    parser.add_argument("--budget", type=float, default=20.0, help="stop repeating a task after this many s")
    parser.add_argument(
        "--rounds", type=int, default=2, help="run every tool this many times, in turn (best kept)"
    )
    parser.add_argument(
        "--tools", default="ecephys,ecephys-numpy,pynapple,allensdk", help="comma-separated subset"
    )
    parser.add_argument("--worker", nargs=2, metavar=("TOOL", "PLAN"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(*args.worker)
        return 0

    path = args.session or _ensure_session(args.size, args.data_dir)
    pythons = {
        "ecephys": Path(sys.executable),
        "ecephys-numpy": Path(sys.executable),
        "pynapple": args.pynapple_python,
    }
    pythons["allensdk"] = args.allensdk_python
    chosen = args.tools.split(",")
    for tool in list(pythons):
        if tool not in chosen:
            del pythons[tool]
        elif not pythons[tool].exists():
            print(f"{tool} interpreter {pythons[tool]} not found: run bench/peers.sh", file=sys.stderr)
            del pythons[tool]
    repeat = {
        "ecephys": args.repeat,
        "ecephys-numpy": args.repeat,
        "pynapple": args.repeat,
        "allensdk": args.allensdk_repeat,
    }
    print(f"session file: {path} ({path.stat().st_size / 1e9:.2f} GB)")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    with tempfile.TemporaryDirectory(prefix="bench_spike_analysis_") as tmp:
        out_dir = Path(tmp)
        plan, notes = _plan(path, out_dir, repeat, args.budget)
        unit_ids = np.asarray(plan["unit_ids"], dtype=np.int64)
        print(f"{len(unit_ids)} units pass the default filters; " + "; ".join(notes or ["no shortfalls"]))
        reports: dict[str, dict | None] = {}
        for round_no in range(args.rounds):  # tools alternate, so a drifting VM speed hits all alike
            if args.rounds > 1:
                print(f" round {round_no + 1} of {args.rounds}", flush=True)
            for tool, python in pythons.items():
                reports[tool] = _merge(reports.get(tool, {}), _run(python, tool, out_dir))
        arrays = {
            tool: dict(np.load(out_dir / f"{tool}.npz"))
            for tool, report in reports.items()
            if report is not None
        }
        loadavg = os.getloadavg()

        verdicts = _print_table(plan, reports, unit_ids)
        runs = []
        for tool, report in reports.items():
            if report:
                counts = [n for k, n in report["runs"].items() if "[" not in k]
                runs.append(f"{tool} {min(counts)}-{max(counts)}")
        print("\nruns per task (best kept): " + "; ".join(runs))
        print(
            "loads (untimed): "
            + ", ".join(f"{tool} {report['load_s']:.1f} s" for tool, report in reports.items() if report)
        )
        print(
            "load average: before the run see above; at the end of each worker "
            + ", ".join(
                f"{tool} {' '.join(f'{x:.2f}' for x in report['loadavg'])}"
                for tool, report in reports.items()
                if report
            )
            + f"; after {' '.join(f'{x:.2f}' for x in loadavg)}"
        )
        _print_checks(plan, arrays, unit_ids)
        met = all(v.endswith("met") for v in verdicts)
        print(f"\nall targets met: {met}" if verdicts else "\nno targets checked")
    return 0


def _print_table(plan: dict, reports: dict, unit_ids: np.ndarray) -> list[str]:
    """The timing table and the ecephys breakdown; returns the target verdicts."""

    def seconds(tool: str, key: str) -> float | None:
        report = reports.get(tool)
        return None if report is None else report["times"].get(key)

    header = (
        f"{'task':<32} {'ecephys s':>9} {'numpy s':>9} {'AllenSDK s':>10} {'pynapple s':>10} "
        f"{'pyn. tensor s':>13} {'vs AllenSDK':>11} {'vs pynapple':>11} {'vs tensor':>9}  targets"
    )
    print("\n" + header + "\n" + "-" * (len(header) + 40))
    verdicts = []
    for name, task in plan["tasks"].items():
        ours, allen = seconds("ecephys", name), seconds("allensdk", name)
        numpy_only = seconds("ecephys-numpy", name)
        perievent, tensor = seconds("pynapple", name), seconds("pynapple", name + " [build_tensor]")
        label = name
        if name in COUNT_TASKS:
            label += f" {len(task['presentation_ids'])}x{len(task['edges']) - 1}x{len(unit_ids)}"
        checks = []
        if name in COUNT_TASKS:
            if ours and allen:
                checks.append(_verdict(allen / ours, TARGETS["counts vs AllenSDK"], "AllenSDK"))
            if ours and perievent:
                checks.append(_verdict(perievent / ours, TARGETS["counts vs pynapple"], "pynapple"))
            if ours and tensor:
                checks.append(_verdict(tensor / ours, TARGETS["counts vs pynapple"], "build_tensor"))
        elif ours and allen:
            checks.append(_verdict(allen / ours, TARGETS["conditionwise vs AllenSDK"], "AllenSDK"))
        verdicts += checks
        print(
            f"{label:<32} {_fmt(ours):>9} {_fmt(numpy_only):>9} {_fmt(allen):>10} {_fmt(perievent):>10} "
            f"{_fmt(tensor):>13} "
            f"{_ratio(allen, ours):>11} {_ratio(perievent, ours):>11} {_ratio(tensor, ours):>9}  "
            f"{', '.join(checks) or '-'}"
        )
    print(
        "ecephys s: with numba (the fast extra); numpy s: ecephys without it (ECEPHYS_NO_NUMBA=1); "
        "pynapple s: compute_perievent + count per unit; pyn. tensor s: build_tensor (count over an "
        "IntervalSet of the windows); pynapple has no conditionwise statistics."
    )
    if reports.get("ecephys"):
        header = (
            f"{'ecephys breakdown':<32} {'whole s':>9} {'gather s':>9} {'analysis s':>10} "
            f"{'analysis vs AllenSDK':>20} {'vs tensor':>9}"
        )
        print("\n" + header + "\n" + "-" * len(header))
        for name in plan["tasks"]:
            whole, gather = seconds("ecephys", name), seconds("ecephys", name + " [gather]")
            analysis = seconds("ecephys", name + " [analysis]")
            allen, tensor = seconds("allensdk", name), seconds("pynapple", name + " [build_tensor]")
            print(
                f"{name:<32} {_fmt(whole):>9} {_fmt(gather):>9} {_fmt(analysis):>10} "
                f"{_ratio(allen, analysis):>20} {_ratio(tensor, analysis):>9}"
            )
        print(
            "gather: session.spike_times.flat(unit_ids), a copy of the units' spike trains (the session "
            "methods avoid it: they pass bounds into the file's flat array); analysis: the "
            "ecephys.spikes functions on such a copy, checking that each unit's spikes are sorted."
        )
    return verdicts


def _verdict(speedup: float, target: float, peer: str) -> str:
    return f">={target:.0f}x {peer} " + ("met" if speedup >= target else "MISSED")


def _print_checks(plan: dict, arrays: dict, unit_ids: np.ndarray) -> None:
    """The answers compared: ecephys against each other tool, on the same units and presentations."""
    print("\nequality checks (ecephys vs the others):")
    allen = arrays.get("allensdk")
    if allen is not None:
        same = np.array_equal(np.sort(allen["default_unit_ids"]), np.sort(unit_ids))
        print(f"  units passing the default filters, AllenSDK vs ecephys: {'same' if same else 'DIFFERENT'}")
    ours = arrays.get("ecephys")
    if ours is None:
        return
    for name, task in plan["tasks"].items():
        expected = np.asarray(task.get("start_times", []))
        for tool in ("ecephys-numpy", "allensdk", "pynapple"):
            theirs = arrays.get(tool)
            if theirs is None:
                continue
            if name in COUNT_TASKS and tool == "ecephys-numpy":
                same = np.array_equal(ours[f"{name}/counts"], theirs[f"{name}/counts"])
                print(f"  {name}, numba vs numpy kernels: {'identical' if same else 'DIFFERENT'}")
            elif name in COUNT_TASKS:
                mine = _counts_in_plan_order(ours, name, task, unit_ids)
                keys = [name] + ([name + " [build_tensor]"] if tool == "pynapple" else [])
                starts_key = f"{name}/start_times"
                if starts_key in theirs:
                    same = np.array_equal(theirs[starts_key], expected)
                    print(f"  {name}, {tool}'s onsets equal ecephys's: {same}")
                for key in keys:
                    other = _counts_in_plan_order(theirs, key, task, unit_ids)
                    print(f"  {key}, {tool}: {_compare_counts(mine, other)}")
            elif f"{name}/unit_id" in theirs:
                mine = {c: ours[f"{name}/{c}"] for c in ("unit_id", "stimulus_condition_id", *STAT_COLUMNS)}
                other = {c: theirs[f"{name}/{c}"] for c in mine}
                print(f"  {name}, {tool}: {_compare_tables(mine, other)}")


if __name__ == "__main__":
    sys.exit(main())
