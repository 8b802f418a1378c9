"""A URLconf with one failing view, for test_sentry.py (never part of the site's URLs)."""

from django.http import HttpRequest, HttpResponse
from django.urls import path


def failing_view(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("sentry check: the listing broke")


urlpatterns = [path("boom/", failing_view)]
