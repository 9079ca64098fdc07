"""The ``ecephys`` command: query the project, download what is needed, look inside files.

Every subcommand calls the public API only (EcephysProjectCache, open_session, the cache's
file checks). Errors print one line and exit 1 (``--verbose`` shows the chain); bad usage
exits 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from ecephys import config
from ecephys.errors import EcephysError

__all__ = ["build_parser", "main"]

SOURCES = ("s3", "warehouse", "local")
EXPORT_FORMATS = ("parquet", "mat", "json")


def _default_cache() -> Path:
    return config.cache_dir() / "visual-coding-neuropixels"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ecephys`` and its subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="the project cache folder (default: $ECEPHYS_CACHE_DIR/visual-coding-neuropixels, "
        "else the platform cache folder)",
    )
    common.add_argument("--source", choices=SOURCES, default="s3", help="where missing files come from")
    common.add_argument(
        "--endpoint", help="another host for the source: an S3 endpoint URL or a warehouse host"
    )
    common.add_argument("--verbose", "-v", action="store_true", help="log progress and show error chains")
    formats = argparse.ArgumentParser(add_help=False)
    formats.add_argument("--format", choices=("table", "csv", "json"), default="table")

    parser = argparse.ArgumentParser(
        prog="ecephys",
        description="Neuropixels sessions of the Allen Visual Coding dataset: query, download, inspect.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("sessions", parents=[common, formats], help="list the project's sessions")
    p.add_argument("--session-type", help="e.g. brain_observatory_1.1 or functional_connectivity")
    p.add_argument("--genotype", help="keep sessions whose full genotype contains this text")
    p.add_argument("--structure", help="keep sessions with channels in this structure, e.g. VISl")
    p.set_defaults(run=_sessions)

    p = sub.add_parser("units", parents=[common, formats], help="list a session's units")
    p.add_argument("--session", type=int, required=True, help="the ecephys session id")
    p.add_argument("--no-quality-filters", action="store_true", help="every unit, not only those passing")
    p.set_defaults(run=_units)

    p = sub.add_parser("download", parents=[common], help="download session (and LFP) files")
    p.add_argument("session_ids", type=int, nargs="*", help="session ids (none with --all)")
    p.add_argument("--lfp", action="store_true", help="also each probe's LFP file")
    p.add_argument("--all", action="store_true", help="every session of the project")
    p.add_argument("--jobs", type=int, default=2, help="files downloaded at once (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=_download)

    p = sub.add_parser("links", parents=[common, formats], help="direct download URLs, for other tools")
    p.add_argument("--lfp", action="store_true", help="also the LFP files")
    p.set_defaults(run=_links)

    p = sub.add_parser("info", parents=[common], help="what is inside a session NWB file")
    p.add_argument("path", type=Path)
    p.set_defaults(run=_info)

    p = sub.add_parser("verify", parents=[common], help="find truncated or corrupt files in the cache")
    p.set_defaults(run=_verify)

    p = sub.add_parser(
        "export", help="write a session's tables and spike trains as Parquet, MAT or JSON files"
    )
    p.add_argument("path", help="a session NWB file, or its URL (s3://..., https://...)")
    p.add_argument("out", type=Path, help="the folder to write into (one subfolder or .mat file per session)")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="parquet", help="default: parquet")
    p.add_argument(
        "--tables", help="comma-separated table names, e.g. units,trials,spike_times (default: all)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export of the session")
    p.add_argument("--endpoint", help="another S3 endpoint URL for an s3:// path")
    p.add_argument("--verbose", "-v", action="store_true", help="log progress and show error chains")
    p.set_defaults(run=_export)

    p = sub.add_parser(
        "demo",
        help="the AllenSDK tutorial run offline on a synthetic project; figures in ./demo-output",
    )
    p.add_argument(
        "--folder",
        type=Path,
        default=None,
        help="where the demo project lives (default: <cache>/demo-project)",
    )
    p.add_argument("--output", type=Path, default=None, help="where the figures go (default: ./demo-output)")
    p.add_argument("--verbose", "-v", action="store_true", help="log progress and show error chains")
    p.set_defaults(run=_demo)
    return parser


def _cache(args: argparse.Namespace):
    """The EcephysProjectCache the options describe."""
    from ecephys.project import EcephysProjectCache

    folder = args.cache or _default_cache()
    progress = False if getattr(args, "quiet", False) else None
    if args.source == "local":
        return EcephysProjectCache(folder)
    if args.source == "warehouse":
        scheme, host = "http", args.endpoint
        if host and "://" in host:
            scheme, host = host.split("://", 1)
        return EcephysProjectCache.from_warehouse(
            scheme=scheme, host=host, manifest=folder, progress=progress
        )
    return EcephysProjectCache.from_s3(folder, endpoint_url=args.endpoint, progress=progress)


def _emit(frame: pd.DataFrame, fmt: str) -> None:
    if fmt == "csv":
        sys.stdout.write(frame.to_csv())
    elif fmt == "json":
        sys.stdout.write(frame.reset_index().to_json(orient="records", default_handler=str) + "\n")
    else:
        with pd.option_context("display.width", 200, "display.max_rows", 500, "display.max_columns", 12):
            print(frame.to_string())


def _sessions(args: argparse.Namespace) -> int:
    table = _cache(args).get_session_table()
    if args.session_type:
        table = table[table["session_type"] == args.session_type]
    if args.genotype:
        table = table[table["full_genotype"].astype(str).str.contains(args.genotype, regex=False)]
    if args.structure:
        has = table["ecephys_structure_acronyms"].map(
            lambda a: args.structure in list(a) if a is not None else False
        )
        table = table[has.astype(bool)]
    _emit(table, args.format)
    return 0


def _units(args: argparse.Namespace) -> int:
    cache = _cache(args)
    if args.no_quality_filters:
        session = cache.get_session_data(
            args.session,
            amplitude_cutoff_maximum=None,
            presence_ratio_minimum=None,
            isi_violations_maximum=None,
            filter_by_validity=False,
        )
    else:
        session = cache.get_session_data(args.session)
    _emit(session.units, args.format)
    return 0


def _download(args: argparse.Namespace) -> int:
    cache = _cache(args)
    sessions = cache.get_session_table()
    ids = sessions.index.tolist() if args.all else args.session_ids
    if not ids:
        raise SystemExit("ecephys download: give session ids, or --all")
    jobs: list[tuple[str, Callable[[], Path]]] = []
    probes = cache.get_probes() if args.lfp else None
    for sid in ids:
        jobs.append((f"session {sid}", lambda sid=sid: cache.fetch_session_file(sid)))
        if probes is not None:
            mine = probes[(probes["ecephys_session_id"] == sid) & probes["has_lfp_data"].astype(bool)]
            for pid in mine.index:
                jobs.append((f"LFP of probe {pid}", lambda pid=pid: cache.fetch_lfp_file(int(pid))))
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda job: (job[0], job[1]()), jobs))
    for what, path in results:
        print(f"{what}: {path}")
    return 0


def _links(args: argparse.Namespace) -> int:
    links = _cache(args).download_links()
    if not args.lfp:
        links = links[links["kind"] == "session_nwb"]
    if args.format == "table":
        for url in links["url"]:
            print(url)
    else:
        _emit(links.set_index("ecephys_session_id"), args.format)
    return 0


def _info(args: argparse.Namespace) -> int:
    import warnings

    from ecephys.session import open_session

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session = open_session(args.path)
        everything = open_session(
            args.path,
            amplitude_cutoff_maximum=None,
            presence_ratio_minimum=None,
            isi_violations_maximum=None,
            filter_by_validity=False,
            filter_out_of_brain_units=False,
        )
        print(f"{args.path} ({args.path.stat().st_size / 1e9:.2f} GB)")
        print(f"session {session.ecephys_session_id}, {session.session_type}")
        print(f"  started {session.session_start_time}")
        print(f"mouse {session.specimen_name}: {session.full_genotype}")
        print(f"  {session.sex}, {session.age_in_days} days old")
        print(
            f"units: {everything.num_units} in the file, {session.num_units} pass the default quality filters"
        )
        names = ", ".join(session.stimulus_names)
        print(f"stimulus presentations: {session.num_stimulus_presentations} ({names})")
        print("probes:")
        for probe_id, row in session.probes.iterrows():
            lfp = args.path.parent / f"probe_{probe_id}_lfp.nwb"
            where = (
                f"LFP file {'present' if lfp.exists() else 'not downloaded'}"
                if row["has_lfp_data"]
                else "no LFP"
            )
            count = int((session.units["probe_id"] == probe_id).sum())
            print(f"  {row['description']} (id {probe_id}): {count} units, {where}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from ecephys.cache.verify import check_file

    folder = args.cache or _default_cache()
    bad = []
    checked = 0
    for path in sorted(Path(folder).rglob("*.nwb")):
        checked += 1
        verdict = check_file(path)
        if not verdict.ok:
            bad.append((path, verdict.reason))
    partial = sorted(Path(folder).rglob("*.part"))
    print(f"checked {checked} NWB files in {folder}")
    for path, reason in bad:
        print(f"  BAD {path}: {reason}")
        print("    the next get_session_data/get_lfp (or ecephys download) fetches it again")
    for path in partial:
        print(f"  partial download {path} ({path.stat().st_size:,} bytes) — the next download resumes it")
    if not bad:
        print("all files are whole")
    return 1 if bad else 0


def _export(args: argparse.Namespace) -> int:
    from ecephys.export import export_session
    from ecephys.nwb_session import open_nwb

    tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
    options = {"endpoint_url": args.endpoint} if args.endpoint else {}
    with open_nwb(args.path, **options) as session:
        files = export_session(session, args.out, args.format, tables=tables, overwrite=args.overwrite)
    for path in files:
        print(path)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ecephys import demo

    return demo.run_tour(args.folder, args.output)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return int(args.run(args))
    except EcephysError as err:
        if args.verbose:
            traceback.print_exc()
        print(f"ecephys {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ecephys {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
