"""EcephysProjectCache: the Visual Coding – Neuropixels project tables and sessions of a cache folder.

The folder is an AllenSDK project cache (``manifest.json``, ``sessions.csv``, ``probes.csv``,
``channels.csv``, ``units.csv``, ``session_<sid>/...``; see :mod:`ecephys.cache.manifest`).
A folder the AllenSDK filled works as it is: a table whose CSV is there is read and nothing is
fetched. A missing table or file comes from the cache's :class:`TableFetcher` when it has one
(written beside its target as ``<name>.part``, then renamed); without one, a missing file is a
:class:`~ecephys.errors.CacheFileNotFound` that says where to get it.

The tables have the AllenSDK 2.16.2's columns, dtypes, index names, values and row order
(it runs on pandas 1.5.3, whose inner merges group rows by join key in order of first
appearance; ecephys reproduces that order). Deliberate differences (docs/differences.md):

* a threshold of ``None``/±inf applies no comparison, so units with a NaN metric are kept;
* a session or probe without channels gets an empty ``ecephys_structure_acronyms`` array
  (the AllenSDK puts the integer ``0`` there);
* when ``channels.csv`` or ``units.csv`` cannot be had (not in the folder, no fetcher), the
  counts that need them are ``<NA>`` (``Int64``) and ``ecephys_structure_acronyms`` is NaN,
  instead of an error: the session and probe tables work from ``sessions.csv`` and
  ``probes.csv`` alone;
* unknown unit filter arguments raise TypeError (the AllenSDK ignores them).
"""

from __future__ import annotations

import ast
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from ecephys import config
from ecephys.cache.manifest import (
    MANIFEST_NAME,
    CacheLayout,
    CacheManifest,
    write_atomically,
)
from ecephys.cache.verify import check_file
from ecephys.errors import (
    CacheFileNotFound,
    MissingDataError,
    TruncatedFileError,
    UnknownProbeError,
    UnknownSessionError,
)
from ecephys.nwb.allen import AllenSessionFile
from ecephys.session import EcephysSession, stream_session
from ecephys.units import METRIC_RENAMES, UnitFilters

__all__ = ["BUCKET_URL", "EcephysProjectCache", "ProjectCache", "TableFetcher", "read_table_csv"]

logger = logging.getLogger(__name__)

#: Where the public bucket serves the cache folder's files over HTTPS (key appended).
BUCKET_URL = (
    "https://allen-brain-observatory.s3.us-west-2.amazonaws.com/visual-coding-neuropixels/ecephys-cache/"
)

TABLE_NAMES = ("sessions", "probes", "channels", "units")

#: Structure columns of ``channels.csv`` the cache passes into a session (``session.channels``).
EXTERNAL_CHANNEL_COLUMNS = (
    "ecephys_structure_id",
    "ecephys_structure_acronym",
    "anterior_posterior_ccf_coordinate",
    "dorsal_ventral_ccf_coordinate",
    "left_right_ccf_coordinate",
)


@runtime_checkable
class TableFetcher(Protocol):
    """Where a cache gets what its folder lacks (the download layer implements it).

    A fetcher may also offer ``url(key) -> str``, used by
    :meth:`EcephysProjectCache.download_links`.
    """

    def get_table(self, name: str) -> pd.DataFrame:
        """The raw project table ``name`` (sessions, probes, channels or units).

        Exactly the columns of the AllenSDK cache folder's ``<name>.csv``, indexed by ``id``
        (or with an ``id`` column).
        """
        ...

    def fetch_file(self, key: str, target: Path) -> Path:
        """Download ``key`` (a path relative to the cache folder) to ``target``; return the path.

        Implementations write ``<target>.part`` and rename it when complete.
        """
        ...


def read_table_csv(path: str | os.PathLike, index_col: str = "id") -> pd.DataFrame:
    """A project CSV as the AllenSDK reads it: indexed by ``index_col``, text as ``object``."""
    frame = pd.read_csv(path, index_col=index_col)
    text = [name for name, dtype in frame.dtypes.items() if isinstance(dtype, pd.StringDtype)]
    if text:
        frame = frame.astype(dict.fromkeys(text, object))
    return frame


