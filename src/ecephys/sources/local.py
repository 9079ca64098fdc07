"""A folder as a source: a local cache, a mounted bucket, a network share.

Keys are POSIX-style paths relative to the folder; a key that would leave it is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ecephys.errors import RemoteNotFound, SourceError
from ecephys.sources.base import DEFAULT_CHUNK_SIZE, ChunkStream, ObjectInfo, check_range

__all__ = ["LocalSource"]


class LocalSource:
    """Files under ``folder``; the ETag is ``"<mtime ns>-<size>"`` so a rewrite changes it."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder).expanduser().resolve()

    def __repr__(self) -> str:
        return f"LocalSource({str(self.folder)!r})"

    def path(self, key: str) -> Path:
        """The file a key names, refusing keys that are absolute or climb out of the folder."""
        parts = PurePosixPath(key.replace("\\", "/")).parts
        if not key or PurePosixPath(key).is_absolute() or ".." in parts:
            raise ValueError(f"key={key!r}: expected a relative path inside {self.folder}")
        return self.folder.joinpath(*parts)

    def url(self, key: str) -> str:
        """The ``file://`` URI of ``key``."""
        return self.path(key).as_uri()

    def _stat(self, key: str) -> tuple[Path, os.stat_result]:
        """Path and stat of an existing regular file, else RemoteNotFound naming it."""
        path = self.path(key)
        try:
            stat = path.stat()
        except FileNotFoundError as exc:
            raise RemoteNotFound(
                f"{path}: no such file in {self.folder}; check the key {key!r}.", url=path.as_uri()
            ) from exc
        except OSError as exc:
            raise SourceError(f"{path}: cannot read it ({exc}).", url=path.as_uri()) from exc
        if not path.is_file():
            raise RemoteNotFound(f"{path}: not a regular file; check the key {key!r}.", url=path.as_uri())
        return path, stat

    def info(self, key: str) -> ObjectInfo:
        """Size in bytes, an mtime-based ETag and the file URI."""
        path, stat = self._stat(key)
        return ObjectInfo(
            size=stat.st_size,
            etag=f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"',
            url=path.as_uri(),
            accepts_ranges=True,
        )

    def read_range(self, key: str, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)``; fewer when the file ends first."""
        check_range(start, stop)
        path, _ = self._stat(key)
        with open(path, "rb") as fh:
            fh.seek(start)
            return fh.read(stop - start)

    def iter_chunks(
        self,
        key: str,
        start: int = 0,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        if_range: str | None = None,
    ) -> ChunkStream:
        """Stream the file from byte ``start``; from 0 when ``if_range`` no longer matches."""
        check_range(start)
        info = self.info(key)
        begin = start if (if_range is None or if_range == info.etag) else 0
        fh = open(self.path(key), "rb")  # noqa: SIM115 - closed by the stream
        fh.seek(begin)
        return ChunkStream(
            _read_chunks(fh, chunk_size),
            requested_start=start,
            start=begin,
            size=info.size,
            etag=info.etag,
            url=info.url,
            close=fh.close,
        )

    def list(self, prefix: str = "") -> list[str]:
        """Keys (relative POSIX paths) of the files whose key starts with ``prefix``, sorted."""
        keys = []
        for root, _dirs, files in os.walk(self.folder):
            rel = Path(root).relative_to(self.folder)
            for name in files:
                key = (rel / name).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)


def _read_chunks(fh: BinaryIO, chunk_size: int) -> Iterator[bytes]:
    """Read an open binary file to its end in chunks of at most ``chunk_size`` bytes."""
    while chunk := fh.read(chunk_size):
        yield chunk
