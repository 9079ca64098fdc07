"""A read-only, seekable file over a source's ``read_range``, with a block cache tuned for HDF5.

h5py reads an NWB file in two very different ways: opening it and walking groups means many
small reads scattered over the file (superblock, object headers, B-tree nodes, heaps), while
reading a dataset means one or a few large contiguous reads. :class:`RemoteFile` serves both:

- the file is cut into ``block_size`` blocks (1/256 of the file, 16–256 KiB, by default)
  kept in an LRU cache of ``cache_blocks`` blocks, so a scattered metadata read costs one
  request;
- a read that starts where the previous one ended is *sequential*: the read-ahead doubles
  (one block, two, four, … up to ``readahead`` bytes) and resets on a random seek;
- a large missing span is split into ``split_size`` parts fetched in parallel by a small
  thread pool (``max_workers``), so one big dataset read is not one long serial transfer.

Every request goes through a :class:`~ecephys.sources.retry.RetryPolicy` (only
:class:`TransientSourceError` is retried); a server that ignores ``Range`` is refused at once
with :class:`RangeNotSupported`, whose message suggests downloading the file instead.

Why not fsspec's caches or remfile: both work, but neither fits all three access patterns above
in one object — fsspec's ``readahead``/``bytes`` caches keep one window (a metadata read
elsewhere throws the window away) and its ``blockcache`` has fixed blocks with no read-ahead and
no parallel parts; remfile has growing read-ahead but a fixed minimum chunk and its own retry and
no error mapping. Writing it ourselves is ~250 lines over the transport we already have: one
retry policy, one error tree (404 → ``RemoteNotFound``, 5xx → retried, no Range → a clear
error), counters of bytes and requests that the session reports, and no dependency
(``bench/bench_streaming.py`` compares the three).
"""

from __future__ import annotations

import io
import logging
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ecephys.errors import RangeNotSupported, TransientSourceError
from ecephys.sources.base import Source
from ecephys.sources.retry import RetryPolicy

__all__ = ["RemoteFile", "key_beside", "source_for_url"]

log = logging.getLogger(__name__)

KIB = 1 << 10
MIB = 1 << 20


