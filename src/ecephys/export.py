"""Export a session for people who do not use Python: Parquet, MATLAB .mat, or JSON files.

:func:`export_session` writes every table of a session (units, trials, epochs, stimulus
tables, …) and its spike trains (seconds). The output is built in a hidden folder beside
the target and renamed into place at the end, so a failure never leaves half-written files.
The file layout and how to load it in MATLAB and pandas are in ``docs/export.md``.
"""

from __future__ import annotations

import datetime
import functools
import importlib
import json
import os
import re
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from ecephys.errors import (
    EcephysWarning,
    ExportError,
    MissingDataError,
    MissingDependency,
    OutputExistsError,
    SessionIdError,
)
from ecephys.session_id import SessionId

__all__ = ["FORMATS", "SPIKE_TIMES", "Exportable", "SpikeTrains", "export_session", "spike_time_table"]

FORMATS = ("parquet", "mat", "json")
#: The name of the spike trains among the exported tables (``tables=[..., "spike_times"]``).
SPIKE_TIMES = "spike_times"
#: Tables exported from a session without ``export_tables()`` (the Allen EcephysSession).
ALLEN_TABLES = (
    "units",
    "channels",
    "probes",
    "stimulus_presentations",
    "stimulus_conditions",
    "invalid_times",
    "running_speed",
    "optogenetic_stimulation_epochs",
)
_EXACT_UNITS = {
    "duration": "s",
    "velocity": "cm/s",
    "sampling_rate": "Hz",
    "lfp_sampling_rate": "Hz",
    "firing_rate": "spikes/s",
    "timestamps": "s",
}
_MATLAB_NAME_LENGTH = 63


@dataclass(frozen=True)
class SpikeTrains:
    """Every unit's spike times (s) as one long table, sorted by unit id then time."""

    unit_ids: np.ndarray  # (n_units,) int64, ascending
    counts: np.ndarray  # (n_units,) spikes per unit
    unit_id: np.ndarray  # (n_spikes,) int64, the unit of each spike
    spike_time: np.ndarray  # (n_spikes,) float64 s

    def per_unit(self) -> list[np.ndarray]:
        """One array of spike times (s) per unit, in ``unit_ids`` order."""
        return np.split(self.spike_time, np.cumsum(self.counts)[:-1]) if len(self.counts) else []


