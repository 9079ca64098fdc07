"""One function over many sessions: in this process, or as one Dask task per session on a cluster.

:meth:`ecephys.EcephysProjectCache.map_sessions` is the entry point; this module is its
machinery, a leaf that nothing else imports (``dask.distributed`` is imported only when a
client is given: ``pip install 'ecephys[dask]'``).

What travels to the workers is one :class:`SessionJob`, sent once as a task of its own: the
project cache (its fetcher, and the session, probe and channel tables, read here first, so a
worker needs neither the tables nor a shared filesystem), ``fn`` and how to open a session.
Each task opens its session on the worker — streamed from the cache's source, or downloaded
into the worker's cache folder — calls ``fn``, closes the session and sends ``fn``'s result
back. A session whose ``fn`` raises (or whose worker dies more often than Dask allows) is one
failure; the other sessions' results are kept (see :class:`~ecephys.errors.SessionMapError`).
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecephys import config
from ecephys.cache.progress import wants_progress
from ecephys.errors import MissingDependency, SessionMapError, SessionMapWarning
from ecephys.units import UnitFilters

if TYPE_CHECKING:
    from ecephys.project import EcephysProjectCache
    from ecephys.session import EcephysSession

__all__ = ["SessionJob", "map_sessions"]

logger = logging.getLogger(__name__)

#: Where a worker downloads sessions when the client's cache folder is not on its machine.
WORKER_CACHE_NAME = "visual-coding-neuropixels"


@dataclass(frozen=True)
class SessionJob:
    """What every task needs: the cache, ``fn``, and how to open a session. Pickled once per run.

    ``worker_cache_dir`` is where a worker keeps what it downloads (see :meth:`cache_here`);
    ``session_kwargs`` are unit filters for :meth:`EcephysProjectCache.get_session_data`.
    """

    cache: EcephysProjectCache
    fn: Callable[[EcephysSession], Any]
    stream: bool = True
    worker_cache_dir: str | os.PathLike | None = None
    session_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, session_id: int) -> Any:
        """``fn`` of one session, run where this job was unpickled (a worker)."""
        return self.run(self.cache_here(), session_id)

    def run(self, cache: EcephysProjectCache, session_id: int) -> Any:
        """Open the session through ``cache``, return ``fn(session)``; the session is closed after."""
        with cache.get_session_data(session_id, stream=self.stream, **self.session_kwargs) as session:
            return self.fn(session)

    def cache_here(self) -> EcephysProjectCache:
        """The cache for this machine: in ``worker_cache_dir`` when given; else the client's folder
        when streaming (nothing is written) or when this machine has it (a shared filesystem, a
        local cluster); else the worker's own default folder (``ECEPHYS_CACHE_DIR``)."""
        if self.worker_cache_dir is not None:
            return _rebased(self.cache, Path(self.worker_cache_dir).expanduser())
        if self.stream or self.cache.cache_dir.exists():
            return self.cache
        return _rebased(self.cache, config.cache_dir() / WORKER_CACHE_NAME)


def _rebased(cache: EcephysProjectCache, folder: Path) -> EcephysProjectCache:
    """The same fetcher and tables over another folder (on a worker without the client's)."""
    moved = type(cache)(folder, fetcher=cache.fetcher)
    moved._tables.update(cache._tables)
    return moved


def _shipped_job(job: SessionJob) -> SessionJob:
    """The job itself: a task whose result every session's task takes as its argument."""
    return job


def _run_task(job: SessionJob, session_id: int) -> Any:
    """One Dask task: ``job`` (the result of the job task) applied to one session."""
    return job(session_id)


