from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from storefront.ops import views
from storefront.ops.client_address import client_address

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


class ProxyClientAddressMiddleware:
    """Sets REMOTE_ADDR from the one header our nginx writes (X-Real-IP = $remote_addr).

    Behind nginx over a unix socket REMOTE_ADDR is empty. Only this single header is trusted,
    never an X-Forwarded-For chain a client could have started; and only when
    STOREFRONT_PROXY_CLIENT_IP_HEADER names it, i.e. when the app is reachable through nginx
    alone (unix socket or loopback), since a directly reachable app could be sent any value.
    (Gunicorn's forwarded_allow_ips governs the scheme only, not the client address.)
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # The rule lives in client_address(), which /readyz (answered before this middleware
        # runs) uses too.
        address = client_address(request)
        if address:
            request.META["REMOTE_ADDR"] = address
        return self.get_response(request)
