"""Answers /metrics and records each request's metrics (storefront/ops/metrics.py).

Placed right after RequestIdMiddleware: /metrics is answered before ALLOWED_HOSTS validation
and the HTTPS redirect (Prometheus scrapes by IP over plain HTTP), and every other request,
probes and error pages included, is measured from as early as possible.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse

from storefront.cache_pages import CACHE_HEADER
from storefront.ops import metrics
from storefront.ops.client_address import PROXY_HEADERS, is_local_client

METRICS_PATH = "/metrics"
PROBES = frozenset({"/healthz", "/readyz"})


def may_read_metrics(request: HttpRequest) -> bool:
    """A client on this machine, or one with `Authorization: Bearer <STOREFRONT_METRICS_TOKEN>`.

    Local: loopback (storefront/ops/client_address.is_local_client), or a unix-socket peer
    (empty REMOTE_ADDR) without proxy headers: only processes allowed to open gunicorn's socket
    get there, and nginx always adds X-Real-IP (and answers /metrics with 404 anyway).
    """
    token = settings.STOREFRONT_METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header[len("Bearer ") :].strip().encode(), token.encode())
    if is_local_client(request):
        return True
    return not request.META.get("REMOTE_ADDR") and not any(
        request.META.get(key) for key in PROXY_HEADERS
    )


def metrics_view(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return HttpResponse("Use GET.\n", status=405, headers={"Allow": "GET, HEAD"},
                            content_type="text/plain")  # fmt: skip
    if not may_read_metrics(request):
        # 404, as if there were nothing here: a public client learns nothing.
        return HttpResponse("Not found.\n", status=404, content_type="text/plain")
    body, content_type = metrics.render()
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response


class _QueryTimer:
    """connection.execute_wrapper counting this request's queries and their time."""

    __slots__ = ("count", "seconds")

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool,
                 context: dict[str, Any]) -> Any:  # fmt: skip
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - start
            self.count += 1


def view_label(request: HttpRequest) -> str:
    """The URL pattern's name (namespaced), bounded whatever paths clients make up."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.view_name or match.route or "unnamed"
    if request.path_info in PROBES:
        return request.path_info.lstrip("/")
    return "unmatched"  # 404 before a view, or answered by a middleware


class MetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == METRICS_PATH:
            return metrics_view(request)
        start = time.perf_counter()
        timer = _QueryTimer()
        with connection.execute_wrapper(timer):
            response = self.get_response(request)
        view = view_label(request)
        method = request.method if request.method in _METHODS else "other"
        metrics.http_latency.labels(view, method).observe(time.perf_counter() - start)
        metrics.http_requests.labels(view, method, str(response.status_code)).inc()
        metrics.db_queries.labels(view).observe(timer.count)
        metrics.db_time.labels(view).observe(timer.seconds)
        outcome = response.get(CACHE_HEADER)
        if outcome in ("HIT", "MISS", "BYPASS"):
            metrics.page_cache.labels(view, outcome).inc()
        _count_session(request, response)
        metrics.sample_process("web")
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        # Django calls this for an exception a view raised (before the 500 page is made).
        metrics.http_exceptions.labels(view_label(request), type(exception).__name__).inc()


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _count_session(request: HttpRequest, response: HttpResponse) -> None:
    """What SessionMiddleware did with the session, by its own rules (process_response)."""
    session = getattr(request, "session", None)
    if session is None:
        return
    if session.accessed and settings.SESSION_COOKIE_NAME in request.COOKIES:
        metrics.sessions.labels("load").inc()
    empty = session.is_empty()
    if settings.SESSION_COOKIE_NAME in request.COOKIES and empty:
        metrics.sessions.labels("delete").inc()
    elif (
        (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)
        and not empty
        and response.status_code != 500
    ):
        metrics.sessions.labels("save").inc()
