"""What a session or a project cache shows of itself in a terminal and in Jupyter.

The summaries read only what is cheap: the session file's metadata, units table and the last
element of a few time series; the cache folder's files, never the network.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ecephys.project import EcephysProjectCache
    from ecephys.session import EcephysSession

__all__ = ["cache_repr", "cache_summary", "html_table", "session_summary"]

Rows = Sequence[tuple[str, str]]


def html_table(title: str, rows: Rows) -> str:
    """A small two-column HTML table under a bold title (Jupyter's ``_repr_html_``)."""
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(name)}</th>"
        f"<td style='text-align:left'>{html.escape(value)}</td></tr>"
        for name, value in rows
    )
    return f"<div><strong>{html.escape(title)}</strong><table>{body}</table></div>"


# -- sessions ------------------------------------------------------------------------------
def _recording_end(session: EcephysSession) -> float | None:
    """The time (s) of the session's last running-speed sample or interval end; None if neither."""
    h5file = session._nwb.file
    ends = []
    running = h5file.get("processing/running/running_speed_end_times/timestamps")
    if running is not None and running.shape and running.shape[0]:
        ends.append(float(running[-1]))
    for table in h5file.get("intervals", {}).values():
        stop = table.get("stop_time")
        if stop is not None and stop.shape and stop.shape[0]:
            ends.append(float(stop[-1]))
    return max(ends) if ends else None


def _local_lfp_probes(session: EcephysSession) -> tuple[list[str], list[str]]:
    """Names of the probes whose LFP file is on disk, and of those with LFP data at all."""
    probes = session.probes
    with_lfp = probes[probes["has_lfp_data"].astype(bool)]
    local = []
    for probe_id, row in with_lfp.iterrows():
        path = session.lfp_paths.get(int(probe_id))
        if path is None and session._nwb.path is not None:
            path = session._nwb.path.parent / f"probe_{int(probe_id)}_lfp.nwb"
        if isinstance(path, str | os.PathLike) and os.path.exists(path):
            local.append(str(row["description"]))
    return local, [str(d) for d in with_lfp["description"]]


def session_summary(session: EcephysSession) -> list[tuple[str, str]]:
    """(name, value) rows: id, type, units, probes, duration and which LFP files are local."""
    end = _recording_end(session)
    local, with_lfp = _local_lfp_probes(session)
    probe_names = ", ".join(str(d) for d in session.probes["description"])
    if not with_lfp:
        lfp = "no probe has LFP data"
    elif not local:
        lfp = f"none of {len(with_lfp)} (get_lfp reads or downloads them)"
    else:
        lfp = f"{len(local)} of {len(with_lfp)}: {', '.join(local)}"
    return [
        ("session id", str(session.ecephys_session_id)),
        ("session type", str(session.session_type)),
        ("units", f"{session.num_units} pass the filters, {len(session._nwb.unit_ids)} in the file"),
        ("probes", f"{session.num_probes} ({probe_names})"),
        ("duration", "unknown" if end is None else f"{end:.1f} s"),
        ("LFP files on disk", lfp),
        ("file", session._nwb.name),
    ]


# -- project caches ------------------------------------------------------------------------
def _source(cache: EcephysProjectCache) -> str:
    """Where the cache gets what its folder lacks, in words."""
    fetcher = cache.fetcher
    if fetcher is None:
        return "folder only"
    client = getattr(fetcher, "client", None)
    if client is not None and hasattr(client, "host"):
        return f"warehouse {client.scheme}://{client.host}"
    source = getattr(fetcher, "source", None)
    if source is not None and hasattr(source, "url"):
        try:
            return f"{type(source).__name__} {source.url('')}"
        except ValueError:
            pass
    return repr(fetcher)


def _count_files(cache: EcephysProjectCache, key: str) -> int:
    """Files of one manifest key (``session_nwb``, ``probe_lfp_nwb``) present in the folder."""
    pattern = cache.layout.manifest.template(key).replace("%d", "*").replace("%s", "*")
    return sum(1 for path in cache.cache_dir.glob(pattern) if path.is_file())


def _session_count(cache: EcephysProjectCache) -> int | None:
    """Rows of the session table, if the folder has it (nothing is fetched)."""
    if "sessions" in cache._tables:
        return len(cache._tables["sessions"])
    path = cache.layout.table("sessions")
    if not path.exists():
        return None
    with open(path, "rb") as f:
        lines = sum(1 for line in f if line.strip())
    return max(lines - 1, 0)


def cache_summary(cache: EcephysProjectCache) -> list[tuple[str, str]]:
    """(name, value) rows: folder, source, sessions in the table, session and LFP files cached."""
    sessions = _session_count(cache)
    return [
        ("folder", str(cache.cache_dir)),
        ("source", _source(cache)),
        ("sessions in the table", "(table not fetched yet)" if sessions is None else str(sessions)),
        ("session files cached", str(_count_files(cache, "session_nwb"))),
        ("LFP files cached", str(_count_files(cache, "probe_lfp_nwb"))),
    ]


def cache_repr(cache: EcephysProjectCache) -> str:
    """One line: folder, source, sessions in the table, session and LFP files cached."""
    rows = dict(cache_summary(cache))
    sessions = rows["sessions in the table"]
    table = "session table not fetched yet" if sessions.startswith("(") else f"{sessions} sessions"
    n_sessions, n_lfp = int(rows["session files cached"]), int(rows["LFP files cached"])
    return (
        f"<EcephysProjectCache {rows['folder']} ({rows['source']}): {table}, "
        f"{_plural(n_sessions, 'session file')} and {_plural(n_lfp, 'LFP file')} cached>"
    )


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
