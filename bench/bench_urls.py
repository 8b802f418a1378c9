"""Bench-only URLs (bench_settings.ROOT_URLCONF): the shop's URLs plus three reference views.

- /__bench__/hello/        Django "hello world": the reference every dynamic figure is a ratio to
                           (same middleware, same gunicorn, same nginx as the shop's pages).
- /__bench__/n-plus-one/   24 newest active products, then `product.category` and `product.stock`
                           touched per row: 1 + 24 queries (the classic N+1 loop).
- /__bench__/selector/     the same 24 rows from storefront.catalog.selectors.product_listing
                           (category joined in the one query), rendered the same way.
- /__bench__/round-trip/   hello plus the one Redis round trip an app-cache hit of the listing
                           makes (the same caching.lookup: version counters and the stored page,
                           ~17 KB, in one MGET), the page discarded: what that round trip
                           alone costs, as a ratio to hello (bench section 2).

Never mounted by storefront.urls: they exist only when DJANGO_SETTINGS_MODULE=bench_settings.
"""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from storefront import caching
from storefront.cache_pages import CACHE_HEADER
from storefront.catalog import selectors
from storefront.catalog.models import Product

ROWS = 24


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"Hello, world!\n", content_type="text/plain")


def round_trip(request: HttpRequest) -> HttpResponse:
    # What CachedPageMiddleware asks for the shop's listing (storefront/catalog/views.py: the
    # "catalog" namespace, the "stock" scope; the key text is the path), nothing else.
    with caching.versions_snapshot():
        found, _slot = caching.lookup("catalog", "page", False, "/products/", scopes=["stock"])
    response = hello(request)
    # HIT only when the page was there: the bench's probe requires it (a miss moves no page).
    response[CACHE_HEADER] = "MISS" if found is caching.MISSING else "HIT"
    return response


def _render(products) -> HttpResponse:
    lines = [f"{p.name}\t{p.category.name}\t{p.price}\t{p.stock}" for p in products]
    return HttpResponse("\n".join(lines).encode(), content_type="text/plain; charset=utf-8")


def n_plus_one(request: HttpRequest) -> HttpResponse:
    # No select_related: each `p.category` is one more query.
    products = list(Product.objects.filter(is_active=True).order_by("-created_at", "-id")[:ROWS])
    return _render(products)


def selector(request: HttpRequest) -> HttpResponse:
    products = list(selectors.product_listing(sort="newest")[:ROWS])
    return _render(products)


urlpatterns = [
    path("__bench__/hello/", hello),
    path("__bench__/n-plus-one/", n_plus_one),
    path("__bench__/selector/", selector),
    path("__bench__/round-trip/", round_trip),
    path("", include("storefront.urls")),
]
