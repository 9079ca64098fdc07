"""An on-disk cache of a remote object's blocks, so a second open of a streamed file is local.

One sparse local file per remote object (``<id>.blocks``, as long as the object, holes where
nothing was read) and a presence map (``<id>.present``, one byte per block). The id hashes the
object's URL, size, ETag and the block size, so a changed object or another block size starts
afresh. Data is written before its presence byte, so a crash leaves at worst a block that is
fetched again, never a block that is believed and wrong. Two processes sharing the folder at
worst fetch a block twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

__all__ = ["DiskBlockCache"]

log = logging.getLogger(__name__)


class DiskBlockCache:
    """Blocks ``[i * block_size, (i + 1) * block_size)`` of one remote object, kept on disk.

    A failed write (a full disk, a read-only folder) is logged once and turns the cache off
    for this object; reading goes on from the network.
    """

    def __init__(self, folder: str | os.PathLike, url: str, size: int, etag: str | None, block_size: int):
        self.folder = Path(folder)
        self.size = int(size)
        self.block_size = int(block_size)
        ident = hashlib.sha256(f"{url}\0{size}\0{etag}\0{block_size}".encode()).hexdigest()[:32]
        self.data_path = self.folder / f"{ident}.blocks"
        self.present_path = self.folder / f"{ident}.present"
        n_blocks = -(-self.size // self.block_size)
        self._dirty = False
        self._file = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.present = _read_present(self.present_path, n_blocks)
            if not self.data_path.exists():
                self.present[:] = 0
            self._file = open(self.data_path, "r+b" if self.data_path.exists() else "w+b")  # noqa: SIM115
            if os.fstat(self._file.fileno()).st_size != self.size:
                self._file.truncate(self.size)  # sparse: no disk space until blocks are written
            meta = self.folder / f"{ident}.json"
            if not meta.exists():
                described = {"url": url, "size": size, "etag": etag, "block_size": block_size}
                meta.write_text(json.dumps(described))
        except OSError as err:
            self._disable(err)
            self.present = np.zeros(n_blocks, dtype=np.uint8)

    def __repr__(self) -> str:
        return f"<DiskBlockCache {self.data_path} ({int(self.present.sum())}/{self.present.size} blocks)>"

    @property
    def enabled(self) -> bool:
        """Whether blocks are read from and written to disk (False after a failed write)."""
        return self._file is not None

    def get(self, index: int) -> bytes | None:
        """Block ``index`` from disk, or None when it is not there."""
        if self._file is None or not self.present[index]:
            return None
        start = index * self.block_size
        length = min(self.block_size, self.size - start)
        data = os.pread(self._file.fileno(), length, start)
        return data if len(data) == length else None

    def put(self, index: int, data: bytes) -> None:
        """Keep block ``index`` (its data first, then its presence byte)."""
        if self._file is None or self.present[index]:
            return
        try:
            os.pwrite(self._file.fileno(), data, index * self.block_size)
        except OSError as err:
            self._disable(err)
            return
        self.present[index] = 1
        self._dirty = True

    def flush(self) -> None:
        """Write the presence map (atomically: a temporary file renamed over the old one)."""
        if self._file is None or not self._dirty:
            return
        try:
            self._file.flush()
            tmp = self.present_path.with_name(f"{self.present_path.name}.{os.getpid()}.tmp")
            merged = np.maximum(self.present, _read_present(self.present_path, self.present.size))
            tmp.write_bytes(merged.tobytes())
            os.replace(tmp, self.present_path)
            self._dirty = False
        except OSError as err:
            self._disable(err)

    def close(self) -> None:
        """Flush the presence map and close the data file."""
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None

    def _disable(self, err: OSError) -> None:
        log.warning(
            "%s: on-disk block cache off for this file (%s); reading from the network", self.folder, err
        )
        if self._file is not None:
            self._file.close()
        self._file = None


def _read_present(path: Path, n_blocks: int) -> np.ndarray:
    """The presence map at ``path`` (zeros when missing or of another length)."""
    try:
        present = np.frombuffer(path.read_bytes(), dtype=np.uint8).copy()
    except FileNotFoundError:
        return np.zeros(n_blocks, dtype=np.uint8)
    return present if present.size == n_blocks else np.zeros(n_blocks, dtype=np.uint8)
