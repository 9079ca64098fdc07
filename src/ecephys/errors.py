"""Every exception and warning ecephys raises, in one tree.

::

    EcephysError
    ├── SourceError
    │   ├── RemoteNotFound            (also FileNotFoundError)
    │   └── TransientSourceError      (the only kind that is retried)
    ├── IntegrityError                (path, expected, actual)
    ├── UnknownSessionError           (also KeyError)
    ├── UnknownIdError                (also KeyError): unit, presentation or channel ids
    │   └── UnknownProbeError
    ├── NWBFormatError                (also ValueError)
    │   ├── NotHDF5Error
    │   ├── TruncatedFileError
    │   └── NotEcephysSessionError
    ├── SessionFileNotFound           (also FileNotFoundError)
    ├── MissingDataError              (also KeyError): the file lacks what was asked for
    └── MissingDependency             (also ImportError)

    EcephysWarning (UserWarning)
    └── BinarizeWarning               binarized counts in bins that can hold several spikes

Each message names the object, what was expected, what was found and what to do next.
"""

from __future__ import annotations

import os

__all__ = [
    "BinarizeWarning",
    "EcephysError",
    "EcephysWarning",
    "IntegrityError",
    "MissingDataError",
    "MissingDependency",
    "NWBFormatError",
    "NotEcephysSessionError",
    "NotHDF5Error",
    "RemoteNotFound",
    "SessionFileNotFound",
    "SourceError",
    "TransientSourceError",
    "TruncatedFileError",
    "UnknownIdError",
    "UnknownProbeError",
    "UnknownSessionError",
]


class EcephysError(Exception):
    """Base class of every error ecephys raises on purpose."""


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


class IntegrityError(EcephysError):
    """A file's size or checksum is not what it should be."""

    def __init__(self, message: str, *, path: str | os.PathLike, expected: object, actual: object) -> None:
        super().__init__(message)
        self.path = os.fspath(path)
        self.expected = expected
        self.actual = actual


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
