"""Scale-out benchmark: one analysis over synthetic sessions on S3, in this process vs a LocalCluster.

    python bench/bench_scale.py                     # 6 sessions, 20 ms added per request
    python bench/bench_scale.py --latency 0.05      # a slower link
    python bench/bench_scale.py --workers 1,2,4     # more worker counts

The sessions (``make_project``: 6 probes × 50 units, 600 s each, ~36 MB; made once in
``bench/_data/scale-<n>``) sit in an object store behind the streaming benchmark's latency
proxy (:class:`bench_streaming.LatencyProxy`: ``--latency`` seconds per request, requests and
body bytes counted), both in a child process so that serving does not share this process's
GIL with the client. Two stores (``--stores``): moto's S3, and the test file server at the same
URLs — moto copies the whole object for every Range request, which penalises streaming, most
of all for big files (see :func:`start_store`). A full-size session (``--full-session``, 834 MB)
is also timed alone in this process, streamed and downloaded.

The analysis is ``ecephys.testing.analyses.flash_response_table`` (units, stimulus table, every
unit's spike times, rates around each flash), through ``EcephysProjectCache.map_sessions``
with ``combine=pd.concat``:

- ``here``: ``client=None``, one session after another in this process;
- ``N workers``: a ``LocalCluster(n_workers=N, threads_per_worker=1, processes=True)``,
  started (and its workers' imports made) before the clock.

Each run uses a fresh cache folder, so ``download`` really downloads every session file
(``stream`` downloads nothing). Every run's table is checked equal to the first's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

import ecephys
from bench_streaming import COUNTERS_PATH, LatencyProxy  # bench/ is on sys.path when a script here runs
from ecephys import EcephysProjectCache
from ecephys.testing.analyses import flash_response_table

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE / "_data"
DEFAULT_FULL = DEFAULT_DATA / "full" / "session_999000001" / "session_999000001.nwb"
STORES = {"moto": "moto's S3", "files": "a Range-aware file server at S3's URLs"}
BUCKET = "scale-bench"
PREFIX = "ecephys-cache/"
SESSION_SIZE = dict(
    n_probes=6,
    units_per_probe=50,
    duration=600.0,
    channels_per_probe=96,
    lfp_duration=2.0,
    lfp_channels=8,
    invalid_times=False,
)


def ensure_project(folder: Path, n_sessions: int) -> Path:
    """The synthetic project of ``n_sessions`` sessions, written once into ``folder``."""
    done = folder / "done.json"
    if done.exists() and json.loads(done.read_text()) == {"sessions": n_sessions, **SESSION_SIZE}:
        return folder
    from ecephys.testing.project import ProjectSession, make_project

    print(f"writing {n_sessions} synthetic sessions into {folder} (once)...", file=sys.stderr)
    sessions = [ProjectSession(980_000_001 + i * 1_000_000, seed=i) for i in range(n_sessions)]
    make_project(folder, sessions, **SESSION_SIZE)
    done.write_text(json.dumps({"sessions": n_sessions, **SESSION_SIZE}))
    return folder


def start_store(kind: str, folder: Path, full: Path | None) -> tuple[str, Callable[[], None]]:
    """The object store of ``kind`` (``moto`` or ``files``) holding the project under ``PREFIX`` and
    ``full`` under ``full/``: its endpoint URL and how to stop it.

    moto answers each Range request by copying the whole object (twice, under a lock), so its
    cost grows with the file, not the range; ``files`` is the Range-aware test file server
    (:class:`ecephys.testing.servers.FileServer`) at the same S3 path-style URLs, which reads
    only the range from disk, as S3 does.
    """
    from ecephys.testing.servers import FileServer, moto_s3, upload_folder

    objects = {f"{PREFIX}{p.relative_to(folder).as_posix()}": p for p in folder.rglob("*") if p.is_file()}
    objects.pop(f"{PREFIX}done.json", None)
    if full is not None:
        objects[f"full/{full.name}"] = full
    if kind == "moto":
        moto = moto_s3()
        for key, path in objects.items():
            prefix, name = key.rsplit("/", 1)
            upload_folder(
                moto.endpoint_url, path.parent, bucket=BUCKET, prefix=prefix + "/", include=name.__eq__
            )
        return moto.endpoint_url, moto.stop
    server = FileServer().start()
    for key, path in objects.items():
        server.add_file(f"{BUCKET}/{key}", path)
    return server.base_url, server.stop


def serve(kind: str, folder: Path, full: Path | None, latency: float, pipe: Connection) -> None:
    """Child process: the store behind the latency proxy; sends the proxy's URL, serves until told."""
    endpoint_url, stop = start_store(kind, folder, full)
    proxy = LatencyProxy(endpoint_url, latency).start()
    pipe.send(proxy.url)
    pipe.recv()
    proxy.stop()
    stop()


