from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.static import serve


def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    """Browsers ask for /favicon.ico on pages without an icon link (the admin): no 404 noise.

    Resolved per request, because the hashed name exists only after collectstatic.
    """
    return HttpResponsePermanentRedirect(static("img/favicon.svg"))


urlpatterns = [
    path("", include("storefront.catalog.urls")),
    path("accounts/", include("storefront.accounts.urls")),
    path("", include("storefront.orders.urls")),
    path("", include("storefront.dashboards.urls")),
    path("", include("storefront.ops.urls")),
    path("api/", include("storefront.api_urls")),
    path("admin/", admin.site.urls),
    path("favicon.ico", favicon),
]

if settings.SERVE_MEDIA:
    # Only for running without nginx (make run without nginx, tests); nginx serves /media/.
    urlpatterns += [
        re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}),
    ]

# Profilers, development only (storefront/ops/profiling.py; settings refuse them in production).
if settings.STOREFRONT_TOOLBAR_ON:
    from debug_toolbar.toolbar import debug_toolbar_urls

    urlpatterns += debug_toolbar_urls()
if settings.STOREFRONT_SILK_ON:
    urlpatterns += [path("silk/", include("silk.urls", namespace="silk"))]

# Error pages in the site's words, and JSON under /api/ (storefront/error_pages.py).
handler400 = "storefront.error_pages.bad_request"
handler403 = "storefront.error_pages.permission_denied"
handler404 = "storefront.error_pages.page_not_found"
handler500 = "storefront.error_pages.server_error"

admin.site.site_header = "Storefront administration"
admin.site.site_title = "Storefront admin"
