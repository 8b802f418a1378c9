"""Log lines: JSON or text (LOG_FORMAT), one request id per request from the X-Request-ID header
to every line and the response, the user id once known, and the same id in the Celery tasks a
request sends (a real worker through Redis)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from django.test import Client

from harness.smtp import SmtpSink
from storefront.ops.log_format import formatter, log_format_from_environ
from storefront.ops.request_id import ENVIRON_REQUEST_ID, ENVIRON_USER_ID
from storefront.orders.models import Order
from storefront.orders.tasks import resend_owed_confirmations
from tests.celery_worker import running_worker
from tests.factories import ProductFactory, UserFactory
from tests.fresh_python import run_python

NGINX_STYLE_ID = "6f1c2a9be0d34e5f8a7b6c5d4e3f2a1b"  # 32 hex digits, like nginx's $request_id
HEX_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def log_output() -> Iterator[Callable[[str], str]]:
    """What the root logger writes, through LOGGING's formatter for the given LOG_FORMAT."""
    streams: dict[str, io.StringIO] = {}
    handlers = []
    root = logging.getLogger()
    for name in ("json", "text"):
        streams[name] = io.StringIO()
        handler = logging.StreamHandler(streams[name])
        handler.setFormatter(formatter(name))
        handlers.append(handler)
        root.addHandler(handler)
    try:
        yield lambda name: streams[name].getvalue()
    finally:
        for handler in handlers:
            root.removeHandler(handler)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.django_db
def test_each_json_line_of_a_request_has_the_id_it_answers_with(
    client: Client, log_output: Callable[[str], str]
) -> None:
    response = client.get("/no-such-page/", headers={"X-Request-ID": NGINX_STYLE_ID})

    assert response.status_code == 404
    assert response["X-Request-ID"] == NGINX_STYLE_ID
    [line] = [x for x in json_lines(log_output("json")) if x["logger"] == "django.request"]
    assert line["message"] == "Not Found: /no-such-page/"
    assert line["level"] == "warning"
    assert line["request_id"] == NGINX_STYLE_ID
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", line["time"])
    assert line["pid"] == os.getpid()
    assert "user_id" not in line  # anonymous
    assert list(line)[:5] == ["time", "level", "logger", "message", "request_id"]
    # Nothing of the request is left for lines logged after it.
    logging.getLogger("storefront.test").warning("after the request")
    assert "request_id" not in json_lines(log_output("json"))[-1]


@pytest.mark.django_db
def test_a_request_without_an_id_gets_a_new_one(
    client: Client, log_output: Callable[[str], str]
) -> None:
    first = client.get("/no-such-page/")
    second = client.get("/no-such-page/")

    ids = [first["X-Request-ID"], second["X-Request-ID"]]
    assert all(HEX_ID.fullmatch(rid) for rid in ids) and ids[0] != ids[1]
    logged = [x["request_id"] for x in json_lines(log_output("json"))]
    assert logged == ids


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sent",
    [
        "not a request id",
        "x" * 65,
        'abc"}\n{"level":"critical',
        "caf\u00e9",
        "",
    ],
)
def test_a_malformed_incoming_id_is_replaced(
    sent: str, client: Client, log_output: Callable[[str], str]
) -> None:
    response = client.get("/no-such-page/", HTTP_X_REQUEST_ID=sent)

    rid = response["X-Request-ID"]
    assert HEX_ID.fullmatch(rid), rid
    [line] = json_lines(log_output("json"))
    assert line["request_id"] == rid
    assert sent not in log_output("json") or sent == ""


@pytest.mark.django_db
def test_well_formed_ids_of_other_proxies_are_kept(client: Client) -> None:
    for rid in ("0f8fad5b-d9cb-469f-a165-70867728950e", "lb.42_A-b", "x" * 64):
        assert client.get("/healthz", headers={"X-Request-ID": rid})["X-Request-ID"] == rid


@pytest.mark.django_db
def test_lines_of_a_signed_in_request_have_the_user_id(
    client: Client, log_output: Callable[[str], str]
) -> None:
    user = UserFactory()
    client.force_login(user)

    response = client.get("/orders/no-such-order/", headers={"X-Request-ID": NGINX_STYLE_ID})

    assert response.status_code == 404
    [line] = [x for x in json_lines(log_output("json")) if x["logger"] == "django.request"]
    assert (line["request_id"], line["user_id"]) == (NGINX_STYLE_ID, user.pk)
    # gunicorn's access line reads both from the WSGI environ (storefront/ops/gunicorn_logging).
    environ = response.wsgi_request.META
    assert (environ[ENVIRON_REQUEST_ID], environ[ENVIRON_USER_ID]) == (NGINX_STYLE_ID, str(user.pk))


