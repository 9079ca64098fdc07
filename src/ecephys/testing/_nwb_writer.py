"""Write NWB 2.7 objects with plain h5py, laid out the way hdmf lays them out.

Generic building blocks: neurodata-type stamps, text datasets, DynamicTable columns with
ragged indexes, TimeSeries, TimeIntervals, the NWBFile skeleton and a block-wise writer for
large (optionally directly deflated) datasets. ``_allen_layout`` builds the Allen files from
these; nothing here knows how the synthetic data are made.
"""

from __future__ import annotations

import os
import uuid
import zlib
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import h5py
import numpy as np

NWB_VERSION = "2.7.0"
TEXT = h5py.string_dtype("utf-8")
ASCII_TEXT = h5py.string_dtype("ascii")
TIMESERIES_REF = np.dtype([("idx_start", "<i4"), ("count", "<i4"), ("timeseries", h5py.ref_dtype)])
# zlib level of chunks stored by ``StreamWriter(direct=True)``. The dataset's filter pipeline
# still records its own gzip level (9 for the Allen LFP); inflating does not depend on the
# level, only the compressed size does (on the synthetic LFP: 3 % larger than level 9, and
# 6x faster to write).
FAST_DEFLATE_LEVEL = 1


@dataclass(frozen=True)
class Column:
    """One DynamicTable column: values (flat when ragged) and, for ragged ones, end offsets."""

    name: str
    data: np.ndarray
    description: str = "no description"
    offsets: np.ndarray | None = None
    neurodata_type: str = "VectorData"
    namespace: str = "hdmf-common"


# --------------------------------------------------------------------------- primitives


def mark(obj: h5py.Group | h5py.Dataset, neurodata_type: str, namespace: str = "core") -> None:
    """Stamp ``obj`` with its NWB type, namespace and a fresh uuid4 ``object_id``."""
    obj.attrs["namespace"] = namespace
    obj.attrs["neurodata_type"] = neurodata_type
    obj.attrs["object_id"] = str(uuid.uuid4())


def text_array(values: Sequence[str] | np.ndarray) -> np.ndarray:
    """Python strings as an object array, ready for a variable-length UTF-8 dataset."""
    out = np.empty(len(values), dtype=object)
    out[:] = [str(v) for v in values]
    return out


def write_text(parent: h5py.Group, name: str, value: str, *, ascii: bool = False) -> h5py.Dataset:
    """A scalar variable-length string dataset (UTF-8, or ASCII as hdmf uses for datetimes)."""
    return parent.create_dataset(name, data=value, dtype=ASCII_TEXT if ascii else TEXT)


def set_text_list_attr(obj: h5py.Group, name: str, values: Sequence[str]) -> None:
    """A 1-D variable-length UTF-8 string attribute, such as a table's ``colnames``."""
    obj.attrs.create(name, data=text_array(values), dtype=TEXT)


def index_dtype(max_offset: int) -> np.dtype:
    """The smallest unsigned integer type that holds ``max_offset``, as hdmf picks for VectorIndex."""
    for bits in (8, 16, 32):
        if max_offset < 2**bits:
            return np.dtype(f"uint{bits}")
    return np.dtype("uint64")


def vector_data(
    parent: h5py.Group,
    name: str,
    data: np.ndarray,
    description: str = "no description",
    *,
    neurodata_type: str = "VectorData",
    namespace: str = "hdmf-common",
) -> h5py.Dataset:
    """Write one table column; object arrays become variable-length UTF-8 strings."""
    is_text = data.dtype == object and h5py.check_ref_dtype(data.dtype) is None
    dset = parent.create_dataset(name, data=data, dtype=TEXT if is_text else data.dtype)
    mark(dset, neurodata_type, namespace)
    dset.attrs["description"] = description
    return dset


def vector_index(parent: h5py.Group, target: h5py.Dataset, offsets: np.ndarray) -> h5py.Dataset:
    """Write ``<target>_index``: cumulative end offsets of a ragged column, with a ``target`` ref."""
    offsets = np.asarray(offsets, dtype=np.int64)
    max_offset = int(offsets[-1]) if offsets.size else 0
    name = target.name.rsplit("/", 1)[-1]
    dset = parent.create_dataset(f"{name}_index", data=offsets.astype(index_dtype(max_offset)))
    mark(dset, "VectorIndex", "hdmf-common")
    dset.attrs["description"] = f"Index for VectorData '{name}'"
    dset.attrs["target"] = target.ref
    return dset


