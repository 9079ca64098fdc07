"""Where bytes come from: one narrow interface (:class:`Source`) and its implementations.

:class:`HTTPSource` (plain HTTP(S) with Range), :class:`WarehouseClient` (the Allen warehouse
API: tables and file links), :class:`S3Source` (the public bucket, unsigned), and
:class:`LocalSource` (a folder); :class:`RemoteFile` reads any of them as a seekable file
(for h5py) through a block cache. Sources move bytes; they never parse NWB and never retry on
their own — :class:`RetryPolicy` and :mod:`ecephys.cache.download` do.
"""

from ecephys.sources.base import ChunkStream, ObjectInfo, Source
from ecephys.sources.http import HTTPSource
from ecephys.sources.local import LocalSource
from ecephys.sources.remote_file import RemoteFile
from ecephys.sources.retry import RetryPolicy
from ecephys.sources.s3 import S3Source
from ecephys.sources.warehouse import WarehouseClient

__all__ = [
    "ChunkStream",
    "HTTPSource",
    "LocalSource",
    "ObjectInfo",
    "RemoteFile",
    "RetryPolicy",
    "S3Source",
    "Source",
    "WarehouseClient",
]
