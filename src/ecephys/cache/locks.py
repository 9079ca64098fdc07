"""A per-file lock across processes, so that several processes asking for one file make one download.

``FileLock(path)`` takes an exclusive lock on a small lock file (``<target>.lock``) beside the
target. The operating system releases it when the holder exits or dies, so a crashed process
never leaves a stale lock; the lock file itself stays (deleting it would race with a waiter).

- POSIX: ``fcntl.flock`` on the lock file. Two opens of the file exclude each other even within
  one process, so threads are covered too. On NFS, flock is emulated with byte-range locks
  (Linux ≥ 2.6.12) and depends on the server's lock daemon.
- Windows: ``msvcrt.locking`` on the lock file's first byte, polled the same way; the
  behaviour is the same (released when the handle closes or the process dies), but this path
  is not exercised by the test suite.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ecephys.errors import LockTimeout

__all__ = ["FileLock"]


class FileLock:
    """An exclusive lock on ``path``, waited for at most ``timeout`` seconds (None: forever).

    Use as a context manager. ``waited`` tells, after acquiring, whether another holder
    had to be waited for (a download may then already be finished).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        timeout: float | None = 3600.0,
        poll: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.poll = poll
        self._sleep = sleep
        self._fd: int | None = None
        self.waited = False

    def __repr__(self) -> str:
        return f"FileLock({str(self.path)!r}, held={self.held})"

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> FileLock:
        """Take the lock, polling every ``poll`` seconds (up to 0.5 s); LockTimeout after ``timeout``."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: this FileLock is already held; locks are not re-entrant")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        started = time.monotonic()
        delay = self.poll
        self.waited = False
        try:
            while not _try_lock(fd):
                self.waited = True
                waited = time.monotonic() - started
                if self.timeout is not None and waited >= self.timeout:
                    raise LockTimeout(
                        _timeout_message(self.path, self.timeout, fd), path=self.path, timeout=self.timeout
                    )
                self._sleep(min(delay, 0.5))
                delay *= 1.5
        except BaseException:
            os.close(fd)
            raise
        _write_owner(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Let go of the lock (closing the file releases it)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            _unlock(fd)
            os.close(fd)

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _timeout_message(path: Path, timeout: float, fd: int) -> str:
    """Who holds the lock and what to do."""
    owner = _read_owner(fd)
    holder = f"process {owner}" if owner else "another process"
    return (
        f"{path}: {holder} has held this download lock for more than {timeout:g} s. It is probably "
        "still downloading the same file; wait and try again, or raise lock_timeout. A crashed "
        "process cannot hold it (the system releases its locks)."
    )


def _write_owner(fd: int) -> None:
    """Record our pid in the lock file, for messages."""
    try:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:
        pass


def _read_owner(fd: int) -> str:
    """The pid written by the holder, or ''."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 32)
    except OSError:
        return ""
    return data.decode("ascii", "replace").strip()


if sys.platform == "win32":  # pragma: no cover - not run in CI
    import msvcrt

    def _try_lock(fd: int) -> bool:
        """Lock byte 0 without waiting; False if someone else holds it."""
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        """Unlock byte 0."""
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        except OSError:
            pass

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        """flock the file without waiting; False if someone else holds it."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        """Release the flock."""
        fcntl.flock(fd, fcntl.LOCK_UN)