def element_ids(parent: h5py.Group, ids: np.ndarray) -> h5py.Dataset:
    """Write a table's ``id`` column (ElementIdentifiers, int64)."""
    dset = parent.create_dataset("id", data=np.asarray(ids, dtype=np.int64))
    mark(dset, "ElementIdentifiers", "hdmf-common")
    return dset


def dynamic_table(
    parent: h5py.Group,
    name: str,
    *,
    ids: np.ndarray,
    columns: Sequence[Column],
    neurodata_type: str = "DynamicTable",
    namespace: str = "hdmf-common",
    description: str = "",
) -> h5py.Group:
    """Write a DynamicTable (or subtype) with its ``colnames``, ids, columns and ragged indexes."""
    group = parent.create_group(name)
    mark(group, neurodata_type, namespace)
    group.attrs["description"] = description
    set_text_list_attr(group, "colnames", [c.name for c in columns])
    element_ids(group, ids)
    for col in columns:
        dset = vector_data(
            group,
            col.name,
            col.data,
            col.description,
            neurodata_type=col.neurodata_type,
            namespace=col.namespace,
        )
        if col.offsets is not None:
            vector_index(group, dset, col.offsets)
    return group


def set_data_attrs(dset: h5py.Dataset, unit: str) -> None:
    """TimeSeries ``data`` attributes: unit, conversion 1, offset 0, resolution -1 (unknown)."""
    dset.attrs["conversion"] = np.float64(1.0)
    dset.attrs["offset"] = np.float64(0.0)
    dset.attrs["resolution"] = np.float64(-1.0)
    dset.attrs["unit"] = unit


def set_timestamp_attrs(dset: h5py.Dataset) -> None:
    """TimeSeries ``timestamps`` attributes: interval 1 and unit seconds."""
    dset.attrs["interval"] = np.int64(1)
    dset.attrs["unit"] = "seconds"


def time_series_group(parent: h5py.Group, name: str, neurodata_type: str = "TimeSeries") -> h5py.Group:
    """An empty TimeSeries group with the default comments and description."""
    group = parent.create_group(name)
    mark(group, neurodata_type)
    group.attrs["comments"] = "no comments"
    group.attrs["description"] = "no description"
    return group


def time_series(
    parent: h5py.Group,
    name: str,
    data: np.ndarray,
    unit: str,
    *,
    timestamps: np.ndarray | None = None,
    timestamps_link: str | None = None,
) -> h5py.Group:
    """A TimeSeries with explicit timestamps, or with a soft link to another series' timestamps."""
    group = time_series_group(parent, name)
    set_data_attrs(group.create_dataset("data", data=data), unit)
    if timestamps_link is not None:
        group["timestamps"] = h5py.SoftLink(timestamps_link)
    else:
        set_timestamp_attrs(group.create_dataset("timestamps", data=np.asarray(timestamps, dtype=np.float64)))
    return group


def processing_module(nwb: h5py.File, name: str, description: str) -> h5py.Group:
    """A ProcessingModule under /processing."""
    group = nwb.require_group("processing").create_group(name)
    mark(group, "ProcessingModule")
    group.attrs["description"] = description
    return group


def timeseries_refs(target: h5py.Group, rows: np.ndarray) -> np.ndarray:
    """TimeSeriesReferenceVectorData rows: one sample of ``target`` per row at index ``rows``."""
    out = np.zeros(len(rows), dtype=TIMESERIES_REF)
    out["idx_start"] = rows
    out["count"] = 1
    out["timeseries"] = target.ref
    return out


def time_intervals(
    parent: h5py.Group,
    name: str,
    *,
    description: str,
    columns: Sequence[Column],
    tags: Sequence[Sequence[str]],
    timeseries: h5py.Group | None = None,
    timeseries_rows: np.ndarray | None = None,
) -> h5py.Group:
    """A TimeIntervals table: the given columns, ragged ``tags`` and optionally ``timeseries``."""
    n = len(tags)
    tag_values = text_array([t for row in tags for t in row])
    tag_offsets = np.cumsum([len(row) for row in tags])
    cols = [*columns, Column("tags", tag_values, "user-defined tags", offsets=tag_offsets)]
    if timeseries is not None:
        refs = timeseries_refs(timeseries, np.asarray(timeseries_rows))
        cols.append(
            Column(
                "timeseries",
                refs,
                "index into a TimeSeries object",
                offsets=np.arange(1, n + 1),
                neurodata_type="TimeSeriesReferenceVectorData",
                namespace="core",
            )
        )
    return dynamic_table(
        parent,
        name,
        ids=np.arange(n),
        columns=cols,
        neurodata_type="TimeIntervals",
        namespace="core",
        description=description,
    )


