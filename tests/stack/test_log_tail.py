"""harness.served's log tail (what a failing stack test prints) on real access lines of every
format the stack writes: nginx rendered from deploy/nginx with NGINX_LOG_FORMAT=text and =json,
each in front of a gunicorn (deploy/gunicorn.conf.py) with LOG_FORMAT of the same name.
Successful requests' lines are left out of the tail, failed ones and the app's lines kept.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import Server, serve_gunicorn
from harness.nginx import Nginx
from harness.served import access_status, without_successful_access
from tests.stack.conftest import StackServer
from tests.stack.nginx.helpers import fetch, start_nginx

pytestmark = pytest.mark.stack

FORMATS = ("text", "json")


@dataclass(frozen=True)
class LoggedStack:
    log_format: str
    nginx: Nginx
    gunicorn: Server

    @property
    def access_log(self) -> Path:
        return self.nginx.prefix / "logs" / "access.log"


@pytest.fixture(scope="module", params=FORMATS)
def logged_stack(
    request: pytest.FixtureRequest,
    stack_server: StackServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LoggedStack]:
    log_format = request.param
    directory = tmp_path_factory.mktemp(f"log-tail-{log_format}")
    gunicorn = serve_gunicorn(
        stack_server.env,
        directory / "gunicorn.log",
        workers=1,
        extra_env={"LOG_FORMAT": log_format},
    )
    try:
        nginx = start_nginx(
            directory / "nginx",
            [gunicorn.netloc],
            stack_server.env,
            extra={"NGINX_LOG_FORMAT": log_format},
        )
        try:
            yield LoggedStack(log_format, nginx, gunicorn)
        finally:
            nginx.stop()
    finally:
        gunicorn.stop()


def _lines_with(path: Path, request_id: str, count: int, timeout: float = 10.0) -> list[str]:
    """The `count` lines of `path` carrying `request_id`, once they are all there (buffered)."""
    deadline = time.monotonic() + timeout
    found: list[str] = []
    while time.monotonic() < deadline:
        found = [line for line in path.read_text().splitlines() if request_id in line]
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{len(found)} of {count} lines with {request_id} in {path}")


def test_statuses_of_real_access_lines(logged_stack: LoggedStack) -> None:
    """nginx's line and gunicorn's line of each request read as the status it answered."""
    port = logged_stack.nginx.http_port
    answers = {
        "/healthz": 200,
        "/orders/": 302,  # anonymous: to the login page
        "/no-such-page/": 404,
    }
    for path, expected in answers.items():
        answer = fetch(port, path)
        assert answer.status == expected, path
        rid = answer.headers["x-request-id"]

        [nginx_line] = _lines_with(logged_stack.access_log, rid, 1)
        assert nginx_line.startswith("{") == (logged_stack.log_format == "json"), nginx_line
        assert access_status(nginx_line) == expected, nginx_line

        app_lines = _lines_with(logged_stack.gunicorn.log_path, rid, 1)
        statuses = [access_status(line) for line in app_lines]
        # One access line per request; the app's own lines (the 404's "Not Found") are none.
        assert [s for s in statuses if s is not None] == [expected], app_lines
        if expected == 404:
            assert any("Not Found: /no-such-page/" in line for line in app_lines), app_lines


def test_the_tail_leaves_out_successful_requests_only(logged_stack: LoggedStack) -> None:
    port = logged_stack.nginx.http_port
    ok = fetch(port, "/healthz").headers["x-request-id"]
    missing = fetch(port, "/no-such-page/").headers["x-request-id"]
    nginx_lines = _lines_with(logged_stack.access_log, missing, 1)
    app_lines = _lines_with(logged_stack.gunicorn.log_path, missing, 2)  # access + "Not Found"
    _lines_with(logged_stack.access_log, ok, 1)
    _lines_with(logged_stack.gunicorn.log_path, ok, 1)

    for log in (logged_stack.access_log, logged_stack.gunicorn.log_path):
        text = log.read_text()
        tail = without_successful_access(text, lines=10_000)
        assert ok in text and ok not in tail, log
    assert without_successful_access(logged_stack.access_log.read_text(), 10_000).endswith(
        nginx_lines[-1]
    )
    tail = without_successful_access(logged_stack.gunicorn.log_path.read_text(), 10_000)
    assert all(line in tail for line in app_lines)
    # As scripts/run.sh prints them: behind honcho's "time name.1 | " prefix.
    prefixed = "\n".join(f"12:00:00 web.1  | {line}" for line in app_lines)
    assert without_successful_access(prefixed, 10).count(missing) == 2


def test_lines_of_other_kinds_are_kept() -> None:
    """What a log holds besides access lines, and what merely looks like one."""
    kept = [
        "[2026-01-01 12:00:00 +0000] [7] [INFO] Booting worker with pid: 7",
        '{"time": "2026-01-01T12:00:00Z", "level": "info", "logger": "gunicorn.error", '
        '"message": "Booting worker with pid: 7", "pid": 7}',
        # The app quoting a request: JSON, not an access line, whatever its message says.
        '{"level": "warning", "logger": "storefront", "message": "\\"GET / HTTP/1.1\\" 200 5 \\"", '
        '"status": 200}',
        "Traceback (most recent call last):",
        "{not json at all",
    ]
    assert [access_status(line) for line in kept] == [None] * len(kept)
    assert without_successful_access("\n".join(kept), 10) == "\n".join(kept)
    assert without_successful_access("\n".join(kept), 2) == "\n".join(kept[-2:])
