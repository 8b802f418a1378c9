"""The streamed staff CSV export through its unbuffered nginx location: rows reach the client
while the export runs (a held upstream shows it), compressed or not."""

from __future__ import annotations

import csv
import io
import select
import socket
import threading
import zlib
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import brotli
import pytest

from storefront.seeding import DEMO_STAFF
from tests.stack.nginx.helpers import Nginx, log_in_through_nginx, start_nginx, stop

pytestmark = pytest.mark.stack
EXPORT_PATH = "/staff/orders/export.csv"
EXPORT_HEADER = ["number", "created_at", "status", "username", "email", "items", "total"]


class HeldUpstream:
    """A one-shot HTTP upstream that sends the CSV header row and a first row, then holds the
    rest of its chunked body until the test calls release(): the export "is not finished"
    for as long as the test wants, so nothing here depends on timing."""

    FIRST = b"number,created_at\r\nSF-1,2026-01-01\r\n"
    REST = b"".join(b"SF-%d,2026-01-02\r\n" % n for n in range(2, 2000))

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._release = threading.Event()
        self.finished = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def release(self) -> None:
        self._release.set()

    @staticmethod
    def _chunk(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data)

    def _serve(self) -> None:
        self.listener.settimeout(15)
        conn, _ = self.listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/csv; charset=utf-8\r\n"
                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + self._chunk(self.FIRST)
            )
            self._release.wait(15)
            conn.sendall(self._chunk(self.REST) + b"0\r\n\r\n")
            self.finished.set()

    def close(self) -> None:
        self.release()
        self.thread.join(15)
        self.listener.close()


