from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from storefront.accounts.api import TokenLogoutApi, TokenObtainApi
from storefront.api import ApiNotFound
from storefront.catalog.api import ProductDetailApi, ProductListApi
from storefront.orders import converters  # noqa: F401 (registers order_number)
from storefront.orders.api import OrderCancelApi, OrderDetailApi, OrderListCreateApi

urlpatterns = [
    path("auth/token/", TokenObtainApi.as_view(), name="api-token"),
    path("auth/logout/", TokenLogoutApi.as_view(), name="api-logout"),
    path("products/", ProductListApi.as_view(), name="api-product-list"),
    path("products/<slug:slug>/", ProductDetailApi.as_view(), name="api-product-detail"),
    # Anything else there (a space, a %, an accent) can be no product's slug.
    re_path(
        r"^products/[^/]+/$",
        ApiNotFound.as_view(
            detail="No product has that slug: slugs are letters, digits, hyphens and underscores."
        ),
    ),
    path("orders/", OrderListCreateApi.as_view(), name="api-order-list"),
    path("orders/<order_number:number>/", OrderDetailApi.as_view(), name="api-order-detail"),
    path("orders/<order_number:number>/cancel/", OrderCancelApi.as_view(), name="api-order-cancel"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file (/api/docs/?script=), so the
    # page runs under a CSP without 'unsafe-inline' scripts (nginx, app.conf.template).
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    # Last: anything else under /api/ (ending in a slash, so APPEND_SLASH still redirects
    # /api/products to /api/products/) is a JSON 404.
    re_path(r"^.*/$", ApiNotFound.as_view(), name="api-not-found"),
]
