"""Login lockout (django-axes), fitted to the shop: its client address, its error pages, a
limit per lockout parameter, and password-reset requests counted like failed logins.

axes watches every authenticate(request, ...) call: the site's login page, the admin's, and
/api/auth/token/. A password-reset request has no password that could fail, so each request
is counted here instead (`count_password_reset_request`). The settings are in settings.py
(AXES_*, STOREFRONT_LOCKOUT_*).
"""

from __future__ import annotations

import ipaddress
import math
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off, get_failure_limit, get_lockout_parameters
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse

from storefront.error_pages import error_response
from storefront.ops.client_address import client_address as resolved_client_address

# AccessAttempt.username is 255 characters; an email address is at most 254.
MAX_EMAIL_LENGTH = 254


def client_address(request: HttpRequest) -> str | None:
    """AXES_CLIENT_IP_CALLABLE: the client address by ProxyClientAddressMiddleware's rule.

    That is the header our nginx writes (STOREFRONT_PROXY_CLIENT_IP_HEADER), else the socket
    peer; a client's own X-Forwarded-For is never read, so forging one cannot start a fresh
    count. Anything that is not an address (it would not fit the database column) counts as no
    address.
    """
    address = resolved_client_address(request)
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def lockout_minutes(request: HttpRequest | None = None) -> int:
    # Every refused attempt is itself recorded as a failure (axes's
    # AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT), so the wait is always the whole cool-off.
    return max(1, math.ceil(get_cool_off(request).total_seconds() / 60))


def lockout_message(request: HttpRequest | None = None) -> str:
    minutes = lockout_minutes(request)
    return f"Too many failed attempts: try again in {minutes} minute{'' if minutes == 1 else 's'}."


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: 429 with the wait in words, as the site's error page or, under
    /api/, as `{"detail": ...}`; Retry-After gives the wait in seconds."""
    response = error_response(request, status=429, message=lockout_message(request))
    response["Retry-After"] = str(lockout_minutes(request) * 60)
    return response


def count_password_reset_request(request: HttpRequest, *, email: str) -> bool:
    """Counts a password-reset request as a failed login of `email` from this client; True when
    the client is locked out (this request included, as the failure that reaches the limit is).

    Counting every request bounds the reset emails one client can have sent to an address, and
    the requests from one address (which share that address's limit with failed logins).
    """
    credentials = {"username": email.strip().lower()[:MAX_EMAIL_LENGTH]}
    AxesProxyHandler.user_login_failed(
        sender=count_password_reset_request, credentials=credentials, request=request
    )
    return bool(getattr(request, "axes_locked_out", False))


class TieredLimitDatabaseHandler(AxesDatabaseHandler):
    """axes's database handler with a failure limit per lockout parameter.

    axes compares one limit, AXES_FAILURE_LIMIT, with the highest failure count among the
    AXES_LOCKOUT_PARAMETERS. An address alone gets a higher one here,
    STOREFRONT_LOCKOUT_ADDRESS_FAILURES, since many people can share an address; with one limit
    for both, the account+address pair would never lock before its address did. get_failures is
    the one number axes compares (at login and after each failure), so overriding it alone
    keeps the rest of axes (recording, cool-off, the admin, the reset commands) as it is.
    """

    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> int:
        limit = get_failure_limit(request, credentials)
        parameters = get_lockout_parameters(request, credentials)
        attempts_per_parameter = self.get_user_attempts(request, credentials)
        worst = 0
        for parameter, attempts in zip(parameters, attempts_per_parameter, strict=True):
            failures = attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            own_limit = (
                settings.STOREFRONT_LOCKOUT_ADDRESS_FAILURES if parameter == "ip_address" else limit
            )
            # On axes's scale: reaches `limit` exactly when `failures` reaches `own_limit`.
            worst = max(worst, failures * limit // own_limit)
        return worst
