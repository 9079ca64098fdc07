"""The one narrow interface every source of bytes offers, and the stream it hands out.

A *source* answers five questions about objects named by a *key* (a relative path such as
``session_715093703/session_715093703.nwb``; :class:`~ecephys.sources.http.HTTPSource` also takes
a full URL): how big is it (:meth:`Source.info`), give me bytes ``[start, stop)``
(:meth:`Source.read_range`), stream it from an offset (:meth:`Source.iter_chunks`), what is
under a prefix (:meth:`Source.list`), and where does it live (:meth:`Source.url`).
Sources move bytes only: they never parse NWB, never write to the cache, never retry
(the caller decides, see :mod:`ecephys.sources.retry`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["DEFAULT_CHUNK_SIZE", "ChunkStream", "ObjectInfo", "Source", "check_range"]

DEFAULT_CHUNK_SIZE = 1 << 20  # bytes per chunk handed to the caller (1 MiB)


@dataclass(frozen=True)
class ObjectInfo:
    """What a source says about one object before any body byte is read.

    ``size`` in bytes (None when the server does not say); ``etag`` the strong validator
    to resume with (None when there is none, or only a weak one); ``url`` where it lives.
    """

    size: int | None
    etag: str | None
    url: str
    last_modified: str | None = None
    accepts_ranges: bool | None = None


class ChunkStream:
    """An iterator over the bytes of an object from ``start`` to its end, in chunks.

    ``start`` is where the bytes really begin: the offset asked for, or 0 when the server
    ignored the Range request (or ``If-Range`` no longer matched) and sent the whole object —
    the caller must check it (or :attr:`restarted`). ``size`` is the whole object's length in bytes (None if
    unknown), ``etag`` its validator. Close it (or use ``with``) to free the connection early.
    """

    def __init__(
        self,
        chunks: Iterator[bytes],
        *,
        requested_start: int,
        start: int,
        size: int | None,
        etag: str | None,
        url: str,
        close: Callable[[], None] | None = None,
    ) -> None:
        self._chunks = chunks
        self.requested_start = requested_start
        self.start = start
        self.size = size
        self.etag = etag
        self.url = url
        self._close = close
        self._closed = False

    @property
    def restarted(self) -> bool:
        """True when the bytes begin at 0 although a later offset was asked for."""
        return self.start != self.requested_start

    def __iter__(self) -> ChunkStream:
        return self

    def __next__(self) -> bytes:
        if self._closed:
            raise StopIteration
        try:
            return next(self._chunks)
        except StopIteration:
            self.close()
            raise
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the connection or file handle; further iteration yields nothing."""
        if not self._closed:
            self._closed = True
            if self._close is not None:
                self._close()

    def __enter__(self) -> ChunkStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if hasattr(self, "_closed"):
            self.close()


@runtime_checkable
class Source(Protocol):
    """Where bytes come from: a web server, the S3 bucket, a folder."""

    def info(self, key: str) -> ObjectInfo:
        """Size (bytes), validator and URL of ``key``; RemoteNotFound if it does not exist."""
        ...

    def read_range(self, key: str, start: int, stop: int) -> bytes:
        """The bytes ``[start, stop)`` of ``key`` (fewer only when the object ends first)."""
        ...

    def iter_chunks(
        self,
        key: str,
        start: int = 0,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        if_range: str | None = None,
    ) -> ChunkStream:
        """Stream ``key`` from byte ``start``; each read waits at most the source's read timeout.

        ``if_range`` (an ETag) asks for the whole object instead when it changed; check the
        stream's ``start``.
        """
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Keys under ``prefix``, sorted."""
        ...

    def url(self, key: str) -> str:
        """The URL (or ``file://`` URI) of ``key``."""
        ...


def check_range(start: int, stop: int | None = None) -> None:
    """Reject negative or reversed byte ranges, naming the parameter and the value."""
    if start < 0:
        raise ValueError(f"start={start}: expected a byte offset ≥ 0")
    if stop is not None and stop < start:
        raise ValueError(f"stop={stop}: expected stop ≥ start ({start}); ranges are [start, stop)")
