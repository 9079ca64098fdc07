"""Many sessions, one at a time: a catalog of NWB files and a generator that opens and frees each.

A catalog is a table with one row per session file: a folder of ``*.nwb`` files (their
session ids, subjects and dates read from the file names), a CSV file with a column of paths
or URLs plus metadata columns, a DataFrame like it, or a list of paths. :func:`get_sessions`
filters the rows first (nothing is opened for rows filtered out), then opens each file with
:func:`ecephys.open_nwb` and closes it when the loop moves on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ecephys.errors import CatalogError, SessionFileNotFound, SessionIdError
from ecephys.session_id import SessionId

if TYPE_CHECKING:
    from ecephys.nwb_session import NWBSession

__all__ = ["PATH_COLUMNS", "get_sessions", "load_catalog"]

#: Columns a CSV catalog may name its files in, tried in this order (case-insensitive).
PATH_COLUMNS = ("path", "nwb_path", "url", "nwb_url", "s3_path", "file")

Source = str | os.PathLike | pd.DataFrame | Iterable[str | os.PathLike]


def load_catalog(source: Source) -> pd.DataFrame:
    """The catalog of ``source`` as a DataFrame: a ``path`` column (local Path or URL) plus metadata.

    A folder gives every ``*.nwb`` file below it (not the ``probe_*_lfp.nwb`` LFP files),
    sorted by session id, with ``session_id``, ``subject_id`` and ``date`` read from the file
    names (None where a name holds no id). A CSV file or DataFrame keeps its columns and
    resolves relative paths against the CSV's folder; a list of paths keeps its order.
    """
    if isinstance(source, pd.DataFrame):
        return _table_catalog(source, Path.cwd(), "the DataFrame")
    if isinstance(source, str | os.PathLike):
        return _path_catalog(source)
    return _paths_table([_as_location(item) for item in source])


def get_sessions(source: Source, /, **filters: Any) -> Iterator[NWBSession]:
    """Open each session of a catalog in turn, closing it when the loop moves on or stops.

    ``source`` is a folder, a CSV catalog, a DataFrame or a list of paths (see
    :func:`load_catalog`). ``filters`` keep the rows whose column equals the value
    (``subject_id="668755"``); a list means any of its values, a callable is a predicate on the
    value. Values match as they are or as text, so ``subject_id=668755`` matches ``"668755"``;
    ``session_id`` values match in any spelling :class:`SessionId` accepts. A filter naming no
    catalog column is checked against an attribute of each opened session
    (``session_start_time=lambda t: t.year == 2023``), after opening it; a name that is neither
    a column nor a session attribute is a :class:`~ecephys.errors.CatalogError` listing the
    columns, raised at once.

    Returns a generator of open sessions (:func:`ecephys.open_nwb`); each is closed when the
    consumer asks for the next one, breaks out of the loop, or the generator is closed or
    garbage-collected. Keep no session past its turn: its file is closed.
    """
    catalog = load_catalog(source)
    session_class, opener = _session_opener()
    by_column = {name: value for name, value in filters.items() if name in catalog.columns}
    by_attribute = {name: value for name, value in filters.items() if name not in catalog.columns}
    _check_attributes(by_attribute, catalog.columns, session_class)
    keep = np.ones(len(catalog), dtype=bool)
    for name, wanted in by_column.items():
        keep &= _matches(catalog[name], wanted, name)
    return _open_each(catalog.loc[keep, "path"].tolist(), opener, by_attribute)


def _session_opener() -> tuple[type, Callable[[Any], Any]]:
    """The session class and the function that opens one (imported when first needed)."""
    from ecephys.nwb_session import NWBSession, open_nwb

    return NWBSession, open_nwb


def _open_each(
    locations: list[Path | str], opener: Callable[[Any], Any], by_attribute: Mapping[str, Any]
) -> Iterator[Any]:
    for location in locations:
        session = opener(location)
        try:
            if all(_matches(pd.Series([getattr(session, k)]), v, k)[0] for k, v in by_attribute.items()):
                yield session
        finally:
            session.close()


def _check_attributes(by_attribute: Mapping[str, Any], columns: pd.Index, session_class: type) -> None:
    unknown = sorted(name for name in by_attribute if not hasattr(session_class, name))
    if unknown:
        raise CatalogError(
            f"get_sessions: no catalog column or {session_class.__name__} attribute named "
            f"{', '.join(map(repr, unknown))}; the catalog's columns are {list(columns)}. "
            "Filter by one of those, or by a session attribute such as session_id."
        )


# -- building catalogs -----------------------------------------------------------------------
def _path_catalog(source: str | os.PathLike) -> pd.DataFrame:
    """The catalog of a folder, a CSV file or one NWB file (path or URL)."""
    text = os.fspath(source)
    if _is_url(text):
        return _paths_table([text])
    path = Path(text)
    if not path.exists():
        raise SessionFileNotFound(
            f"get_sessions: {path} does not exist; give a folder of .nwb files, a CSV catalog "
            "or a list of paths",
            path=path,
        )
    if path.is_dir():
        return _folder_catalog(path)
    if path.suffix.lower() in (".csv", ".tsv"):
        table = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
        return _table_catalog(table, path.parent, str(path))
    return _paths_table([path])


def _folder_catalog(folder: Path) -> pd.DataFrame:
    """Every session NWB file below ``folder`` (not probe LFP files), sorted by session id."""
    files = sorted(p for p in folder.rglob("*.nwb") if not _is_lfp_file(p.name))
    named = sorted(
        ((_session_id_or_none(p), p) for p in files), key=lambda row: (row[0] is None, row[0] or "")
    )
    return _paths_table([path for _, path in named])


def _is_lfp_file(name: str) -> bool:
    lower = name.lower()
    return lower.startswith("probe_") and lower.endswith("_lfp.nwb")


def _paths_table(locations: list[Path | str]) -> pd.DataFrame:
    """A catalog of paths with the session id, subject and date their names hold (or None)."""
    ids = [_session_id_or_none(location) for location in locations]
    return pd.DataFrame(
        {
            "path": pd.Series(locations, dtype=object),
            "session_id": pd.Series(ids, dtype=object),
            "subject_id": pd.Series([None if i is None else i.subject for i in ids], dtype=object),
            "date": pd.Series([None if i is None else i.date for i in ids], dtype=object),
        }
    )


def _table_catalog(table: pd.DataFrame, base: Path, name: str) -> pd.DataFrame:
    """A CSV/DataFrame catalog with its path column as ``path`` (local paths made absolute)."""
    lower = {str(column).lower(): column for column in table.columns}
    found = next((lower[c] for c in PATH_COLUMNS if c in lower), None)
    if found is None:
        raise CatalogError(
            f"{name}: no column of NWB file paths or URLs; expected one of {list(PATH_COLUMNS)}, "
            f"found columns {list(table.columns)}. Add a 'path' column."
        )
    catalog = table.reset_index(drop=True).rename(columns={found: "path"})
    catalog["path"] = pd.Series([_resolve(p, base, name) for p in catalog["path"]], dtype=object)
    return catalog


def _resolve(location: object, base: Path, name: str) -> Path | str:
    if not isinstance(location, str | os.PathLike) or not os.fspath(location).strip():
        raise CatalogError(f"{name}: a row has no file path ({location!r}); fill in its path column.")
    text = os.fspath(location).strip()
    return text if _is_url(text) else base / Path(text).expanduser()


def _as_location(item: str | os.PathLike) -> Path | str:
    text = os.fspath(item)
    return text if _is_url(text) else Path(text)


def _is_url(text: str) -> bool:
    return "://" in text and not text.lower().startswith("file://")


def _session_id_or_none(location: Path | str) -> SessionId | None:
    try:
        return SessionId(location)
    except SessionIdError:
        return None


# -- filters -----------------------------------------------------------------------------------
def _matches(column: pd.Series, wanted: Any, name: str) -> np.ndarray:
    """Which values of ``column`` the filter keeps: equal, any of a list, or a predicate's yes."""
    if callable(wanted):
        return np.fromiter((bool(wanted(v)) for v in column), dtype=bool, count=len(column))
    values = list(wanted) if isinstance(wanted, list | tuple | set | frozenset) else [wanted]
    as_text = _session_text if name == "session_id" else _text
    texts = {as_text(v) for v in values}
    same = column.isin(values).to_numpy(dtype=bool)
    return same | np.fromiter((as_text(v) in texts for v in column), dtype=bool, count=len(column))


def _text(value: object) -> str:
    """``value`` as text for matching: integral floats without ``.0`` (CSV ids with gaps)."""
    if isinstance(value, float | np.floating) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _session_text(value: object) -> str:
    try:
        return str(SessionId(value))
    except SessionIdError:
        return _text(value)
