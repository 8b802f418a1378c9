"""One request id from nginx to Django, gunicorn's access log and the Celery tasks a request sends.

nginx sends its `$request_id` (32 hex digits) as X-Request-ID. RequestIdMiddleware, first in
MIDDLEWARE, keeps it when it is well-formed ([A-Za-z0-9._-], at most 64 characters) and makes a
new one otherwise (a client without nginx in front sends what it likes, and arbitrary bytes
must not reach the logs); it binds the id to every log line of the request, answers with it in
the X-Request-ID response header, and leaves it and the user id in the WSGI environ for
gunicorn's access line (storefront/ops/gunicorn_logging.py).

The user id is added lazily (storefront.ops.log_format): once something in the request has
looked the user up, later lines carry its id; the logging never loads the user itself, so a
page that does not need the session costs no extra query.

Celery: a task sent during a request carries its request id and user id in the message headers
(before_task_publish); the worker binds them while it runs the task (task_prerun, undone at
task_postrun). A task sent outside any request (beat's schedule, a management command) gets an
id of its own, so its lines and those of the tasks it sends can still be followed together.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any

import structlog
from celery import signals as celery_signals
from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils.functional import empty

REQUEST_ID_HEADER = "X-Request-ID"
# nginx's $request_id is 32 hex digits; other proxies and load balancers use UUIDs or similar.
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Celery message headers (custom headers become attributes of the task's request).
TASK_REQUEST_ID_HEADER = "storefront_request_id"
TASK_USER_ID_HEADER = "storefront_user_id"
# Where gunicorn's access log finds them (the WSGI environ is the request's META).
ENVIRON_REQUEST_ID = "storefront.request_id"
ENVIRON_USER_ID = "storefront.user_id"

_current_request: ContextVar[HttpRequest | None] = ContextVar(
    "storefront_current_request", default=None
)
# Context tokens of the tasks running in this process, by task id, undone at task_postrun.
_task_tokens: dict[str, dict[str, Token[Any]]] = {}


def new_request_id() -> str:
    """32 hex digits, like nginx's $request_id."""
    return uuid.uuid4().hex


def clean_request_id(value: str | None) -> str:
    """`value` when it is a well-formed request id, otherwise a new one."""
    if value and VALID_REQUEST_ID.fullmatch(value):
        return value
    return new_request_id()


def current_request_id() -> str | None:
    """The request id bound to this context (a request or a task), if any."""
    return structlog.contextvars.get_contextvars().get("request_id")


def _user_id_of(user: object) -> int | None:
    if getattr(user, "_wrapped", None) is empty:
        return None  # AuthenticationMiddleware's lazy user, not looked up (yet)
    if getattr(user, "is_authenticated", False):
        return getattr(user, "pk", None)
    return None


def current_user_id() -> int | None:
    """The id of the signed-in user of this context: the current request's user, once that
    request has looked it up, or the user of the request that sent the running task."""
    request = _current_request.get()
    if request is not None:
        return _user_id_of(request.__dict__.get("user"))
    return structlog.contextvars.get_contextvars().get("user_id")


def _clear() -> None:
    structlog.contextvars.clear_contextvars()
    _current_request.set(None)


class RequestIdMiddleware:
    """Binds the request id to the request's log lines and answers with it (see module doc)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rid = clean_request_id(request.headers.get(REQUEST_ID_HEADER))
        # A worker thread serves one request after another: nothing of the last one survives.
        _clear()
        structlog.contextvars.bind_contextvars(request_id=rid)
        _current_request.set(request)
        request.request_id = rid  # type: ignore[attr-defined]
        request.META[ENVIRON_REQUEST_ID] = rid
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = rid
        user_id = current_user_id()
        if user_id is not None:
            request.META[ENVIRON_USER_ID] = str(user_id)
        return response


@receiver(request_finished, dispatch_uid="storefront.ops.request_id.clear")
def _clear_after_request(**_: Any) -> None:
    # Sent when the server closes the response, after a streamed body (CSV export) was sent:
    # lines logged while streaming still carry the id, lines after the request do not.
    _clear()


@celery_signals.before_task_publish.connect(dispatch_uid="storefront.ops.request_id.publish")
def _add_ids_to_task_headers(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is None:
        return
    headers.setdefault(TASK_REQUEST_ID_HEADER, current_request_id() or new_request_id())
    user_id = current_user_id()
    if user_id is not None:
        headers.setdefault(TASK_USER_ID_HEADER, user_id)


@celery_signals.task_prerun.connect(dispatch_uid="storefront.ops.request_id.prerun")
def _bind_task_ids(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    request = getattr(task, "request", None)
    # An eager task (no broker, the tests) runs inside the request that sent it: same ids.
    rid = getattr(request, TASK_REQUEST_ID_HEADER, None)
    rid = clean_request_id(rid or current_request_id())
    values: dict[str, Any] = {"request_id": rid, "task_id": task_id, "task": task.name}
    user_id = getattr(request, TASK_USER_ID_HEADER, None)
    if isinstance(user_id, int):
        values["user_id"] = user_id
    if task_id:
        _task_tokens[task_id] = structlog.contextvars.bind_contextvars(**values)


@celery_signals.task_postrun.connect(dispatch_uid="storefront.ops.request_id.postrun")
def _unbind_task_ids(task_id: str | None = None, **_: Any) -> None:
    tokens = _task_tokens.pop(task_id or "", None)
    if tokens:
        structlog.contextvars.reset_contextvars(**tokens)