class RawResponse:
    """An HTTP/1.1 GET over a plain socket, its chunked body decoded chunk by chunk as it
    arrives (and un-gzipped), so a test sees exactly when bytes reach the client."""

    def __init__(self, port: int, path: str, headers: dict[str, str]) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        lines = [f"GET {path} HTTP/1.1", "Host: localhost", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.sock.sendall("\r\n".join([*lines, "", ""]).encode())
        self.buffer = b""
        self.complete = False  # the terminating zero-length chunk has arrived
        self.status = 0
        self.headers: dict[str, str] = {}

    def read_head(self, *, wait: float) -> bool:
        """Parse the status line and headers; False if they do not arrive within `wait`s."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._receive(wait):
                return False
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status, *fields = head.decode("latin-1").split("\r\n")
        self.status = int(status.split()[1])
        self.headers = {}
        for field in fields:
            name, value = field.split(":", 1)
            self.headers[name.strip().lower()] = value.strip()
        assert self.headers.get("transfer-encoding") == "chunked", self.headers
        encoding = self.headers.get("content-encoding", "identity")
        self.decode = {
            "identity": bytes,
            "gzip": zlib.decompressobj(16 + zlib.MAX_WBITS).decompress,
            "br": brotli.Decompressor().process,
        }[encoding]
        return True

    def _receive(self, wait: float) -> bool:
        if not select.select([self.sock], [], [], wait)[0]:
            return False
        data = self.sock.recv(65536)
        assert data, "connection closed before the last chunk"
        self.buffer += data
        return True

    def _next_chunk(self) -> bytes | None:
        if b"\r\n" not in self.buffer:
            return None
        size_line, rest = self.buffer.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        if len(rest) < size + 2:
            return None
        self.buffer = rest[size + 2 :]
        self.complete = size == 0
        return rest[:size]

    def read(self, want: float = float("inf"), *, wait: float) -> bytes:
        """Decoded body bytes until `want` are in, the body is complete, or nothing more
        arrives for `wait` seconds."""
        data = b""
        while len(data) < want and not self.complete:
            chunk = self._next_chunk()
            if chunk is None:
                if not self._receive(wait):
                    break
            else:
                data += self.decode(chunk)
        return data

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def held_nginx(tmp_path: Path) -> Iterator[tuple[Nginx, HeldUpstream]]:
    upstream = HeldUpstream()
    roots = {"STATIC_ROOT": str(tmp_path / "static"), "MEDIA_ROOT": str(tmp_path / "media")}
    server = start_nginx(tmp_path / "held", [f"127.0.0.1:{upstream.port}"], roots)
    try:
        yield server, upstream
    finally:
        upstream.close()
        stop(server.proc)


@pytest.mark.parametrize("accept_encoding", ["identity", "gzip", "br"])
def test_export_location_passes_rows_on_before_the_export_finishes(
    held_nginx: tuple[Nginx, HeldUpstream], accept_encoding: str
) -> None:
    server, upstream = held_nginx
    resp = RawResponse(server.http_port, EXPORT_PATH, {"Accept-Encoding": accept_encoding})
    try:
        assert resp.read_head(wait=5), "no response while the export was held"
        assert resp.status == 200
        assert "content-length" not in resp.headers
        assert resp.headers.get("content-encoding", "identity") == accept_encoding
        # Compressed too: nginx flushes gzip and brotli on every unbuffered read from upstream.
        first = resp.read(len(upstream.FIRST), wait=5)
        assert first == upstream.FIRST, "the first rows did not arrive while the export was held"
        assert not upstream.finished.is_set() and not resp.complete
        upstream.release()
        rest = resp.read(wait=10)
        assert resp.complete
        assert first + rest == upstream.FIRST + upstream.REST
    finally:
        resp.close()


@pytest.mark.parametrize("accept_encoding", ["gzip", "br"])
def test_buffered_location_would_hold_the_first_rows(
    held_nginx: tuple[Nginx, HeldUpstream], accept_encoding: str
) -> None:
    """The control: the same held upstream behind a buffered location (`location /`) sends
    no body byte while held, so the test above can tell buffering from streaming. (Without
    compression a buffered location passes what it has to a fast client too; browsers always
    ask for compression, and the compressor then keeps the rows until its buffer fills.)"""
    server, upstream = held_nginx
    headers = {"Accept-Encoding": accept_encoding}
    resp = RawResponse(server.http_port, "/staff/orders/other.csv", headers)
    try:
        # Not even the headers: nginx sends them with the first body bytes.
        assert not resp.read_head(wait=1.0)
        upstream.release()
        assert resp.read_head(wait=10)
        assert resp.status == 200
        assert resp.read(wait=10) == upstream.FIRST + upstream.REST
    finally:
        resp.close()


@pytest.fixture(scope="module")
def staff_cookies(nginx: Nginx) -> SimpleCookie:
    return log_in_through_nginx(nginx.http_port, *DEMO_STAFF)


@pytest.mark.parametrize("accept_encoding", ["identity", "gzip", "br"])
def test_staff_csv_export_streams_through_nginx(
    nginx: Nginx, staff_cookies: SimpleCookie, accept_encoding: str
) -> None:
    """The real export through the real location: Django streams it (chunked, no length)
    and it arrives as one CSV document with the header row and every seeded order."""
    cookies = staff_cookies
    cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in cookies.items())
    headers = {"Cookie": cookie, "Accept-Encoding": accept_encoding}
    resp = RawResponse(nginx.http_port, EXPORT_PATH, headers)
    try:
        assert resp.read_head(wait=20)
        assert resp.status == 200, resp.headers
        assert resp.headers["content-type"] == "text/csv; charset=utf-8"
        assert resp.headers["content-disposition"] == 'attachment; filename="orders.csv"'
        assert "content-length" not in resp.headers
        assert resp.headers.get("content-encoding", "identity") == accept_encoding
        body = resp.read(wait=20)
        assert resp.complete
    finally:
        resp.close()
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    assert rows[0] == EXPORT_HEADER
    assert len(rows) > 100, "the seeded orders are missing"
    assert all(len(row) == len(EXPORT_HEADER) for row in rows), "ragged CSV"
    assert all(row[0] for row in rows[1:]), "an order without a number"