def export_session(
    session: Any,
    folder: str | os.PathLike,
    format: str = "parquet",
    *,
    tables: Sequence[str] | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write a session's tables and spike trains (s) under ``folder``; returns the files written.

    ``format``: ``"parquet"`` (a folder ``<folder>/<session_id>/`` of ``<table>.parquet``,
    ``spike_times.parquet`` and ``session.json``), ``"json"`` (the same with ``.json`` files)
    or ``"mat"`` (one file ``<folder>/<session_id>.mat``). ``tables`` picks tables by name
    (default: all; the spike trains are the table ``"spike_times"``). Existing output raises
    :class:`~ecephys.errors.OutputExistsError` unless ``overwrite=True``. Needs the ``export``
    extra (pyarrow for Parquet, scipy for MAT).
    """
    if format not in FORMATS:
        raise ExportError(f"export format {format!r} is not one of {list(FORMATS)}; pick one of them.")
    _writer_module(format)
    name = _session_name(session)
    folder = Path(folder)
    target = folder / (f"{name}.mat" if format == "mat" else name)
    if _exists(target) and not overwrite:
        raise OutputExistsError(
            f"session {name}: {target} already exists; pass overwrite=True (--overwrite) to replace "
            "it, or export to another folder.",
            path=target,
        )
    chosen = _chosen_tables(session, name, tables)
    with _staging_folder(folder, target.name) as staging:
        written = _WRITERS[format](staging, name, chosen, session)
        if format == "mat":
            _publish(staging / target.name, target, overwrite)
            return [target]
        _publish(staging, target, overwrite)
    return [target / path.name for path in written]


class Exportable:
    """Gives a session class ``export()``: its tables and spike trains as Parquet, MAT or JSON."""

    def export(
        self,
        folder: str | os.PathLike,
        format: str = "parquet",
        *,
        tables: Sequence[str] | None = None,
        overwrite: bool = False,
    ) -> list[Path]:
        """Write this session's tables and spike trains (s) under ``folder``; see :func:`export_session`."""
        return export_session(self, folder, format, tables=tables, overwrite=overwrite)


# -- what to export ------------------------------------------------------------------------------
def _session_name(session: Any) -> str:
    """The session's id in normal form when it is one, else its id made safe as a file name."""
    raw = getattr(session, "session_id", None)
    if raw is None:
        raw = getattr(session, "ecephys_session_id", None)
    if raw is None or not str(raw).strip():
        raise ExportError(f"{session!r} has no session_id; ecephys names the export after it.")
    try:
        return str(SessionId(raw))
    except SessionIdError:
        return re.sub(r"[^0-9A-Za-z._-]+", "_", str(raw)).strip("._") or "session"


def _table_loaders(session: Any) -> dict[str, Callable[[], Any]]:
    """Table name → a function reading it: ``export_tables()``, else the Allen session's tables."""
    if hasattr(session, "export_tables"):
        found = session.export_tables()
        return {str(k): (lambda table=table: table) for k, table in found.items() if k != SPIKE_TIMES}
    return {
        name: (lambda name=name: getattr(session, name)) for name in ALLEN_TABLES if hasattr(session, name)
    }


def _chosen_tables(session: Any, name: str, tables: Sequence[str] | None) -> dict[str, pd.DataFrame | None]:
    """The tables to write (name → DataFrame); ``spike_times`` maps to None (written apart)."""
    loaders = _table_loaders(session)
    available = [*loaders, SPIKE_TIMES]
    wanted = available if tables is None else list(dict.fromkeys(tables))
    unknown = [t for t in wanted if t not in available]
    if unknown:
        raise MissingDataError(
            f"session {name} has no table {', '.join(map(repr, unknown))}; its tables are {available}"
        )
    chosen: dict[str, pd.DataFrame | None] = {}
    for table in wanted:
        if table == SPIKE_TIMES:
            if tables is not None or _has_spike_times(session):
                chosen[table] = None
            continue
        try:
            chosen[table] = _as_frame(loaders[table](), table, name)
        except MissingDataError:
            if tables is not None:
                raise  # asked for by name: say the file lacks it
    return chosen


def _as_frame(value: Any, table: str, name: str) -> pd.DataFrame:
    if isinstance(value, pd.Series):
        return value.to_frame()
    if isinstance(value, pd.DataFrame):
        return value
    raise ExportError(f"session {name}: table {table!r} is a {type(value).__name__}, not a DataFrame.")


def _spike_times(session: Any) -> Any:
    """``session.spike_times`` (unit id → s); the invalid-intervals warning is for analyses, and
    ``invalid_times`` is exported beside the spikes, so it is not repeated here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EcephysWarning)
        return session.spike_times


def _has_spike_times(session: Any) -> bool:
    try:
        _spike_times(session)
    except MissingDataError:
        return False
    return True


def spike_time_table(session: Any) -> SpikeTrains:
    """The session's spike trains as one long table sorted by unit id then time, vectorised.

    Built from ``session.spike_times.bounds()`` (the flat spike-time dataset and each unit's
    ``[start, stop)`` in it); units without spikes have count 0. Times already sorted within
    each unit (the usual case) are not sorted again.
    """
    spike_times = _spike_times(session)
    flat, bounds = spike_times.bounds()
    by_unit = np.argsort(np.asarray(spike_times.unit_ids, dtype=np.int64), kind="stable")
    unit_ids = np.asarray(spike_times.unit_ids, dtype=np.int64)[by_unit]
    starts, counts = bounds[by_unit, 0], (bounds[by_unit, 1] - bounds[by_unit, 0]).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    index = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1])
    unit_id = np.repeat(unit_ids, counts)
    spike_time = np.asarray(np.asarray(flat)[index], dtype=np.float64)
    falls = np.diff(spike_time) < 0
    falls[offsets[1:-1][(offsets[1:-1] > 0) & (offsets[1:-1] < len(spike_time))] - 1] = False
    if falls.any():
        order = np.lexsort((spike_time, unit_id))
        unit_id, spike_time = unit_id[order], spike_time[order]
    return SpikeTrains(unit_ids, counts, unit_id, spike_time)


# -- atomic output ---------------------------------------------------------------------------------
def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


@contextmanager
def _staging_folder(folder: Path, target_name: str) -> Iterator[Path]:
    """A hidden folder beside the target to write into; removed afterwards whatever happens."""
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target_name}.", suffix=".partial", dir=folder))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(staged: Path, target: Path, overwrite: bool) -> None:
    """Rename ``staged`` to ``target``; an existing target (``overwrite``) is swapped out, then removed."""
    if not _exists(target):
        os.replace(staged, target)
        return
    if not overwrite:
        raise OutputExistsError(f"{target} appeared while exporting; nothing was replaced.", path=target)
    old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
    os.replace(target, old)
    try:
        os.replace(staged, target)
    except BaseException:
        os.replace(old, target)
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


def _writer_module(format: str) -> ModuleType | None:
    """The library a format needs (pyarrow, scipy.io), or MissingDependency naming the extra."""
    module = {"parquet": "pyarrow.parquet", "mat": "scipy.io"}.get(format)
    if module is None:
        return None
    try:
        return importlib.import_module(module)
    except ImportError as err:
        package = module.split(".")[0]
        raise MissingDependency(
            f"exporting to {format} needs {package}: pip install 'ecephys[export]' (or pip install {package})"
        ) from err


# -- metadata ----------------------------------------------------------------------------------------
def _column_unit(column: str) -> str | None:
    """The physical unit of a column, where its name says it (times in s, speed in cm/s)."""
    if column in _EXACT_UNITS:
        return _EXACT_UNITS[column]
    if column.endswith(("_time", "_times")) or column in ("time", "spike_time"):
        return "s"
    return None


def _table_metadata(frame: pd.DataFrame, file: str, **extra: Any) -> dict[str, Any]:
    columns = {str(c): {"dtype": str(frame[c].dtype), "unit": _column_unit(str(c))} for c in frame.columns}
    index = [None if n is None else str(n) for n in frame.index.names]
    return {"file": file, "rows": len(frame), "index": index, "columns": columns, **extra}


def _session_metadata(name: str, format: str, session: Any) -> dict[str, Any]:
    from ecephys import __version__

    return {
        "session_id": name,
        "format": format,
        "ecephys_version": __version__,
        "exported_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "session_class": type(session).__name__,
        "tables": {},
    }


def _spikes_metadata(trains: SpikeTrains, file: str) -> dict[str, Any]:
    return {
        "file": file,
        "units": len(trains.unit_ids),
        "spikes": len(trains.spike_time),
        "columns": {
            "unit_id": {"dtype": "int64", "unit": None},
            "spike_time": {"dtype": "float64", "unit": "s"},
        },
    }


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """The index level(s) as the first columns (an unnamed index as ``index``)."""
    return frame.reset_index(names=[n if n is not None else "index" for n in frame.index.names])


def _write_session_json(folder: Path, metadata: dict[str, Any], written: list[Path]) -> list[Path]:
    path = folder / "session.json"
    metadata["files"] = [p.name for p in written] + [path.name]
    path.write_text(json.dumps(metadata, indent=2, default=str) + "\n")
    return [*written, path]


# -- folder formats: Parquet and JSON ------------------------------------------------------------
@dataclass(frozen=True)
class _FolderFormat:
    """How one folder format writes a table (returning extra metadata) and the spike trains."""

    suffix: str
    write_table: Callable[[pd.DataFrame, Path, str], dict[str, Any]]
    write_spikes: Callable[[SpikeTrains, Path], None]


def _write_folder(
    format: str, folder: Path, name: str, chosen: dict[str, pd.DataFrame | None], session: Any
) -> list[Path]:
    """One file per table plus ``session.json`` into ``folder``; returns the files."""
    spec = _FOLDER_FORMATS[format]
    metadata, written = _session_metadata(name, format, session), []
    for table, frame in chosen.items():
        path = folder / f"{table}{spec.suffix}"
        if frame is None:
            trains = spike_time_table(session)
            spec.write_spikes(trains, path)
            metadata["tables"][table] = _spikes_metadata(trains, path.name)
        else:
            extra = spec.write_table(frame, path, f"session {name}, table {table!r}")
            metadata["tables"][table] = _table_metadata(frame, path.name, **extra)
        written.append(path)
    return _write_session_json(folder, metadata, written)


def _parquet_table(frame: pd.DataFrame, path: Path, what: str) -> dict[str, Any]:
    import pyarrow.parquet as pq

    arrow, as_text = _arrow_table(frame, what)
    pq.write_table(arrow, path)
    return {"written_as_text": as_text}


def _parquet_spikes(trains: SpikeTrains, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"unit_id": trains.unit_id, "spike_time": trains.spike_time}), path)


def _arrow_table(frame: pd.DataFrame, what: str) -> tuple[Any, list[str]]:
    """``frame`` (index kept) as an Arrow table; columns mixing types (``"null"`` among numbers) as text."""
    import pyarrow as pa

    frame = frame.rename(columns=str)
    as_text = []
    for column in [c for c in frame.columns if pd.api.types.is_object_dtype(frame[c])]:
        try:
            pa.array(frame[column], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            frame[column] = frame[column].astype("string")
            as_text.append(column)
    try:
        return pa.Table.from_pandas(frame, preserve_index=True), as_text
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError) as err:
        raise ExportError(f"{what}: cannot be written as Parquet ({err}).") from err


# -- MATLAB ----------------------------------------------------------------------------------------------
def _write_mat(folder: Path, name: str, chosen: dict[str, pd.DataFrame | None], session: Any) -> list[Path]:
    import scipy.io

    variables: dict[str, Any] = {}
    info = _session_metadata(name, "mat", session)
    for table, frame in chosen.items():
        if frame is None:
            trains = spike_time_table(session)
            variables["unit_ids"] = trains.unit_ids
            variables[SPIKE_TIMES] = _cell_column(trains.per_unit())
            info["tables"][table] = _spikes_metadata(trains, f"{name}.mat")
            continue
        variable = _unique_name(_matlab_name(table), variables)
        struct, fields = _mat_struct(frame)
        variables[variable] = struct
        info["tables"][table] = _table_metadata(frame, f"{name}.mat", variable=variable, fields=fields)
    variables["export_info"] = {"json": json.dumps(info, default=str)}
    path = folder / f"{name}.mat"
    try:
        scipy.io.savemat(path, variables, do_compression=True, long_field_names=True, oned_as="column")
    except (ValueError, TypeError) as err:
        raise ExportError(f"session {name}: cannot be written as a MAT file ({err}).", path=path) from err
    return [path]


def _matlab_name(text: str) -> str:
    """A valid MATLAB identifier: letters, digits, underscores, starting with a letter, ≤ 63 chars."""
    name = re.sub(r"[^0-9A-Za-z_]", "_", str(text))
    if not name or not name[0].isalpha():
        name = f"x{name}"
    return name[:_MATLAB_NAME_LENGTH]


def _unique_name(name: str, taken: dict[str, Any]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        suffix = f"_{n}"
        candidate = name[: _MATLAB_NAME_LENGTH - len(suffix)] + suffix
    return candidate


def _mat_struct(frame: pd.DataFrame) -> tuple[dict[str, Any], dict[str, str]]:
    """A table as a MATLAB struct of columns (index levels first); and field name → column name."""
    flat = _flat(frame)
    struct: dict[str, Any] = {}
    fields: dict[str, str] = {}
    for position in range(flat.shape[1]):
        column = flat.columns[position]
        field = _unique_name(_matlab_name(column), struct)
        struct[field] = _mat_column(flat.iloc[:, position])
        fields[field] = str(column)
    return struct, fields


def _mat_column(series: pd.Series) -> np.ndarray:
    """One column for MATLAB: numbers and logicals as arrays, text as cellstr, times as ISO text."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) and not series.hasnans:
        return series.to_numpy(dtype=bool)
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        return _cell_column(series.map(_iso_text).tolist())
    if pd.api.types.is_timedelta64_dtype(dtype):
        return series.dt.total_seconds().to_numpy(dtype=np.float64)
    if pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
        if series.hasnans:
            return series.to_numpy(dtype=np.float64, na_value=np.nan)
        return series.to_numpy()
    kind = pd.api.types.infer_dtype(series, skipna=True)
    if kind in ("string", "empty", "categorical"):
        return _cell_column(series.astype(object).where(series.notna(), "").astype(str).tolist())
    if kind in ("floating", "integer", "mixed-integer-float", "decimal"):
        return pd.to_numeric(series).to_numpy(dtype=np.float64)
    return _cell_column(series.map(_mat_cell).tolist())


def _cell_column(values: list[Any]) -> np.ndarray:
    """A MATLAB cell array (n × 1) holding ``values`` as they are."""
    cells = np.empty((len(values), 1), dtype=object)
    for i, value in enumerate(values):
        cells[i, 0] = value
    return cells


def _mat_cell(value: Any) -> Any:
    """One cell of a mixed column: text, a number, a vector or cellstr, [] for missing."""
    if isinstance(value, np.ndarray | list | tuple):
        array = np.asarray(value)
        if array.dtype.kind in "OUS":
            return _cell_column([_mat_cell(v) for v in array.ravel()])
        return array
    if value is None or value is pd.NA or value is pd.NaT:
        return np.zeros((0, 0))
    if isinstance(value, str | bool | int | float | np.generic):
        return value
    if isinstance(value, datetime.date | pd.Timestamp):
        return _iso_text(value)
    return str(value)


def _iso_text(value: Any) -> str:
    return "" if value is None or value is pd.NaT else value.isoformat()


# -- JSON ----------------------------------------------------------------------------------------------
def _json_table(frame: pd.DataFrame, path: Path, what: str) -> dict[str, Any]:
    _dump_json(_json_records(frame), path, what)
    return {}


def _json_spikes(trains: SpikeTrains, path: Path) -> None:
    by_unit = {str(u): t.tolist() for u, t in zip(trains.unit_ids, trains.per_unit(), strict=True)}
    _dump_json(by_unit, path, "spike times")


def _dump_json(value: Any, path: Path, what: str) -> None:
    try:
        text = json.dumps(value, allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as err:
        raise ExportError(f"{what}: cannot be written as JSON ({err}).", path=path) from err
    path.write_text(text + "\n")


def _json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts (index levels first); NaN → None, times → ISO text, arrays → lists."""
    flat = _flat(frame)
    names = [str(c) for c in flat.columns]
    columns = [_json_column(flat.iloc[:, i]) for i in range(flat.shape[1])]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _json_column(series: pd.Series) -> list[Any]:
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        return [None if t is pd.NaT else t.isoformat() for t in series]
    if pd.api.types.is_float_dtype(dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        boxed = values.astype(object)
        boxed[np.isnan(values)] = None
        return boxed.tolist()
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_integer_dtype(dtype):
        return series.astype(object).where(series.notna(), None).tolist()
    return [_json_value(v) for v in series.tolist()]


def _json_value(value: Any) -> Any:
    """A cell as JSON: arrays and lists recursively, NaN and missing as None, numpy scalars as Python."""
    if isinstance(value, np.ndarray | list | tuple):
        return [_json_value(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime.date | datetime.time | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


_FOLDER_FORMATS = {
    "parquet": _FolderFormat(".parquet", _parquet_table, _parquet_spikes),
    "json": _FolderFormat(".json", _json_table, _json_spikes),
}
_WRITERS: dict[str, Callable[[Path, str, dict[str, pd.DataFrame | None], Any], list[Path]]] = {
    "parquet": functools.partial(_write_folder, "parquet"),
    "mat": _write_mat,
    "json": functools.partial(_write_folder, "json"),
}