class EcephysProjectCache:
    """The project tables and sessions of one AllenSDK-layout cache folder.

    Parameters
    ----------
    manifest
        The folder's ``manifest.json``, or the folder itself (a path not ending in ``.json``).
        Default: ``config.cache_dir() / "visual-coding-neuropixels"``. A folder without a
        manifest gets the standard one when ecephys first writes into it.
    fetcher
        Gets missing tables and files (see :class:`TableFetcher`). Without one, the cache
        uses only what the folder holds.

    Tables are read from the folder once per cache object and copied out, so changing a
    returned frame changes nothing else.
    """

    SUPPRESS_FROM_UNITS = (
        "air_channel_index",
        "surface_channel_index",
        "has_nwb",
        "lfp_temporal_subsampling_factor",
        "epoch_name_quality_metrics",
        "epoch_name_waveform_metrics",
        "isi_experiment_id",
    )
    SUPPRESS_FROM_CHANNELS = (
        "air_channel_index",
        "surface_channel_index",
        "name",
        "date_of_acquisition",
        "published_at",
        "specimen_id",
        "session_type",
        "isi_experiment_id",
        "age_in_days",
        "sex",
        "genotype",
        "has_nwb",
        "lfp_temporal_subsampling_factor",
    )
    #: The AllenSDK's probe list is the channel list but for ``name``.
    SUPPRESS_FROM_PROBES = tuple(c for c in SUPPRESS_FROM_CHANNELS if c != "name")
    SUPPRESS_FROM_SESSION_TABLE = ("has_nwb", "isi_experiment_id", "date_of_acquisition")

    def __init__(
        self, manifest: str | os.PathLike | None = None, *, fetcher: TableFetcher | None = None
    ) -> None:
        location = (
            Path(manifest) if manifest is not None else config.cache_dir() / "visual-coding-neuropixels"
        )
        location = location.expanduser()
        self.manifest_path = location if location.suffix == ".json" else location / MANIFEST_NAME
        manifest_data = (
            CacheManifest.read(self.manifest_path)
            if self.manifest_path.exists()
            else CacheManifest.standard()
        )
        self.layout = CacheLayout(self.manifest_path.parent, manifest_data)
        self.fetcher = fetcher
        self._tables: dict[str, pd.DataFrame] = {}

    @classmethod
    def from_warehouse(
        cls,
        scheme: str | None = None,
        host: str | None = None,
        asynchronous: bool = False,
        manifest: str | os.PathLike | None = None,
        version: str | None = None,
        cache: bool = True,
        fetch_tries: int = 2,
        timeout: float | None = None,
        *,
        progress: bool | None = None,
    ) -> EcephysProjectCache:
        """A cache that fills its folder from the Allen warehouse API (the AllenSDK's signature).

        ``scheme``/``host`` default to ``http``/``api.brain-map.org``; any host that speaks the
        API works. ``timeout`` is per read (seconds), not for a whole file as in the AllenSDK;
        ``fetch_tries`` is how many times a failing transfer is retried. ``asynchronous``,
        ``version`` and ``cache`` are accepted for compatibility and ignored.
        """
        from ecephys.cache.fetchers import WarehouseFetcher
        from ecephys.sources.warehouse import WarehouseClient

        client = WarehouseClient(
            scheme=scheme or "http", host=host or "api.brain-map.org", timeout=timeout or 60.0
        )
        return cls(manifest, fetcher=WarehouseFetcher(client, progress=progress, retries=max(fetch_tries, 1)))

    @classmethod
    def from_s3(
        cls,
        manifest: str | os.PathLike | None = None,
        *,
        bucket: str = "allen-brain-observatory",
        prefix: str = "visual-coding-neuropixels/ecephys-cache/",
        endpoint_url: str | None = None,
        timeout: float = 30.0,
        progress: bool | None = None,
    ) -> EcephysProjectCache:
        """A cache that fills its folder from the public S3 bucket, with unsigned requests.

        ``endpoint_url`` points at another S3 service (a mirror, a local test server).
        """
        from ecephys.cache.fetchers import SourceFetcher
        from ecephys.sources.s3 import S3Source

        source = S3Source(bucket, prefix, endpoint_url=endpoint_url, timeout=timeout)
        return cls(manifest, fetcher=SourceFetcher(source, progress=progress))

    @classmethod
    def fixed(cls, manifest: str | os.PathLike | None = None) -> EcephysProjectCache:
        """A cache that only reads its folder and never fetches (the AllenSDK's ``fixed``)."""
        return cls(manifest)

    @property
    def cache_dir(self) -> Path:
        """The cache folder (the manifest's folder)."""
        return self.layout.root

    def __repr__(self) -> str:
        from ecephys._display import cache_repr

        return cache_repr(self)

    def _repr_html_(self) -> str:
        """Jupyter: folder, source, sessions in the table, session and LFP files cached."""
        from ecephys._display import cache_summary, html_table

        return html_table("EcephysProjectCache", cache_summary(self))

    #: The tables opening a session needs, carried along when the cache is pickled.
    TRAVELLING_TABLES = ("sessions", "probes", "channels")

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the folder's path and layout, the fetcher and the tables read so far that opening a
        session needs (not ``units.csv``): what a Dask worker needs to open sessions."""
        state = self.__dict__.copy()
        state["_tables"] = {k: v for k, v in self._tables.items() if k in self.TRAVELLING_TABLES}
        return state

    # -- files of the folder ---------------------------------------------------------------
    def _missing(self, path: Path, key: str, what: str) -> CacheFileNotFound:
        return CacheFileNotFound(
            f"{what}: {key} is not in the cache folder {self.cache_dir} and this EcephysProjectCache has "
            f"no fetcher to download it. Download {BUCKET_URL}{key} to {path}, or create the cache "
            "with fetcher=... so that it downloads what it lacks.",
            path=path,
            key=key,
        )

    def _ensure_manifest(self) -> None:
        if not self.manifest_path.exists():
            self.layout.manifest.write(self.manifest_path)

    def _local_file(self, path: Path, key: str, what: str) -> Path:
        """``path`` if the folder has it whole, else what the fetcher downloads there.

        A file cut short (as an interrupted AllenSDK download leaves it) is fetched again.
        """
        verdict = check_file(path) if path.exists() else None
        if verdict is not None and verdict.ok:
            return path
        if self.fetcher is None:
            if verdict is not None:
                raise TruncatedFileError(
                    f"{what}: {path} is not whole ({verdict.reason}), probably an interrupted download; "
                    "delete it and download it again, or open the cache with from_warehouse()/from_s3() "
                    "so that it is fetched again for you.",
                    path=path,
                )
            raise self._missing(path, key, what)
        if verdict is not None:
            logger.warning("%s: %s is not whole (%s); fetching it again", what, path, verdict.reason)
        self._ensure_manifest()
        path.parent.mkdir(parents=True, exist_ok=True)
        logger.info("fetching %s into %s", key, path)
        fetched = Path(self.fetcher.fetch_file(key, path))
        if not fetched.exists():
            raise CacheFileNotFound(
                f"{what}: {type(self.fetcher).__name__}.fetch_file({key!r}) returned {fetched}, which "
                "does not exist; the fetcher must return the path it wrote",
                path=fetched,
                key=key,
            )
        return fetched

    def _can_get(self, name: str) -> bool:
        return self.layout.table(name).exists() or self.fetcher is not None

    def _raw_table(self, name: str) -> pd.DataFrame:
        """``<name>.csv`` as stored, fetched and written atomically first if the folder lacks it."""
        if name not in self._tables:
            path = self.layout.table(name)
            if not path.exists():
                if self.fetcher is None:
                    raise self._missing(path, CacheLayout.key(name), f"the {name} table")
                self._store_fetched_table(self.fetcher, name, path)
            self._tables[name] = read_table_csv(path)
        return self._tables[name].copy()

    def _store_fetched_table(self, fetcher: TableFetcher, name: str, path: Path) -> None:
        logger.info("fetching the %s table into %s", name, path)
        frame = fetcher.get_table(name)
        if frame.index.name == "id":
            write_index = True
        elif "id" in frame.columns:
            write_index = False
        else:
            raise ValueError(
                f"{type(fetcher).__name__}.get_table({name!r}) returned a table with neither an 'id' "
                f"index nor an 'id' column (columns {list(frame.columns)[:8]}...)"
            )
        self._ensure_manifest()
        write_atomically(path, lambda part: frame.to_csv(part, index=write_index))

    # -- the tables, shaped as the AllenSDK shapes them ------------------------------------
    def _sessions(self) -> pd.DataFrame:
        sessions = self._raw_table("sessions")
        if "structure_acronyms" in sessions.columns:
            parsed = sessions.pop("structure_acronyms").map(_parse_literal)
            sessions["ecephys_structure_acronyms"] = parsed
        return sessions

    def _probes(self) -> pd.DataFrame:
        probes = self._raw_table("probes")
        if "lfp_sampling_rate" in probes.columns and "lfp_temporal_subsampling_factor" in probes.columns:
            # The table stores the acquisition rate; the LFP files hold every n-th sample.
            probes["lfp_sampling_rate"] = (
                probes["lfp_sampling_rate"] / probes["lfp_temporal_subsampling_factor"]
            )
        return probes

    def _units(self, filters: UnitFilters) -> pd.DataFrame:
        units = self._raw_table("units").rename(columns=METRIC_RENAMES)
        keep = np.ones(len(units), dtype=bool)
        for column, limit, compare in (
            ("amplitude_cutoff", filters.amplitude_cutoff_maximum, np.less_equal),
            ("presence_ratio", filters.presence_ratio_minimum, np.greater_equal),
            ("isi_violations", filters.isi_violations_maximum, np.less_equal),
        ):
            if np.isfinite(limit):  # ±inf: no comparison, so NaN metrics are kept too
                keep &= compare(units[column].to_numpy(dtype=np.float64), limit)
        units = units[keep]
        if filters.filter_by_validity and "quality" in units.columns:
            units = units[units["quality"] == "good"].drop(columns=["quality"])
        if filters.filter_out_of_brain_units and "ecephys_structure_id" in units.columns:
            units = units[units["ecephys_structure_id"].notna()]
        return units

    def _annotated_probes(self) -> pd.DataFrame:
        return _merge_grouped(self._probes(), self._sessions(), "ecephys_session_id", ("_probe", "_session"))

    def _annotated_channels(self, probes: pd.DataFrame | None = None) -> pd.DataFrame:
        probes = self._annotated_probes() if probes is None else probes
        return _merge_grouped(self._raw_table("channels"), probes, "ecephys_probe_id", ("_channel", "_probe"))

    def _annotated_units(self, filters: UnitFilters, channels: pd.DataFrame | None = None) -> pd.DataFrame:
        channels = self._annotated_channels() if channels is None else channels
        return _merge_grouped(self._units(filters), channels, "ecephys_channel_id", ("_unit", "_channel"))

    def _optional_channels_and_units(
        self, filters: UnitFilters, probes: pd.DataFrame
    ) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
        """Annotated channels and units, or None for what the folder lacks and nothing can fetch."""
        if not self._can_get("channels"):
            logger.info(
                "no channels.csv in %s and no fetcher: channel and unit counts are <NA>", self.cache_dir
            )
            return None, None
        channels = self._annotated_channels(probes)
        if not self._can_get("units"):
            logger.info("no units.csv in %s and no fetcher: unit counts are <NA>", self.cache_dir)
            return channels, None
        return channels, self._annotated_units(filters, channels)

    def get_session_table(
        self, suppress: list[str] | None = None, filter_by_validity: bool = True, **unit_filter_kwargs: Any
    ) -> pd.DataFrame:
        """One row per session (index ``id``), with unit, channel and probe counts and structures.

        ``unit_count`` counts the units that pass the unit filters (the AllenSDK's defaults:
        ``amplitude_cutoff_maximum=0.1``, ``presence_ratio_minimum=0.95``,
        ``isi_violations_maximum=0.5``, quality "good", a structure assigned). ``suppress``
        lists columns to leave out (default ``SUPPRESS_FROM_SESSION_TABLE``).
        """
        filters = UnitFilters.from_kwargs(filter_by_validity=filter_by_validity, **unit_filter_kwargs)
        sessions = self._sessions()
        probes = self._annotated_probes() if self._can_get("probes") else None
        channels, units = (
            (None, None) if probes is None else self._optional_channels_and_units(filters, probes)
        )
        _count_owned(sessions, units, "ecephys_session_id", "unit_count")
        _count_owned(sessions, channels, "ecephys_session_id", "channel_count")
        _count_owned(sessions, probes, "ecephys_session_id", "probe_count")
        _grouped_uniques(sessions, channels, "ecephys_session_id", "ecephys_structure_acronyms")
        sessions = _suppress(sessions, suppress, self.SUPPRESS_FROM_SESSION_TABLE)
        return sessions.rename(columns={"genotype": "full_genotype"})

    def get_probes(self, suppress: list[str] | None = None) -> pd.DataFrame:
        """One row per probe (index ``id``): session, name, phase, rates in Hz, counts, structures.

        ``lfp_sampling_rate`` is the LFP files' rate: the table's rate divided by
        ``lfp_temporal_subsampling_factor`` (NaN where the factor is missing). Unit counts use
        the default unit filters. ``suppress`` defaults to ``SUPPRESS_FROM_PROBES``.
        """
        probes = self._annotated_probes()
        channels, units = self._optional_channels_and_units(UnitFilters(), probes)
        _count_owned(probes, units, "ecephys_probe_id", "unit_count")
        _count_owned(probes, channels, "ecephys_probe_id", "channel_count")
        _grouped_uniques(probes, channels, "ecephys_probe_id", "ecephys_structure_acronyms")
        return _suppress(probes, suppress, self.SUPPRESS_FROM_PROBES)

    def get_channels(
        self, suppress: list[str] | None = None, filter_by_validity: bool = True, **unit_filter_kwargs: Any
    ) -> pd.DataFrame:
        """Every channel of the project (index ``id``) with its probe and session, and unit count.

        All channels are listed, valid or not (``valid_data`` says which), as in the AllenSDK;
        ``filter_by_validity`` and the unit filters choose the units ``unit_count`` counts.
        ``suppress`` defaults to ``SUPPRESS_FROM_CHANNELS``.
        """
        filters = UnitFilters.from_kwargs(filter_by_validity=filter_by_validity, **unit_filter_kwargs)
        channels = self._annotated_channels()
        units = self._annotated_units(filters, channels) if self._can_get("units") else None
        _count_owned(channels, units, "ecephys_channel_id", "unit_count")
        channels = _suppress(channels, suppress, self.SUPPRESS_FROM_CHANNELS)
        return channels.rename(columns={"name": "probe_name"})

    def get_units(
        self, suppress: list[str] | None = None, filter_by_validity: bool = True, **unit_filter_kwargs: Any
    ) -> pd.DataFrame:
        """Units that pass the filters (index ``id``), with their channel, probe and session.

        Filters as :meth:`get_session_table`; ``None`` or ±inf turns a threshold off. Waveform
        metrics get a ``waveform_`` prefix and ``l_ratio`` becomes ``L_ratio``; columns that
        units and channels (or probes and sessions) share get ``_unit``/``_channel`` (or
        ``_probe``/``_session``) suffixes. ``suppress`` defaults to ``SUPPRESS_FROM_UNITS``.
        """
        filters = UnitFilters.from_kwargs(filter_by_validity=filter_by_validity, **unit_filter_kwargs)
        return _suppress(self._annotated_units(filters), suppress, self.SUPPRESS_FROM_UNITS)

    # -- lists of values -------------------------------------------------------------------
    def get_all_session_types(self, **session_kwargs: Any) -> list:
        """The session types (stimulus sets), in table order."""
        return self.get_session_table(**session_kwargs)["session_type"].unique().tolist()

    def get_all_full_genotypes(self, **session_kwargs: Any) -> list:
        return self.get_session_table(**session_kwargs)["full_genotype"].unique().tolist()

    def get_all_ages(self, **session_kwargs: Any) -> list:
        """Ages in days, in table order."""
        return self.get_session_table(**session_kwargs)["age_in_days"].unique().tolist()

    def get_all_sexes(self, **session_kwargs: Any) -> list:
        return self.get_session_table(**session_kwargs)["sex"].unique().tolist()

    def get_structure_acronyms(self, **channel_kwargs: Any) -> list:
        """Structure acronyms of all channels, in table order; NaN for channels out of the brain."""
        return self.get_channels(**channel_kwargs)["ecephys_structure_acronym"].unique().tolist()

    # -- analysis metrics ------------------------------------------------------------------
    def _metrics_table(self, path: Path, key: str, what: str) -> pd.DataFrame:
        return read_table_csv(self._local_file(path, key, what), index_col="ecephys_unit_id")

    def _typewise_metrics(self, session_type: str) -> pd.DataFrame:
        return self._metrics_table(
            self.layout.typewise_analysis_metrics(session_type),
            CacheLayout.key("typewise_analysis_metrics", session_type),
            f"analysis metrics of {session_type} sessions",
        )

    def _session_unit_ids(self, session_id: int) -> pd.Index:
        """Ids of every unit of a session (unfiltered), through channels and probes."""
        probes = self._raw_table("probes")
        probe_ids = probes.index[probes["ecephys_session_id"] == session_id]
        channels = self._raw_table("channels")
        channel_ids = channels.index[channels["ecephys_probe_id"].isin(probe_ids)]
        units = self._raw_table("units")
        return units.index[units["ecephys_channel_id"].isin(channel_ids)]

    def get_unit_analysis_metrics_for_session(
        self,
        session_id: int,
        annotate: bool = True,
        filter_by_validity: bool = True,
        **unit_filter_kwargs: Any,
    ) -> pd.DataFrame:
        """Stimulus-response metrics of a session's units (index ``ecephys_unit_id``).

        Read from ``session_<sid>/session_<sid>_analysis_metrics.csv`` when the folder has it,
        else taken from the session type's table (``<session_type>_analysis_metrics.csv``, the
        file the public bucket holds). ``annotate`` merges the units table (filtered as in
        :meth:`get_units`) onto the metrics, keeping only units in both.
        """
        session_id = self._known_session(session_id)
        path = self.layout.session_analysis_metrics(session_id)
        if path.exists():
            metrics = read_table_csv(path, index_col="ecephys_unit_id")
        else:
            session_type = self._raw_table("sessions").at[session_id, "session_type"]
            metrics = self._typewise_metrics(session_type)
            metrics = metrics[metrics.index.isin(self._session_unit_ids(session_id))]
        if annotate:
            units = self.get_units(filter_by_validity=filter_by_validity, **unit_filter_kwargs)
            metrics = _annotate_metrics(units[units["ecephys_session_id"] == session_id], metrics)
        return metrics

    def get_unit_analysis_metrics_by_session_type(
        self,
        session_type: str,
        annotate: bool = True,
        filter_by_validity: bool = True,
        **unit_filter_kwargs: Any,
    ) -> pd.DataFrame:
        """Stimulus-response metrics of every unit of one session type (index ``ecephys_unit_id``).

        ``session_type`` is one of :meth:`get_all_session_types`; ValueError otherwise.
        """
        known = self._raw_table("sessions")["session_type"].unique().tolist()
        if session_type not in known:
            raise ValueError(f"unrecognized session type: {session_type!r}; the project has {known}")
        metrics = self._typewise_metrics(session_type)
        if annotate:
            units = self.get_units(filter_by_validity=filter_by_validity, **unit_filter_kwargs)
            metrics = _annotate_metrics(units, metrics)
        return metrics

    # -- sessions and their files ----------------------------------------------------------
    def _known_session(self, session_id: int) -> int:
        sessions = self._raw_table("sessions")
        try:
            sid = int(session_id)
        except (TypeError, ValueError):
            sid = None
        if sid is None or sid not in sessions.index:
            raise UnknownSessionError(
                f"session {session_id!r} is not in the project's session table ({len(sessions)} sessions, "
                f"{self.layout.table('sessions')}); list the ids with "
                "EcephysProjectCache.get_session_table().index"
            )
        return sid

    def fetch_session_file(self, session_id: int) -> Path:
        """The local path of a session's NWB file, downloaded first by the fetcher if needed."""
        session_id = self._known_session(session_id)
        return self._local_file(
            self.layout.session_nwb(session_id),
            CacheLayout.key("session_nwb", session_id, session_id),
            f"session {session_id}",
        )

    def fetch_lfp_file(self, probe_id: int) -> Path:
        """The local path of a probe's LFP NWB file, downloaded first by the fetcher if needed."""
        session_id, key = self._lfp_key(probe_id)
        return self._local_file(
            self.layout.probe_lfp_nwb(session_id, int(probe_id)),
            key,
            f"LFP of probe {int(probe_id)} (session {session_id})",
        )

    def _lfp_key(self, probe_id: int) -> tuple[int, str]:
        """The session id and cache key of a probe's LFP file; errors for unknown probes or no LFP."""
        probes = self._raw_table("probes")
        try:
            row = probes.loc[int(probe_id)]
        except (KeyError, TypeError, ValueError) as err:
            raise UnknownProbeError(
                f"probe {probe_id!r} is not in the project's probe table ({len(probes)} probes); list the "
                "ids with EcephysProjectCache.get_probes().index"
            ) from err
        session_id = int(row["ecephys_session_id"])
        if not bool(row.get("has_lfp_data", True)):
            raise MissingDataError(
                f"probe {int(probe_id)} ({row.get('name', '?')}) of session {session_id} has no LFP file "
                "(has_lfp_data is False in probes.csv)"
            )
        return session_id, CacheLayout.key("probe_lfp_nwb", session_id, int(probe_id))

    def _lfp_remote_key(self, probe_id: int) -> str:
        """A probe's LFP key in the source (a method, not a lambda, so that a streamed session pickles)."""
        return self._lfp_key(probe_id)[1]

    def _external_channel_columns(self, session_id: int) -> pd.DataFrame:
        """The session's rows of ``channels.csv``, structure and CCF columns (what the session gets)."""
        probes = self._raw_table("probes")
        probe_ids = probes.index[probes["ecephys_session_id"] == session_id]
        channels = self._raw_table("channels")
        columns = [c for c in EXTERNAL_CHANNEL_COLUMNS if c in channels.columns]
        return channels.loc[channels["ecephys_probe_id"].isin(probe_ids), columns]

    def get_session_data(
        self,
        session_id: int,
        filter_by_validity: bool = True,
        *,
        stream: bool = False,
        block_cache: bool | str | os.PathLike = False,
        **unit_filter_kwargs: Any,
    ) -> EcephysSession:
        """Open one session's NWB file, with ``channels.csv``'s structures in its channels and units.

        A missing or truncated session file is downloaded first (with a progress bar), and
        ``session.get_lfp(probe_id)`` downloads that probe's LFP file when the folder lacks it.
        With ``stream=True`` nothing is downloaded: the session file (and later its LFP files)
        are read in parts straight from the cache's source (S3 or HTTP, a cache made by
        :meth:`from_s3` or with a ``SourceFetcher``); see ``session.bytes_fetched``.
        ``block_cache=True`` keeps the streamed blocks on disk under ``<cache_dir>/blocks``
        (or a folder given instead), so that streaming the session again reads them locally.
        Unit filters as in :func:`ecephys.open_session`.
        """
        session_id = self._known_session(session_id)
        filters = UnitFilters.from_kwargs(filter_by_validity=filter_by_validity, **unit_filter_kwargs)
        external = self._external_channel_columns(session_id)
        if stream:
            source = getattr(self.fetcher, "source", None)
            if source is None or not hasattr(source, "read_range"):
                kind = "no fetcher" if self.fetcher is None else type(self.fetcher).__name__
                raise ValueError(
                    f"stream=True: session {session_id} can only be streamed from a cache over S3 or HTTP "
                    f"(EcephysProjectCache.from_s3(), or a SourceFetcher); this cache has {kind}, which "
                    "cannot read part of a file. Use stream=False to download it, or open the cache "
                    "with from_s3()."
                )
            return stream_session(
                source,
                CacheLayout.key("session_nwb", session_id, session_id),
                filters=filters,
                lfp_key=self._lfp_remote_key,
                retries=getattr(self.fetcher, "retries", 5),
                external_channel_columns=external,
                block_cache=self.cache_dir / "blocks" if block_cache is True else (block_cache or None),
            )
        path = self.fetch_session_file(session_id)
        return EcephysSession(
            AllenSessionFile(path),
            filters=filters,
            external_channel_columns=external,
            lfp_fetcher=self.fetch_lfp_file,
        )

    def map_sessions(
        self, fn: Callable[[EcephysSession], Any], session_ids: Any = None, **options: Any
    ) -> Any:
        """``{session_id: fn(session)}`` over sessions (all by default), or ``combine`` of that dict.

        Without ``client``: here, one session at a time, with a progress bar. With
        ``client=dask.distributed.Client(...)``: one task per session on its workers, which open
        the sessions themselves (``stream=True``, the default: read from S3; ``stream=False``:
        downloaded into ``worker_cache_dir``). A session whose ``fn`` fails does not stop the
        others: ``errors="raise"`` then raises :class:`~ecephys.errors.SessionMapError` with the
        others' results, ``errors="skip"`` warns and returns them. Options (``client``,
        ``stream``, ``combine``, ``retries``, ``progress``, ``errors``, ``worker_cache_dir``,
        and :meth:`get_session_data`'s keywords) as in :func:`ecephys.scale.map_sessions`;
        see docs/scale-out.md.
        """
        from ecephys.scale import map_sessions

        return map_sessions(self, fn, session_ids, **options)

    def download_links(self) -> pd.DataFrame:
        """Every session NWB file and LFP file of the project: where it goes and where it comes from.

        Columns: ``ecephys_session_id``, ``probe_id`` (``<NA>`` for session files), ``kind``
        (``session_nwb`` or ``probe_lfp_nwb``), ``key`` (path relative to the cache folder,
        also the bucket key), ``path`` (local), ``exists`` and ``url`` (from the fetcher's
        ``url(key)`` when it has one, else the public bucket's HTTPS URL). Probes without
        LFP data have no row.
        """
        sessions = self._raw_table("sessions")
        probes = self._raw_table("probes")
        if "has_lfp_data" in probes.columns:
            probes = probes[probes["has_lfp_data"].astype(bool)]
        probes = probes[probes["ecephys_session_id"].isin(sessions.index)]
        session_ids = sessions.index.to_numpy(dtype=np.int64)
        probe_sessions = probes["ecephys_session_id"].to_numpy(dtype=np.int64)
        probe_ids = probes.index.to_numpy(dtype=np.int64)
        keys = [CacheLayout.key("session_nwb", s, s) for s in session_ids]
        keys += [
            CacheLayout.key("probe_lfp_nwb", s, p) for s, p in zip(probe_sessions, probe_ids, strict=True)
        ]
        paths = [self.layout.session_nwb(s) for s in session_ids]
        paths += [self.layout.probe_lfp_nwb(s, p) for s, p in zip(probe_sessions, probe_ids, strict=True)]
        links = pd.DataFrame(
            {
                "ecephys_session_id": np.concatenate([session_ids, probe_sessions]),
                "probe_id": pd.array([pd.NA] * len(session_ids) + probe_ids.tolist(), dtype="Int64"),
                "kind": np.array(
                    ["session_nwb"] * len(session_ids) + ["probe_lfp_nwb"] * len(probe_ids), object
                ),
                "key": np.array(keys, dtype=object),
                "path": np.array([str(p) for p in paths], dtype=object),
                "exists": np.array([p.exists() for p in paths], dtype=bool),
                "url": np.array([self._url(k) for k in keys], dtype=object),
            }
        )
        # Each session's file, then its probes' LFP files, sessions in table order.
        session_rank = pd.Series(np.arange(len(session_ids)), index=session_ids)
        order = np.lexsort((links["kind"] != "session_nwb", session_rank.loc[links["ecephys_session_id"]]))
        return links.iloc[order].reset_index(drop=True)

    def _url(self, key: str) -> str:
        url: Callable[[str], str] | None = getattr(self.fetcher, "url", None)
        return url(key) if callable(url) else BUCKET_URL + key


