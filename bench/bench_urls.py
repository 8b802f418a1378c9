"""Bench-only URLs (bench_settings.ROOT_URLCONF): the shop's URLs plus three reference views.

- /__bench__/hello/        Django "hello world": the reference every dynamic figure is a ratio to
                           (same middleware, same gunicorn, same nginx as the shop's pages).
- /__bench__/n-plus-one/   24 newest active products, then `product.category` and `product.stock`
                           touched per row: 1 + 24 queries (the classic N+1 loop).
- /__bench__/selector/     the same 24 rows from storefront.catalog.selectors.product_listing
                           (category joined in the one query), rendered the same way.

Never mounted by storefront.urls: they exist only when DJANGO_SETTINGS_MODULE=bench_settings.
"""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from storefront.catalog import selectors
from storefront.catalog.models import Product

ROWS = 24


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"Hello, world!\n", content_type="text/plain")


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
    path("", include("storefront.urls")),
]
