"""Error reporting (storefront/ops/errors.py): a local HTTP server plays Sentry's ingest endpoint,
and the events a Django process and a real Celery worker send it are read back.

sentry-sdk's state is global to a process, so every process that initialises it here is a
subprocess (a `python -c` Django process, a Celery worker); this test process never does.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import brotli
import pytest

from tests.celery_worker import running_worker
from tests.fresh_python import last_error, run_python


class IngestServer:
    """Collects the events of every envelope POSTed to /api/<project>/envelope/."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "br":
                    body = brotli.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                server._receive(self.path, body)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.dsn = f"http://publickey@127.0.0.1:{self.httpd.server_address[1]}/1"

    def _receive(self, path: str, body: bytes) -> None:
        # An envelope: a header line, then (item header line, payload line) pairs.
        lines = body.split(b"\n")
        with self._lock:
            self.paths.append(path)
            for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                if json.loads(header).get("type") == "event":
                    self.events.append(json.loads(payload))

    def wait_for_events(self, count: int, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.events) >= count:
                    return list(self.events)
            time.sleep(0.05)
        return list(self.events)


@pytest.fixture
def ingest() -> Iterator[IngestServer]:
    server = IngestServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def _django(tmp_path: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `code` after django.setup() in a fresh interpreter (test settings unless `env` says)."""
    return run_python(tmp_path, code, setup_django=True, **{"STOREFRONT_ENV": "test", **env})


def _exception(event: dict) -> dict:
    return event["exception"]["values"][-1]


def test_without_dsn_nothing_is_initialised(tmp_path: Path) -> None:
    done = _django(
        tmp_path,
        """
        import sentry_sdk
        from django.conf import settings
        print(settings.SENTRY_OPTIONS, sentry_sdk.get_client().is_active())
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "False"]


def test_release_and_environment_come_from_the_environment(tmp_path: Path) -> None:
    done = _django(
        tmp_path,
        """
        import json, sentry_sdk
        from django.conf import settings
        options = sentry_sdk.get_client().options
        print(json.dumps({k: options[k] for k in
              ("release", "environment", "traces_sample_rate", "send_default_pii")}))
        print(sorted(i for i in sentry_sdk.get_client().integrations if i in ("django", "celery")))
        """,
        SENTRY_DSN="http://publickey@127.0.0.1:9/1",
        STOREFRONT_RELEASE="20261206013000",
        STOREFRONT_ENV="dev",
    )
    assert done.returncode == 0, done.stderr
    options, integrations = done.stdout.splitlines()
    assert json.loads(options) == {
        "release": "20261206013000",
        "environment": "dev",
        "traces_sample_rate": 0.0,
        "send_default_pii": False,
    }
    assert integrations == "['celery', 'django']"


def test_an_invalid_traces_sample_rate_is_refused(tmp_path: Path) -> None:
    done = _django(
        tmp_path,
        "",
        SENTRY_DSN="http://publickey@127.0.0.1:9/1",
        SENTRY_TRACES_SAMPLE_RATE="2",
    )
    assert last_error(done).endswith(
        "ImproperlyConfigured: SENTRY_TRACES_SAMPLE_RATE must be a number between 0 and 1, not '2'"
    )


def test_an_exception_in_a_view_reaches_sentry(tmp_path: Path, ingest: IngestServer) -> None:
    done = _django(
        tmp_path,
        """
        import sentry_sdk
        from django.test import Client, override_settings
        with override_settings(ROOT_URLCONF="storefront.ops.tests.sentry_urls"):
            response = Client(SERVER_NAME="localhost", raise_request_exception=False).get("/boom/")
        print(response.status_code)
        sentry_sdk.flush(timeout=10)
        """,
        SENTRY_DSN=ingest.dsn,
        STOREFRONT_RELEASE="release-42",
        SENTRY_ENVIRONMENT="staging",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "500"

    events = ingest.wait_for_events(1)
    assert len(events) == 1, events
    event = events[0]
    assert _exception(event)["type"] == "RuntimeError"
    assert _exception(event)["value"] == "sentry check: the listing broke"
    assert _exception(event)["mechanism"]["type"] == "django"
    assert event["release"] == "release-42"
    assert event["environment"] == "staging"
    assert "cookies" not in event.get("request", {})  # send_default_pii=False
    assert "user" not in event
    assert ingest.paths == ["/api/1/envelope/"]


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_a_failing_task_in_a_real_worker_reaches_sentry(
    require_postgres: None, require_redis: None, tmp_path: Path, ingest: IngestServer
) -> None:
    from storefront.celery import app

    with running_worker(
        tmp_path / "celery-worker.log",
        email_url="consolemail://",
        extra_env={
            "SENTRY_DSN": ingest.dsn,
            "STOREFRONT_RELEASE": "release-43",
            "SENTRY_ENVIRONMENT": "worker-check",
        },
    ) as worker:
        # A message the task cannot take (as from an older release): TypeError in the worker.
        app.send_task(
            "storefront.ops.tasks.clear_expired_sessions",
            kwargs={"older_than_days": 3},
            queue=app.conf.task_default_queue,
        )
        events = ingest.wait_for_events(1, timeout=30)
        log = worker.log()

    assert len(events) == 1, log
    event = events[0]
    assert _exception(event)["type"] == "TypeError"
    assert "unexpected keyword argument 'older_than_days'" in _exception(event)["value"]
    assert _exception(event)["mechanism"]["type"] == "celery"
    assert event["release"] == "release-43"
    assert event["environment"] == "worker-check"
    assert event["extra"]["celery-job"]["task_name"] == (
        "storefront.ops.tasks.clear_expired_sessions"
    )
