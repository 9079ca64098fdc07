"""Real servers on 127.0.0.1 for tests: a Range-aware file server that can misbehave, and S3.

:class:`FileServer` is a threaded HTTP/1.1 server on a free port serving registered files (or
bytes) with ``Range``/206/``Content-Range``/``ETag``/``Last-Modified``/``If-Range`` semantics,
plus routes (the warehouse emulator adds its query endpoint). A :class:`FaultPlan` makes
it misbehave on purpose, per request: answer 503 (with an HTML page), cut the connection after
N body bytes, stall mid-body, lie in ``Content-Length``, or ignore ``Range``. It counts every
body byte it sends, so tests can check how much a client fetched.

:func:`moto_s3` starts moto's S3 server (``moto[server]``) on a free port and uploads a folder
into a bucket. Neither needs pytest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import socket
import struct
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = [
    "Fault",
    "FaultPlan",
    "FileServer",
    "MotoS3",
    "Reply",
    "RequestRecord",
    "moto_s3",
    "upload_folder",
]

log = logging.getLogger(__name__)
_BLOCK = 64 * 1024  # bytes written per socket write
_HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>{code} {reason}</title></head>"
    "<body><h1>{code} {reason}</h1><p>The server is busy; try again later.</p></body></html>"
)


@dataclass(frozen=True)
class Fault:
    """What the server does wrong on one request.

    ``status``: answer this code with an HTML page instead of the content.
    ``drop_after``: cut the connection after this many body bytes (``reset`` sends a TCP RST
    instead of a clean close). ``stall``: pause this many seconds after ``stall_after`` body
    bytes. ``length_delta``: add this to the true ``Content-Length`` (the connection is closed
    after the body). ``ignore_range``: answer 200 with the whole body even to a Range request.
    ``path``: apply only to request paths starting with it; ``methods``: only these methods.
    """

    status: int | None = None
    drop_after: int | None = None
    reset: bool = False
    stall: float = 0.0
    stall_after: int = 0
    length_delta: int = 0
    ignore_range: bool = False
    path: str | None = None
    methods: tuple[str, ...] = ("GET",)

    def applies(self, method: str, path: str) -> bool:
        """Whether this fault is meant for a ``method`` request of ``path``."""
        return method in self.methods and (self.path is None or path.startswith(self.path))


class FaultPlan:
    """Which fault each request meets: queued ones first, then ``hook``, then ``always``.

    ``push(f1, f2)`` makes the next two matching requests meet f1 then f2; ``always`` applies
    to every request once the queue is empty; ``hook(method, path, range_start)`` may return a
    Fault for each request (random drops in soak tests).
    """

    def __init__(self) -> None:
        self._queue: deque[Fault] = deque()
        self._lock = threading.Lock()
        self.always: Fault | None = None
        self.hook: Callable[[str, str, int], Fault | None] | None = None

    def push(self, *faults: Fault) -> None:
        """Queue faults for the next matching requests, in order."""
        with self._lock:
            self._queue.extend(faults)

    def fail_first(
        self, count: int, status: int = 503, *, methods: tuple[str, ...] = ("GET", "HEAD")
    ) -> None:
        """Answer the next ``count`` requests with ``status`` and an HTML page."""
        self.push(*[Fault(status=status, methods=methods)] * count)

    def clear(self) -> None:
        """Forget queued faults, ``always`` and ``hook``."""
        with self._lock:
            self._queue.clear()
        self.always = None
        self.hook = None

    def pending(self) -> int:
        """How many queued faults are still waiting."""
        with self._lock:
            return len(self._queue)

    def next(self, method: str, path: str, range_start: int) -> Fault | None:
        """The fault for this request, if any (consumes a queued one)."""
        with self._lock:
            if self._queue and self._queue[0].applies(method, path):
                return self._queue.popleft()
        if self.hook is not None:
            fault = self.hook(method, path, range_start)
            if fault is not None and fault.applies(method, path):
                return fault
        if self.always is not None and self.always.applies(method, path):
            return self.always
        return None


@dataclass
class RequestRecord:
    """One request as the server saw it and how it answered.

    Recorded before the answer goes out; ``sent`` counts the body bytes handed to the socket
    so far (a drop or a client hang-up stops it).
    """

    method: str
    path: str
    range: str | None
    if_range: str | None
    status: int
    sent: int
    fault: Fault | None


@dataclass
class Reply:
    """A route's answer: status, headers and a body in bytes."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Entry:
    """A registered file: where its bytes are, and its validators."""

    data: bytes | Path
    etag: str | None
    last_modified: str
    content_type: str
    filename: str | None

    @property
    def size(self) -> int:
        """Length in bytes (a missing file counts as absent, see FileServer)."""
        return len(self.data) if isinstance(self.data, bytes) else self.data.stat().st_size

    def exists(self) -> bool:
        """Whether the bytes can be served."""
        return isinstance(self.data, bytes) or self.data.is_file()

    def read(self, start: int, stop: int) -> Iterator[bytes]:
        """The bytes ``[start, stop)`` in blocks."""
        if isinstance(self.data, bytes):
            for pos in range(start, stop, _BLOCK):
                yield self.data[pos : min(pos + _BLOCK, stop)]
            return
        with open(self.data, "rb") as fh:
            fh.seek(start)
            pos = start
            while pos < stop:
                block = fh.read(min(_BLOCK, stop - pos))
                if not block:
                    return
                pos += len(block)
                yield block


