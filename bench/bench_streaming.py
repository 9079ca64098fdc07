"""Streaming benchmark: reading parts of a session over S3, ecephys vs fsspec+h5py vs remfile+h5py.

    python bench/bench_streaming.py                    # the full-size files in bench/_data
    python bench/bench_streaming.py --latency 0.05     # another added latency per request
    python bench/bench_streaming.py --block-size 65536 # ecephys with another RemoteFile block size

moto's S3 server holds the full-size synthetic session (bench/_data/full, made by
bench_session.py) and the LFP session (bench/_data/lfp-full, made by bench_lfp.py). Every tool
talks to a forwarding proxy on 127.0.0.1 that sleeps ``--latency`` seconds per request and
counts requests and body bytes; its counters are the numbers in the table. Each tool runs each
chain of tasks in a fresh process of its own virtual environment (``bench/peers.sh`` makes
``_venvs/streaming`` with fsspec, s3fs, remfile and h5py); imports happen before the clock.

Chains (numbers are cumulative within a chain, as a user would meet them):
- open + units table, then one unit's spike times (the busiest unit)
- open, then all spike times
- open, then a 10-s window of all LFP channels (5000-5010 s)

For the h5py tools "units" means every 1-D column of ``/units`` with one value per unit (ids,
metrics, peak_channel_id, quality, the ``*_index`` columns) and every column of the electrodes
table; the LFP window is found by bisecting the timestamps dataset one element at a time (a
smart search: ~24 reads instead of the 100 MB series), then reading the rows of ``data``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE / "_data"
DEFAULT_PEER = Path(
    os.environ.get("ECEPHYS_BENCH_STREAMING_PYTHON", HERE / "_venvs" / "streaming" / "bin" / "python")
)
BUCKET = "allen-brain-observatory"
PREFIX = "visual-coding-neuropixels/ecephys-cache/"
SESSION_KEY = PREFIX + "full/session_999000001/session_999000001.nwb"
LFP_SESSION_KEY = PREFIX + "lfp-full/session_999000001/session_999000001.nwb"
PROBE_ID = 999001018
LFP_KEY = PREFIX + f"lfp-full/session_999000001/probe_{PROBE_ID}_lfp.nwb"
WINDOW = (5000.0, 5010.0)
CHAINS = {
    "units": ("open+units", "+ one unit's spikes"),
    "spikes": ("open + all spike times",),
    "lfp": ("open + 10-s LFP window",),
}
ALL_UNITS = dict(
    amplitude_cutoff_maximum=float("inf"),
    presence_ratio_minimum=float("-inf"),
    isi_violations_maximum=float("inf"),
    filter_by_validity=False,
    filter_out_of_brain_units=False,
)
COUNTERS_PATH = "/__bench__/counters"


# -- the proxy: added latency, and the ground truth for requests and bytes --------------------
class LatencyProxy:
    """A threaded HTTP/1.1 proxy on 127.0.0.1 relaying GET/HEAD (with Range) to ``upstream``.

    Each request sleeps ``latency`` seconds before it is forwarded. ``GET /__bench__/counters``
    answers ``{"requests": n, "bytes": n}`` (body bytes relayed) without delay or counting.
    """

    def __init__(self, upstream: str, latency: float) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.latency = latency
        self.requests = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                proxy._relay(self, "GET")

            def do_HEAD(self) -> None:  # noqa: N802
                proxy._relay(self, "HEAD")

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client closing a read-ahead stream early (fsspec does) is not an error

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> LatencyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _connection(self, fresh: bool = False) -> HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            conn = HTTPConnection(self.upstream_host, self.upstream_port, timeout=120)
            self._local.conn = conn
        return conn

    def _relay(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        if handler.path == COUNTERS_PATH:
            with self._lock:
                body = json.dumps({"requests": self.requests, "bytes": self.bytes}).encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        time.sleep(self.latency)
        with self._lock:
            self.requests += 1
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "connection")}
        headers["Host"] = f"{self.upstream_host}:{self.upstream_port}"
        for attempt in range(2):  # a kept-alive upstream connection may have been closed
            conn = self._connection(fresh=attempt > 0)
            try:
                conn.request(method, handler.path, headers=headers)
                response = conn.getresponse()
                break
            except (ConnectionError, OSError):
                if attempt:
                    raise
        length = response.getheader("Content-Length")
        body = None
        if method == "GET" and length is None:  # no length: read it all to send one
            body = response.read()
            length = str(len(body))
        handler.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "content-length", "server", "date"):
                handler.send_header(name, value)
        if length is not None:
            handler.send_header("Content-Length", length)
        handler.end_headers()
        if method == "HEAD":
            response.read()
            return
        if body is not None:
            handler.wfile.write(body)
            self._count(len(body))
            return
        while block := response.read(256 * 1024):
            handler.wfile.write(block)
            self._count(len(block))

    def _count(self, n: int) -> None:
        with self._lock:
            self.bytes += n


# -- workers: run inside a child process, print one JSON line ---------------------------------
def _counters(proxy: str) -> tuple[int, int]:
    from urllib.request import urlopen

    with urlopen(proxy + COUNTERS_PATH) as response:
        data = json.loads(response.read())
    return data["requests"], data["bytes"]


class _Clock:
    """Time and proxy counters at each step of a chain, cumulative from its start."""

    def __init__(self, proxy: str) -> None:
        self.proxy = proxy
        self.steps: list[dict] = []
        self._requests, self._bytes = _counters(proxy)
        self._start = time.perf_counter()

    def mark(self, n: int) -> None:
        seconds = time.perf_counter() - self._start
        requests, n_bytes = _counters(self.proxy)
        self.steps.append(
            {
                "seconds": seconds,
                "requests": requests - self._requests,
                "bytes": n_bytes - self._bytes,
                "n": n,
            }
        )


def _ecephys_chain(chain: str, proxy: str, unit_id: int, block_size: int | None) -> _Clock:
    import warnings

    import ecephys
    from ecephys.sources import RemoteFile
    from ecephys.sources.s3 import S3Source

    warnings.simplefilter("ignore")

    def open_(key: str) -> ecephys.EcephysSession:
        if block_size is None:
            return ecephys.open_session(f"s3://{BUCKET}/{key}", endpoint_url=proxy, **ALL_UNITS)
        source = S3Source(BUCKET, "", endpoint_url=proxy)
        return ecephys.open_session(RemoteFile(source, key, block_size=block_size), **ALL_UNITS)

    clock = _Clock(proxy)
    if chain == "units":
        session = open_(SESSION_KEY)
        clock.mark(len(session.units))
        clock.mark(len(session.spike_times[unit_id]))
    elif chain == "spikes":
        session = open_(SESSION_KEY)
        clock.mark(int(sum(len(t) for t in session.spike_times.values())))
    elif chain == "lfp":
        session = open_(LFP_SESSION_KEY)
        if block_size is not None:
            source = S3Source(BUCKET, "", endpoint_url=proxy)
            session.lfp_paths[PROBE_ID] = RemoteFile(source, LFP_KEY, block_size=block_size)
        lfp = session.get_lfp(PROBE_ID, time=slice(*WINDOW), mask_invalid_intervals=False)
        clock.mark(int(lfp.size))
    return clock


def _open_h5(tool: str, proxy: str, key: str, fsspec_protocol: str):
    import h5py

    if tool == "remfile":
        import remfile

        return h5py.File(remfile.File(f"{proxy}/{BUCKET}/{key}"), "r")
    import fsspec

    if fsspec_protocol == "s3":
        fs = fsspec.filesystem("s3", anon=True, client_kwargs={"endpoint_url": proxy})
        handle = fs.open(f"{BUCKET}/{key}", "rb")  # s3fs defaults: "readahead", 50 MiB blocks
    else:
        handle = fsspec.filesystem("http").open(f"{proxy}/{BUCKET}/{key}", "rb")
    return h5py.File(handle, "r")


def _h5py_units(f) -> int:
    """Read what a units table needs with plain h5py: every per-unit column and the electrodes."""
    units = f["units"]
    n = units["id"].shape[0]
    columns = {k: units[k][()] for k in units if units[k].ndim == 1 and units[k].shape[0] == n}
    electrodes = f["general/extracellular_ephys/electrodes"]
    for name in electrodes:
        electrodes[name][()]
    return len(columns["id"])


def _bisect(dataset, value: float) -> int:
    """The first index whose element is >= ``value``, reading one element per step."""
    low, high = 0, dataset.shape[0]
    while low < high:
        mid = (low + high) // 2
        if dataset[mid] < value:
            low = mid + 1
        else:
            high = mid
    return low


def _h5py_chain(tool: str, chain: str, proxy: str, unit_id: int, fsspec_protocol: str) -> _Clock:
    import numpy as np

    clock = _Clock(proxy)
    if chain == "units":
        f = _open_h5(tool, proxy, SESSION_KEY, fsspec_protocol)
        clock.mark(_h5py_units(f))
        units = f["units"]
        row = int(np.flatnonzero(units["id"][()] == unit_id)[0])
        index = units["spike_times_index"][()].astype(np.int64)
        start = 0 if row == 0 else index[row - 1]
        clock.mark(len(units["spike_times"][start : index[row]]))
    elif chain == "spikes":
        f = _open_h5(tool, proxy, SESSION_KEY, fsspec_protocol)
        units = f["units"]
        index = units["spike_times_index"][()].astype(np.int64)
        times = np.split(units["spike_times"][()], index[:-1])
        clock.mark(int(sum(len(t) for t in times)))
    elif chain == "lfp":
        f = _open_h5(tool, proxy, LFP_KEY, fsspec_protocol)
        series = f[f"acquisition/probe_{PROBE_ID}_lfp/probe_{PROBE_ID}_lfp_data"]
        stamps = series["timestamps"]
        start, stop = _bisect(stamps, WINDOW[0]), _bisect(stamps, np.nextafter(WINDOW[1], np.inf))
        clock.mark(int(series["data"][start:stop].size))
    return clock


def _import_library(tool: str) -> None:
    if tool == "ecephys":
        import ecephys  # noqa: F401
        from ecephys.sources.s3 import S3Source  # noqa: F401
    elif tool == "remfile":
        import h5py  # noqa: F401
        import remfile  # noqa: F401
    else:
        import fsspec
        import h5py  # noqa: F401

        fsspec.filesystem("s3", anon=True)  # imports s3fs, aiobotocore


def _worker(tool: str, chain: str, proxy: str, unit_id: int, block_size: int, fsspec_protocol: str) -> None:
    _import_library(tool)  # import costs are not reading costs: paid before the clock starts
    if tool == "ecephys":
        clock = _ecephys_chain(chain, proxy, unit_id, block_size or None)
    else:
        clock = _h5py_chain(tool, chain, proxy, unit_id, fsspec_protocol)
    print(json.dumps(clock.steps))


# -- driver -------------------------------------------------------------------------------------
def _run(
    python: Path, tool: str, chain: str, proxy: str, unit_id: int, args: argparse.Namespace
) -> list | None:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")} if tool == "ecephys" else dict(os.environ)
    block_size = args.block_size if tool == "ecephys" else 0
    command = [str(python), str(Path(__file__).resolve()), "--worker", tool, chain, proxy, str(unit_id)]
    command += [str(block_size), args.fsspec_protocol]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        print(f"  {tool} / {chain} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _busiest_unit(path: Path) -> int:
    import h5py
    import numpy as np

    with h5py.File(path, "r") as f:
        ends = f["units/spike_times_index"][()].astype(np.int64)
        counts = np.diff(np.concatenate([[0], ends]))
        return int(f["units/id"][int(np.argmax(counts))])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--peer-python", type=Path, default=DEFAULT_PEER)
    parser.add_argument("--latency", type=float, default=0.020, help="seconds added per request")
    parser.add_argument(
        "--block-size", type=int, default=0, help="ecephys RemoteFile block size (0: default)"
    )
    parser.add_argument("--fsspec-protocol", choices=("s3", "http"), default="s3")
    parser.add_argument("--tools", default="ecephys,fsspec,remfile")
    parser.add_argument("--chains", default=",".join(CHAINS))
    args = parser.parse_args(argv)

    from ecephys.testing.servers import moto_s3, upload_folder

    session_path = args.data_dir / "full" / "session_999000001" / "session_999000001.nwb"
    lfp_path = args.data_dir / "lfp-full" / "session_999000001" / f"probe_{PROBE_ID}_lfp.nwb"
    for path, script in ((session_path, "bench_session.py"), (lfp_path, "bench_lfp.py")):
        if not path.exists():
            print(f"{path} is missing: run bench/{script} once to write it", file=sys.stderr)
            return 1
    sizes = {"units": session_path.stat().st_size, "spikes": session_path.stat().st_size}
    sizes["lfp"] = lfp_path.stat().st_size
    unit_id = _busiest_unit(session_path)

    moto = moto_s3()
    proxy = None
    try:
        start = time.perf_counter()
        for folder in ("full", "lfp-full"):
            upload_folder(
                moto.endpoint_url, args.data_dir / folder, bucket=BUCKET, prefix=f"{PREFIX}{folder}/",
                include=lambda name: name.endswith(".nwb"),
            )  # fmt: skip
        print(f"uploaded to moto in {time.perf_counter() - start:.0f} s", flush=True)
        proxy = LatencyProxy(moto.endpoint_url, args.latency).start()
        rows = []
        for tool in args.tools.split(","):
            python = Path(sys.executable) if tool == "ecephys" else args.peer_python
            if not python.exists():
                print(f"  {tool}: {python} is missing (bash bench/peers.sh); skipped", file=sys.stderr)
                continue
            for chain in args.chains.split(","):
                steps = _run(python, tool, chain, proxy.url, unit_id, args)
                for label, step in zip(CHAINS[chain], steps or [], strict=False):
                    rows.append((tool, label, step, sizes[chain]))
                    print(f"  {tool:8s} {label:26s} done", flush=True)
    finally:
        if proxy is not None:
            proxy.stop()
        moto.stop()

    label = "ecephys" if not args.block_size else f"ecephys (block {args.block_size // 1024} KiB)"
    print()
    print(
        f"Streaming over moto S3 + {args.latency * 1000:.0f} ms per request; session file "
        f"{sizes['units'] / 1e9:.2f} GB, LFP file {sizes['lfp'] / 1e9:.2f} GB; unit {unit_id}"
    )
    print(f"{'tool':26s} {'task (cumulative)':26s} {'s':>7s} {'requests':>9s} {'MB':>9s} {'% of file':>10s}")
    for tool, task, step, size in rows:
        name = (
            label
            if tool == "ecephys"
            else {"fsspec": f"fsspec+h5py ({args.fsspec_protocol})"}.get(tool, tool)
        )
        name = "remfile+h5py" if tool == "remfile" else name
        print(
            f"{name:26s} {task:26s} {step['seconds']:7.2f} {step['requests']:9d} "
            f"{step['bytes'] / 1e6:9.2f} {100 * step['bytes'] / size:9.3f}%"
        )
    _check_targets(rows)
    return 0


def _check_targets(rows: list) -> None:
    """Open + units + one unit: <=2% of the file's bytes, and fewer requests than both peers."""
    target = {tool: step for tool, task, step, size in rows if task == "+ one unit's spikes"}
    sizes = {tool: size for tool, task, step, size in rows if task == "+ one unit's spikes"}
    if "ecephys" not in target:
        return
    ours = target["ecephys"]
    share = 100 * ours["bytes"] / sizes["ecephys"]
    print(
        f"\ntarget: open+units+one unit <= 2% of the file: {share:.3f}% "
        f"-> {'met' if share <= 2 else 'MISSED'}"
    )
    for peer in ("fsspec", "remfile"):
        if peer in target:
            ok = ours["requests"] < target[peer]["requests"]
            print(
                f"target: fewer requests than {peer}: {ours['requests']} vs {target[peer]['requests']} "
                f"-> {'met' if ok else 'MISSED'}"
            )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        tool, chain, proxy, unit_id, block_size, protocol = sys.argv[2:8]
        _worker(tool, chain, proxy, int(unit_id), int(block_size), protocol)
    else:
        sys.exit(main())
