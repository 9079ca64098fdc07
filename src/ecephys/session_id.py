"""Session ids as values: Mindscope ``<subject>_<YYYY-MM-DD>[_<idx>]`` ids and Allen integer ids.

``SessionId("DRpilot_668755_20230831")`` is the string ``"668755_2023-08-31"``: every accepted
spelling of one session parses to one normal form, so ids compare, hash and sort as values.

Accepted spellings (the forms the Dynamic Routing tools write):

- ``668755_2023-08-31`` and ``668755_20230831`` (subject of 6 or 7 digits, then the date);
- the same inside a longer name or a path: ``DRpilot_668755_20230831``,
  ``.../DRpilot_668755_20230831/668755_2023-08-31.nwb`` (the last path part that holds an id
  wins), with an optional time of day after the date (``_101203``, ``_10-12-03``), ignored;
- a session index after the date: ``668755_2023-08-31_1`` (``_0`` is the same as none);
- Allen ecephys session ids, 9 digits or more: ``715093703``, ``"715093703"``,
  ``session_715093703.nwb``. Their normal form is the number; they have no subject or date
  (``subject`` and ``date`` are None) and ``idx`` is 0.
"""

from __future__ import annotations

import datetime
import numbers
import os
import re
from dataclasses import dataclass

from ecephys.errors import SessionIdError

__all__ = ["SessionId"]

_DATE = r"(?P<year>20\d\d)(?P<sep>-?)(?P<month>\d\d)(?P=sep)(?P<day>\d\d)"
_TIME_OF_DAY = r"(?:[_T ]\d\d[-:]?\d\d[-:]?\d\d)?"
_MINDSCOPE_ID = re.compile(
    rf"(?<![0-9])(?P<subject>\d{{6,7}})[_ ]{_DATE}{_TIME_OF_DAY}(?:_(?P<idx>\d+))?(?![0-9])"
)
_ALLEN_ID = re.compile(r"(?:ecephys_)?(?:session_)?(?P<number>[1-9]\d{8,})(?:\.nwb)?", re.IGNORECASE)
_MIN_ALLEN_ID = 10**8
_HELP = (
    "expected <subject>_<YYYY-MM-DD>[_<idx>] (e.g. 668755_2023-08-31), a name or path "
    "containing one (DRpilot_668755_20230831), or an Allen session id of 9+ digits (715093703)"
)


@dataclass(frozen=True)
class _Parts:
    """What a session id is made of; ``number`` is the Allen id, else None."""

    subject: str | None
    date: datetime.date | None
    idx: int
    number: int | None

    @property
    def normal(self) -> str:
        if self.number is not None:
            return str(self.number)
        suffix = f"_{self.idx}" if self.idx else ""
        return f"{self.subject}_{self.date.isoformat()}{suffix}"  # type: ignore[union-attr]

    @property
    def sort_key(self) -> tuple:
        if self.number is not None:
            return (0, self.number, "", datetime.date.min, 0)
        return (1, int(self.subject), self.subject, self.date, self.idx)  # type: ignore[arg-type]


class SessionId(str):
    """A session id in its normal form ``<subject>_<YYYY-MM-DD>[_<idx>]`` (or an Allen id's digits).

    A ``str``: equal to, and hashed as, its normal form, so
    ``SessionId("DRpilot_668755_20230831") == "668755_2023-08-31"``. Ids sort by subject
    (numerically), date and idx; Allen ids sort before Mindscope ids. Text that holds no id
    raises :class:`ecephys.errors.SessionIdError` (a ``ValueError``).
    """

    _parts: _Parts

    def __new__(cls, value: object) -> SessionId:
        if isinstance(value, SessionId):
            return value
        parts = _parse(value)
        self = super().__new__(cls, parts.normal)
        self._parts = parts
        return self

    @property
    def subject(self) -> str | None:
        """The subject (mouse) id, e.g. ``"668755"``; None for an Allen id."""
        return self._parts.subject

    @property
    def date(self) -> datetime.date | None:
        """The recording date; None for an Allen id."""
        return self._parts.date

    @property
    def idx(self) -> int:
        """The session's index on its date for its subject (0: the first, or the only one)."""
        return self._parts.idx

    @property
    def ecephys_session_id(self) -> int | None:
        """The Allen ecephys session id (int), or None for a Mindscope ``<subject>_<date>`` id."""
        return self._parts.number

    def __repr__(self) -> str:
        return f"SessionId({str(self)!r})"

    def _other_key(self, other: object) -> tuple | None:
        if not isinstance(other, str | numbers.Integral):
            return None
        try:
            return SessionId(other)._parts.sort_key
        except SessionIdError:
            return None

    def __lt__(self, other: object) -> bool:
        key = self._other_key(other)
        return NotImplemented if key is None else self._parts.sort_key < key

    def __le__(self, other: object) -> bool:
        key = self._other_key(other)
        return NotImplemented if key is None else self._parts.sort_key <= key

    def __gt__(self, other: object) -> bool:
        key = self._other_key(other)
        return NotImplemented if key is None else self._parts.sort_key > key

    def __ge__(self, other: object) -> bool:
        key = self._other_key(other)
        return NotImplemented if key is None else self._parts.sort_key >= key


def _parse(value: object) -> _Parts:
    """The parts of the id in ``value`` (an int, a str, a path); SessionIdError when there is none."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if int(value) >= _MIN_ALLEN_ID:
            return _Parts(None, None, 0, int(value))
        raise SessionIdError(f"{value!r} is not a session id: {_HELP}", text=str(value))
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise SessionIdError(
            f"{value!r} ({type(value).__name__}) is not a session id: {_HELP}", text=repr(value)
        )
    for part in reversed(re.split(r"[/\\]", value.strip())):
        parts = _parse_part(part, value)
        if parts is not None:
            return parts
    raise SessionIdError(f"{value!r} is not a session id: {_HELP}", text=value)


def _parse_part(part: str, text: str) -> _Parts | None:
    """The id in one path part (a folder or file name), or None when it holds none."""
    match = _MINDSCOPE_ID.search(part)
    if match is not None:
        return _Parts(match["subject"], _date(match, text), int(match["idx"] or 0), None)
    match = _ALLEN_ID.fullmatch(part)
    if match is not None:
        return _Parts(None, None, 0, int(match["number"]))
    return None


def _date(match: re.Match[str], text: str) -> datetime.date:
    try:
        return datetime.date(int(match["year"]), int(match["month"]), int(match["day"]))
    except ValueError as err:
        raise SessionIdError(
            f"{text!r} is not a session id: {match.group(0)!r} has no valid date ({err}); {_HELP}",
            text=text,
        ) from err
