"""The Allen Brain Map warehouse API (``api.brain-map.org``): project tables and file links.

Tables come from RMA queries (``/api/v2/data/query.json?criteria=...``), fetched page by page
(``rma::options[start_row$eq..][num_rows$eq..][order$eq'id']``) and flattened as the AllenSDK's
``EcephysProjectWarehouseApi`` does. Each table is returned exactly as ``pd.read_csv`` reads
the CSV file the AllenSDK's cache writes from the same answer: same columns, same order,
same dtypes, ``id`` (``ecephys_unit_id`` for metrics) as the first column. Writing it with
``df.to_csv(path, index=False)`` gives a file that an AllenSDK cache folder could hold.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

import pandas as pd

from ecephys.errors import RemoteNotFound, SourceError
from ecephys.sources.http import HTTPSource
from ecephys.sources.retry import RetryPolicy

__all__ = [
    "CHANNEL_TABULAR",
    "TABLE_COLUMNS",
    "WarehouseClient",
    "flatten_session",
    "rma_contains",
    "table_frame",
]

QUERY_PATH = "api/v2/data/query.json"
CHANNEL_TABULAR = (
    "ecephys_channels.id,ecephys_probe_id,local_index,probe_horizontal_position,"
    "probe_vertical_position,anterior_posterior_ccf_coordinate,dorsal_ventral_ccf_coordinate,"
    "left_right_ccf_coordinate,structures.id as ecephys_structure_id,"
    "structures.acronym as ecephys_structure_acronym"
)
_UNIT_FLOATS = [
    *("snr", "firing_rate", "isi_violations", "presence_ratio", "amplitude_cutoff"),
    *("isolation_distance", "l_ratio", "d_prime", "nn_hit_rate", "nn_miss_rate"),
    *("silhouette_score", "max_drift", "cumulative_drift"),
]
_WAVEFORM_FLOATS = [
    *("duration", "halfwidth", "PT_ratio", "repolarization_slope", "recovery_slope"),
    *("amplitude", "spread", "velocity_above", "velocity_below"),
]
# Column → dtype of each table as pd.read_csv reads the real cache files; used for empty answers.
TABLE_COLUMNS: dict[str, dict[str, str]] = {
    "sessions": {
        "id": "int64",
        "date_of_acquisition": "str",
        "isi_experiment_id": "int64",
        "published_at": "str",
        "specimen_id": "int64",
        "session_type": "str",
        "age_in_days": "float64",
        "sex": "str",
        "genotype": "str",
        "has_nwb": "bool",
    },
    "probes": {
        "id": "int64",
        "air_channel_index": "int64",
        "ecephys_session_id": "int64",
        "lfp_sampling_rate": "float64",
        "lfp_temporal_subsampling_factor": "float64",
        "name": "str",
        "phase": "str",
        "sampling_rate": "float64",
        "surface_channel_index": "int64",
        "has_lfp_data": "bool",
    },
    "channels": {
        "id": "int64",
        "ecephys_probe_id": "int64",
        "local_index": "int64",
        "probe_horizontal_position": "int64",
        "probe_vertical_position": "int64",
        "anterior_posterior_ccf_coordinate": "float64",
        "dorsal_ventral_ccf_coordinate": "float64",
        "left_right_ccf_coordinate": "float64",
        "ecephys_structure_id": "float64",
        "ecephys_structure_acronym": "str",
    },
    "units": {
        "id": "int64",
        "ecephys_channel_id": "int64",
        "quality": "str",
        **dict.fromkeys(_UNIT_FLOATS, "float64"),
        "epoch_name_quality_metrics": "str",
        "epoch_name_waveform_metrics": "str",
        **dict.fromkeys(_WAVEFORM_FLOATS, "float64"),
    },
    "analysis_metrics": {"ecephys_unit_id": "int64"},
}


def rma_contains(attribute: str, values: Iterable[object] | None, *, quoted: bool = False) -> str:
    """The RMA filter ``[attribute$in v1,v2]`` (values in single quotes if ``quoted``), or ``""``."""
    if values is None:
        return ""
    if isinstance(values, str | int):
        values = [values]
    items = [f"'{v}'" if quoted else str(int(v)) for v in values]  # type: ignore[call-overload]
    if not items:
        raise ValueError(f"{attribute}: expected at least one value to filter on, got none")
    return f"[{attribute}$in{','.join(items)}]"


def flatten_session(row: dict[str, Any]) -> dict[str, Any]:
    """One nested ``EcephysSession`` row as the AllenSDK's sessions.csv has it.

    ``specimen.donor.age.days`` → ``age_in_days``, ``sex``, ``full_genotype`` → ``genotype``
    (missing → ``"wt"``), ``has_nwb`` from the well-known files (when the answer includes
    them), ``stimulus_name`` → ``session_type``; ``fail_eye_tracking`` is dropped.
    """
    out: dict[str, Any] = {"id": row.get("id")}
    for key, value in row.items():
        if key in ("id", "specimen", "well_known_files", "fail_eye_tracking"):
            continue
        out["session_type" if key == "stimulus_name" else key] = value
    donor = (row.get("specimen") or {}).get("donor") or {}
    out["age_in_days"] = (donor.get("age") or {}).get("days")
    out["sex"] = donor.get("sex")
    genotype = donor.get("full_genotype")
    out["genotype"] = "wt" if genotype is None else genotype
    if "well_known_files" in row:
        out["has_nwb"] = any(
            (wkf.get("well_known_file_type") or {}).get("name") == "EcephysNwb"
            for wkf in row["well_known_files"] or ()
        )
    return out


def table_frame(records: Sequence[dict[str, Any]], table: str, *, first: str = "id") -> pd.DataFrame:
    """Records as ``pd.read_csv`` would read them back from the AllenSDK's CSV file.

    Goes through CSV text on purpose: the dtypes then are exactly those of a cache file (an
    empty factor is NaN in a float column, lists become their text), whichever pandas runs.
    An empty answer gives a typed empty frame with the table's usual columns.
    """
    if not records:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in TABLE_COLUMNS[table].items()})
    frame = pd.DataFrame(list(records))
    if first in frame.columns:
        frame = frame[[first, *(c for c in frame.columns if c != first)]]
    return pd.read_csv(io.StringIO(frame.to_csv(index=False)))


class WarehouseClient:
    """Ask the warehouse for the Visual Coding – Neuropixels tables and file links.

    Parameters
    ----------
    scheme, host
        ``"http"``, ``"api.brain-map.org"`` by default; ``host="127.0.0.1:PORT"`` for the
        emulator in :mod:`ecephys.testing.warehouse`.
    timeout
        Seconds per socket read.
    page_size
        Rows per query page (the AllenSDK uses 5000).
    retry
        Retries of each page on timeouts, resets and 5xx answers.
    """

    def __init__(
        self,
        scheme: str = "http",
        host: str = "api.brain-map.org",
        *,
        timeout: float = 60.0,
        page_size: int = 5000,
        retry: RetryPolicy | None = None,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size={page_size}: expected a positive number of rows")
        self.scheme = scheme
        self.host = host
        self.page_size = page_size
        self.retry = retry or RetryPolicy()
        self.http = HTTPSource(f"{scheme}://{host}/", timeout=timeout)

    def __repr__(self) -> str:
        return f"WarehouseClient({self.scheme!r}, {self.host!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    # ------------------------------------------------------------------ RMA

    def query(self, rma: str) -> list[dict[str, Any]]:
        """All rows of an RMA query (``criteria=model::...``), following the pages."""
        rows: list[dict[str, Any]] = []
        total: int | None = None
        while total is None or len(rows) < total:
            start = len(rows)
            page = self.retry.call(lambda: self._page(rma, start))  # noqa: B023 - called at once
            if total is None:
                total = page["total_rows"]
            if not page["msg"] and len(rows) < total:
                raise SourceError(
                    f"{self._query_url(rma)}: the warehouse said {total} rows but sent an empty "
                    f"page after {len(rows)}; try again later.",
                    url=self._query_url(rma),
                )
            rows.extend(page["msg"])
        return rows

    def _query_url(self, rma: str) -> str:
        """The query URL (without paging options), for messages."""
        return f"{self.http.url(QUERY_PATH)}?{rma}"

    def _page(self, rma: str, start: int) -> dict[str, Any]:
        """One page of an RMA query, checked against the envelope the spec describes."""
        paged = f"{rma},rma::options[start_row$eq{start}][num_rows$eq{self.page_size}][order$eq'id']"
        answer = self.http.get_json(QUERY_PATH, quote(paged, safe="=:,$'()[]*.&"))
        if not isinstance(answer, dict) or "success" not in answer:
            raise SourceError(
                f"{self._query_url(rma)}: expected the warehouse's JSON envelope "
                f"(success, msg, total_rows), got {str(answer)[:120]!r}.",
                url=self._query_url(rma),
            )
        if not answer["success"]:
            raise SourceError(
                f"{self._query_url(rma)}: the warehouse refused the query: {answer.get('msg')!r}.",
                url=self._query_url(rma),
            )
        msg = answer.get("msg")
        if not isinstance(msg, list) or not isinstance(answer.get("total_rows"), int):
            raise SourceError(
                f"{self._query_url(rma)}: expected a list of rows and an integer total_rows, "
                f"got msg of type {type(msg).__name__} and total_rows={answer.get('total_rows')!r}.",
                url=self._query_url(rma),
            )
        return answer

    # ------------------------------------------------------------------ tables

    def sessions(
        self, session_ids: Iterable[int] | None = None, session_types: Iterable[str] | None = None
    ) -> pd.DataFrame:
        """The sessions table (sessions.csv): one row per session, ``id`` first."""
        rma = (
            "criteria=model::EcephysSession"
            + rma_contains("id", session_ids)
            + rma_contains("stimulus_name", session_types, quoted=True)
            + ",rma::include,specimen(donor(age)),well_known_files(well_known_file_type)"
        )
        return table_frame([flatten_session(row) for row in self.query(rma)], "sessions")

    def probes(
        self, probe_ids: Iterable[int] | None = None, session_ids: Iterable[int] | None = None
    ) -> pd.DataFrame:
        """The probes table (probes.csv); ``use_lfp_data`` is renamed ``has_lfp_data``."""
        rma = (
            "criteria=model::EcephysProbe"
            + rma_contains("id", probe_ids)
            + rma_contains("ecephys_session_id", session_ids)
        )
        renamed = {"use_lfp_data": "has_lfp_data"}
        rows = [{renamed.get(k, k): v for k, v in row.items()} for row in self.query(rma)]
        return table_frame(rows, "probes")

    def channels(
        self, channel_ids: Iterable[int] | None = None, probe_ids: Iterable[int] | None = None
    ) -> pd.DataFrame:
        """The channels table (channels.csv) with each channel's structure id and acronym."""
        rma = (
            "criteria=model::EcephysChannel"
            + rma_contains("id", channel_ids)
            + rma_contains("ecephys_probe_id", probe_ids)
            + f",rma::include,structure,rma::options[tabular$eq'{CHANNEL_TABULAR}']"
        )
        return table_frame(self.query(rma), "channels")

    def units(
        self,
        unit_ids: Iterable[int] | None = None,
        channel_ids: Iterable[int] | None = None,
        probe_ids: Iterable[int] | None = None,
        session_ids: Iterable[int] | None = None,
    ) -> pd.DataFrame:
        """The units table (units.csv), unfiltered (99,180 rows for the whole project)."""
        rma = "criteria=model::EcephysUnit"
        if unit_ids is not None:
            rma += ",rma::criteria" + rma_contains("id", unit_ids)
        if channel_ids is not None:
            rma += ",rma::criteria" + rma_contains("ecephys_channel_id", channel_ids)
        if probe_ids is not None:
            rma += ",rma::criteria,ecephys_channel(ecephys_probe" + rma_contains("id", probe_ids) + ")"
        if session_ids is not None:
            rma += (
                ",rma::criteria,ecephys_channel(ecephys_probe(ecephys_session"
                + rma_contains("id", session_ids)
                + "))"
            )
        return table_frame(self.query(rma), "units")

    def analysis_metrics(
        self, session_type: str | None = None, session_ids: Iterable[int] | None = None
    ) -> pd.DataFrame:
        """Unit analysis metrics, ``ecephys_unit_id`` first, one column per key of ``data``.

        ``session_type`` ("brain_observatory_1.1" or "functional_connectivity") and
        ``session_ids`` narrow the units. The warehouse holds ``on_screen_rf`` and
        ``p_value_rf`` swapped; they are swapped back (as the AllenSDK does) when
        ``on_screen_rf`` holds numbers and ``p_value_rf`` booleans.
        """
        rma = "criteria=model::EcephysUnitMetricBundle"
        if session_ids is not None:
            rma += (
                ",rma::criteria,ecephys_unit(ecephys_channel(ecephys_probe(ecephys_session"
                + rma_contains("id", session_ids)
                + ")))"
            )
        if session_type is not None:
            rma += (
                ",rma::criteria,ecephys_unit(ecephys_channel(ecephys_probe(ecephys_session"
                + rma_contains("stimulus_name", [session_type], quoted=True)
                + ")))"
            )
        records = [_metric_record(row) for row in self.query(rma)]
        frame = table_frame(records, "analysis_metrics", first="ecephys_unit_id")
        return _unswap_rf_columns(frame)

    # ------------------------------------------------------------------ files

    def session_file_url(self, session_id: int) -> str:
        """The download URL of a session's NWB file; RemoteNotFound if the warehouse lists none."""
        return self._file_url("EcephysNwb", "EcephysSession", session_id, f"session {session_id}")

    def lfp_file_url(self, probe_id: int) -> str:
        """The download URL of a probe's LFP NWB file; RemoteNotFound for a probe without LFP."""
        return self._file_url("EcephysLfpNwb", "EcephysProbe", probe_id, f"probe {probe_id}")

    def _file_url(self, kind: str, attachable: str, owner_id: int, what: str) -> str:
        """The download URL of the single well-known file of ``kind`` attached to ``owner_id``."""
        rma = (
            "criteria=model::WellKnownFile,rma::criteria,"
            f"well_known_file_type[name$eq'{kind}'][attachable_type$eq'{attachable}']"
            f"[attachable_id$eq{int(owner_id)}]"
        )
        rows = self.query(rma)
        if not rows:
            raise RemoteNotFound(_no_file_message(kind, what), url=self._query_url(rma))
        if len(rows) > 1:
            ids = sorted(r.get("id") for r in rows)
            raise SourceError(
                f"{what}: expected one {kind} file in the warehouse, found {len(rows)} (ids {ids}); "
                "report this to the Allen Institute and pass the download URL yourself.",
                url=self._query_url(rma),
            )
        return self.http.url(str(rows[0]["download_link"]))