class FileServer:
    """A threaded HTTP/1.1 server on ``127.0.0.1`` and a free port; start/stop or ``with``.

    Register content with :meth:`add_file` (a path or bytes) and handlers with
    :meth:`add_route`; set faults on :attr:`faults`. :attr:`records` lists every request and
    :attr:`bytes_sent` counts body bytes, per path in :attr:`bytes_by_path`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._files: dict[str, _Entry] = {}
        self._routes: dict[str, Callable[[str, str], Reply]] = {}
        self.faults = FaultPlan()
        self.records: list[RequestRecord] = []
        self.bytes_by_path: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = _Server((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self  # type: ignore[attr-defined]
        self._address = (host, int(self._httpd.server_address[1]))
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FileServer:
        """Serve in a daemon thread (the socket is bound on construction, so the port is known)."""
        if self._httpd is None:
            raise RuntimeError(f"{self.base_url}: this server was stopped; make a new one")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="ecephys-test-http",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake stalled handlers and close the socket."""
        self._stopping.set()
        if self._httpd is not None:
            if self._thread is not None:
                self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port the server listens on (free, chosen by the system)."""
        return self._address[1]

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, as the AllenSDK's ``host`` argument wants it."""
        return f"{self._address[0]}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}"

    def url(self, path: str) -> str:
        """The full URL of a server path."""
        return f"{self.base_url}/{path.lstrip('/')}"

    # ------------------------------------------------------------------ content

    def add_file(
        self,
        path: str,
        data: bytes | str | Path,
        *,
        etag: str | None | bool = True,
        content_type: str = "application/octet-stream",
        filename: str | None = None,
    ) -> str:
        """Serve ``data`` (bytes, or a file read at each request) at ``path``; returns the URL.

        ``etag`` True derives a strong ETag from the content's size and time (or hash for bytes);
        a string is sent as it is; False/None sends none. A file path that does not exist
        answers 404.
        """
        path = "/" + path.lstrip("/")
        source = data if isinstance(data, bytes) else Path(data)
        if etag is True:
            etag = _make_etag(source)
        self._files[path] = _Entry(
            source,
            etag or None,
            formatdate(_mtime(source), usegmt=True),
            content_type,
            filename,
        )
        return self.url(path)

    def remove_file(self, path: str) -> None:
        """Stop serving ``path``."""
        self._files.pop("/" + path.lstrip("/"), None)

    def add_route(self, path: str, handler: Callable[[str, str], Reply]) -> None:
        """Answer GETs of ``path`` with ``handler(path, raw_query)``."""
        self._routes["/" + path.lstrip("/")] = handler

    # ------------------------------------------------------------------ bookkeeping

    @property
    def bytes_sent(self) -> int:
        """Body bytes sent so far, all paths."""
        with self._lock:
            return sum(self.bytes_by_path.values())

    def requests(self, path: str | None = None, method: str | None = None) -> list[RequestRecord]:
        """Recorded requests, optionally only those for ``path`` and ``method``."""
        path = None if path is None else "/" + path.lstrip("/")
        with self._lock:
            return [
                r
                for r in self.records
                if (path is None or r.path == path) and (method is None or r.method == method)
            ]

    def reset_stats(self) -> None:
        """Forget recorded requests and byte counts."""
        with self._lock:
            self.records.clear()
            self.bytes_by_path.clear()

    def _record(self, record: RequestRecord) -> None:
        """Keep a finished request (its bytes were counted as they went out)."""
        with self._lock:
            self.records.append(record)

    def _count(self, record: RequestRecord, n: int) -> None:
        """Count ``n`` body bytes about to be sent for a request."""
        with self._lock:
            record.sent += n
            self.bytes_by_path[record.path] += n


def _mtime(source: bytes | Path) -> float:
    """Modification time of a file, or now for bytes."""
    if isinstance(source, Path):
        with contextlib.suppress(OSError):
            return source.stat().st_mtime
    return time.time()