@contextlib.contextmanager
def serving(kind: str, args: argparse.Namespace) -> Iterator[str]:
    """The proxy URL of a store of ``kind`` served by a child process (apart from this one's GIL)."""
    spawn = multiprocessing.get_context("spawn")
    ours, theirs = spawn.Pipe()
    server = spawn.Process(
        target=serve, args=(kind, args.folder, args.full_session, args.latency, theirs), daemon=True
    )
    server.start()
    try:
        yield ours.recv()
    finally:
        ours.send("stop")
        server.join(timeout=30)


def counters(proxy_url: str) -> dict[str, int]:
    """Requests and body bytes the proxy has relayed so far."""
    return httpx.get(proxy_url + COUNTERS_PATH).json()


def measured(proxy_url: str, action: Callable[[], pd.DataFrame]) -> tuple[dict, pd.DataFrame]:
    """``action()``'s table, and its seconds, sessions, requests and body bytes through the proxy."""
    before = counters(proxy_url)
    started = time.perf_counter()
    table = action()
    seconds = time.perf_counter() - started
    after = counters(proxy_url)
    sessions = table.index.get_level_values(0).nunique() if table.index.nlevels > 1 else 1
    return {
        "seconds": seconds,
        "sessions": sessions,
        "requests": after["requests"] - before["requests"],
        "bytes": after["bytes"] - before["bytes"],
    }, table


def run_case(proxy_url: str, folder: Path, *, client: object, stream: bool) -> tuple[dict, pd.DataFrame]:
    """One map_sessions over every session with a fresh cache: seconds, requests, bytes; and the table."""
    cache = EcephysProjectCache.from_s3(folder, bucket=BUCKET, prefix=PREFIX, endpoint_url=proxy_url)
    return measured(
        proxy_url,
        lambda: cache.map_sessions(
            flash_response_table, client=client, stream=stream, combine=pd.concat, progress=False
        ),
    )


def full_size_cases(proxy_url: str, full: Path, scratch: Path) -> list[tuple[str, str, dict]]:
    """The analysis of one full-size session in this process: streamed, and downloaded then read."""
    from ecephys.cache.download import fetch
    from ecephys.sources.s3 import S3Source

    key = f"full/{full.name}"

    def analyse(path: str | Path) -> pd.DataFrame:
        with ecephys.open_session(path, endpoint_url=proxy_url) as session:
            return flash_response_table(session)

    def download() -> pd.DataFrame:
        path = fetch(S3Source(BUCKET, "", endpoint_url=proxy_url), key, scratch / full.name, progress=False)
        return analyse(path)

    streamed, expected = measured(proxy_url, lambda: analyse(f"s3://{BUCKET}/{key}"))
    downloaded, table = measured(proxy_url, download)
    pd.testing.assert_frame_equal(table, expected)
    where = f"here, 1 session of {full.stat().st_size / 1e6:.0f} MB"
    return [(where, "stream", streamed), (where, "download", downloaded)]


def warm_up(session_path: Path) -> int:
    """Run the analysis once on a local file: imports and first-call costs (numba's cache, say)
    are paid before any clock starts. Run here, and on every worker with ``client.run``."""
    with ecephys.open_session(session_path) as session:
        return len(flash_response_table(session))


def best_of(repeat: int, proxy_url: str, folder: Path, **options: Any) -> tuple[dict, pd.DataFrame]:
    """The fastest of ``repeat`` runs, each with a fresh cache folder."""
    runs = [run_case(proxy_url, folder / str(i), **options) for i in range(repeat)]
    return min(runs, key=lambda run: run[0]["seconds"])


