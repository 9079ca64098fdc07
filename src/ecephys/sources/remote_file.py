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

import functools
import io
import logging
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ecephys.errors import RangeNotSupported, TransientSourceError
from ecephys.sources.base import Source
from ecephys.sources.block_cache import DiskBlockCache
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
    block_cache
        A folder for an on-disk copy of the blocks read (:class:`DiskBlockCache`): a second
        open of the same object reads them from disk. Keyed by URL, size and ETag, so a
        changed object is fetched afresh; it costs one HEAD request per open.

    Attributes
    ----------
    bytes_fetched
        Body bytes received from the source so far.
    requests
        Requests made so far (the size lookup and every range request, retries included).
    """

    #: Reads at least this long (bytes) skip the block cache (see :meth:`readinto`).
    DIRECT_READ = 16 * MIB

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
        block_cache: str | os.PathLike | None = None,
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
        self.disk: DiskBlockCache | None = None
        etag = None
        if size is None or block_cache is not None:
            info = self.policy.call(self._info)
            if info.size is None:
                raise RangeNotSupported(
                    f"{info.url}: the server does not say how long the object is, so it cannot be "
                    "read in parts; download the whole file instead (ecephys.cache.download.fetch, "
                    "or EcephysProjectCache.get_session_data without stream=True).",
                    url=info.url,
                )
            size, etag = info.size, info.etag
        self.size = int(size)
        self.block_size = int(block_size) if block_size is not None else default_block_size(self.size)
        self.split_size = max(int(split_size), self.block_size)
        self.name = source.url(key)
        if block_cache is not None:
            self.disk = DiskBlockCache(block_cache, self.name, self.size, etag, self.block_size)
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
        """Fill ``buffer`` from the current position (fewer bytes only at the end of the file).

        A read of :attr:`DIRECT_READ` bytes or more (a whole dataset, say) goes straight into
        ``buffer`` in parallel parts, past the block cache: it would only evict the cache, and
        each copy of a few hundred MB costs as much as the network.
        """
        self._check_open()
        view = memoryview(buffer).cast("B")
        stop = min(self._pos + len(view), self.size)
        if stop - self._pos >= self.DIRECT_READ and self.disk is None:
            n = self._read_direct(self._pos, stop, view)
        else:
            data = self.pread(self._pos, len(view))
            view[: len(data)] = data
            n = len(data)
        self._pos += n
        return n

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
                if self.disk is not None:
                    self.disk.close()
        super().close()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as what reopens it — source, key, size, settings — not its cached blocks.

        Unpickling opens a fresh RemoteFile (counters at 0) where it lands, a Dask worker say;
        a ``block_cache`` folder is reused there if that machine has it (created if not).
        """
        settings = dict(
            block_size=self.block_size,
            cache_blocks=self.cache_blocks,
            readahead=self.max_readahead,
            split_size=self.split_size,
            max_workers=self.max_workers,
            retries=self.policy,
            size=self.size,
            block_cache=None if self.disk is None else self.disk.folder,
        )
        return (functools.partial(RemoteFile, self.source, self.key, **settings), ())

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

    def _read_direct(self, start: int, stop: int, view: memoryview) -> int:
        """Bytes ``[start, stop)`` into ``view`` as parallel ranges of ``split_size``; returns the count."""
        spans = [(a, min(a + self.split_size, stop)) for a in range(start, stop, self.split_size)]

        def fill(span: tuple[int, int]) -> None:
            view[span[0] - start : span[1] - start] = self._get(*span)

        with self._lock:
            self._last_end, self._readahead = stop, 0
            for _ in self._executor().map(fill, spans):
                pass
        return stop - start

    def _executor(self) -> ThreadPoolExecutor:
        """The thread pool for parallel range requests, made on first use."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="ecephys-remote")
        return self._pool

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
            block = self.disk.get(index) if self.disk is not None else None
            if block is not None:
                self._blocks[index] = have[index] = block
                continue
            if runs and runs[-1][1] == index:
                runs[-1][1] = index + 1
            else:
                runs.append([index, index + 1])
        if not runs:
            return have
        if ahead:
            end = min(runs[-1][1] + ahead, n_blocks)
            while runs[-1][1] < end and not self._held(runs[-1][1]):
                runs[-1][1] += 1
        spans = []
        for a, b in runs:
            start, stop = a * self.block_size, min(b * self.block_size, self.size)
            step = self.split_size - self.split_size % self.block_size
            spans.extend((s, min(s + step, stop)) for s in range(start, stop, step))
        if len(spans) == 1:
            results = [self._get(*spans[0])]
        else:
            results = list(self._executor().map(lambda span: self._get(*span), spans))
        fetched: dict[int, bytes] = {}
        for (start, _), data in zip(spans, results, strict=True):
            for offset in range(0, len(data), self.block_size):
                index = (start + offset) // self.block_size
                fetched[index] = data[offset : offset + self.block_size]
        for index, block in fetched.items():
            self._blocks[index] = block
            self._blocks.move_to_end(index)
            if self.disk is not None:
                self.disk.put(index, block)
        if self.disk is not None:
            self.disk.flush()
        while len(self._blocks) > self.cache_blocks:
            self._blocks.popitem(last=False)
        fetched.update(have)
        return fetched

    def _held(self, index: int) -> bool:
        """Whether block ``index`` is in memory or in the on-disk cache (no fetch needed)."""
        return index in self._blocks or (self.disk is not None and bool(self.disk.present[index]))

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
