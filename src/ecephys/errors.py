"""Every exception and warning ecephys raises, in one tree.

::

    EcephysError
    ├── SourceError                   (url)
    │   ├── RemoteNotFound            (also FileNotFoundError)
    │   ├── TransientSourceError      (the only kind that is retried)
    │   ├── RangeNotSupported         the server sent the whole object to a Range request
    │   └── OfflineError              ECEPHYS_OFFLINE is set and the file is not cached
    ├── IntegrityError                (path, expected, actual)
    ├── InsufficientDiskSpace         (also OSError; path, needed, free)
    ├── LockTimeout                   (also TimeoutError; path, timeout)
    ├── UnknownSessionError           (also KeyError)
    ├── UnknownIdError                (also KeyError): unit, presentation or channel ids
    │   └── UnknownProbeError
    ├── NWBFormatError                (also ValueError)
    │   ├── NotHDF5Error
    │   ├── TruncatedFileError
    │   └── NotEcephysSessionError
    ├── SessionFileNotFound           (also FileNotFoundError)
    │   └── CacheFileNotFound         a cache folder lacks a file and nothing can fetch it
    ├── ManifestError                 (also ValueError): a cache manifest.json ecephys cannot use
    ├── MissingDataError              (also KeyError): the file lacks what was asked for
    ├── MissingDependency             (also ImportError)
    ├── SessionMapError               (results, errors): map_sessions' fn failed for some sessions
    ├── SessionIdError                (also ValueError): text that holds no session id
    ├── CatalogError                  (also ValueError): a session catalog or filter get_sessions cannot use
    └── ExportError                   (also ValueError): a session that cannot be exported as asked
        └── OutputExistsError         (also FileExistsError): the export's output is already there

    EcephysWarning (UserWarning)
    ├── BinarizeWarning               binarized counts in bins that can hold several spikes
    └── SessionMapWarning             map_sessions(errors="skip") left out failed sessions

Each message names the object, what was expected, what was found and what to do next.
"""

from __future__ import annotations

import errno
import os
from typing import Any

__all__ = [
    "BinarizeWarning",
    "CacheFileNotFound",
    "CatalogError",
    "EcephysError",
    "EcephysWarning",
    "ExportError",
    "InsufficientDiskSpace",
    "IntegrityError",
    "LockTimeout",
    "ManifestError",
    "MissingDataError",
    "MissingDependency",
    "NWBFormatError",
    "NotEcephysSessionError",
    "NotHDF5Error",
    "OfflineError",
    "OutputExistsError",
    "RangeNotSupported",
    "RemoteNotFound",
    "SessionFileNotFound",
    "SessionIdError",
    "SessionMapError",
    "SessionMapWarning",
    "SourceError",
    "TransientSourceError",
    "TruncatedFileError",
    "UnknownIdError",
    "UnknownProbeError",
    "UnknownSessionError",
]


class EcephysError(Exception):
    """Base class of every error ecephys raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle without calling ``__init__`` again (many take keyword arguments), so that an
        error raised on a Dask worker comes back with its type, message and attributes."""
        return (_restore_error, (type(self), self.args, self.__dict__))


def _restore_error(cls: type[EcephysError], args: tuple[Any, ...], state: dict[str, Any]) -> EcephysError:
    """An unpickled ecephys error: ``args`` and attributes set, ``__init__`` not called."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class EcephysWarning(UserWarning):
    """Base class of every warning ecephys issues."""


class BinarizeWarning(EcephysWarning):
    """Spike counts were binarized with bins wide enough to hold several spikes."""


class SourceError(EcephysError):
    """A remote or local source could not give the bytes asked for."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class RemoteNotFound(SourceError, FileNotFoundError):
    """The source answered that the object does not exist."""


class TransientSourceError(SourceError):
    """A failure worth retrying: a dropped connection, a 5xx answer, a timeout."""


class RangeNotSupported(SourceError):
    """The server ignored a Range request and answered 200 with the whole object."""


class OfflineError(SourceError):
    """``ECEPHYS_OFFLINE`` forbids the network and the cache does not hold the file."""


