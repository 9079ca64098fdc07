"""LFP benchmark: windowed reads from a probe LFP file, ecephys vs the AllenSDK vs raw h5py.

    python bench/bench_lfp.py                 # full size: 10,000 s x 90 channels at 1250 Hz, gzip-9
    python bench/bench_lfp.py --size small    # 600 s, a quick look

Tasks: a 10-s window of all channels, and one channel over the whole session. Each runs in a
fresh process (best of ``--repeat``; the AllenSDK once, as it reads the whole series for every
call). For ecephys the bytes read from the file are counted and compared with the stored size
of the HDF5 chunks that cover the window.
"""

from __future__ import annotations

import argparse
import io
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
    "small": dict(duration=600.0, lfp_duration=600.0, lfp_channels=90, channels_per_probe=384),
    "full": dict(duration=10_000.0, lfp_duration=10_000.0, lfp_channels=90, channels_per_probe=384),
}
WINDOW = (5000.0, 5010.0)
TASKS = ("10-s window, all channels", "1 channel, whole session")


class CountingFile(io.RawIOBase):
    """A read-only file object that counts the bytes HDF5 reads through it."""

    def __init__(self, path: str) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 (closed in close())
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def readinto(self, buffer) -> int:
        n = self._f.readinto(buffer)
        self.bytes_read += n
        return n


def _window(path: str, duration: float) -> tuple[float, float]:
    start = min(WINDOW[0], duration / 2)
    return start, start + 10.0


