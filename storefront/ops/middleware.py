from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from storefront.ops import views

PROBES = {"/healthz": views.healthz, "/readyz": views.readyz}


class HealthProbeMiddleware:
    """Answers /healthz and /readyz first in the chain.

    Probes come from Docker, systemd or a load balancer with whatever Host header they like
    (often an IP) and over plain HTTP: answering before SecurityMiddleware and ALLOWED_HOSTS
    validation keeps them from getting a 400 or an HTTPS redirect in production.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        if probe is not None and request.method in ("GET", "HEAD"):
            return probe(request)
        return self.get_response(request)
