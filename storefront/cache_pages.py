"""Whole-page caching for anonymous visitors, safe with CSRF tokens and per-user content.

A page is served from (and stored into) the cache only when the request carries nothing that
could make the page personal: a GET/HEAD with no session cookie (no login, no cart), no
messages cookie and no Authorization header. A signed-in user, or a shopper with a cart, always
gets a freshly rendered page, and their pages are never stored.

CSRF: the cached copy holds a placeholder instead of a token (the view renders with the
``csrf_placeholder`` context processor active); every response, hit or miss, gets the
placeholder replaced with this client's own token from ``get_token``, which also makes
CsrfViewMiddleware set this client's CSRF cookie. Two browsers can therefore both submit forms
from the same cached page. Responses that set cookies or are not 200 are never stored.

Keys: a page is stored once per URL that can render differently, never once per URL a client
makes up. A view declares the query parameters it reads (`query_params`); the key is the path
plus those parameters in the declared order, and the view sees only them, so ``?junk=1`` or a
reordered query string is answered with (and from) the canonical page. A view that declares
none is stored only for requests without a query string. Only 200s are stored: a bad value
(``?page=abc``, a 400) or a missing page (404) is rendered each time and leaves no entry.

Responses carry ``X-Storefront-Cache: HIT|MISS|BYPASS`` (for tests and operators) and
``Vary: Cookie``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, QueryDict
from django.middleware.csrf import get_token
from django.utils.cache import patch_vary_headers
from django.utils.encoding import escape_uri_path

from storefront import caching

CSRF_PLACEHOLDER = "__storefront_csrf_token_placeholder__"
CACHE_HEADER = "X-Storefront-Cache"
# Response headers worth keeping with a cached page (cookies and per-response ones are not).
KEPT_HEADERS = (
    "Content-Type",
    "Content-Language",
    "Cache-Control",
    "Expires",
    "X-Frame-Options",
    "Referrer-Policy",
)
_PLACEHOLDER_FLAG = "_storefront_csrf_placeholder"

View = Callable[..., HttpResponse]
Scopes = Callable[..., Iterable[str]]


def csrf_placeholder(request: HttpRequest) -> dict[str, str]:
    """Context processor: inside a cacheable render, {% csrf_token %} emits the placeholder."""
    if getattr(request, _PLACEHOLDER_FLAG, False):
        return {"csrf_token": CSRF_PLACEHOLDER}
    return {}


def is_cacheable_request(request: HttpRequest) -> bool:
    return (
        request.method in ("GET", "HEAD")
        and settings.SESSION_COOKIE_NAME not in request.COOKIES
        and "messages" not in request.COOKIES
        and "HTTP_AUTHORIZATION" not in request.META
    )


def canonical_query(params: QueryDict, known: Sequence[str]) -> QueryDict:
    """`params` reduced to the `known` names, in the order of `known` (each name's values kept
    in their order): one query string per distinct page, whatever else the URL carried."""
    pairs = [(name, value) for name in known for value in params.getlist(name)]
    return QueryDict(urlencode(pairs), encoding=params.encoding)


def _is_storable(response: HttpResponse, *, honor_cache_control: bool) -> bool:
    cache_control = response.get("Cache-Control", "") if honor_cache_control else ""
    return (
        response.status_code == 200
        and not response.streaming
        and not response.cookies
        and "private" not in cache_control
        and "no-store" not in cache_control
    )


def _freeze(response: HttpResponse) -> dict[str, Any]:
    return {
        "content": response.content,
        "headers": {h: response[h] for h in KEPT_HEADERS if h in response},
    }


def _thaw(frozen: dict[str, Any]) -> HttpResponse:
    response = HttpResponse(frozen["content"])
    for header, value in frozen["headers"].items():
        response[header] = value
    return response


def _fill_csrf(request: HttpRequest, response: HttpResponse) -> None:
    placeholder = CSRF_PLACEHOLDER.encode()
    if placeholder in response.content:
        response.content = response.content.replace(placeholder, get_token(request).encode())


def cache_anonymous_page(
    namespace: str,
    *,
    timeout: Callable[[], int],
    scopes: Scopes | None = None,
    honor_cache_control: bool = True,
    query_params: Sequence[str] | None = None,
) -> Callable[[View], View]:
    """Cache the view's page for anonymous visitors under `namespace`.

    `timeout` returns the TTL in seconds (read at request time, so settings overrides apply);
    `scopes(request, *args, **kwargs)` names the scoped version counters the page depends on
    (e.g. ``product:<slug>``), see storefront/caching.py. Pages marked private/no-store are not
    stored unless `honor_cache_control` is False: for a view whose no-store is meant for
    browsers only (the login page's, because of its CSRF token, which this cache personalises).
    The stored Cache-Control header is served with every hit, so browsers still never store it.

    `query_params` names every query parameter the view reads (``()``: none). The page is keyed
    on those alone, in that order, and the view is handed a request.GET holding only them, so
    what is stored is the canonical page (its links carry no stray parameter). Without it
    (None), the view may read anything: a request with a query string is served fresh and never
    stored, so made-up query strings cannot fill the cache.
    """

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if query_params is not None:
                request.GET = canonical_query(request.GET, query_params)
            if not is_cacheable_request(request) or (query_params is None and request.GET):
                response = view(request, *args, **kwargs)
                response[CACHE_HEADER] = "BYPASS"
                return response
            path, query = escape_uri_path(request.path), request.GET.urlencode()
            # One round trip: the page and the version counters it depends on.
            frozen, slot = caching.lookup(
                namespace,
                "page",
                request.method == "HEAD",
                f"{path}?{query}" if query else path,
                scopes=scopes(request, *args, **kwargs) if scopes else (),
            )
            if frozen is not caching.MISSING:
                response = _thaw(frozen)
                response[CACHE_HEADER] = "HIT"
            else:
                setattr(request, _PLACEHOLDER_FLAG, True)
                try:
                    response = view(request, *args, **kwargs)
                    if hasattr(response, "render") and not response.is_rendered:
                        response.render()  # a TemplateResponse (class-based views)
                finally:
                    setattr(request, _PLACEHOLDER_FLAG, False)
                if _is_storable(response, honor_cache_control=honor_cache_control):
                    caching.store_in(slot, _freeze(response), timeout())
                    response[CACHE_HEADER] = "MISS"
                else:
                    response[CACHE_HEADER] = "BYPASS"
            if not response.streaming:
                _fill_csrf(request, response)
            patch_vary_headers(response, ["Cookie"])
            return response

        return wrapper

    return decorator
