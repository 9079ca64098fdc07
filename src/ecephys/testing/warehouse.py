"""An emulator of the Allen warehouse API over a project folder in the AllenSDK cache layout.

The folder holds ``sessions.csv``, ``probes.csv``, ``channels.csv``, ``units.csv`` (any of them
may be missing), ``*_analysis_metrics.csv`` and ``session_<sid>/session_<sid>.nwb`` /
``session_<sid>/probe_<pid>_lfp.nwb``. :class:`WarehouseEmulator` answers
``/api/v2/data/query.json`` (both the ``?criteria=...`` form the AllenSDK sends and ``?q=...``)
with the warehouse's JSON envelope, paging (``rma::options[start_row$eq..][num_rows$eq..]
[order$eq'id']``; 50 rows when no page size is given, as the real server does) and nested rows
(sessions carry ``specimen.donor`` and ``well_known_files``; probes say ``use_lfp_data``;
metric bundles carry their metrics as a JSON string in ``data``, with ``on_screen_rf`` and
``p_value_rf`` swapped as in the real warehouse). Files are served at
``/api/v2/well_known_file_download/<id>``. :class:`WarehouseServer` is a
:class:`~ecephys.testing.servers.FileServer` with the emulator mounted, faults included.

The answers are built so that a client flattening them the AllenSDK's way gets the folder's
CSV files back: values are the CSV's values (NaN → null), columns in the CSV's order.
Extra columns a folder's CSV may hold (counts, ``valid_data``) are passed through as
top-level fields. Only the RMA the AllenSDK and :class:`~ecephys.sources.WarehouseClient`
send is understood: ``[attr$eq v]`` and ``[attr$in v1,v2]`` filters on the model and along
the ``ecephys_unit → ecephys_channel → ecephys_probe → ecephys_session`` associations.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pandas as pd

from ecephys.testing.servers import FileServer, Reply

__all__ = ["RmaFilter", "RmaQuery", "WarehouseEmulator", "WarehouseServer", "WellKnownFile", "parse_rma"]

QUERY_PATH = "/api/v2/data/query.json"
DOWNLOAD_PATH = "/api/v2/well_known_file_download/"
DEFAULT_ROWS = 50  # the real server's page size when num_rows is not given
FIRST_FILE_ID = 1_026_124_469

_TABLES = {
    "EcephysSession": "sessions",
    "EcephysProbe": "probes",
    "EcephysChannel": "channels",
    "EcephysUnit": "units",
}
# (model, association) → (model it leads to, foreign-key column in the first model's table)
_ASSOCIATIONS = {
    ("EcephysUnitMetricBundle", "ecephys_unit"): ("EcephysUnit", "ecephys_unit_id"),
    ("EcephysUnit", "ecephys_channel"): ("EcephysChannel", "ecephys_channel_id"),
    ("EcephysChannel", "ecephys_probe"): ("EcephysProbe", "ecephys_probe_id"),
    ("EcephysProbe", "ecephys_session"): ("EcephysSession", "ecephys_session_id"),
}
# warehouse attribute → CSV column, per model
_ATTRIBUTES = {
    "EcephysSession": {"stimulus_name": "session_type"},
    "EcephysProbe": {"use_lfp_data": "has_lfp_data"},
}


# ---------------------------------------------------------------------- RMA parsing


@dataclass(frozen=True)
class RmaFilter:
    """``[attribute$op values]`` on the model reached through ``path`` (associations)."""

    path: tuple[str, ...]
    attribute: str
    op: str
    values: tuple[str, ...]


@dataclass
class RmaQuery:
    """The parts of an RMA query the emulator uses."""

    model: str
    filters: list[RmaFilter] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    includes: list[str] = field(default_factory=list)


def _split_top(text: str, sep: str = ",") -> list[str]:
    """Split ``text`` at ``sep`` outside brackets, parentheses and quotes."""
    parts, depth, quote, begin = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == "'":
            quote = not quote
        elif quote:
            continue
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[begin:i])
            begin = i + 1
    parts.append(text[begin:])
    return [p.strip() for p in parts if p.strip()]


def _brackets(text: str) -> tuple[list[str], str]:
    """Leading ``[...]`` groups of ``text`` (their insides) and what follows them."""
    groups = []
    while text.startswith("["):
        depth, quote = 0, False
        for i, ch in enumerate(text):
            if ch == "'":
                quote = not quote
            elif quote:
                continue
            elif ch == "[":
                depth += 1
            elif ch == "]":
                depth -= 1
                if depth == 0:
                    groups.append(text[1:i])
                    text = text[i + 1 :].strip()
                    break
        else:
            raise ValueError(f"unbalanced brackets in {text!r}")
    return groups, text


def _parse_filter(path: tuple[str, ...], inside: str) -> RmaFilter:
    """``attr$op value[,value]`` → RmaFilter (quotes and whitespace removed)."""
    match = re.fullmatch(r"\s*([\w.]+)\s*\$(nin|eq|ne|in|lt|gt|le|ge|il|li|ll)\s*(.*)", inside, flags=re.S)
    if match is None:
        raise ValueError(f"cannot read the filter [{inside}]")
    attribute, op, raw = match.groups()
    values = tuple(v.strip().strip("'\"") for v in _split_top(raw.replace("\n", "")))
    return RmaFilter(path, attribute, op.lower(), values)


def _parse_node(text: str, path: tuple[str, ...]) -> list[RmaFilter]:
    """Filters of ``name[f]...(inner)``, where the filters apply to ``path + (name,)``."""
    match = re.match(r"\s*([\w:]+)\s*", text)
    if match is None:
        raise ValueError(f"expected an association name in {text!r}")
    here = (*path, match.group(1))
    groups, rest = _brackets(text[match.end() :].strip())
    filters = [_parse_filter(here, g) for g in groups]
    if rest.startswith("("):
        if not rest.endswith(")"):
            raise ValueError(f"unbalanced parentheses in {text!r}")
        for inner in _split_top(rest[1:-1]):
            filters.extend(_parse_node(inner, here))
    return filters


def parse_rma(text: str) -> RmaQuery:
    """Read ``criteria=model::X[...],rma::criteria,...,rma::include,...,rma::options[...]``."""
    text = text.strip()
    for prefix in ("q=", "criteria="):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    stages = _split_top(text)
    if not stages or not stages[0].startswith("model::"):
        raise ValueError(f"expected the query to start with model::<Name>, got {text[:60]!r}")
    head = re.match(r"model::(\w+)", stages[0])
    assert head is not None
    query = RmaQuery(head.group(1))
    groups, _ = _brackets(stages[0][head.end() :].strip())
    query.filters.extend(_parse_filter((), g) for g in groups)
    mode = "criteria"
    for stage in stages[1:]:
        if stage.startswith("rma::"):
            name = re.match(r"rma::(\w+)", stage)
            assert name is not None
            mode = name.group(1)
            groups, _ = _brackets(stage[name.end() :].strip())
            for g in groups:
                if mode == "options":
                    option = _parse_filter((), g)
                    query.options[option.attribute] = (
                        ",".join(option.values) if option.attribute != "tabular" else g
                    )
                else:
                    query.filters.append(_parse_filter((), g))
        elif mode == "criteria":
            query.filters.extend(_parse_node(stage, ()))
        elif mode == "include":
            query.includes.append(stage)
    if "tabular" in query.options:
        query.options["tabular"] = re.sub(r"^tabular\s*\$eq\s*", "", query.options["tabular"]).strip("'")
    return query


# ---------------------------------------------------------------------- the data


@dataclass(frozen=True)
class WellKnownFile:
    """A downloadable file: its id, kind (EcephysNwb/EcephysLfpNwb), owner and place in the folder."""

    id: int
    kind: str
    attachable_type: str
    attachable_id: int
    relative_path: str

    def row(self) -> dict[str, Any]:
        """The WellKnownFile row the warehouse answers."""
        return {
            "attachable_id": self.attachable_id,
            "attachable_type": self.attachable_type,
            "download_link": f"{DOWNLOAD_PATH}{self.id}",
            "id": self.id,
            "path": f"/emulated/warehouse/{self.relative_path}",
            "well_known_file_type": {"id": 1 if self.kind == "EcephysNwb" else 2, "name": self.kind},
            "well_known_file_type_id": 1 if self.kind == "EcephysNwb" else 2,
        }


def _json_value(value: Any) -> Any:
    """A CSV cell as a JSON value: NaN → None, numpy scalars → Python."""
    if value is None:
        return None
    if isinstance(value, float | np.floating) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a CSV table as dicts in column order, with JSON values."""
    columns = list(frame.columns)
    return [
        {c: _json_value(v) for c, v in zip(columns, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]


class WarehouseEmulator:
    """Answers RMA queries from the CSV tables of ``folder`` and lists its NWB files."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.tables: dict[str, pd.DataFrame] = {}
        for model, name in _TABLES.items():
            path = self.folder / f"{name}.csv"
            if path.is_file():
                self.tables[model] = pd.read_csv(path)
        self.metrics = self._load_metrics()
        self.files = self._register_files()
        self._by_id: dict[str, dict[Any, dict[str, Any]]] = {
            model: {row["id"]: row for row in _records(frame)} for model, frame in self.tables.items()
        }

    # ------------------------------------------------------------------ loading

    def _load_metrics(self) -> pd.DataFrame | None:
        """All analysis-metrics CSVs of the folder, one row per unit, with the file's session type."""
        frames = []
        for path in sorted(self.folder.glob("*_analysis_metrics.csv")):
            frame = pd.read_csv(path)
            frame["__source_type"] = path.name[: -len("_analysis_metrics.csv")]
            frames.append(frame)
        for path in sorted(self.folder.glob("session_*/session_*_analysis_metrics.csv")):
            frame = pd.read_csv(path)
            frame["__source_type"] = None
            frames.append(frame)
        if not frames:
            return None
        merged = pd.concat(frames, ignore_index=True)
        return merged.drop_duplicates("ecephys_unit_id").sort_values("ecephys_unit_id", kind="stable")

    def _register_files(self) -> dict[int, WellKnownFile]:
        """Well-known files: what the tables promise (has_nwb, has_lfp_data) and what is on disk."""
        found: dict[tuple[str, int], str] = {}
        sessions = self.tables.get("EcephysSession")
        if sessions is not None and "has_nwb" in sessions.columns:
            for sid in sessions.loc[sessions["has_nwb"].astype(bool), "id"]:
                found[("EcephysNwb", int(sid))] = f"session_{sid}/session_{sid}.nwb"
        probes = self.tables.get("EcephysProbe")
        if probes is not None and "has_lfp_data" in probes.columns:
            for pid, sid in probes.loc[
                probes["has_lfp_data"].astype(bool), ["id", "ecephys_session_id"]
            ].itertuples(index=False):
                found[("EcephysLfpNwb", int(pid))] = f"session_{sid}/probe_{pid}_lfp.nwb"
        for path in self.folder.glob("session_*/session_*.nwb"):
            found.setdefault(
                ("EcephysNwb", int(path.stem.split("_")[1])), path.relative_to(self.folder).as_posix()
            )
        for path in self.folder.glob("session_*/probe_*_lfp.nwb"):
            found.setdefault(
                ("EcephysLfpNwb", int(path.stem.split("_")[1])), path.relative_to(self.folder).as_posix()
            )
        files = {}
        for offset, ((kind, owner), rel) in enumerate(sorted(found.items())):
            attachable = "EcephysSession" if kind == "EcephysNwb" else "EcephysProbe"
            files[FIRST_FILE_ID + offset] = WellKnownFile(
                FIRST_FILE_ID + offset, kind, attachable, owner, rel
            )
        return files

    # ------------------------------------------------------------------ answering

    def answer(self, raw_query: str) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON envelope) for the raw query string of a query.json request."""
        try:
            query = parse_rma(unquote(raw_query))
            rows = self._rows(query)
        except (ValueError, KeyError) as exc:
            return 200, {
                "success": False,
                "id": -1,
                "start_row": 0,
                "num_rows": 0,
                "total_rows": 0,
                "msg": str(exc),
            }
        rows = self._order(rows, query.options.get("order"))
        start = int(query.options.get("start_row", 0))
        count = int(query.options.get("num_rows", DEFAULT_ROWS))
        page = rows[start : start + count] if count >= 0 else rows[start:]
        return 200, {
            "success": True,
            "id": 0,
            "start_row": start,
            "num_rows": len(page),
            "total_rows": len(rows),
            "msg": page,
        }

    @staticmethod
    def _order(rows: list[dict[str, Any]], order: str | None) -> list[dict[str, Any]]:
        """Rows sorted by the ``order`` option's column (stable), or as they are."""
        if not order:
            return rows
        key = order.strip("'").split(" ")[0].split(".")[-1]
        return sorted(rows, key=lambda r: (r.get(key) is None, r.get(key) if r.get(key) is not None else 0))

    def _rows(self, query: RmaQuery) -> list[dict[str, Any]]:
        """The matching rows of a model, shaped as the warehouse shapes them."""
        model = query.model
        if model == "WellKnownFile":
            return self._file_rows(query.filters)
        if model == "EcephysUnitMetricBundle":
            return self._metric_rows(query.filters)
        if model not in _TABLES:
            raise ValueError(f"the emulator does not know the model {model}")
        if model not in self.tables:
            raise ValueError(f"the emulated project has no {_TABLES[model]}.csv for model {model}")
        records = [r for r in _records(self.tables[model]) if self._matches(model, r, query.filters)]
        if model == "EcephysSession":
            return [self._session_row(r) for r in records]
        if model == "EcephysProbe":
            return [
                {_rename_key(k, "has_lfp_data", "use_lfp_data"): v for k, v in r.items()} for r in records
            ]
        if model == "EcephysChannel" and "tabular" in query.options:
            return [_tabular(r, query.options["tabular"]) for r in records]
        return records

    def _matches(self, model: str, row: dict[str, Any], filters: list[RmaFilter]) -> bool:
        """Whether ``row`` of ``model`` passes every filter (following associations)."""
        return all(self._passes(model, row, f) for f in filters)

    def _passes(self, model: str, row: dict[str, Any] | None, rule: RmaFilter) -> bool:
        """Follow ``rule.path`` from ``row`` and test the attribute."""
        for association in rule.path:
            if row is None:
                return False
            target, foreign_key = _ASSOCIATIONS.get((model, association), (None, None))
            if target is None:
                raise ValueError(f"the emulator cannot follow {model}.{association}")
            if target not in self.tables:
                raise ValueError(f"the emulated project has no {_TABLES[target]}.csv to follow {association}")
            row = self._by_id[target].get(row.get(foreign_key))
            model = target
        if row is None:
            return False
        column = _ATTRIBUTES.get(model, {}).get(rule.attribute, rule.attribute)
        if column not in row:
            if rule.attribute == "fail_eye_tracking":
                value: Any = False
            else:
                raise ValueError(f"{model} has no attribute {rule.attribute}")
        else:
            value = row[column]
        return _compare(value, rule)

    def _session_row(self, record: dict[str, Any]) -> dict[str, Any]:
        """A sessions.csv row nested as the warehouse sends it (specimen.donor, well_known_files)."""
        out: dict[str, Any] = {}
        donor_keys = ("age_in_days", "sex", "genotype")
        for column, value in record.items():
            if column in donor_keys:
                out.setdefault("specimen", _specimen(record))
            elif column == "has_nwb":
                out["well_known_files"] = self._session_files(record["id"], bool(value))
            elif column == "session_type":
                out["stimulus_name"] = value
            else:
                out[column] = value
        out.setdefault("specimen", _specimen(record))
        out.setdefault("well_known_files", self._session_files(record["id"], None))
        out.setdefault("fail_eye_tracking", False)
        return out

    def _session_files(self, session_id: int, has_nwb: bool | None) -> list[dict[str, Any]]:
        """The session's well-known files (its NWB file when it has one)."""
        if has_nwb is False:
            return []
        return [
            f.row() for f in self.files.values() if f.kind == "EcephysNwb" and f.attachable_id == session_id
        ]

    def _file_rows(self, filters: list[RmaFilter]) -> list[dict[str, Any]]:
        """WellKnownFile rows matching name / attachable_type / attachable_id filters."""
        rows = []
        for wkf in self.files.values():
            fields = {
                "name": wkf.kind,
                "attachable_type": wkf.attachable_type,
                "attachable_id": wkf.attachable_id,
            }
            fields["id"] = wkf.id
            if all(_compare(fields.get(f.attribute), f) for f in filters):
                rows.append(wkf.row())
        return rows

    def _metric_rows(self, filters: list[RmaFilter]) -> list[dict[str, Any]]:
        """EcephysUnitMetricBundle rows: ``{id, ecephys_unit_id, data: json}`` of matching units."""
        if self.metrics is None:
            raise ValueError("the emulated project has no *_analysis_metrics.csv")
        rows = []
        for number, record in enumerate(_records(self.metrics)):
            source_type = record.pop("__source_type")
            if not all(self._metric_passes(record, source_type, f) for f in filters):
                continue
            unit_id = record.pop("ecephys_unit_id")
            data = _swap_rf(record)
            rows.append({"data": json.dumps(data), "ecephys_unit_id": unit_id, "id": number + 1})
        return rows

    def _metric_passes(self, record: dict[str, Any], source_type: str | None, rule: RmaFilter) -> bool:
        """A metric filter, through units.csv when it exists, else the file's session type."""
        if not rule.path:
            return _compare(record.get(rule.attribute), rule)
        if "EcephysUnit" in self.tables and all(t in self.tables for t in _TABLES):
            unit = self._by_id["EcephysUnit"].get(record["ecephys_unit_id"])
            return self._passes(
                "EcephysUnit", unit, RmaFilter(rule.path[1:], rule.attribute, rule.op, rule.values)
            )
        if rule.attribute == "stimulus_name" and source_type is not None:
            return _compare(source_type, rule)
        raise ValueError(
            "the emulated project lacks the unit, channel, probe and session tables for this filter"
        )


def _specimen(record: dict[str, Any]) -> dict[str, Any]:
    """The nested specimen/donor object of a session row."""
    age = record.get("age_in_days")
    genotype = record.get("genotype")
    return {
        "id": record.get("specimen_id"),
        "donor": {
            "age": {"days": age, "name": None if age is None else f"P{int(age)}"},
            "full_genotype": None if genotype == "wt" else genotype,
            "sex": record.get("sex"),
        },
    }


def _rename_key(key: str, old: str, new: str) -> str:
    """``new`` for ``old``, else the key."""
    return new if key == old else key


def _tabular(record: dict[str, Any], spec: str) -> dict[str, Any]:
    """A channel row with the tabular option's columns (aliases kept) first, then the rest."""
    out: dict[str, Any] = {}
    for item in spec.split(","):
        name = item.strip()
        alias = re.split(r"\s+as\s+", name)[-1].split(".")[-1]
        out[alias] = record.get(alias)
    out.update({k: v for k, v in record.items() if k not in out})
    return out


def _swap_rf(data: dict[str, Any]) -> dict[str, Any]:
    """Swap on_screen_rf and p_value_rf, as the real warehouse holds them."""
    if "on_screen_rf" in data and "p_value_rf" in data:
        data = dict(data)
        data["on_screen_rf"], data["p_value_rf"] = data["p_value_rf"], data["on_screen_rf"]
    return data


def _normal(value: Any) -> str:
    """A value as comparable text: booleans lower-case, integral floats as integers."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _compare(value: Any, rule: RmaFilter) -> bool:
    """Test ``value`` against an ``$eq``/``$in`` rule."""
    wanted = {_normal(v) for v in rule.values}
    if rule.op in ("eq", "in"):
        return _normal(value) in wanted
    if rule.op == "ne":
        return _normal(value) not in wanted
    raise ValueError(f"the emulator does not know the RMA operator ${rule.op}")


# ---------------------------------------------------------------------- the server


class WarehouseServer(FileServer):
    """A :class:`FileServer` that emulates the warehouse API over ``folder`` (on 127.0.0.1)."""

    def __init__(self, folder: str | Path, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.emulator = WarehouseEmulator(folder)
        self.add_route(QUERY_PATH, self._query)
        for wkf in self.emulator.files.values():
            self.add_file(
                f"{DOWNLOAD_PATH}{wkf.id}",
                self.emulator.folder / wkf.relative_path,
                content_type="application/x-hdf5",
                filename=Path(wkf.relative_path).name,
            )

    def _query(self, path: str, raw_query: str) -> Reply:
        """Answer one query.json request."""
        status, envelope = self.emulator.answer(raw_query)
        return Reply(status, json.dumps(envelope).encode())

    def file_id(self, kind: str, owner_id: int) -> int:
        """The well-known file id of a session's NWB (``EcephysNwb``) or a probe's LFP file."""
        for wkf in self.emulator.files.values():
            if wkf.kind == kind and wkf.attachable_id == owner_id:
                return wkf.id
        raise KeyError(f"no {kind} file for {owner_id} in {self.emulator.folder}")

    def download_path(self, kind: str, owner_id: int) -> str:
        """The server path a file is downloaded from."""
        return f"{DOWNLOAD_PATH}{self.file_id(kind, owner_id)}"
