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
from dataclasses import dataclass
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, QueryDict
from django.middleware.csrf import get_token
from django.urls import Resolver404, resolve
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
_PLACEHOLDER = CSRF_PLACEHOLDER.encode()

View = Callable[..., HttpResponse]
Scopes = Callable[..., Iterable[str]]


def csrf_placeholder(request: HttpRequest) -> dict[str, Any]:
    """Context processor: inside a cacheable render, {% csrf_token %} emits the placeholder,
    and `shared_page` is true (a template can leave a form's token out altogether, so the
    page needs none and sets no cookie: the product page's add-to-cart form)."""
    if getattr(request, _PLACEHOLDER_FLAG, False):
        return {"csrf_token": CSRF_PLACEHOLDER, "shared_page": True}
    return {}


def is_cacheable_request(request: HttpRequest) -> bool:
    return (
        request.method in ("GET", "HEAD")
        and settings.SESSION_COOKIE_NAME not in request.COOKIES
        and "messages" not in request.COOKIES
        # A visitor who just wrote reads from the primary (storefront/db_router.py): not from
        # a page that a replica may have rendered.
        and "sf_primary" not in request.COOKIES
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
    return HttpResponse(frozen["content"], headers=frozen["headers"])


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

    spec = PageCacheSpec(
        namespace=namespace,
        timeout=timeout,
        scopes=scopes,
        honor_cache_control=honor_cache_control,
        query_params=tuple(query_params) if query_params is not None else None,
    )

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in ("GET", "HEAD"):
                return _respond(spec, view, request, *args, **kwargs)
            # A read: the page's lookup and what the view caches read each counter once.
            with caching.versions_snapshot():
                return _respond(spec, view, request, *args, **kwargs)

        # Found by CachedPageMiddleware through the URL resolver (wraps() carries it outwards).
        wrapper.page_cache = spec  # type: ignore[attr-defined]
        return wrapper

    return decorator


@dataclass(frozen=True)
class PageCacheSpec:
    """How one view's pages are cached (the arguments of `cache_anonymous_page`)."""

    namespace: str
    timeout: Callable[[], int]
    scopes: Scopes | None
    honor_cache_control: bool
    query_params: tuple[str, ...] | None

    def entry(self, request: HttpRequest, *args: Any, **kwargs: Any) -> tuple[str, list[str]]:
        """The page's key text and scoped counters for this request (request.GET canonical)."""
        path, query = escape_uri_path(request.path), request.GET.urlencode()
        scopes = list(self.scopes(request, *args, **kwargs)) if self.scopes else []
        return (f"{path}?{query}" if query else path), scopes

    def lookup(self, request: HttpRequest, *args: Any, **kwargs: Any) -> tuple[Any, caching.Slot]:
        """One round trip: the stored page (or caching.MISSING) and the version counters."""
        text, scopes = self.entry(request, *args, **kwargs)
        return caching.lookup(self.namespace, "page", request.method == "HEAD", text, scopes=scopes)


# A lookup CachedPageMiddleware made and missed: the view's wrapper uses it, not a second one.
_EARLY_LOOKUP = "_storefront_page_lookup"


def _respond(
    spec: PageCacheSpec, view: View, request: HttpRequest, *args: Any, **kwargs: Any
) -> HttpResponse:
    if spec.query_params is not None:
        request.GET = canonical_query(request.GET, spec.query_params)
    if not is_cacheable_request(request) or (spec.query_params is None and request.GET):
        response = view(request, *args, **kwargs)
        response[CACHE_HEADER] = "BYPASS"
        return response
    early = getattr(request, _EARLY_LOOKUP, None)
    frozen, slot = early if early is not None else spec.lookup(request, *args, **kwargs)
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
        if _is_storable(response, honor_cache_control=spec.honor_cache_control):
            timeout = spec.timeout()
            # A timeout of 0 stores nothing (the page cache is off): no round trip to set a
            # key that would expire at once (django-redis turns set(timeout=0) into a DELETE).
            if timeout > 0:
                caching.store_in(slot, _freeze(response), timeout)
            response[CACHE_HEADER] = "MISS"
        else:
            response[CACHE_HEADER] = "BYPASS"
    if not response.streaming:
        _fill_csrf(request, response)
    patch_vary_headers(response, ["Cookie"])
    return response


class CachedPageMiddleware:
    """Answers a cached page before the session, CSRF, authentication and message middleware.

    For a GET/HEAD that carries no cookie and no Authorization header, those find nothing to do
    (no session, no CSRF cookie to read, an anonymous user, no messages), so a page cached by
    `cache_anonymous_page` can be answered as soon as the URL is resolved: one cache round trip
    and the headers the middleware above this one add (security headers, X-Frame-Options,
    metrics, request id). Pages that hold a CSRF placeholder are left to the view's wrapper,
    which needs CsrfViewMiddleware to hand this client its token and cookie. A miss is handed
    on with the lookup it made (the wrapper does not repeat it) and with the versions snapshot
    open, so the page's cached parts reuse the counters it read.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            request.method not in ("GET", "HEAD")
            or request.COOKIES
            or "HTTP_AUTHORIZATION" in request.META
        ):
            return self.get_response(request)
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        spec: PageCacheSpec | None = getattr(match.func, "page_cache", None)
        if spec is None or (spec.query_params is None and request.GET):
            return self.get_response(request)
        request.get_host()  # an unknown Host: DisallowedHost (400), as without this shortcut
        with caching.versions_snapshot():
            if spec.query_params is not None and request.GET:
                request.GET = canonical_query(request.GET, spec.query_params)
            frozen, slot = spec.lookup(request, *match.args, **match.kwargs)
            content = frozen["content"] if frozen is not caching.MISSING else None
            if content is not None and _PLACEHOLDER not in content:
                request.resolver_match = match  # for the metrics' view label
                response = _thaw(frozen)
                response[CACHE_HEADER] = "HIT"
                # Set outright: a stored page keeps no Vary header (KEPT_HEADERS).
                response["Vary"] = "Cookie"
                # What CommonMiddleware (below) would add: gunicorn then need not chunk it.
                response["Content-Length"] = str(len(content))
                return response
            setattr(request, _EARLY_LOOKUP, (frozen, slot))
            return self.get_response(request)
