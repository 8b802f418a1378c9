from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache

from storefront.ops.health import run_checks


@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers. Touches no database, cache or broker."""
    return HttpResponse("ok\n", content_type="text/plain")


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when the database, cache and broker answer, else 503 naming what failed."""
    results = run_checks()
    ready = all(r.ok for r in results)
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {r.name: {"ok": r.ok, "detail": r.detail, "ms": r.milliseconds} for r in results},
    }
    if not ready:
        body["failed"] = [r.name for r in results if not r.ok]
    return JsonResponse(body, status=200 if ready else 503)
