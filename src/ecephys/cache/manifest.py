"""The AllenSDK project-cache folder layout, as data.

A Visual Coding – Neuropixels cache folder holds ``manifest.json`` (AllenSDK manifest version
0.3.0) and the files it names, all relative to the manifest's folder (``BASEDIR`` is ``"."``)::

    manifest.json
    sessions.csv  probes.csv  channels.csv  units.csv
    <session_type>_analysis_metrics.csv
    session_<sid>/session_<sid>.nwb
    session_<sid>/probe_<pid>_lfp.nwb
    session_<sid>/session_<sid>_analysis_metrics.csv
    natural_movie_templates/natural_movie_<n>.h5
    natural_scene_templates/natural_scene_<n>.tiff

The public bucket uses the same relative paths as its keys. :class:`CacheManifest` reads and
writes ``manifest.json`` (byte for byte as the AllenSDK writes it); :class:`CacheLayout` turns
a manifest key and its ids into a local path. Local paths follow the folder's own manifest;
remote keys (:meth:`CacheLayout.key`) always follow the standard layout, the bucket's.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ecephys.errors import ManifestError

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "CacheLayout",
    "CacheManifest",
    "ManifestEntry",
    "part_path",
    "write_atomically",
]

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = "0.3.0"

#: The four project tables and their manifest keys.
TABLE_KEYS = ("sessions", "probes", "channels", "units")


@dataclass(frozen=True)
class ManifestEntry:
    """One path of the manifest: ``spec`` (``%d``/``%s`` placeholders) under ``parent_key``."""

    key: str
    type: str  # "dir" or "file"
    spec: str
    parent_key: str | None = None

    def to_dict(self) -> dict[str, str]:
        entry = {"key": self.key, "type": self.type, "spec": self.spec}
        if self.parent_key is not None:
            entry["parent_key"] = self.parent_key
        return entry


_STANDARD_ENTRIES = (
    ManifestEntry("BASEDIR", "dir", "."),
    ManifestEntry("sessions", "file", "sessions.csv", "BASEDIR"),
    ManifestEntry("probes", "file", "probes.csv", "BASEDIR"),
    ManifestEntry("channels", "file", "channels.csv", "BASEDIR"),
    ManifestEntry("units", "file", "units.csv", "BASEDIR"),
    ManifestEntry("session_data", "dir", "session_%d", "BASEDIR"),
    ManifestEntry("session_nwb", "file", "session_%d.nwb", "session_data"),
    ManifestEntry("session_analysis_metrics", "file", "session_%d_analysis_metrics.csv", "session_data"),
    ManifestEntry("probe_lfp_nwb", "file", "probe_%d_lfp.nwb", "session_data"),
    ManifestEntry("movie_dir", "dir", "natural_movie_templates", "BASEDIR"),
    ManifestEntry("typewise_analysis_metrics", "file", "%s_analysis_metrics.csv", "BASEDIR"),
    ManifestEntry("natural_movie", "file", "natural_movie_%d.h5", "movie_dir"),
    ManifestEntry("natural_scene_dir", "dir", "natural_scene_templates", "BASEDIR"),
    ManifestEntry("natural_scene", "file", "natural_scene_%d.tiff", "natural_scene_dir"),
)


@dataclass(frozen=True)
class CacheManifest:
    """The content of ``manifest.json``: a version and named path entries."""

    version: str
    entries: tuple[ManifestEntry, ...]

    @classmethod
    def standard(cls) -> CacheManifest:
        """The manifest the AllenSDK 2.16.2 writes for a new ecephys cache folder."""
        return cls(MANIFEST_VERSION, _STANDARD_ENTRIES)

    @classmethod
    def from_dict(cls, data: Mapping, *, path: str | os.PathLike | None = None) -> CacheManifest:
        """Parse the JSON object; ManifestError when it is not a 0.3.0 ecephys manifest."""
        where = f"manifest {os.fspath(path)}" if path is not None else "manifest"
        items = data.get("manifest") if isinstance(data, Mapping) else None
        if not isinstance(items, list):
            raise ManifestError(f'{where}: expected a JSON object with a "manifest" list', path=path)
        version = None
        entries = []
        for item in items:
            if not isinstance(item, Mapping) or "type" not in item:
                raise ManifestError(f"{where}: entry {item!r} has no type", path=path)
            if item["type"] == "manifest_version":
                version = item.get("value")
                continue
            try:
                entries.append(ManifestEntry(item["key"], item["type"], item["spec"], item.get("parent_key")))
            except KeyError as err:
                raise ManifestError(f"{where}: entry {item!r} lacks {err}", path=path) from err
        if version != MANIFEST_VERSION:
            raise ManifestError(
                f"{where} has version {version!r}, expected {MANIFEST_VERSION!r} (the AllenSDK's "
                f"ecephys cache); remove it and ecephys writes a new one, the data files are kept",
                path=path,
            )
        manifest = cls(version, tuple(entries))
        missing = {e.key for e in _STANDARD_ENTRIES} - set(manifest.keys)
        if missing:
            raise ManifestError(
                f"{where} lacks the entries {sorted(missing)}; it is not an ecephys project cache "
                "manifest (remove it and ecephys writes a standard one)",
                path=path,
            )
        return manifest

    @classmethod
    def read(cls, path: str | os.PathLike) -> CacheManifest:
        """Read ``manifest.json``."""
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as err:
            raise ManifestError(f"manifest {os.fspath(path)} is not valid JSON: {err}", path=path) from err
        return cls.from_dict(data, path=path)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(e.key for e in self.entries)

    def to_dict(self) -> dict[str, list[dict[str, str]]]:
        version = {"type": "manifest_version", "value": self.version}
        return {"manifest": [version, *(e.to_dict() for e in self.entries)]}

    def to_json(self) -> str:
        """The JSON text, formatted as the AllenSDK writes it (2-space indent, no final newline)."""
        return json.dumps(self.to_dict(), indent=2)

    def write(self, path: str | os.PathLike) -> Path:
        """Write ``manifest.json`` atomically (``<path>.part``, then rename)."""
        text = self.to_json()
        return write_atomically(Path(path), lambda part: part.write_text(text))

    def template(self, key: str) -> str:
        """The path template of ``key`` relative to the manifest's folder, e.g. ``session_%d/session_%d.nwb``.

        Absolute specs (a leading ``/``) stay absolute.
        """
        by_key = {e.key: e for e in self.entries}
        parts: list[str] = []
        seen: set[str] = set()
        current: str | None = key
        while current is not None:
            if current in seen:
                raise ManifestError(f"manifest: the parent_key chain of {key!r} loops")
            seen.add(current)
            try:
                entry = by_key[current]
            except KeyError as err:
                raise ManifestError(f"manifest has no entry {current!r} (needed for {key!r})") from err
            parts.append(entry.spec)
            if entry.spec.startswith("/"):
                break
            current = entry.parent_key
        return posixpath.normpath(posixpath.join(*reversed(parts)))

    def relative_path(self, key: str, *args: object) -> str:
        """``template(key) % args``: one file's path relative to the folder (posix separators)."""
        template = self.template(key)
        try:
            return template % args if args else template
        except TypeError as err:
            raise TypeError(
                f"manifest key {key!r} ({template!r}) takes other arguments than {args!r}"
            ) from err


