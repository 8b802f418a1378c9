"""Error answers in the site's words: the site's error pages for the shop, JSON under /api/.

Two parts:

- Handlers for errors Django raises (handler400/403/404/500 in storefront/urls.py). Django's
  own `page_not_found` shows the exception's class name ("Resolver404", "Http404") when an
  Http404 carries no message, as every unknown URL's does; ours says what was not found.
- `ErrorPageMiddleware` for error responses that views *return* rather than raise:
  `require_POST`'s empty HttpResponseNotAllowed (405), a bare HttpResponseBadRequest(), and
  anything under /api/ that is not JSON (the docs or schema view's 405 in HTML or YAML).
  Django sends only raised exceptions to the handlers and has no hook for returned responses,
  and DRF shapes errors of its own views only (and in their negotiated format, e.g. YAML for
  /api/schema/); a dependency for one small middleware is not worth it.

API errors keep DRF's shape, `{"detail": "..."}` (storefront/api.py), whoever produced them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from http import HTTPStatus
from urllib.parse import quote

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import select_template
from django.urls import Resolver404

API_PREFIX = "/api/"
# Error responses that keep these headers when their body is replaced.
KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After", "Vary", "X-Frame-Options")
NO_API_ENDPOINT = "There is no API endpoint at this address."
# DRF's default details (rest_framework.exceptions), so every API error reads alike.
API_DETAILS = {
    400: "Malformed request.",
    401: "Authentication credentials were not provided.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    406: "Could not satisfy the request Accept header.",
    413: "The request is too large.",
    415: "Unsupported media type in the request.",
    429: "Request was throttled.",
    500: "A server error occurred.",
    503: "The service is briefly unavailable; try again in a minute.",
}
# Seconds a client is asked to wait (Retry-After) when the database cannot be reached.
DATABASE_RETRY_AFTER = 30
SITE_MESSAGES = {
    400: "We could not understand that request.",
    403: "You do not have access to this page.",
    404: "We could not find the page you asked for.",
}


def is_api_request(request: HttpRequest) -> bool:
    return request.path_info == API_PREFIX.rstrip("/") or request.path_info.startswith(API_PREFIX)


def error_response(request: HttpRequest, *, status: int, message: str) -> HttpResponse:
    """`message` as the site's error page for `status` (its own template, else 4xx.html), or
    as `{"detail": message}` under /api/."""
    if is_api_request(request):
        return JsonResponse({"detail": message}, status=status)
    template = select_template([f"{status}.html", "4xx.html"])
    context = {"message": message, "status": status, "title": HTTPStatus(status).phrase}
    return HttpResponse(template.render(context, request), status=status)


def _message(exception: Exception | None) -> str:
    """The exception's own message when it has one in words (not Resolver404's dict)."""
    args = getattr(exception, "args", ())
    return args[0] if args and isinstance(args[0], str) else ""


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    message = _message(exception)
    if isinstance(exception, Resolver404) or not message:
        # Quoted as Django does: the path is shown, never interpreted (no content injection).
        message = (
            NO_API_ENDPOINT
            if is_api_request(request)
            else f"Page not found: there is no page at {quote(request.path)}."
        )
    return error_response(request, status=404, message=message)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    # A SuspiciousOperation's message is for the logs (it may name hosts or limits), not users.
    message = API_DETAILS[400] if is_api_request(request) else SITE_MESSAGES[400]
    return error_response(request, status=400, message=message)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    default = API_DETAILS[403] if is_api_request(request) else SITE_MESSAGES[403]
    return error_response(request, status=403, message=_message(exception) or default)


def database_unavailable(exception: BaseException | None) -> bool:
    """Whether an unhandled exception means the database cannot be reached right now (down,
    restarting, out of connections, a connection that broke): a transient outage, not a bug."""
    return isinstance(exception, OperationalError | InterfaceError)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500. Django calls it while handling the exception, so sys.exc_info() names it: an
    unreachable database is a 503 with Retry-After (the site's "briefly unavailable" page, or
    JSON), which clients and monitors read as "try again", not as a bug in the page."""
    if database_unavailable(sys.exc_info()[1]):
        status, template = 503, "503.html"
    else:
        status, template = 500, "500.html"
    if is_api_request(request):
        response: HttpResponse = JsonResponse({"detail": API_DETAILS[status]}, status=status)
    else:
        # 500.html and 503.html stand alone (no base.html, no context processors): whatever
        # failed (the database, the cache) must not fail the error page too.
        response = HttpResponse(select_template([template]).render(), status=status)
    if status == 503:
        response["Retry-After"] = str(DATABASE_RETRY_AFTER)
    return response


def _not_allowed_message(request: HttpRequest, response: HttpResponse) -> str:
    allowed = [m.strip() for m in response.get("Allow", "").split(",") if m.strip()]
    if is_api_request(request):
        return f'Method "{request.method}" not allowed.'
    if allowed == ["POST"]:
        return (
            f"This address only takes a form submission (POST), not {request.method}: "
            "use the buttons on the shop’s pages."
        )
    accepted = " or ".join(allowed) if allowed else "other"
    return f"This address answers {accepted} requests, not {request.method}."


def _replacement_message(request: HttpRequest, response: HttpResponse) -> str:
    status = response.status_code
    if status == 405:
        return _not_allowed_message(request, response)
    if is_api_request(request):
        return API_DETAILS.get(status, HTTPStatus(status).phrase + ".")
    return SITE_MESSAGES.get(status, HTTPStatus(status).description + ".")


def _needs_replacing(request: HttpRequest, response: HttpResponse) -> bool:
    if response.status_code < 400 or response.streaming:
        return False
    content_type = response.get("Content-Type", "")
    if is_api_request(request):
        return not content_type.startswith("application/json")
    return (
        response.status_code < 500 and not response.content and content_type.startswith("text/html")
    )


class ErrorPageMiddleware:
    """Gives body-less 4xx pages the site's error page, and every /api/ error a JSON body.

    Last in MIDDLEWARE: it sees the view's own response (and CSRF rejections, which happen
    inside the innermost layer), and the outer middleware (messages, CSRF cookie, X-Frame-
    Options, sessions) still process the page it puts in place.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not _needs_replacing(request, response):
            return response
        data = getattr(response, "data", None)
        if is_api_request(request) and isinstance(data, dict | list):
            # A DRF error rendered in another format (the schema view's YAML, the docs' HTML):
            # the same body, as JSON, less the "status_code" TemplateHTMLRenderer adds to it.
            if isinstance(data, dict):
                data = {key: value for key, value in data.items() if key != "status_code"}
            replacement = JsonResponse(data, status=response.status_code, safe=False)
        else:
            replacement = error_response(
                request,
                status=response.status_code,
                message=_replacement_message(request, response),
            )
        for header in KEPT_HEADERS:
            if header in response and header not in replacement:
                replacement[header] = response[header]
        replacement.cookies = response.cookies
        return replacement