class IntegrityError(EcephysError):
    """A file's size or checksum is not what it should be."""

    def __init__(self, message: str, *, path: str | os.PathLike, expected: object, actual: object) -> None:
        super().__init__(message)
        self.path = os.fspath(path)
        self.expected = expected
        self.actual = actual


class InsufficientDiskSpace(EcephysError, OSError):
    """Not enough free space for a download; ``needed`` and ``free`` are in bytes."""

    def __init__(self, message: str, *, path: str | os.PathLike, needed: int, free: int) -> None:
        super().__init__(message)
        self.errno = errno.ENOSPC
        self.path = os.fspath(path)
        self.needed = needed
        self.free = free

    def __str__(self) -> str:
        return str(self.args[0])


class LockTimeout(EcephysError, TimeoutError):
    """Another process held a file's lock for longer than the timeout (seconds)."""

    def __init__(self, message: str, *, path: str | os.PathLike, timeout: float) -> None:
        super().__init__(message)
        self.path = os.fspath(path)
        self.timeout = timeout

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownSessionError(EcephysError, KeyError):
    """A session id that the project does not have."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class UnknownIdError(EcephysError, KeyError):
    """Ids (units, stimulus presentations, channels) that the session does not have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownProbeError(UnknownIdError):
    """A probe id that the session does not have."""


class SessionFileNotFound(EcephysError, FileNotFoundError):
    """A session or probe file path that does not exist."""

    def __init__(self, message: str, *, path: str | os.PathLike) -> None:
        super().__init__(message)
        self.path = os.fspath(path)

    def __str__(self) -> str:
        return str(self.args[0])


class CacheFileNotFound(SessionFileNotFound):
    """A file of a project cache folder (a table CSV, a session or LFP NWB file) is absent and
    the cache has no fetcher to download it (or ``ECEPHYS_OFFLINE`` is set).

    ``key`` is the file's path relative to the cache folder (also its key in the public bucket).
    """

    def __init__(self, message: str, *, path: str | os.PathLike, key: str) -> None:
        super().__init__(message, path=path)
        self.key = key


class ManifestError(EcephysError, ValueError):
    """A cache folder's ``manifest.json`` that is not an AllenSDK 0.3.0 ecephys manifest."""

    def __init__(self, message: str, *, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)


class NWBFormatError(EcephysError, ValueError):
    """A file that is not the NWB file ecephys expected."""

    def __init__(self, message: str, *, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)


class NotHDF5Error(NWBFormatError):
    """The file is not HDF5 at all (an HTML error page, a zip, a text file)."""


class TruncatedFileError(NWBFormatError):
    """The file ends before its HDF5 structure does: an interrupted download or copy."""


class NotEcephysSessionError(NWBFormatError):
    """An HDF5 (maybe NWB) file that lacks the groups an ecephys session has."""


class MissingDataError(EcephysError, KeyError):
    """The session file does not hold what was asked for (no LFP for a probe, no eye tracking)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MissingDependency(EcephysError, ImportError):
    """An optional dependency is needed; the message names the extra to install."""


class SessionMapError(EcephysError):
    """``map_sessions``: ``fn`` failed for some sessions. ``results`` holds the other sessions'
    results and ``errors`` the exceptions, both by session id."""

    def __init__(self, message: str, *, results: dict[int, Any], errors: dict[int, BaseException]) -> None:
        super().__init__(message)
        self.results = results
        self.errors = errors


class SessionMapWarning(EcephysWarning):
    """``map_sessions(errors="skip")`` returned without the sessions whose ``fn`` failed."""


class SessionIdError(EcephysError, ValueError):
    """Text (or a number) that holds no session id; ``text`` is what was given."""

    def __init__(self, message: str, *, text: str) -> None:
        super().__init__(message)
        self.text = text


class CatalogError(EcephysError, ValueError):
    """A session catalog (CSV, table) without a column of file paths, or a filter naming no column."""


class ExportError(EcephysError, ValueError):
    """A session (or one of its tables) that cannot be written in the format asked for."""

    def __init__(self, message: str, *, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)


class OutputExistsError(ExportError, FileExistsError):
    """An export's output file or folder already exists and ``overwrite`` was not given."""

    def __str__(self) -> str:
        return str(self.args[0])
