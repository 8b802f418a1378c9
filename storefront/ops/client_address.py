"""Who the client is: the address behind our nginx, and whether it is on this machine."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

# Headers a proxy adds. Behind nginx the socket peer is loopback (or a unix socket) for every
# client, so a request carrying one of these is never taken for a local one by its peer alone.
PROXY_HEADERS = ("HTTP_X_REAL_IP", "HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED")


def proxy_header_meta_key(header: str) -> str:
    """`X-Real-IP` -> `HTTP_X_REAL_IP` (its request.META key); "" for no header."""
    return "HTTP_" + header.upper().replace("-", "_") if header else ""


def client_address(request: HttpRequest) -> str:
    """The client's address: from STOREFRONT_PROXY_CLIENT_IP_HEADER when that is configured
    and present (ProxyClientAddressMiddleware's rule), else the socket peer."""
    meta_key = proxy_header_meta_key(settings.STOREFRONT_PROXY_CLIENT_IP_HEADER)
    if meta_key:
        address = request.META.get(meta_key, "").strip()
        if address:
            return address
    return request.META.get("REMOTE_ADDR", "")


def is_local_client(request: HttpRequest) -> bool:
    """True for a client on this machine (127.0.0.0/8, ::1) as resolved by client_address().

    Without a configured proxy header, a request that carries proxy headers came through a
    proxy whose client we cannot tell: it counts as remote, whatever its loopback peer says.
    """
    configured = bool(settings.STOREFRONT_PROXY_CLIENT_IP_HEADER)
    if not configured and any(request.META.get(key) for key in PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address(client_address(request)).is_loopback
    except ValueError:  # empty (a unix socket peer) or not an address
        return False
