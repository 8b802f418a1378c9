"""The operations page (/staff/ops/) and its JSON (/staff/ops.json): charts of the minute
samples taken by beat (storefront/ops/sampling.py), for staff with ops.view_operations."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from storefront.dashboards.permissions import staff_permission_required
from storefront.ops import selectors
from storefront.ops.sampling import SAMPLE_INTERVAL, SAMPLE_RETENTION

PERMISSION = "ops.view_operations"
AREA = "the operations page"


def _window(request: HttpRequest) -> str:
    return request.GET.get("window", "hour")


def _bad_window(exc: selectors.UnknownWindow) -> HttpResponse:
    return HttpResponse(f"{exc}\n", status=400, content_type="text/plain; charset=utf-8")


@never_cache
@staff_permission_required(PERMISSION, area=AREA)
def operations_page(request: HttpRequest) -> HttpResponse:
    try:
        data = selectors.operations(window=_window(request))
    except selectors.UnknownWindow as exc:
        return _bad_window(exc)
    return render(
        request,
        "ops/operations.html",
        {
            "data": data,
            "windows": list(selectors.WINDOWS),
            "interval_seconds": int(SAMPLE_INTERVAL.total_seconds()),
            "retention_hours": int(SAMPLE_RETENTION.total_seconds() // 3600),
        },
    )


@never_cache
@staff_permission_required(PERMISSION, area=AREA)
def operations_json(request: HttpRequest) -> HttpResponse:
    try:
        data = selectors.operations(window=_window(request))
    except selectors.UnknownWindow as exc:
        return JsonResponse({"detail": str(exc)}, status=400)
    return JsonResponse(data)