def _no_file_message(kind: str, what: str) -> str:
    """Why a well-known file is missing, and what to do."""
    if kind == "EcephysLfpNwb":
        return (
            f"{what}: the warehouse has no LFP file for this probe — some probes were recorded "
            "without LFP (has_lfp_data is False in probes.csv; see AllenSDK issue 2260). "
            "Choose a probe with has_lfp_data True."
        )
    return (
        f"{what}: the warehouse lists no {kind} file; check the id against the sessions table "
        "(has_nwb column)."
    )


def _metric_record(row: dict[str, Any]) -> dict[str, Any]:
    """A metric-bundle row with its JSON ``data`` spread into columns and ``id`` dropped."""
    record = {k: v for k, v in row.items() if k not in ("data", "id")}
    data = row.get("data")
    if isinstance(data, str):
        data = json.loads(data)
    record.update(data or {})
    return record


def _unswap_rf_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Swap ``on_screen_rf`` and ``p_value_rf`` back when their types show they are swapped."""
    if frame.empty or not {"on_screen_rf", "p_value_rf"} <= set(frame.columns):
        return frame
    p_is_bool = pd.api.types.is_bool_dtype(frame["p_value_rf"])
    on_screen_is_float = pd.api.types.is_float_dtype(frame["on_screen_rf"])
    if not (p_is_bool and on_screen_is_float):
        return frame
    order = list(frame.columns)
    return frame.rename(columns={"on_screen_rf": "p_value_rf", "p_value_rf": "on_screen_rf"})[order]
