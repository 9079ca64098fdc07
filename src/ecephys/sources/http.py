"""Plain HTTP(S) with Range requests, over httpx: the transport under the warehouse and S3.

Every failure becomes an ecephys error naming the URL: 404/410 → :class:`RemoteNotFound`;
timeouts, resets, truncated bodies, 408/429/5xx → :class:`TransientSourceError` (the caller
retries); other answers → :class:`SourceError`. Timeouts are per read (``timeout`` seconds
without a byte), not per transfer, so a 3 GB file on a slow line is fine while a stalled
one fails fast.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn
from urllib.parse import quote

import httpx

from ecephys.errors import RangeNotSupported, RemoteNotFound, SourceError, TransientSourceError
from ecephys.sources.base import DEFAULT_CHUNK_SIZE, ChunkStream, ObjectInfo, check_range

__all__ = ["HTTPSource", "parse_content_range"]

USER_AGENT = "ecephys-python (Neuropixels data client)"
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.IGNORECASE)
_TRANSIENT_STATUS = frozenset({408, 425, 429})


def parse_content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """``(first, last, total)`` from ``bytes first-last/total`` (or ``bytes */total``); None if absent."""
    if not value:
        return None, None, None
    match = _CONTENT_RANGE.match(value)
    if match is None:
        return None, None, None
    first, last, total = match.groups()
    return (
        None if first is None else int(first),
        None if last is None else int(last),
        None if total == "*" else int(total),
    )


def _strong_etag(etag: str | None) -> str | None:
    """The ETag if it is a strong validator (usable in If-Range), else None."""
    if not etag or etag.startswith(("W/", "w/")):
        return None
    return etag


class HTTPSource:
    """Objects under ``base_url`` (a key is a path below it, or a full ``http(s)://`` URL).

    Parameters
    ----------
    base_url
        Prefix for relative keys, e.g. ``"https://host/data/"``; ``""`` when keys are full URLs.
    timeout
        Seconds to wait for each read (and each write) on the socket; not a limit on a transfer.
    connect_timeout
        Seconds to wait for a connection.
    headers
        Extra headers sent with every request.
    """

    def __init__(
        self,
        base_url: str = "",
        *,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = base_url
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self._client: httpx.Client | None = None

    # ------------------------------------------------------------------ plumbing

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, timeout={self.timeout})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_client"] = None  # a connection pool does not travel to another process
        return state

    @property
    def client(self) -> httpx.Client:
        """The httpx client, made on first use (one connection pool per source)."""
        if self._client is None:
            self._client = httpx.Client(
                timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
                headers=self.headers,
                follow_redirects=True,
            )
        return self._client

    def close(self) -> None:
        """Close the connection pool (a later request opens a new one)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> HTTPSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, key: str) -> str:
        """``key`` itself when it is a full URL, else ``base_url`` + the key, percent-quoted."""
        if "://" in key:
            return key
        if not self.base_url:
            raise ValueError(f"key={key!r}: a relative key needs a base_url; pass a full URL instead")
        return self.base_url.rstrip("/") + "/" + quote(key.lstrip("/"), safe="/:@!$&'()*+,;=~")

    def _send(self, method: str, url: str, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """Send a request and return the streaming response, mapping transport failures."""
        try:
            request = self.client.build_request(method, url, headers=headers)
            return self.client.send(request, stream=True)
        except httpx.TransportError as exc:
            _raise_transport(exc, url, self.timeout)

    # ------------------------------------------------------------------ the interface

    def info(self, key: str) -> ObjectInfo:
        """Size (bytes), ETag and URL from a HEAD request (a 1-byte GET if HEAD is refused)."""
        url = self.url(key)
        response = self._send("HEAD", url, {"Accept-Encoding": "identity"})
        try:
            if response.status_code not in (405, 501):
                _check_status(response, url)
                size = _int_header(response, "Content-Length")
                if size is not None:
                    return _object_info(response, url, size)
        finally:
            response.close()
        response = self._send("GET", url, {"Accept-Encoding": "identity", "Range": "bytes=0-0"})
        try:
            _check_status(response, url)
            if response.status_code == 206:
                size = parse_content_range(response.headers.get("Content-Range"))[2]
            else:
                size = _int_header(response, "Content-Length")
            return _object_info(response, url, size)
        finally:
            response.close()

    def read_range(self, key: str, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` of ``key``; fewer when the object ends before ``stop``.

        Raises :class:`RangeNotSupported` when the server answers a Range request with the
        whole object (download the file with ``ecephys.cache.download.fetch`` instead).
        """
        check_range(start, stop)
        if stop == start:
            return b""
        url = self.url(key)
        headers = {"Accept-Encoding": "identity", "Range": f"bytes={start}-{stop - 1}"}
        response = self._send("GET", url, headers)
        try:
            if response.status_code == 416:
                return b""
            _check_status(response, url)
            if response.status_code != 206:
                raise RangeNotSupported(
                    f"{url}: asked for bytes {start}-{stop - 1} but the server answered "
                    f"{response.status_code} with the whole object; this server cannot serve "
                    "random access — download the whole file instead.",
                    url=url,
                )
            first = parse_content_range(response.headers.get("Content-Range"))[0]
            _check_first_byte(first, start, url)
            return b"".join(_iter_body(response, DEFAULT_CHUNK_SIZE, url, self.timeout))[: stop - start]
        finally:
            response.close()

    def iter_chunks(
        self,
        key: str,
        start: int = 0,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        if_range: str | None = None,
    ) -> ChunkStream:
        """Stream ``key`` from byte ``start`` in chunks of at most ``chunk_size`` bytes.

        Sends ``Range: bytes=start-`` (and ``If-Range`` when ``if_range`` is a strong ETag).
        When the server ignores the range or the ETag no longer matches, the stream starts
        at 0: check ``stream.start``. A start at or past the end gives an empty stream.
        """
        check_range(start)
        url = self.url(key)
        headers = {"Accept-Encoding": "identity"}
        if start > 0:
            headers["Range"] = f"bytes={start}-"
            if _strong_etag(if_range):
                headers["If-Range"] = str(if_range)
        response = self._send("GET", url, headers)
        try:
            begin, size = self._stream_position(response, url, start)
        except BaseException:
            response.close()
            raise
        etag = response.headers.get("ETag")
        if begin is None:  # 416: nothing left to send
            response.close()
            return ChunkStream(iter(()), requested_start=start, start=start, size=size, etag=etag, url=url)
        return ChunkStream(
            _iter_body(response, chunk_size, url, self.timeout),
            requested_start=start,
            start=begin,
            size=size,
            etag=etag,
            url=url,
            close=response.close,
        )

    def _stream_position(
        self, response: httpx.Response, url: str, start: int
    ) -> tuple[int | None, int | None]:
        """``(first byte of the body or None for an empty answer, object size)`` of a GET."""
        if response.status_code == 416:
            total = parse_content_range(response.headers.get("Content-Range"))[2]
            return None, total
        _check_status(response, url)
        if response.status_code == 206:
            first, _, total = parse_content_range(response.headers.get("Content-Range"))
            _check_first_byte(first, start, url)
            return start, total
        return 0, _int_header(response, "Content-Length")

    def list(self, prefix: str = "") -> list[str]:
        """Plain HTTP has no listing: raises NotImplementedError (use S3Source or LocalSource)."""
        raise NotImplementedError(
            f"{self!r}: a plain HTTP server cannot list keys under {prefix!r}; "
            "use S3Source or LocalSource to list, or name the keys."
        )

    def get(self, path: str, params: Mapping[str, str] | str | None = None) -> httpx.Response:
        """GET ``path`` (relative to ``base_url``, or a full URL) with query ``params``; a read answer.

        ``params`` is a mapping (encoded by httpx) or a ready query string, sent as it is (the
        warehouse's RMA language wants its brackets and quotes). Non-2xx answers raise.
        """
        url = self.url(path)
        if isinstance(params, str):
            url = f"{url}?{params}"
            params = None
        try:
            response = self.client.get(url, params=params)
        except httpx.TransportError as exc:
            _raise_transport(exc, url, self.timeout)
        _check_status(response, str(response.url))
        return response

    def get_json(self, path: str, params: Mapping[str, str] | str | None = None) -> Any:
        """The parsed JSON answer to a GET of ``path`` with ``params`` (see :meth:`get`)."""
        response = self.get(path, params)
        try:
            return response.json()
        except ValueError as exc:
            kind = response.headers.get("Content-Type", "no content type")
            raise SourceError(
                f"{response.url}: expected JSON but got {kind} starting {response.content[:80]!r}; "
                "the server may be down or behind a captive portal — try again later.",
                url=str(response.url),
            ) from exc


# ---------------------------------------------------------------------- helpers


def _int_header(response: httpx.Response, name: str) -> int | None:
    """An integer header (bytes), or None when absent or malformed."""
    value = response.headers.get(name)
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def _object_info(response: httpx.Response, url: str, size: int | None) -> ObjectInfo:
    """ObjectInfo from a HEAD or ranged-GET answer."""
    ranges = response.headers.get("Accept-Ranges")
    return ObjectInfo(
        size=size,
        etag=response.headers.get("ETag"),
        url=url,
        last_modified=response.headers.get("Last-Modified"),
        accepts_ranges=None if ranges is None else ranges.strip().lower() == "bytes",
    )


def _check_first_byte(first: int | None, start: int, url: str) -> None:
    """A 206 must begin where it was asked to."""
    if first != start:
        raise SourceError(
            f"{url}: asked for bytes from {start} but the server's Content-Range starts at {first}; "
            "the server is misbehaving — report it, or download from another source.",
            url=url,
        )


def _check_status(response: httpx.Response, url: str) -> None:
    """Raise the ecephys error for a non-2xx answer (the body is never handed on)."""
    code = response.status_code
    if 200 <= code < 300:
        return
    reason = response.reason_phrase or ""
    if code in (404, 410):
        raise RemoteNotFound(
            f"{url}: the server answered {code} {reason} — no such object; check the id or key "
            "(the dataset may have moved).",
            url=url,
        )
    if code >= 500 or code in _TRANSIENT_STATUS:
        raise TransientSourceError(
            f"{url}: the server answered {code} {reason}; this is usually temporary and is retried.",
            url=url,
        )
    raise SourceError(f"{url}: the server answered {code} {reason}{_snippet(response)}.", url=url)


def _snippet(response: httpx.Response) -> str:
    """The first few hundred characters of an error answer, for the message."""
    try:
        body = response.content[:300]
    except httpx.ResponseNotRead:
        try:
            body = next(response.iter_raw(300), b"")
        except (httpx.HTTPError, httpx.StreamError):
            return ""
    text = body.decode("utf-8", "replace").strip()
    return f": {text}" if text else ""


def _raise_transport(exc: httpx.TransportError, url: str, timeout: float) -> NoReturn:
    """Turn an httpx transport failure into a TransientSourceError or SourceError."""
    if isinstance(exc, httpx.TimeoutException):
        raise TransientSourceError(
            f"{url}: timed out ({type(exc).__name__}: nothing arrived within {timeout:g} s); retried.",
            url=url,
        ) from exc
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError):
        raise TransientSourceError(
            f"{url}: the connection failed or was cut ({type(exc).__name__}: {exc}); retried.",
            url=url,
        ) from exc
    raise SourceError(
        f"{url}: the request could not be made ({type(exc).__name__}: {exc}).", url=url
    ) from exc


def _iter_body(response: httpx.Response, chunk_size: int, url: str, timeout: float) -> Iterator[bytes]:
    """The raw body as it arrives, in pieces of at most ``chunk_size`` bytes.

    Pieces are handed on as soon as the socket gives them (not gathered into full chunks),
    so that the bytes received before a connection drops reach the caller.
    """
    try:
        for piece in response.iter_raw():
            for begin in range(0, len(piece), chunk_size):
                yield piece[begin : begin + chunk_size]
    except httpx.TransportError as exc:
        _raise_transport(exc, url, timeout)
    finally:
        response.close()
