"""Fetchers for :class:`ecephys.project.EcephysProjectCache`: what fills a cache folder's gaps.

Both implement the project cache's ``TableFetcher`` protocol — ``get_table(name)`` returns a
raw project table with an ``id`` column, ``fetch_file(key, target)`` downloads a file of the
cache layout (``session_<sid>/session_<sid>.nwb``, ``session_<sid>/probe_<pid>_lfp.nwb``)
through :func:`ecephys.cache.download.fetch` (``.part``, resume, verify, lock).

- :class:`SourceFetcher` reads any :class:`~ecephys.sources.base.Source` laid out like a cache
  folder: the public bucket (:class:`~ecephys.sources.S3Source`), a mounted copy
  (:class:`~ecephys.sources.LocalSource`), a plain HTTP mirror.
- :class:`WarehouseFetcher` asks the Allen warehouse API for the tables and the file links.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pandas as pd

from ecephys.cache.download import fetch
from ecephys.errors import RemoteNotFound
from ecephys.sources.base import Source
from ecephys.sources.retry import RetryPolicy
from ecephys.sources.warehouse import WarehouseClient

__all__ = ["SourceFetcher", "WarehouseFetcher"]

TABLES = ("sessions", "probes", "channels", "units")
_SESSION_KEY = re.compile(r"^session_(\d+)/session_(\d+)\.nwb$")
_LFP_KEY = re.compile(r"^session_(\d+)/probe_(\d+)_lfp\.nwb$")
_TYPEWISE_METRICS_KEY = re.compile(r"^(\w[\w.]*)_analysis_metrics\.csv$")
_SESSION_METRICS_KEY = re.compile(r"^session_(\d+)/session_(\d+)_analysis_metrics\.csv$")


class _Fetching:
    """The download options both fetchers pass to :func:`fetch`."""

    def __init__(
        self,
        *,
        progress: bool | None = None,
        retries: int | RetryPolicy = 5,
        lock_timeout: float | None = 3600.0,
    ) -> None:
        self.progress = progress
        self.retries = retries
        self.lock_timeout = lock_timeout

    def _fetch(self, source: Source, key: str, target: Path) -> Path:
        """Download ``key`` of ``source`` to ``target`` with this fetcher's options."""
        return fetch(
            source, key, target, progress=self.progress, retries=self.retries, lock_timeout=self.lock_timeout
        )


class SourceFetcher(_Fetching):
    """Tables and files from a source whose keys are the cache folder's relative paths."""

    def __init__(
        self,
        source: Source,
        *,
        progress: bool | None = None,
        retries: int | RetryPolicy = 5,
        lock_timeout: float | None = 3600.0,
    ) -> None:
        super().__init__(progress=progress, retries=retries, lock_timeout=lock_timeout)
        self.source = source

    def __repr__(self) -> str:
        return f"SourceFetcher({self.source!r})"

    def url(self, key: str) -> str:
        """Where ``key`` is downloaded from."""
        return self.source.url(key)

    def get_table(self, name: str) -> pd.DataFrame:
        """``<name>.csv`` of the source as ``pd.read_csv`` reads it (downloaded whole, resumably)."""
        _check_table(name)
        with tempfile.TemporaryDirectory(prefix="ecephys-table-") as folder:
            path = self._fetch(self.source, f"{name}.csv", Path(folder) / f"{name}.csv")
            return pd.read_csv(path)

    def fetch_file(self, key: str, target: Path) -> Path:
        """Download ``key`` to ``target`` (``.part`` beside it, verified, renamed)."""
        return self._fetch(self.source, key, Path(target))


class WarehouseFetcher(_Fetching):
    """Tables from the warehouse's RMA queries; session and LFP files from its download links."""

    def __init__(
        self,
        client: WarehouseClient | None = None,
        *,
        progress: bool | None = None,
        retries: int | RetryPolicy = 5,
        lock_timeout: float | None = 3600.0,
    ) -> None:
        super().__init__(progress=progress, retries=retries, lock_timeout=lock_timeout)
        self.client = client or WarehouseClient()

    def __repr__(self) -> str:
        return f"WarehouseFetcher({self.client!r})"

    def get_table(self, name: str) -> pd.DataFrame:
        """The raw ``sessions``, ``probes``, ``channels`` or ``units`` table, ``id`` first."""
        _check_table(name)
        return getattr(self.client, name)()

    def fetch_file(self, key: str, target: Path) -> Path:
        """Download a session or LFP file, or write an analysis-metrics table, named by its cache key."""
        if match := _SESSION_METRICS_KEY.match(key):
            return _write_csv(self.client.analysis_metrics(session_ids=[int(match.group(2))]), Path(target))
        if match := _TYPEWISE_METRICS_KEY.match(key):
            return _write_csv(self.client.analysis_metrics(session_type=match.group(1)), Path(target))
        if match := _SESSION_KEY.match(key):
            url = self.client.session_file_url(int(match.group(2)))
        elif match := _LFP_KEY.match(key):
            url = self.client.lfp_file_url(int(match.group(2)))
        else:
            raise RemoteNotFound(
                f"{key}: the warehouse serves session files (session_<sid>/session_<sid>.nwb) and LFP files "
                "(session_<sid>/probe_<pid>_lfp.nwb) by id, not this key; use a SourceFetcher over "
                "S3Source() for the other files of the cache layout.",
                url=None,
            )
        return self._fetch(self.client.http, url, Path(target))


def _write_csv(frame: pd.DataFrame, target: Path) -> Path:
    """Write a table the warehouse answered as ``target`` (``.part`` beside it, then renamed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    frame.to_csv(part, index=False)
    part.replace(target)
    return target


def _check_table(name: str) -> None:
    """Refuse table names outside the project's four."""
    if name not in TABLES:
        raise ValueError(f"table {name!r}: expected one of {', '.join(TABLES)}")
