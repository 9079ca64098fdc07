"""The public S3 bucket, read anonymously over plain HTTPS.

Why not boto3: the bucket is public, so requests need no signature, and S3's REST interface for
reading is plain HTTP — GET with Range, HEAD for size and ETag, and ``?list-type=2`` for a
listing. Going through :class:`~ecephys.sources.http.HTTPSource` gives S3 the same per-read
timeout, the same Range/If-Range handling and the same error mapping as the warehouse, with
no 80 MB botocore dependency, no second retry layer under ours, and no credential lookup (a
stray ``~/.aws`` profile cannot break anonymous reads). ``endpoint_url`` points it at any
S3-compatible server (moto in the tests, a MinIO mirror) with path-style URLs.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ecephys.errors import SourceError
from ecephys.sources.base import DEFAULT_CHUNK_SIZE, ChunkStream, ObjectInfo
from ecephys.sources.http import HTTPSource

__all__ = ["ALLEN_BUCKET", "ALLEN_PREFIX", "S3Source"]

ALLEN_BUCKET = "allen-brain-observatory"
ALLEN_PREFIX = "visual-coding-neuropixels/ecephys-cache/"
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class S3Source:
    """Objects under ``s3://<bucket>/<prefix>``; keys are relative to the prefix.

    Parameters
    ----------
    bucket, prefix
        Where the cache layout starts (default: the Allen Visual Coding – Neuropixels cache).
    endpoint_url
        An S3-compatible server (``http://127.0.0.1:PORT``) addressed path-style; None for AWS,
        addressed as ``https://<bucket>.s3.<region>.amazonaws.com``.
    region
        The bucket's AWS region (the Allen bucket is in us-west-2).
    timeout, connect_timeout
        Seconds per socket read, and to connect.
    list_page_size
        Keys per listing request (S3 answers at most 1000).
    """

    def __init__(
        self,
        bucket: str = ALLEN_BUCKET,
        prefix: str = ALLEN_PREFIX,
        *,
        endpoint_url: str | None = None,
        region: str = "us-west-2",
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        list_page_size: int = 1000,
    ) -> None:
        self.bucket = bucket
        self.list_page_size = list_page_size
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.endpoint_url = endpoint_url
        self.region = region
        if endpoint_url is None:
            bucket_url = f"https://{bucket}.s3.{region}.amazonaws.com/"
        else:
            bucket_url = f"{endpoint_url.rstrip('/')}/{bucket}/"
        self.http = HTTPSource(bucket_url, timeout=timeout, connect_timeout=connect_timeout)

    def __repr__(self) -> str:
        return f"S3Source({self.bucket!r}, {self.prefix!r}, endpoint_url={self.endpoint_url!r})"

    def _key(self, key: str) -> str:
        """The object key in the bucket."""
        return self.prefix + key.lstrip("/")

    def url(self, key: str) -> str:
        """The HTTPS (or endpoint) URL of ``key``."""
        return self.http.url(self._key(key))

    def info(self, key: str) -> ObjectInfo:
        """Size in bytes and ETag from a HEAD request."""
        return self.http.info(self._key(key))

    def read_range(self, key: str, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` of ``key``."""
        return self.http.read_range(self._key(key), start, stop)

    def iter_chunks(
        self,
        key: str,
        start: int = 0,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        if_range: str | None = None,
    ) -> ChunkStream:
        """Stream ``key`` from byte ``start`` (see :meth:`HTTPSource.iter_chunks`)."""
        return self.http.iter_chunks(self._key(key), start, chunk_size=chunk_size, if_range=if_range)

    def list(self, prefix: str = "") -> list[str]:
        """Keys under ``prefix`` (relative to the source's prefix), sorted; follows S3's paging."""
        keys: list[str] = []
        token: str | None = None
        while True:
            params = {
                "list-type": "2",
                "prefix": self._key(prefix) if prefix else self.prefix,
                "max-keys": str(self.list_page_size),
            }
            if token:
                params["continuation-token"] = token
            response = self.http.get("", params)
            page, token = _parse_listing(response.content, str(response.url))
            keys.extend(k[len(self.prefix) :] for k in page if k.startswith(self.prefix))
            if not token:
                return sorted(keys)

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()


def _parse_listing(body: bytes, url: str) -> tuple[list[str], str | None]:
    """Keys and the continuation token (None on the last page) of a ListObjectsV2 answer."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise SourceError(
            f"{url}: expected an S3 ListBucketResult XML document, got {body[:80]!r}; "
            "check endpoint_url and bucket.",
            url=url,
        ) from exc
    ns = _NS if root.tag.startswith(_NS) else ""
    keys = [el.text or "" for el in root.iterfind(f"{ns}Contents/{ns}Key")]
    truncated = (root.findtext(f"{ns}IsTruncated") or "false").strip().lower() == "true"
    token = root.findtext(f"{ns}NextContinuationToken") if truncated else None
    return keys, token
