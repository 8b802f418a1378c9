"""A fixed-rate (open-loop) HTTP load generator on loopback, recording every request.

Why not wrk or Locust: wrk (and Locust's `constant_throughput`) are closed loops. Each
connection or user sends its next request only once the previous one answered, so when the
server stalls (a reload, a killed instance) they send *less* and the stall hides in the
figures ("coordinated omission"); neither records each request with its outcome kind. wrk2 would
hold a rate, but it is not packaged here. This one schedules request i at `start + i / rate`
whatever happened before, hands it to a pool of threads, and measures its latency from that
scheduled moment: a request that waited for a free thread counts that wait, as a user would.

Each request opens its own connection (`Connection: close`), so a failure belongs to that one
request: no idle keep-alive connection closed by a reloading server is mistaken for a reset,
nor hidden by a client retry. Bounded twice: by `duration` and by `max_requests`.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from faults.stats import Sample


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


def failure_kind(exc: BaseException) -> str:
    """The outcome name of a request that got no HTTP answer."""
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError since Python 3.10
        return "timeout"
    if isinstance(
        exc,
        ConnectionResetError
        | BrokenPipeError
        | ConnectionAbortedError
        | http.client.RemoteDisconnected
        | http.client.IncompleteRead,
    ):
        return "reset"
    return f"error:{type(exc).__name__}"


def send(base_url: str, request: Request, timeout: float) -> tuple[str, bytes]:
    """One request on a new connection: (status code as text, body), or raises."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        headers = {"Connection": "close", "Host": "localhost", **request.headers}
        conn.request(request.method, request.path, body=request.body, headers=headers)
        response = conn.getresponse()
        body = response.read()
        return str(response.status), body
    finally:
        conn.close()


class OpenLoopLoad:
    """`rate` requests per second to `base_url` until stopped, `duration` seconds passed or
    `max_requests` were sent; `request_for(i)` says what request i is. `mark(name)` starts a
    phase (before/during/after) at the current moment."""

    def __init__(
        self,
        base_url: str,
        *,
        rate: float,
        duration: float,
        request_for: Callable[[int], Request],
        timeout: float = 10.0,
        threads: int = 128,
        max_requests: int | None = None,
        on_answer: Callable[[Request, str, bytes], None] | None = None,
    ) -> None:
        self.base_url = base_url
        self.rate = rate
        self.duration = duration
        self.request_for = request_for
        self.timeout = timeout
        self.max_requests = max_requests or int(rate * duration) + 1
        self.on_answer = on_answer
        self.samples: list[Sample] = []
        self.marks: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="load")
        self._scheduler = threading.Thread(target=self._schedule, name="load-scheduler")
        self._start = 0.0

    def now(self) -> float:
        """Seconds since the load started."""
        return time.monotonic() - self._start

    def start(self) -> OpenLoopLoad:
        self._start = time.monotonic()
        self._scheduler.start()
        return self

    def mark(self, phase: str) -> None:
        self.marks[phase] = self.now()

    def _schedule(self) -> None:
        interval = 1.0 / self.rate
        for i in range(self.max_requests):
            due = i * interval
            if due > self.duration or self._stop.is_set():
                break
            delay = due - self.now()
            if delay > 0 and self._stop.wait(delay):
                break
            self._pool.submit(self._one, i, due)

    def _one(self, i: int, due: float) -> None:
        request = self.request_for(i)
        try:
            outcome, body = send(self.base_url, request, self.timeout)
        except Exception as exc:  # every failure is an outcome, recorded below
            outcome, body = failure_kind(exc), b""
        latency = self.now() - due
        if self.on_answer is not None and outcome.isdigit():
            self.on_answer(request, outcome, body)
        with self._lock:
            self.samples.append(
                Sample(sent=due, latency=latency, outcome=outcome, method=request.method,
                       path=request.path)
            )  # fmt: skip

    def stop(self) -> list[Sample]:
        """Stop scheduling, wait for the requests in flight (each bounded by `timeout`)."""
        self._stop.set()
        self._scheduler.join()
        self._pool.shutdown(wait=True)
        with self._lock:
            return sorted(self.samples, key=lambda s: s.sent)

    def wait(self) -> list[Sample]:
        """Let the run end by itself (`duration`), then collect it."""
        self._scheduler.join()
        return self.stop()