def _ecephys_task(task: str, session_path: str, probe_id: int, duration: float, count: bool = False) -> dict:
    """Read with ecephys; with ``count`` through a byte-counting file object (slower: not timed)."""
    from ecephys.nwb.lfp import ProbeLFPFile, lfp_path_beside

    path = lfp_path_beside(Path(session_path), probe_id)
    counter = CountingFile(str(path)) if count else None
    lfp_file = ProbeLFPFile(counter if count else path, probe_id)
    if task == TASKS[0]:
        lfp = lfp_file.read(time=slice(*_window(session_path, duration)))
    else:
        lfp = lfp_file.read(channels=[int(lfp_file.channel_ids[len(lfp_file.channel_ids) // 2])])
    return {"shape": list(lfp.shape), "bytes_read": counter.bytes_read if count else None}


def _allensdk_task(task: str, session_path: str, probe_id: int, duration: float) -> dict:
    import warnings
    from functools import partial

    from allensdk.brain_observatory.ecephys.ecephys_session import EcephysSession
    from pynwb import NWBHDF5IO

    warnings.simplefilter("ignore")
    lfp_path = str(Path(session_path).parent / f"probe_{probe_id}_lfp.nwb")

    def read_nwb(p):
        return NWBHDF5IO(p, "r", load_namespaces=True).read()

    session = EcephysSession.from_nwb_path(
        session_path, api_kwargs={"probe_lfp_paths": {probe_id: partial(read_nwb, lfp_path)}}
    )
    lfp = session.get_lfp(probe_id, mask_invalid_intervals=False)
    if task == TASKS[0]:
        lfp = lfp.sel(time=slice(*_window(session_path, duration)))
    else:
        lfp = lfp.isel(channel=[lfp.sizes["channel"] // 2])
    return {"shape": list(lfp.shape)}


def _h5py_task(task: str, session_path: str, probe_id: int, duration: float) -> dict:
    import h5py
    import numpy as np

    path = Path(session_path).parent / f"probe_{probe_id}_lfp.nwb"
    with h5py.File(path, "r") as f:
        series = f[f"acquisition/probe_{probe_id}_lfp/probe_{probe_id}_lfp_data"]
        if task == TASKS[0]:
            t = series["timestamps"][()]
            start, stop = _window(session_path, duration)
            i0, i1 = np.searchsorted(t, start), np.searchsorted(t, stop, side="right")
            data = series["data"][i0:i1]
        else:
            column = series["data"].shape[1] // 2
            data = series["data"][:, column : column + 1]
            _ = series["timestamps"][()]
    return {"shape": list(data.shape)}


def _covering_chunk_bytes(session_path: str, probe_id: int, duration: float) -> int:
    """Stored (compressed) bytes of the data and timestamp chunks that a 10-s window needs."""
    import h5py
    import numpy as np

    path = Path(session_path).parent / f"probe_{probe_id}_lfp.nwb"
    with h5py.File(path, "r") as f:
        series = f[f"acquisition/probe_{probe_id}_lfp/probe_{probe_id}_lfp_data"]
        t = series["timestamps"][()]
        start, stop = _window(session_path, duration)
        i0, i1 = int(np.searchsorted(t, start)), int(np.searchsorted(t, stop, side="right"))
        total = 0
        for name in ("data", "timestamps"):
            dset = series[name]
            if dset.chunks is None:
                total += (i1 - i0) * int(np.prod(dset.shape[1:])) * dset.dtype.itemsize
                continue
            rows = dset.chunks[0]
            wanted = set(range(i0 // rows, (i1 - 1) // rows + 1))
            for k in range(dset.id.get_num_chunks()):
                info = dset.id.get_chunk_info(k)
                if info.chunk_offset[0] // rows in wanted:
                    total += info.size
        return total


def _worker(tool: str, task: str, path: str, probe_id: str, duration: str) -> None:
    """Time one task in this fresh process (no tracemalloc: it slows every allocation it traces)."""
    run = {"ecephys": _ecephys_task, "allensdk": _allensdk_task, "h5py": _h5py_task}[tool]
    if tool == "ecephys":  # import costs are not reading costs: paid before the clock starts
        import ecephys.nwb.lfp  # noqa: F401
    elif tool == "allensdk":
        from allensdk.brain_observatory.ecephys import ecephys_session  # noqa: F401
    start = time.perf_counter()
    result = run(task, path, int(probe_id), float(duration))
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, **result}))


def _run(python: Path, args: list[str], repeat: int, tool: str) -> dict | None:
    best = None
    env = dict(os.environ)
    if tool != "allensdk":
        env["PYTHONPATH"] = str(HERE.parent / "src")
    for _ in range(repeat):
        proc = subprocess.run(
            [str(python), __file__, "--worker", tool, *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            print(f"  {tool} / {args[0]} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
            return None
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        if best is None or result["seconds"] < best["seconds"]:
            best = result
    return best


def _ensure_session(size: str, data_dir: Path) -> tuple[Path, int, float]:
    from ecephys.testing import make_session

    out = data_dir / f"lfp-{size}"
    marker = out / "done.json"
    if not marker.exists():
        print(f"writing a {size} synthetic session with LFP into {out} (once) ...", flush=True)
        start = time.perf_counter()
        files = make_session(out, n_probes=1, units_per_probe=10, seed=2, progress=True, **SIZES[size])
        marker.write_text(
            json.dumps({"session_path": str(files.session_path), "probe_id": files.probe_ids[0]})
        )
        print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
    info = json.loads(marker.read_text())
    return Path(info["session_path"]), int(info["probe_id"]), SIZES[size]["lfp_duration"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--allensdk-python", type=Path, default=DEFAULT_ALLENSDK)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(*args.worker)
        return 0

    session_path, probe_id, duration = _ensure_session(args.size, args.data_dir)
    lfp_path = session_path.parent / f"probe_{probe_id}_lfp.nwb"
    print(f"\nLFP file: {lfp_path} ({lfp_path.stat().st_size / 1e9:.2f} GB)")
    tools = {"ecephys": Path(sys.executable), "h5py": Path(sys.executable)}
    if args.allensdk_python.exists():
        tools["allensdk"] = args.allensdk_python
    results = {}
    for task in TASKS:
        for tool, python in tools.items():
            repeat = 1 if tool == "allensdk" else args.repeat
            results[tool, task] = _run(
                python, [task, str(session_path), str(probe_id), str(duration)], repeat, tool
            )

    header = (
        f"{'task':<27} {'ecephys s':>10} {'AllenSDK s':>11} {'h5py s':>8} {'vs AllenSDK':>12} {'vs h5py':>8}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for task in TASKS:
        ours, theirs, raw = (results.get((t, task)) for t in ("ecephys", "allensdk", "h5py"))
        ours_s, theirs_s, raw_s, speedup, ratio = speed_cells(ours, theirs, raw)
        print(f"{task:<27} {ours_s:>10} {theirs_s:>11} {raw_s:>8} {speedup:>12} {ratio:>8}")
    window = results.get(("ecephys", TASKS[0]))
    if window:
        window = _ecephys_task(TASKS[0], str(session_path), probe_id, duration, count=True)
        covering = _covering_chunk_bytes(str(session_path), probe_id, duration)
        print(
            f"\n10-s window: ecephys read {window['bytes_read'] / 1e6:.2f} MB from the file; the chunks "
            f"covering the window hold {covering / 1e6:.2f} MB; "
            f"the file is {lfp_path.stat().st_size / 1e6:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