def _make_etag(source: bytes | Path) -> str | None:
    """A strong ETag: a hash of bytes, or of a file's size and mtime."""
    if isinstance(source, bytes):
        return '"' + hashlib.sha1(source).hexdigest()[:20] + '"'
    try:
        stat = source.stat()
    except OSError:
        return None
    return f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """``(start, stop)`` of a single-range ``Range`` header, None to ignore it, "unsatisfiable"."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[len("bytes=") :].strip().partition("-")
    try:
        if first == "":
            count = int(last)
            return (max(size - count, 0), size) if count > 0 else "unsatisfiable"
        start = int(first)
        stop = size if last == "" else min(int(last) + 1, size)
    except ValueError:
        return None
    if start >= size:
        return "unsatisfiable"
    return start, stop


class _Server(ThreadingHTTPServer):
    """A threading server that keeps clients' hang-ups out of the test output."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore connections the client cut; log anything else."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return
        log.warning("test server: error while answering %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """Serves one connection for a FileServer (``self.server.owner``)."""

    protocol_version = "HTTP/1.1"
    server_version = "ecephys-test"
    timeout = 10  # seconds a kept-alive connection may sit idle
    disable_nagle_algorithm = True  # headers and body go in separate writes: no 40 ms stalls

    @property
    def owner(self) -> FileServer:
        """The FileServer this handler answers for."""
        return self.server.owner  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Keep test output clean."""

    def do_GET(self) -> None:
        """Answer a GET."""
        self._serve(head=False)

    def do_HEAD(self) -> None:
        """Answer a HEAD: the GET's status and headers, no body."""
        self._serve(head=True)

    def _serve(self, *, head: bool) -> None:
        """Answer a route, a file, or 404, applying the fault plan."""
        raw_path, _, query = self.path.partition("?")
        path = re.sub("/{2,}", "/", raw_path)  # the AllenSDK asks for "//api/v2/..."
        range_header = self.headers.get("Range")
        start_hint = _range_start(range_header)
        fault = self.owner.faults.next(self.command, path, start_hint)
        if fault is not None and fault.status is not None:
            self._send_page(fault.status, path, fault, head=head)
            return
        route = self.owner._routes.get(path)
        if route is not None:
            try:
                reply = route(path, query)
            except Exception as exc:  # noqa: BLE001 - a test server reports its own bugs as 500s
                reply = Reply(500, f"{type(exc).__name__}: {exc}".encode(), "text/plain")
            body = reply.body
            headers = {"Content-Type": reply.content_type, **reply.headers}
            self._send_bytes(reply.status, headers, path, body, fault, head=head)
            return
        entry = self.owner._files.get(path)
        if entry is None or not entry.exists():
            self._send_page(404, path, None, head=head)
            return
        self._send_file(entry, path, range_header, fault, head=head)

    # ------------------------------------------------------------------ answers

    def _send_page(self, code: int, path: str, fault: Fault | None, *, head: bool) -> None:
        """An HTML error page (what real servers and proxies send)."""
        reason = self.responses.get(code, ("Error",))[0]
        body = _HTML_PAGE.format(code=code, reason=reason).encode()
        headers = {"Content-Type": "text/html; charset=utf-8"}
        if code == 503:
            headers["Retry-After"] = "1"
        self._send_bytes(code, headers, path, body, fault, head=head)

    def _send_bytes(
        self, code: int, headers: dict[str, str], path: str, body: bytes, fault: Fault | None, *, head: bool
    ) -> None:
        """A whole in-memory body (faults other than status apply too)."""
        entry = _Entry(body, None, formatdate(usegmt=True), headers.get("Content-Type", ""), None)
        self._write_answer(code, headers, path, entry, 0, len(body), fault, head=head, range_header=None)

    def _send_file(
        self, entry: _Entry, path: str, range_header: str | None, fault: Fault | None, *, head: bool
    ) -> None:
        """A file, whole (200) or a range of it (206), or 416."""
        size = entry.size
        honour = range_header is not None and not (fault and fault.ignore_range)
        if honour and self.headers.get("If-Range") is not None:
            honour = self.headers["If-Range"] in (entry.etag, entry.last_modified)
        span = parse_range(range_header, size) if honour else None
        headers = {
            "Content-Type": entry.content_type,
            "Accept-Ranges": "bytes",
            "Last-Modified": entry.last_modified,
        }
        if entry.etag:
            headers["ETag"] = entry.etag
        if entry.filename:
            headers["Content-Disposition"] = f'attachment; filename="{entry.filename}"'
        if span == "unsatisfiable":
            headers["Content-Range"] = f"bytes */{size}"
            self._write_answer(416, headers, path, entry, 0, 0, None, head=head, range_header=range_header)
            return
        if isinstance(span, tuple):
            start, stop = span
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
            self._write_answer(
                206, headers, path, entry, start, stop, fault, head=head, range_header=range_header
            )
            return
        self._write_answer(200, headers, path, entry, 0, size, fault, head=head, range_header=range_header)

    def _write_answer(
        self,
        code: int,
        headers: dict[str, str],
        path: str,
        entry: _Entry,
        start: int,
        stop: int,
        fault: Fault | None,
        *,
        head: bool,
        range_header: str | None,
    ) -> None:
        """Status line, headers and body ``[start, stop)`` of ``entry``, with the fault applied."""
        length = stop - start
        delta = fault.length_delta if fault else 0
        self.send_response(code)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(max(length + delta, 0)))
        if delta:
            self.send_header("Connection", "close")
        record = RequestRecord(self.command, path, range_header, self.headers.get("If-Range"), code, 0, fault)
        self.owner._record(record)
        self.end_headers()
        if not head:
            self._write_body(entry, start, stop, fault, record)
        if delta:
            self.close_connection = True

    def _write_body(
        self, entry: _Entry, start: int, stop: int, fault: Fault | None, record: RequestRecord
    ) -> int:
        """Send the body, counting bytes before each write; cut or stall it as the fault says."""
        sent = 0
        drop_at = fault.drop_after if fault and fault.drop_after is not None else None
        stall_at = fault.stall_after if fault and fault.stall > 0 else None
        try:
            for block in entry.read(start, stop):
                for piece in _split(block, sent, (drop_at, stall_at)):
                    if stall_at is not None and sent == stall_at:
                        self.wfile.flush()
                        self.owner._stopping.wait(fault.stall)  # type: ignore[union-attr]
                        stall_at = None
                    if drop_at is not None and sent >= drop_at:
                        self._drop(fault)  # type: ignore[arg-type]
                        return sent
                    self.owner._count(record, len(piece))
                    self.wfile.write(piece)
                    sent += len(piece)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            self.close_connection = True
        return sent

    def _drop(self, fault: Fault) -> None:
        """Cut the connection now: a clean close, or a TCP reset."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
            if fault.reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
            self.connection.close()


def _range_start(header: str | None) -> int:
    """The first byte a Range header asks for (0 when absent or odd), for fault hooks."""
    if header and header.startswith("bytes="):
        first = header[len("bytes=") :].split("-", 1)[0].strip()
        if first.isdigit():
            return int(first)
    return 0


def _split(block: bytes, sent: int, marks: tuple[int | None, ...]) -> Iterator[bytes]:
    """Split ``block`` (which starts at body offset ``sent``) at the given body offsets."""
    cuts = sorted({m - sent for m in marks if m is not None and sent < m < sent + len(block)})
    begin = 0
    for cut in cuts:
        yield block[begin:cut]
        begin = cut
    yield block[begin:]


# -------------------------------------------------------------------------- moto S3


@dataclass
class MotoS3:
    """A running moto S3 server: its endpoint URL, and how to stop it."""

    endpoint_url: str
    _server: Any

    def stop(self) -> None:
        """Stop the server thread."""
        self._server.stop()


def moto_s3(*, verbose: bool = False) -> MotoS3:
    """Start moto's S3 server (``moto.server.ThreadedMotoServer``) on 127.0.0.1 and a free port."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from ecephys.errors import MissingDependency

        raise MissingDependency("the S3 test server needs moto: pip install 'moto[server]'") from exc
    if not verbose:  # werkzeug logs every request to stderr otherwise
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=verbose)
    server.start()
    host, port = server.get_host_and_port()
    return MotoS3(f"http://{host}:{port}", server)


def upload_folder(
    endpoint_url: str,
    folder: str | Path,
    *,
    bucket: str = "allen-brain-observatory",
    prefix: str = "visual-coding-neuropixels/ecephys-cache/",
    region: str = "us-west-2",
    include: Callable[[str], bool] | None = None,
) -> list[str]:
    """Create ``bucket`` (if needed) and upload the files under ``folder`` below ``prefix``.

    ``include(relative_posix_path)`` picks files (all by default). Uses boto3 with dummy
    credentials (moto accepts any); returns the uploaded keys, sorted.
    """
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(_public_read_policy(bucket)))
    keys = []
    root = Path(folder)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if include is not None and not include(relative):
            continue
        key = prefix + relative
        # The policy lets anonymous GETs through, as on the real bucket; moto also wants the
        # object ACL before it answers an anonymous HEAD.
        client.upload_file(str(path), bucket, key, ExtraArgs={"ACL": "public-read"})
        keys.append(key)
    return keys


def _public_read_policy(bucket: str) -> dict[str, Any]:
    """A bucket policy letting anyone list the bucket and read its objects (as the Allen bucket does)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
            },
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{bucket}",
            },
        ],
    }