_STANDARD = CacheManifest.standard()


@dataclass(frozen=True)
class CacheLayout:
    """Paths of a cache folder: ``root`` (the manifest's folder) and its ``manifest``."""

    root: Path
    manifest: CacheManifest = _STANDARD

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    def path(self, key: str, *args: object) -> Path:
        """The local path of a manifest key filled in with ``args`` (ids, session type)."""
        return self.root / self.manifest.relative_path(key, *args)

    @staticmethod
    def key(key: str, *args: object) -> str:
        """The remote key (relative path in the standard layout) of a manifest key and its ids."""
        return _STANDARD.relative_path(key, *args)

    # -- the files a project cache uses ---------------------------------------------------
    def table(self, name: str) -> Path:
        """``sessions.csv``, ``probes.csv``, ``channels.csv`` or ``units.csv``."""
        if name not in TABLE_KEYS:
            raise ValueError(f"unknown table {name!r}; expected one of {TABLE_KEYS}")
        return self.path(name)

    def session_nwb(self, session_id: int) -> Path:
        return self.path("session_nwb", int(session_id), int(session_id))

    def probe_lfp_nwb(self, session_id: int, probe_id: int) -> Path:
        return self.path("probe_lfp_nwb", int(session_id), int(probe_id))

    def session_analysis_metrics(self, session_id: int) -> Path:
        return self.path("session_analysis_metrics", int(session_id), int(session_id))

    def typewise_analysis_metrics(self, session_type: str) -> Path:
        return self.path("typewise_analysis_metrics", str(session_type))

    def natural_movie(self, number: int) -> Path:
        return self.path("natural_movie", int(number))

    def natural_scene(self, number: int) -> Path:
        return self.path("natural_scene", int(number))


def part_path(target: Path) -> Path:
    """Where a file is written before it is complete: ``<target>.part`` in the same folder."""
    return target.with_name(target.name + ".part")


def write_atomically(target: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(part)`` on ``<target>.part``, then rename it to ``target``.

    Readers see the old file or the complete new one, never half of it; the ``.part`` file is
    removed when ``write`` fails. Parent folders are created.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(target)
    try:
        write(part)
        os.replace(part, target)
    finally:
        if part.exists():
            part.unlink()
    return target