# --------------------------------------------------------------------------- file skeleton


def start_nwb_file(
    nwb: h5py.File, *, identifier: str, session_description: str, session_start_time: str
) -> None:
    """Root attributes, the required root datasets and the empty standard groups of an NWBFile."""
    nwb.attrs["namespace"] = "core"
    nwb.attrs["neurodata_type"] = "NWBFile"
    nwb.attrs["nwb_version"] = NWB_VERSION
    nwb.attrs["object_id"] = str(uuid.uuid4())
    write_text(nwb, "identifier", identifier)
    write_text(nwb, "session_description", session_description)
    write_text(nwb, "session_start_time", session_start_time, ascii=True)
    write_text(nwb, "timestamps_reference_time", session_start_time, ascii=True)
    created = datetime.now(UTC).isoformat()
    nwb.create_dataset("file_create_date", data=np.array([created], dtype=object), dtype=ASCII_TEXT)
    for name in (
        "acquisition",
        "analysis",
        "general",
        "processing",
        "stimulus/presentation",
        "stimulus/templates",
    ):
        nwb.require_group(name)


# --------------------------------------------------------------------------- LFP streaming


class StreamWriter:
    """Fill a dataset along its first axis, block by block, in order.

    With ``direct=True`` (chunked, gzip datasets) each full chunk is deflated on a worker
    thread (zlib releases the GIL) and stored with ``write_direct_chunk``; blocks must then start
    on chunk boundaries. Otherwise blocks are simply assigned and HDF5 applies any filter.
    """

    def __init__(self, dset: h5py.Dataset, *, direct: bool, pool: ThreadPoolExecutor | None = None) -> None:
        self.dset = dset
        self.direct = direct
        self.pool = pool
        self.pending: deque[tuple[tuple[int, ...], Future[bytes]]] = deque()
        self.max_pending = 4 * (os.cpu_count() or 1)

    def write(self, start: int, block: np.ndarray) -> None:
        """Store ``block`` at rows ``start:start+len(block)``."""
        if not self.direct:
            self.dset[start : start + len(block)] = block
            return
        rows = self.dset.chunks[0]
        if start % rows:
            raise ValueError(f"{self.dset.name}: block start {start} is not on a {rows}-row chunk boundary")
        for offset in range(0, len(block), rows):
            piece = block[offset : offset + rows]
            if len(piece) < rows:  # HDF5 stores edge chunks at full size
                padded = np.zeros((rows, *piece.shape[1:]), dtype=self.dset.dtype)
                padded[: len(piece)] = piece
                piece = padded
            payload = np.ascontiguousarray(piece, dtype=self.dset.dtype)  # zlib reads the buffer
            coords = (start + offset,) + (0,) * (self.dset.ndim - 1)
            if self.pool is None:
                self.dset.id.write_direct_chunk(coords, zlib.compress(payload, FAST_DEFLATE_LEVEL))
                continue
            self.pending.append((coords, self.pool.submit(zlib.compress, payload, FAST_DEFLATE_LEVEL)))
            while len(self.pending) > self.max_pending:
                self._flush_one()

    def _flush_one(self) -> None:
        coords, future = self.pending.popleft()
        self.dset.id.write_direct_chunk(coords, future.result())

    def close(self) -> None:
        """Wait for the outstanding chunks and store them."""
        while self.pending:
            self._flush_one()


def electrodes_region(series: h5py.Group, table: h5py.Group, n_rows: int, description: str) -> None:
    """The ElectricalSeries' ``electrodes`` DynamicTableRegion: rows 0..n-1 of ``table``."""
    dset = series.create_dataset("electrodes", data=np.arange(n_rows, dtype=np.int64))
    mark(dset, "DynamicTableRegion", "hdmf-common")
    dset.attrs["description"] = description
    dset.attrs["table"] = table.ref