def map_sessions(
    cache: EcephysProjectCache,
    fn: Callable[[EcephysSession], Any],
    session_ids: Iterable[int] | int | None = None,
    *,
    client: Any = None,
    stream: bool = True,
    combine: Callable[[dict[int, Any]], Any] | None = None,
    retries: int = 2,
    progress: bool | None = True,
    errors: str = "raise",
    worker_cache_dir: str | os.PathLike | None = None,
    **session_kwargs: Any,
) -> Any:
    """``{session_id: fn(session)}`` in ``session_ids`` order, or ``combine`` of that dict.

    Parameters
    ----------
    cache
        The project cache the sessions come from.
    fn
        Takes an open :class:`~ecephys.EcephysSession`, returns data (a DataFrame, a DataArray,
        numbers; not the session or lazy views of it: the session is closed after ``fn``). With a
        client it must pickle: a module-level function, or a class instance (cloudpickle also
        ships functions defined in a script or notebook).
    session_ids
        Sessions to run (all of the session table, in its order, by default); unknown ids raise
        :class:`~ecephys.errors.UnknownSessionError` before anything runs.
    client
        A ``dask.distributed.Client``: one task per session on its workers. None: in this process,
        one session at a time.
    stream
        Read each session's file from the cache's source in parts (S3 or HTTP; no folder needed on
        the workers), or download it whole first (into ``worker_cache_dir``).
    combine
        Called with the ``{session_id: result}`` dict; ``pd.concat`` gives one frame keyed by
        session id.
    retries
        Times Dask runs a failed task again (a worker that dies is handled by Dask apart from this).
    progress
        A tqdm bar counting sessions when tqdm is installed (False: none; None: on a terminal only).
    errors
        ``"raise"``: after all sessions ran, raise :class:`~ecephys.errors.SessionMapError` naming
        the failed ones, with the others' results in ``.results``. ``"skip"``: warn
        (:class:`~ecephys.errors.SessionMapWarning`) and return the successes.
    worker_cache_dir
        Where workers keep downloaded files. Default: the client's cache folder when the worker's
        machine has it, else the worker's default cache folder (``ECEPHYS_CACHE_DIR`` there).
    **session_kwargs
        For :meth:`~ecephys.EcephysProjectCache.get_session_data`: unit filters, mostly.
    """
    ids = _checked_session_ids(cache, session_ids)
    _check_options(cache, fn, stream, errors, retries, session_kwargs)
    for name in cache.TRAVELLING_TABLES:
        cache._raw_table(name)  # read (or fetched) once here, so that they travel with the cache
    job = SessionJob(cache, fn, stream, worker_cache_dir, dict(session_kwargs))
    if client is None:
        results, failures = _run_here(job, ids, progress)
    else:
        results, failures = _run_on_cluster(client, job, ids, retries, progress)
    return _finish(ids, results, failures, combine, errors)


def _checked_session_ids(cache: EcephysProjectCache, session_ids: Iterable[int] | int | None) -> list[int]:
    """The ids to run, each known to the cache, duplicates dropped, order kept."""
    if session_ids is None:
        return [int(sid) for sid in cache._raw_table("sessions").index]
    if isinstance(session_ids, int | str) or not isinstance(session_ids, Iterable):
        session_ids = [session_ids]
    return list(dict.fromkeys(cache._known_session(sid) for sid in session_ids))


def _check_options(
    cache: EcephysProjectCache,
    fn: object,
    stream: bool,
    errors: str,
    retries: int,
    session_kwargs: Mapping[str, Any],
) -> None:
    """Refuse what would fail in every task, before anything runs."""
    if not callable(fn):
        raise TypeError(f"fn={fn!r}: expected a function of one session")
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors={errors!r}: expected 'raise' or 'skip'")
    if int(retries) < 0:
        raise ValueError(f"retries={retries}: expected an integer ≥ 0")
    _check_session_kwargs(cache, session_kwargs)
    if stream and not hasattr(getattr(cache.fetcher, "source", None), "read_range"):
        kind = "no fetcher" if cache.fetcher is None else type(cache.fetcher).__name__
        raise ValueError(
            f"map_sessions(stream=True): sessions can only be streamed from a cache over S3 or HTTP "
            f"(EcephysProjectCache.from_s3(), or a SourceFetcher); this cache has {kind}. Pass "
            "stream=False to download each session (on each worker), or open the cache with from_s3()."
        )


def _check_session_kwargs(cache: EcephysProjectCache, session_kwargs: Mapping[str, Any]) -> None:
    """TypeError naming what neither ``get_session_data`` nor the unit filters take."""
    parameters = inspect.signature(cache.get_session_data).parameters.values()
    named = {p.name for p in parameters if p.kind is not inspect.Parameter.VAR_KEYWORD}
    UnitFilters.from_kwargs(**{k: v for k, v in session_kwargs.items() if k not in named})