#: Short name.
ProjectCache = EcephysProjectCache


# -- table helpers (vectorised pandas) -----------------------------------------------------
def _parse_literal(text: object) -> object:
    """A Python-literal list stored as text (``"['APN', 'CA1']"``); NaN stays NaN."""
    return ast.literal_eval(text) if isinstance(text, str) else text


def _merge_grouped(
    left: pd.DataFrame, right: pd.DataFrame, left_on: str, suffixes: tuple[str, str]
) -> pd.DataFrame:
    """Inner merge of ``left[left_on]`` with ``right``'s index, rows in the AllenSDK's order.

    pandas 1.5 (the AllenSDK 2.16.2's) returns an inner merge's rows grouped by key, groups in
    order of each key's first appearance in ``left``, rows of a group in ``left`` order; pandas
    2.2+ keeps ``left`` order. A stable sort by first-appearance code gives the former.
    """
    codes, _ = pd.factorize(left[left_on])
    grouped = left.iloc[np.argsort(codes, kind="stable")]
    return pd.merge(grouped, right, how="inner", left_on=left_on, right_index=True, suffixes=suffixes)


def _count_owned(table: pd.DataFrame, owned: pd.DataFrame | None, key: str, column: str) -> None:
    """``table[column]``: rows of ``owned`` whose ``key`` is each row's id (``<NA>`` if unknown)."""
    if owned is None:
        table[column] = pd.array([pd.NA] * len(table), dtype="Int64")
        return
    counts = owned[key].value_counts()
    table[column] = counts.reindex(table.index, fill_value=0).to_numpy(dtype=np.int64)


def _grouped_uniques(table: pd.DataFrame, channels: pd.DataFrame | None, key: str, column: str) -> None:
    """``table[column]``: each row's structure acronyms in ``channels`` order, NaN included."""
    if channels is None:
        table[column] = pd.Series(np.nan, index=table.index, dtype=object)
        return
    uniques = channels.groupby(key, sort=False)["ecephys_structure_acronym"].unique()
    found = uniques.reindex(table.index)
    values = np.empty(len(table), dtype=object)
    for i, acronyms in enumerate(found):  # one array per row: numpy would stack equal-length ones
        values[i] = acronyms if isinstance(acronyms, np.ndarray) else np.array([], dtype=object)
    table[column] = values


def _suppress(table: pd.DataFrame, suppress: list[str] | None, default: tuple[str, ...]) -> pd.DataFrame:
    names = list(default) if suppress is None else list(suppress)
    return table.drop(columns=[c for c in names if c in table.columns])


def _annotate_metrics(units: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    merged = pd.merge(units, metrics, left_index=True, right_index=True, how="inner")
    merged.index.name = "ecephys_unit_id"
    return merged
