"""API content negotiation (apart from storefront/api.py: DRF imports this class from its
settings while rest_framework.views is still loading, so it must not import views)."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class FirstRendererWhenNoneAccepted(DefaultContentNegotiation):
    """Answers in the view's first format (JSON) rather than with a 406.

    Outside DEBUG the API renders JSON only (settings.REST_FRAMEWORK): a browser asking for
    text/html gets JSON it can show rather than an error it cannot act on (RFC 9110 §12.5.1
    lets a server disregard Accept). An unknown ?format= is still DRF's 404.
    """

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except exceptions.NotAcceptable:
            return renderers[0], renderers[0].media_type
