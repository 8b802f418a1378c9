"""One request id through the real stack: nginx's JSON access line, gunicorn's JSON access line,
the app's lines and the response's X-Request-ID header all carry nginx's $request_id.

gunicorn (two workers, deploy/gunicorn.conf.py) with LOG_FORMAT=json serves the stack_server's
database; nginx, rendered from deploy/nginx with NGINX_LOG_FORMAT=json, sits in front of it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import Server, serve_gunicorn
from harness.nginx import Nginx
from storefront.seeding import DEMO_CUSTOMER
from tests.stack.conftest import StackServer
from tests.stack.nginx.helpers import fetch, log_in_through_nginx, render_nginx, start_nginx

pytestmark = pytest.mark.stack

NGINX_REQUEST_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def json_gunicorn(
    stack_server: StackServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    log_path = tmp_path_factory.mktemp("json-gunicorn") / "gunicorn.log"
    server = serve_gunicorn(stack_server.env, log_path, workers=2, extra_env={"LOG_FORMAT": "json"})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def json_nginx(
    json_gunicorn: Server, stack_server: StackServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Nginx]:
    prefix = tmp_path_factory.mktemp("json-nginx")
    nginx = start_nginx(
        prefix, [json_gunicorn.netloc], stack_server.env, extra={"NGINX_LOG_FORMAT": "json"}
    )
    try:
        yield nginx
    finally:
        nginx.stop()


def _json_lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.startswith("{")]


def _wait_for(path: Path, predicate, what: str, timeout: float = 10.0) -> list[dict]:
    """The JSON lines of `path` matching `predicate`, once there is one (logs are buffered)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [x for x in _json_lines(path) if predicate(x)]
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no {what} in {path}:\n{path.read_text()[-3000:]}")


def test_nginx_gunicorn_and_app_lines_share_the_request_id(
    json_nginx: Nginx, json_gunicorn: Server
) -> None:
    answer = fetch(json_nginx.http_port, "/no-such-page/?from=test", headers={"Referer": "r"})

    assert answer.status == 404
    rid = answer.headers["x-request-id"]
    assert NGINX_REQUEST_ID.fullmatch(rid), rid

    access_log = json_nginx.prefix / "logs" / "access.log"
    [nginx_line] = _wait_for(access_log, lambda x: x["request_id"] == rid, "nginx line")
    assert nginx_line["method"] == "GET"
    assert nginx_line["uri"] == "/no-such-page/?from=test"
    assert nginx_line["status"] == 404
    assert nginx_line["referer"] == "r"
    assert nginx_line["upstream_cache_status"] == ""  # not a microcached location
    # nginx takes the two from different clock readings, each rounded to the millisecond: the
    # request time can read 1 ms under the upstream's time it contains (seen: 0.188 < 0.189).
    assert float(nginx_line["request_time"]) >= float(nginx_line["upstream_response_time"]) - 0.001

    app_log = json_gunicorn.log_path
    lines = _wait_for(app_log, lambda x: x.get("request_id") == rid, "app lines")
    app = [x for x in lines if x["logger"] == "django.request"]
    access = [x for x in lines if x["logger"] == "gunicorn.access"]
    assert [x["message"] for x in app] == ["Not Found: /no-such-page/"]
    assert len(access) == 1, lines
    assert access[0]["status"] == 404
    assert (access[0]["method"], access[0]["path"], access[0]["query"]) == (
        "GET",
        "/no-such-page/",
        "from=test",
    )
    assert access[0]["remote"] == "127.0.0.1"  # X-Real-IP from nginx (the dev settings)
    assert access[0]["duration_ms"] >= 0 and access[0]["bytes"] > 0
    assert access[0]["referer"] == "r"
    assert access[0]["pid"] == app[0]["pid"]  # the worker that served it


def test_a_signed_in_request_logs_the_user_id(json_nginx: Nginx, json_gunicorn: Server) -> None:
    cookies = log_in_through_nginx(json_nginx.http_port, *DEMO_CUSTOMER)
    cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in cookies.items())

    answer = fetch(json_nginx.http_port, "/orders/", headers={"Cookie": cookie})

    assert answer.status == 200
    rid = answer.headers["x-request-id"]
    [access] = _wait_for(
        json_gunicorn.log_path,
        lambda x: x.get("request_id") == rid and x["logger"] == "gunicorn.access",
        "access line",
    )
    assert isinstance(access["user_id"], int) and access["path"] == "/orders/"
    [nginx_line] = _wait_for(
        json_nginx.prefix / "logs" / "access.log", lambda x: x["request_id"] == rid, "nginx line"
    )
    assert nginx_line["status"] == 200


def test_gunicorns_own_messages_are_json_too(json_gunicorn: Server) -> None:
    started = _wait_for(
        json_gunicorn.log_path,
        lambda x: x["logger"] == "gunicorn.error" and x["message"].startswith("Booting worker"),
        "worker boot line",
    )
    assert len(started) >= 2 and all(x["level"] == "info" for x in started)


@pytest.mark.parametrize(
    ("environ", "profile", "expected"),
    [
        ({}, "dev", "storefront_text"),
        ({}, "production", "storefront_json"),
        ({"STOREFRONT_ENV": "production"}, "dev", "storefront_json"),
        ({"LOG_FORMAT": "json"}, "dev", "storefront_json"),
        ({"LOG_FORMAT": "text"}, "production", "storefront_text"),
        ({"LOG_FORMAT": "json", "NGINX_LOG_FORMAT": "text"}, "production", "storefront_text"),
    ],
)
def test_the_renderer_picks_the_access_log_format(
    environ: dict[str, str], profile: str, expected: str, tmp_path: Path
) -> None:
    render_nginx.render(tmp_path, environ, profile)
    conf = (tmp_path / "conf.d" / "storefront.conf").read_text()
    access_logs = re.findall(r"^\s*access_log (\S+) (\S+);", conf, flags=re.MULTILINE)
    assert access_logs == [(str(tmp_path.resolve() / "logs" / "access.log"), expected)] * 2


def test_the_renderer_refuses_an_unknown_log_format(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"NGINX_LOG_FORMAT .* must be json or text, not 'xml'"):
        render_nginx.render(tmp_path, {"LOG_FORMAT": "xml"})
