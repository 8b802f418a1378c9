from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache

from storefront.ops.client_address import is_local_client
from storefront.ops.health import run_checks


@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers. Touches no database, cache or broker."""
    return HttpResponse("ok\n", content_type="text/plain")


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when the database, cache and broker answer, else 503 naming what failed.

    Each check's detail (backend names, exception text with hosts and ports) is shown only to
    a client on this machine (is_local_client: through nginx, the address nginx reports);
    everyone else gets ok/failed per check, and the log has the reasons (health.run_checks).
    """
    results = run_checks()
    ready = all(r.ok for r in results)
    detailed = is_local_client(request)
    checks: dict[str, dict[str, object]] = {}
    for r in results:
        checks[r.name] = {"ok": r.ok, "ms": r.milliseconds}
        if detailed:
            checks[r.name]["detail"] = r.detail
    body: dict[str, object] = {"status": "ready" if ready else "not ready", "checks": checks}
    if not ready:
        body["failed"] = [r.name for r in results if not r.ok]
    return JsonResponse(body, status=200 if ready else 503)