@pytest.mark.django_db
def test_text_lines_carry_the_same_fields(client: Client, log_output: Callable[[str], str]) -> None:
    client.get("/no-such-page/", headers={"X-Request-ID": NGINX_STYLE_ID})

    [line] = [x for x in log_output("text").splitlines() if "Not Found" in x]
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT[\d:.]+Z \[warning *\] Not Found: /no-such-page/ \[django\.request\]"
        rf" request_id={NGINX_STYLE_ID} .*pid={os.getpid()}.*",
        line,
    ), line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_log_format_defaults_and_refusals() -> None:
    assert log_format_from_environ({"STOREFRONT_ENV": "production"}) == "json"
    assert log_format_from_environ({"STOREFRONT_ENV": "dev"}) == "text"
    assert log_format_from_environ({}) == "text"
    assert log_format_from_environ({"STOREFRONT_ENV": "production", "LOG_FORMAT": "text"}) == "text"
    assert log_format_from_environ({"LOG_FORMAT": " JSON "}) == "json"
    with pytest.raises(ValueError, match="LOG_FORMAT must be json or text, not 'xml'"):
        log_format_from_environ({"LOG_FORMAT": "xml"})


@pytest.mark.parametrize(
    ("log_format", "parses_as_json"), [("json", True), ("text", False), ("", False)]
)
def test_settings_pick_the_format_from_the_environment(
    log_format: str, parses_as_json: bool, tmp_path: Path
) -> None:
    """A process started with LOG_FORMAT logs what it says (here the dev default is text)."""
    done = run_python(
        tmp_path,
        "import logging; logging.getLogger('storefront.probe').warning('hello %s', 'there')",
        setup_django=True,
        STOREFRONT_ENV="dev",
        LOG_FORMAT=log_format,
    )
    assert done.returncode == 0, done.stderr
    [line] = [x for x in done.stderr.splitlines() if "hello there" in x]
    if parses_as_json:
        fields = json.loads(line)
        assert (fields["message"], fields["logger"]) == ("hello there", "storefront.probe")
    else:
        assert "[warning  ] hello there [storefront.probe]" in line


def test_a_bad_log_format_stops_the_start(tmp_path: Path) -> None:
    done = run_python(tmp_path, "", setup_django=True, LOG_FORMAT="xml")
    assert done.returncode != 0
    assert "LOG_FORMAT must be json or text, not 'xml'" in done.stderr


# A real worker, through the Redis broker.


def _worker_lines(log_path: Path) -> list[dict]:
    lines = []
    for text in log_path.read_text(errors="replace").splitlines():
        if text.startswith("{"):
            lines.append(json.loads(text))
    return lines


def _wait_for_task_lines(log_path: Path, task: str, timeout: float = 30.0) -> list[dict]:
    """The worker's lines logged while it ran `task`, once it reported success."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [x for x in _worker_lines(log_path) if x.get("task") == task]
        if any(x["message"].startswith(f"Task {task}[") for x in lines):
            return lines
        time.sleep(0.1)
    raise AssertionError(f"no success line of {task}:\n{log_path.read_text()[-3000:]}")


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_tasks_a_request_sends_log_its_request_id_and_user(
    require_postgres: None,
    require_redis: None,
    smtp_sink: SmtpSink,
    client: Client,
    settings,
    tmp_path: Path,
) -> None:
    user = UserFactory(email="ada@example.com")
    product = ProductFactory(price=Decimal("5.00"), stock=10)
    client.force_login(user)
    log_path = tmp_path / "celery-worker.log"
    with running_worker(
        log_path,
        email_url=smtp_sink.url,
        media_root=settings.MEDIA_ROOT,
        extra_env={"LOG_FORMAT": "json"},
    ) as worker:
        assert client.post(f"/cart/add/{product.pk}/", {"quantity": 1}).status_code == 302
        response = client.post(
            "/checkout/",
            {"shipping_name": "Ada", "shipping_address": "1 Engine Row"},
            headers={"X-Request-ID": NGINX_STYLE_ID},
        )
        assert response.status_code == 302, worker.log()
        assert response["X-Request-ID"] == NGINX_STYLE_ID
        assert Order.objects.filter(user=user).count() == 1

        task = "storefront.orders.tasks.send_order_confirmation"
        lines = _wait_for_task_lines(log_path, task)
        assert {(x["request_id"], x.get("user_id")) for x in lines} == {
            (NGINX_STYLE_ID, user.pk)
        }, lines

        # Sent outside any request (as beat sends its schedule): an id of its own.
        resend_owed_confirmations.delay()
        resend = "storefront.orders.tasks.resend_owed_confirmations"
        own = _wait_for_task_lines(log_path, resend)
        ids = {x["request_id"] for x in own}
        assert len(ids) == 1 and HEX_ID.fullmatch(ids.pop()) and NGINX_STYLE_ID not in str(own)
        assert all("user_id" not in x for x in own)
        # Every line the worker wrote is JSON (its start-up banner aside, which is print()ed).
        assert all(x["level"] and x["logger"] for x in _worker_lines(log_path))