def _run_here(job: SessionJob, ids: list[int], progress: bool | None) -> tuple[dict, dict]:
    """Each session in turn, in this process: (results, exceptions), both by session id."""
    return _collect(((sid, functools.partial(job.run, job.cache, sid)) for sid in ids), len(ids), progress)


def _run_on_cluster(
    client: Any, job: SessionJob, ids: list[int], retries: int, progress: bool | None
) -> tuple[dict, dict]:
    """One Dask task per session, results gathered as they complete: (results, exceptions)."""
    as_completed = _distributed().as_completed  # MissingDependency without the dask extra
    import dask

    run = uuid.uuid4().hex[:8]
    # The job as a task, not scattered data: if every worker holding it dies, Dask makes it
    # again from the task instead of cancelling the sessions that need it. It is shipped once,
    # and its size (the channel table: ~10 MB for the real project) is expected.
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1GiB"}):
        shipped = client.submit(_shipped_job, job, key=f"ecephys-job-{run}", pure=False)
    futures = {
        client.submit(
            _run_task, shipped, sid, key=f"ecephys-session-{sid}-{run}", retries=int(retries), pure=False
        ): sid
        for sid in ids
    }
    try:
        done = ((futures[future], future.result) for future in as_completed(list(futures)))
        return _collect(done, len(ids), progress)
    finally:
        client.cancel([*futures, shipped])  # frees the results, or stops the rest on Ctrl-C


def _collect(
    outcomes: Iterable[tuple[int, Callable[[], Any]]], total: int, progress: bool | None
) -> tuple[dict, dict]:
    """Call each session's ``result()``, keeping what it returns or raises, with a progress bar."""
    results: dict[int, Any] = {}
    failures: dict[int, Exception] = {}
    bar = _session_bar(total, progress)
    try:
        for sid, result in outcomes:
            try:
                results[sid] = result()
            except Exception as err:  # fn is the user's code: any failure is this session's alone
                logger.info("map_sessions: session %d failed: %r", sid, err)
                failures[sid] = err
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return results, failures


def _finish(
    ids: list[int],
    results: dict[int, Any],
    failures: dict[int, Exception],
    combine: Callable[[dict[int, Any]], Any] | None,
    errors: str,
) -> Any:
    """The results in ``ids`` order, combined; or the error (or warning) naming the failures."""
    ordered = {sid: results[sid] for sid in ids if sid in results}
    if failures:
        failed = {sid: failures[sid] for sid in ids if sid in failures}
        message = _failure_message(failed, len(ordered))
        if errors == "raise":
            raise SessionMapError(
                message + "; the other results are in .results, the exceptions in .errors "
                "(or pass errors='skip')",
                results=ordered,
                errors=failed,
            )
        warnings.warn(message + "; returning the others' results", SessionMapWarning, stacklevel=3)
    return ordered if combine is None else combine(ordered)


def _failure_message(failed: dict[int, Exception], n_done: int) -> str:
    """``fn failed for 2 of 6 sessions: 715093703 (ValueError: ...), ...``."""
    listed = ", ".join(f"{sid} ({_first_line(err)})" for sid, err in list(failed.items())[:10])
    more = f" and {len(failed) - 10} more" if len(failed) > 10 else ""
    return f"map_sessions: fn failed for {len(failed)} of {len(failed) + n_done} sessions: {listed}{more}"


def _first_line(error: BaseException) -> str:
    """``Type: first line of the message``."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _distributed() -> Any:
    """The ``distributed`` package, or MissingDependency naming the extra."""
    try:
        import distributed
    except ImportError as err:
        raise MissingDependency(
            "map_sessions(client=...) needs dask.distributed: pip install 'ecephys[dask]'"
        ) from err
    return distributed


def _session_bar(total: int, progress: bool | None) -> Any:
    """A tqdm bar counting sessions, or None (no tqdm, ``progress=False``, or not a terminal)."""
    if not wants_progress(progress):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="sessions", unit="session", dynamic_ncols=True)