def default_block_size(size: int) -> int:
    """Block size (bytes) for a file of ``size`` bytes: 1/256 of it, between 16 KiB and 256 KiB.

    Large blocks mean few requests for the scattered HDF5 metadata of a big session file
    (5 requests to open one and build its units table); small files stay cheap to open.
    """
    return int(min(256 * KIB, max(16 * KIB, size // 256)))


class RemoteFile(io.RawIOBase):
    """A read-only binary file over ``source.read_range(key, ...)``: ``h5py.File(RemoteFile(...))``.

    Parameters
    ----------
    source
        Any :class:`~ecephys.sources.base.Source` (``S3Source``, ``HTTPSource``, ``LocalSource``).
    key
        The object's key in ``source`` (a full URL for ``HTTPSource("")``).
    block_size
        Bytes per cached block and the smallest request; by default 1/256 of the file, between
        16 KiB and 256 KiB (:func:`default_block_size`): HDF5 metadata reads are small and
        scattered, and a big file has more of them.
    cache_blocks
        How many blocks the LRU cache keeps (256 × 256 KiB = 64 MiB at most).
    readahead
        The most bytes read ahead of a sequential read (the read-ahead doubles up to it).
    split_size
        A missing span longer than this (bytes) is fetched as parallel parts of this size.
    max_workers
        Threads fetching parallel parts.
    retries
        Failed attempts in a row to retry per request, or a :class:`RetryPolicy`.
    size
        The object's length in bytes when known (saves the HEAD request).

    Attributes
    ----------
    bytes_fetched
        Body bytes received from the source so far.
    requests
        Requests made so far (the size lookup and every range request, retries included).
    """

    def __init__(
        self,
        source: Source,
        key: str,
        *,
        block_size: int | None = None,
        cache_blocks: int = 256,
        readahead: int = 8 * MIB,
        split_size: int = 32 * MIB,
        max_workers: int = 6,
        retries: int | RetryPolicy = 5,
        size: int | None = None,
    ) -> None:
        super().__init__()
        for name, value in (
            ("block_size", 1 if block_size is None else block_size),
            ("cache_blocks", cache_blocks),
            ("split_size", split_size),
            ("max_workers", max_workers),
        ):
            if int(value) < 1:
                raise ValueError(f"{name}={value}: expected an integer ≥ 1")
        if readahead < 0:
            raise ValueError(f"readahead={readahead}: expected bytes ≥ 0")
        self.source = source
        self.key = key
        self.cache_blocks = int(cache_blocks)
        self.max_readahead = int(readahead)
        self.max_workers = int(max_workers)
        self.policy = retries if isinstance(retries, RetryPolicy) else RetryPolicy(retries=int(retries))
        self.bytes_fetched = 0
        self.requests = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.RLock()
        self._count_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pos = 0
        self._last_end = -1  # where the previous read ended (for sequential detection)
        self._readahead = 0  # current read-ahead, bytes
        if size is None:
            info = self.policy.call(self._info)
            if info.size is None:
                raise RangeNotSupported(
                    f"{info.url}: the server does not say how long the object is, so it cannot be "
                    "read in parts; download the whole file instead (ecephys.cache.download.fetch, "
                    "or EcephysProjectCache.get_session_data without stream=True).",
                    url=info.url,
                )
            size = info.size
        self.size = int(size)
        self.block_size = int(block_size) if block_size is not None else default_block_size(self.size)
        self.split_size = max(int(split_size), self.block_size)
        self.name = source.url(key)
        if self.size:
            self._fetch_blocks(0, 1)  # the superblock; also finds out now whether Range works

    # ------------------------------------------------------------------ io.RawIOBase

    def __repr__(self) -> str:
        return f"RemoteFile({self.name!r}, size={self.size}, bytes_fetched={self.bytes_fetched})"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset`` bytes from the start, the current position or the end."""
        self._check_open()
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"whence={whence}: expected 0 (start), 1 (current) or 2 (end)")
        if pos < 0:
            raise ValueError(f"offset={offset}, whence={whence}: the position would be {pos} < 0")
        self._pos = int(pos)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the current position (fewer bytes only at the end of the file)."""
        self._check_open()
        view = memoryview(buffer).cast("B")
        data = self.pread(self._pos, len(view))
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def readall(self) -> bytes:
        self._check_open()
        data = self.pread(self._pos, max(self.size - self._pos, 0))
        self._pos += len(data)
        return data

    def close(self) -> None:
        """Drop the cache and the thread pool (the source's connections stay with the source)."""
        if not self.closed and hasattr(self, "_lock"):
            with self._lock:
                if self._pool is not None:
                    self._pool.shutdown(wait=True)
                    self._pool = None
                self._blocks.clear()
        super().close()

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError(f"{self!r}: a RemoteFile cannot be pickled; open it again where it is needed")

    # ------------------------------------------------------------------ reading

    def pread(self, start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` (fewer at the end of the file); the position stays."""
        self._check_open()
        stop = min(start + max(length, 0), self.size)
        if stop <= start:
            return b""
        bs = self.block_size
        first, last = start // bs, (stop - 1) // bs + 1  # blocks [first, last)
        with self._lock:
            sequential = self._last_end >= 0 and 0 <= start - self._last_end < bs
            self._readahead = min(max(2 * self._readahead, bs), self.max_readahead) if sequential else 0
            self._last_end = stop
            ahead = -(-self._readahead // bs)  # blocks
            blocks = self._fetch_blocks(first, last, ahead=ahead)
            data = b"".join(blocks[index] for index in range(first, last))
        offset = start - first * bs
        return data[offset : offset + (stop - start)]

    def _fetch_blocks(self, first: int, last: int, *, ahead: int = 0) -> dict[int, bytes]:
        """The blocks ``[first, last)``, fetching the missing ones (+ ``ahead`` blocks after them).

        Returns every block asked for (and those read ahead), so that the caller assembles
        from them even when the LRU has already evicted some, as for reads larger than the cache.
        """
        n_blocks = -(-self.size // self.block_size)
        have: dict[int, bytes] = {}
        runs: list[list[int]] = []  # [first, last) of contiguous missing blocks
        for index in range(first, last):
            if index in self._blocks:
                self._blocks.move_to_end(index)
                have[index] = self._blocks[index]
                continue
            if runs and runs[-1][1] == index:
                runs[-1][1] = index + 1
            else:
                runs.append([index, index + 1])
        if not runs:
            return have
        if ahead:
            end = min(runs[-1][1] + ahead, n_blocks)
            while runs[-1][1] < end and runs[-1][1] not in self._blocks:
                runs[-1][1] += 1
        spans = []
        for a, b in runs:
            start, stop = a * self.block_size, min(b * self.block_size, self.size)
            step = self.split_size - self.split_size % self.block_size
            spans.extend((s, min(s + step, stop)) for s in range(start, stop, step))
        if len(spans) == 1:
            results = [self._get(*spans[0])]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="ecephys-remote")
            results = list(self._pool.map(lambda span: self._get(*span), spans))
        fetched: dict[int, bytes] = {}
        for (start, _), data in zip(spans, results, strict=True):
            for offset in range(0, len(data), self.block_size):
                index = (start + offset) // self.block_size
                fetched[index] = data[offset : offset + self.block_size]
        for index, block in fetched.items():
            self._blocks[index] = block
            self._blocks.move_to_end(index)
        while len(self._blocks) > self.cache_blocks:
            self._blocks.popitem(last=False)
        fetched.update(have)
        return fetched

    def _get(self, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` from the source, retried; exactly ``stop - start`` of them."""

        def attempt() -> bytes:
            with self._count_lock:
                self.requests += 1
            try:
                data = self.source.read_range(self.key, start, stop)
            except RangeNotSupported as err:
                raise RangeNotSupported(
                    f"{self.name}: the server ignored a Range request (bytes {start}-{stop - 1}) and "
                    "sent the whole object, so the file cannot be streamed; download it instead "
                    "(ecephys.cache.download.fetch, or EcephysProjectCache.get_session_data without "
                    "stream=True) and open the local copy.",
                    url=err.url,
                ) from err
            with self._count_lock:
                self.bytes_fetched += len(data)
            if len(data) != stop - start:
                raise TransientSourceError(
                    f"{self.name}: asked for bytes {start}-{stop - 1} ({stop - start} bytes) of a "
                    f"{self.size}-byte object, got {len(data)}; the transfer was cut short or the "
                    "object changed; retried.",
                    url=self.name,
                )
            return data

        log.debug("%s: range %d-%d", self.key, start, stop - 1)
        return self.policy.call(attempt)

    def _info(self) -> Any:
        with self._count_lock:
            self.requests += 1
        return self.source.info(self.key)

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"{self.name}: I/O operation on a closed RemoteFile")


def source_for_url(url: str, *, endpoint_url: str | None = None, timeout: float = 30.0) -> tuple[Source, str]:
    """The source and key of an ``s3://bucket/key`` or ``http(s)://`` URL.

    ``endpoint_url`` points ``s3://`` URLs at another S3-compatible server (moto, a MinIO
    mirror); HTTP URLs are read as they are, the key being the whole URL.
    """
    from ecephys.sources.http import HTTPSource
    from ecephys.sources.s3 import S3Source

    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme == "s3":
        bucket, _, key = rest.partition("/")
        if not bucket or not key:
            raise ValueError(f"url={url!r}: expected s3://<bucket>/<key>")
        return S3Source(bucket, "", endpoint_url=endpoint_url, timeout=timeout), key
    if scheme in ("http", "https"):
        return HTTPSource("", timeout=timeout), url
    raise ValueError(f"url={url!r}: expected an s3://, http:// or https:// URL")


def key_beside(key: str, name: str) -> str:
    """The key of file ``name`` in the same folder as ``key`` (a URL's query is dropped)."""
    path = key.split("?", 1)[0].split("#", 1)[0]
    folder, slash, _ = path.rpartition("/")
    return f"{folder}{slash}{name}"
