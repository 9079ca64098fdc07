"""Download one file into the cache so that its path holds a whole, verified file or nothing.

:func:`fetch` writes ``<target>.part`` beside the target, resumes it with ``Range: bytes=N-``
(and ``If-Range`` with the ETag the partial file was started from, kept in
``<target>.part.json``), starts over when the server ignores the range, checks the length
against the server's (and, for ``.nwb``/HDF5 files, the superblock's end-of-file address), and
only then moves it into place with ``os.replace``. Nothing else ever writes the target path,
so an interrupted download leaves at most a ``.part`` file, which the next fetch resumes.
Timeouts, resets and 5xx answers are retried with back-off; a per-file lock makes concurrent
processes share one download. The decision of what to do is :func:`plan_fetch`, a function of
the files on disk and the server's answer, tested without a network.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ecephys import config
from ecephys.cache.locks import FileLock
from ecephys.cache.progress import ProgressBar, human_size, progress_bar
from ecephys.cache.verify import check_file, is_complete, is_hdf5_name
from ecephys.errors import (
    InsufficientDiskSpace,
    IntegrityError,
    OfflineError,
    TransientSourceError,
)
from ecephys.sources.base import DEFAULT_CHUNK_SIZE, ChunkStream, ObjectInfo, Source
from ecephys.sources.retry import RetryPolicy

__all__ = ["FetchPlan", "fetch", "is_complete", "lock_path", "part_path", "plan_fetch"]

log = logging.getLogger(__name__)
Action = Literal["use", "resume", "download", "refetch"]


@dataclass(frozen=True)
class FetchPlan:
    """What :func:`fetch` will do and why; ``offset`` is where a resumed download starts (bytes)."""

    action: Action
    reason: str
    offset: int = 0


def part_path(target: str | os.PathLike) -> Path:
    """``<target>.part``: where the bytes go until they are verified."""
    target = Path(target)
    return target.with_name(target.name + ".part")


def lock_path(target: str | os.PathLike) -> Path:
    """``<target>.lock``: the per-file lock shared by all processes fetching ``target``."""
    target = Path(target)
    return target.with_name(target.name + ".lock")


def _meta_path(target: Path) -> Path:
    """``<target>.part.json``: size, ETag and URL of the object the ``.part`` file belongs to."""
    return target.with_name(target.name + ".part.json")


def _file_size(path: Path) -> int:
    """Size in bytes, 0 when the file is missing."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_meta(target: Path) -> dict[str, object]:
    """The ``.part.json`` record, or {} when missing or unreadable."""
    try:
        data = json.loads(_meta_path(target).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _validator(info: ObjectInfo) -> str | None:
    """What to send in If-Range: a strong ETag, else the Last-Modified date, else None."""
    if info.etag and not info.etag.startswith(("W/", "w/")):
        return info.etag
    return info.last_modified


def plan_fetch(
    target: str | os.PathLike,
    remote: ObjectInfo | None = None,
    *,
    expected_size: int | None = None,
    expected_etag: str | None = None,
    hdf5: bool | None = None,
) -> FetchPlan:
    """Decide, from the files on disk and the server's answer, what fetching ``target`` needs.

    - ``use``: the target is whole (length = the expected or remote size in bytes; for HDF5,
      the superblock's end-of-file address = the length).
    - ``refetch``: a file is at the target but is not whole — e.g. left truncated by an older
      tool or the AllenSDK, which write straight to the final path; it must be replaced.
    - ``resume``: a ``.part`` file from an earlier attempt can be continued from ``offset``.
    - ``download``: nothing usable; start from byte 0.
    """
    target = Path(target)
    size = expected_size if expected_size is not None else (remote.size if remote else None)
    if target.exists():
        verdict = check_file(target, size, hdf5=hdf5)
        if verdict.ok:
            return FetchPlan("use", f"{target.name} is complete ({verdict.reason})")
        return FetchPlan("refetch", f"{target.name} {verdict.reason}; it will be downloaded again")
    held = _file_size(part_path(target))
    if held == 0:
        return FetchPlan("download", f"{target.name} is not in the cache")
    if size is not None and held > size:
        return FetchPlan(
            "download",
            f"{part_path(target).name} holds {held:,} bytes, more than the {size:,} of the file; "
            "starting over",
        )
    started_from = _read_meta(target).get("etag") or expected_etag
    if remote is not None and remote.etag and started_from and started_from != remote.etag:
        return FetchPlan(
            "download",
            f"{target.name} changed on the server since the partial download began "
            f"(ETag {started_from} → {remote.etag}); starting over",
        )
    return FetchPlan("resume", f"resuming {target.name} from byte {held:,} of {human_size(size)}", held)


def fetch(
    source: Source,
    key: str,
    target: str | os.PathLike,
    *,
    expected_size: int | None = None,
    expected_etag: str | None = None,
    progress: bool | None = None,
    retries: int | RetryPolicy = 5,
    lock_timeout: float | None = 3600.0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    hdf5: bool | None = None,
) -> Path:
    """Make ``target`` hold the whole object ``key`` of ``source``; return the path.

    Parameters
    ----------
    source, key
        Where the bytes come from (any :class:`~ecephys.sources.base.Source`).
    target
        The cache path. A whole file there is used as it is (no network when its size is
        known or it is HDF5 and its superblock agrees; else the server's size decides); a
        truncated one is replaced. With ``ECEPHYS_OFFLINE`` set, a file there that nothing
        contradicts is used and anything else is an OfflineError.
    expected_size, expected_etag
        What the caller knows of the object (bytes; validator). A server that disagrees is
        an IntegrityError before anything is downloaded.
    progress
        tqdm bar: None shows it on a terminal only, False never.
    retries
        Failed attempts in a row allowed (an attempt that moved bytes resets the count), or
        a :class:`RetryPolicy` (back-off, injectable sleep). Only TransientSourceError is retried.
    lock_timeout
        Seconds to wait for another process fetching the same file (None: forever).
    chunk_size
        Bytes per read.
    hdf5
        Verify the HDF5 end-of-file address; None decides from the file name.

    Raises
    ------
    OfflineError, RemoteNotFound, TransientSourceError (retries spent), IntegrityError,
    InsufficientDiskSpace, LockTimeout.
    """
    target = Path(target)
    if _usable_without_network(target, expected_size, hdf5):
        return target
    if config.offline():
        if target.exists() and is_complete(target, expected_size, hdf5=hdf5):
            return target  # nothing contradicts it, and nothing else can be had
        raise OfflineError(
            _offline_message(source, key, target, expected_size, hdf5), url=_safe_url(source, key)
        )
    policy = retries if isinstance(retries, RetryPolicy) else RetryPolicy(retries=retries)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(lock_path(target), timeout=lock_timeout) as lock:
        if lock.waited and _usable_without_network(target, expected_size, hdf5):
            log.info("%s: another process finished the download", target)
            return target
        remote = policy.call(lambda: source.info(key))
        _check_expectations(key, remote, expected_size, expected_etag)
        plan = plan_fetch(target, remote, expected_size=expected_size, expected_etag=expected_etag, hdf5=hdf5)
        log.info("%s: %s (%s)", target, plan.action, plan.reason)
        if plan.action == "use":
            return target
        if plan.action == "refetch":
            log.warning("%s", plan.reason)
            target.unlink()
        job = _Download(source, key, target, remote, policy, progress, chunk_size, hdf5)
        try:
            job.run(resume=plan.action == "resume")
        except IntegrityError:
            if plan.action != "resume":
                raise
            log.warning(
                "%s: the resumed file failed verification; downloading it again from the start", target
            )
            job.run(resume=False)
    return target


def _usable_without_network(target: Path, expected_size: int | None, hdf5: bool | None) -> bool:
    """Whether the target can be trusted from local checks alone (known size, or HDF5 EOF)."""
    if not target.exists():
        return False
    decisive = expected_size is not None or (is_hdf5_name(target) if hdf5 is None else hdf5)
    return decisive and is_complete(target, expected_size, hdf5=hdf5)


def _safe_url(source: Source, key: str) -> str | None:
    """The source's URL for ``key``, or None when it cannot say."""
    try:
        return source.url(key)
    except ValueError:
        return None


def _offline_message(
    source: Source, key: str, target: Path, expected_size: int | None, hdf5: bool | None
) -> str:
    """Why an offline fetch cannot be served, and what to do."""
    where = _safe_url(source, key) or key
    if target.exists():
        state = f"is incomplete ({check_file(target, expected_size, hdf5=hdf5).reason})"
    else:
        state = "is not in the cache"
    return (
        f"{target}: {state}, and ECEPHYS_OFFLINE is set, so {where} was not downloaded. "
        f"Unset ECEPHYS_OFFLINE to download it, or copy the whole file to {target}."
    )


def _check_expectations(
    key: str, remote: ObjectInfo, expected_size: int | None, expected_etag: str | None
) -> None:
    """Refuse to download an object that is not the one the caller expects."""
    if expected_size is not None and remote.size is not None and remote.size != expected_size:
        raise IntegrityError(
            f"{key}: the source ({remote.url}) says {remote.size:,} bytes but {expected_size:,} were "
            "expected; the remote file changed or the expected size is stale. Nothing was downloaded; "
            "refresh the manifest (or drop expected_size) and fetch again.",
            path=key,
            expected=expected_size,
            actual=remote.size,
        )
    if expected_etag is not None and remote.etag is not None and remote.etag != expected_etag:
        raise IntegrityError(
            f"{key}: the source ({remote.url}) has ETag {remote.etag} but {expected_etag} was expected; "
            "the remote file changed. Nothing was downloaded; refresh the manifest and fetch again.",
            path=key,
            expected=expected_etag,
            actual=remote.etag,
        )


class _Download:
    """One download of ``key`` into ``<target>.part``, then verified and renamed into place."""

    def __init__(
        self,
        source: Source,
        key: str,
        target: Path,
        remote: ObjectInfo,
        policy: RetryPolicy,
        progress: bool | None,
        chunk_size: int,
        hdf5: bool | None,
    ) -> None:
        self.source = source
        self.key = key
        self.target = target
        self.part = part_path(target)
        self.remote = remote
        self.size = remote.size
        self.validator = _validator(remote)
        self.policy = policy
        self.progress = progress
        self.chunk_size = chunk_size
        self.hdf5 = is_hdf5_name(target) if hdf5 is None else hdf5

    def run(self, *, resume: bool) -> None:
        """Fetch the missing bytes, verify them, and move the file into place."""
        if not resume:
            self._discard_part()
        self._write_meta()
        offset = _file_size(self.part)
        _check_disk_space(self.target, self.size, offset)
        bar = progress_bar(self.size, desc=self.target.name, initial=offset, progress=self.progress)
        try:
            self._transfer(bar)
        finally:
            bar.close()
        self._verify_and_commit()

    def _transfer(self, bar: ProgressBar) -> None:
        """Stream until the part holds ``size`` bytes, retrying transient failures."""
        failures = 0
        while True:
            offset = _file_size(self.part)
            if self.size is not None and offset >= self.size:
                return
            try:
                self._stream_once(offset, bar)
            except TransientSourceError as error:
                held = _file_size(self.part)
                if self.size is not None and held >= self.size:
                    return  # every byte arrived before the connection failed (a long Content-Length)
                failures = 1 if held > offset else failures + 1
                self.policy.wait(failures, error)
                continue
            if self.size is None:
                return  # no length to aim for: the end of the body is the end of the file

    def _stream_once(self, offset: int, bar: ProgressBar) -> None:
        """One request from ``offset``; raises TransientSourceError if the body ends early."""
        stream = self.source.iter_chunks(
            self.key, offset, chunk_size=self.chunk_size, if_range=self.validator if offset else None
        )
        with stream:
            if stream.start != offset:
                log.info(
                    "%s: the server sent the whole file instead of bytes %d-; starting over",
                    self.target.name,
                    offset,
                )
                bar.reset(self.size)
            position = self._write(stream, stream.start, bar)
        if self.size is not None and position < self.size:
            raise TransientSourceError(
                f"{stream.url}: the answer ended after {position:,} of {self.size:,} bytes "
                "(a short Content-Length or a closed connection); resuming from there.",
                url=stream.url,
            )

    def _write(self, stream: ChunkStream, begin: int, bar: ProgressBar) -> int:
        """Append the stream's chunks to the part file from ``begin``; the end position (bytes)."""
        position = begin
        overflow = False
        try:
            with open(self.part, "ab") as fh:
                if fh.tell() != begin:
                    fh.truncate(begin)
                for chunk in stream:
                    if self.size is not None and position + len(chunk) > self.size:
                        overflow = True
                        break
                    fh.write(chunk)
                    position += len(chunk)
                    bar.update(len(chunk))
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise _disk_full(self.target, self.size, position) from exc
            raise
        if overflow:
            self._discard_part()
            raise IntegrityError(
                f"{self.target.name}: the server sent more than the {self.size:,} bytes it announced; "
                "the partial file was removed — fetch again (the remote file may have changed).",
                path=self.target,
                expected=self.size,
                actual=position,
            )
        return position

    def _verify_and_commit(self) -> None:
        """fsync, verify length (and HDF5 EOF), then atomically rename the part onto the target."""
        with open(self.part, "rb+") as fh:
            os.fsync(fh.fileno())
        verdict = check_file(self.part, self.size, hdf5=self.hdf5)
        if not verdict.ok:
            self._discard_part()
            raise IntegrityError(
                f"{self.target.name}: the downloaded file {verdict.reason}. It was removed and nothing "
                f"was written to {self.target}; fetch again (if this repeats, the file on the server "
                "is damaged — report it).",
                path=self.target,
                expected=self.size,
                actual=verdict.size,
            )
        os.replace(self.part, self.target)
        _meta_path(self.target).unlink(missing_ok=True)
        log.info("%s: complete, %s", self.target, human_size(verdict.size))

    def _write_meta(self) -> None:
        """Record which object the part file belongs to (for If-Range on a later resume)."""
        meta = {"url": self.remote.url, "size": self.size, "etag": self.remote.etag}
        if _read_meta(self.target) != meta:
            _meta_path(self.target).write_text(json.dumps(meta))

    def _discard_part(self) -> None:
        """Remove the part file and its record."""
        self.part.unlink(missing_ok=True)
        _meta_path(self.target).unlink(missing_ok=True)


def _check_disk_space(target: Path, size: int | None, offset: int) -> None:
    """InsufficientDiskSpace unless the target's disk has room for the missing bytes."""
    if size is None:
        return
    needed = size - offset
    free = shutil.disk_usage(target.parent).free
    if needed > free:
        raise _disk_full(target, size, offset, free=free)


def _disk_full(
    target: Path, size: int | None, offset: int, *, free: int | None = None
) -> InsufficientDiskSpace:
    """The error for a disk without room, saying how much is needed and where."""
    if free is None:
        free = shutil.disk_usage(target.parent).free
    needed = (size - offset) if size is not None else 0
    kept = " The partial file is kept and the next fetch resumes." if offset else ""
    return InsufficientDiskSpace(
        f"{target.name}: needs {human_size(needed)} more ({needed:,} bytes of {human_size(size)}) in "
        f"{target.parent}, but only {human_size(free)} is free there. Free some space, or set "
        f"ECEPHYS_CACHE_DIR to a larger disk.{kept}",
        path=target.parent,
        needed=needed,
        free=free,
    )