def cluster_cases(n_workers: int, proxy_url: str, scratch: Path, args: argparse.Namespace) -> dict:
    """Each mode on a fresh LocalCluster of ``n_workers`` single-threaded processes."""
    from dask.distributed import Client, LocalCluster

    results = {}
    started = time.perf_counter()
    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.CRITICAL,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(warm_up, args.warm_up_session)
        startup = time.perf_counter() - started
        for mode in args.modes.split(","):
            folder = scratch / f"{n_workers}-workers-{mode}"
            results[mode] = best_of(args.repeat, proxy_url, folder, client=client, stream=mode == "stream")
            results[mode][0]["startup"] = startup
    return results


def run_all(proxy_url: str, scratch: Path, args: argparse.Namespace) -> list[tuple[str, str, dict]]:
    """Every (where, mode) case; each table checked equal to the first."""
    rows, tables = [], []
    warm_up(args.warm_up_session)
    for mode in args.modes.split(","):
        folder = scratch / f"here-{mode}"
        result, table = best_of(args.repeat, proxy_url, folder, client=None, stream=mode == "stream")
        rows.append(("here", mode, result))
        tables.append(table)
    for n_workers in (int(n) for n in args.workers.split(",")):
        for mode, (result, table) in cluster_cases(n_workers, proxy_url, scratch, args).items():
            rows.append((f"{n_workers} worker{'s' if n_workers > 1 else ''}", mode, result))
            tables.append(table)
    for table in tables[1:]:
        pd.testing.assert_frame_equal(table, tables[0])
    if args.full_session is not None:
        rows += full_size_cases(proxy_url, args.full_session, scratch)
    return rows


def print_table(rows: list[tuple[str, str, dict]], kind: str, args: argparse.Namespace) -> None:
    here = {mode: r for where, mode, r in rows if where == "here"}
    size = sum(p.stat().st_size for p in args.folder.glob("session_*/session_*.nwb"))
    print(
        f"\nflash_response_table over {args.sessions} sessions ({size / 1e6:.0f} MB of session files) "
        f"from {STORES[kind]} + {args.latency * 1000:.0f} ms per request; "
        f"{multiprocessing.cpu_count()} CPU cores\n"
    )
    header = ("where", "mode", "seconds", "s/session", "speed-up", "requests", "MB moved", "cluster start s")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for where, mode, r in rows:
        speedup = (
            f"{here[mode]['seconds'] / r['seconds']:.2f}x" if mode in here and r["sessions"] > 1 else "-"
        )
        cells = (
            where,
            mode,
            f"{r['seconds']:.2f}",
            f"{r['seconds'] / r['sessions']:.2f}",
            speedup,
            str(r["requests"]),
            f"{r['bytes'] / 1e6:.1f}",
            f"{r['startup']:.1f}" if "startup" in r else "-",
        )
        print("| " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--latency", type=float, default=0.020, help="seconds added per request")
    parser.add_argument("--workers", default="1,2", help="worker counts of the LocalClusters")
    parser.add_argument("--modes", default="stream,download")
    parser.add_argument("--stores", default="moto,files", help=f"object stores, of {', '.join(STORES)}")
    parser.add_argument("--repeat", type=int, default=2, help="runs per case; the fastest is shown")
    parser.add_argument(
        "--full-session",
        type=Path,
        default=DEFAULT_FULL if DEFAULT_FULL.exists() else None,
        help="a full-size session file also timed alone, streamed and downloaded (default: the one "
        "bench_session.py makes, when it is there)",
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    args.folder = ensure_project(args.data_dir / f"scale-{args.sessions}", args.sessions)
    args.warm_up_session = next(args.folder.glob("session_*/session_*.nwb"))
    for kind in args.stores.split(","):
        with (
            serving(kind, args) as proxy_url,
            tempfile.TemporaryDirectory(prefix="ecephys-bench-") as scratch,
        ):
            rows = run_all(proxy_url, Path(scratch), args)
        print_table(rows, kind, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
