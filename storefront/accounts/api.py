"""Accounts API: trading a username and password for the token API clients send."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.request import Request
from rest_framework.response import Response


class TokenObtainApi(ObtainAuthToken):
    """DRF's token view: the same token is returned on every login until it is deleted."""

    # Logging in must work whatever stale token or session the client still sends.
    authentication_classes = ()

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField(help_text='Send as "Authorization: Token <token>".')

        class Meta:
            ref_name = "AuthToken"

    @extend_schema(
        operation_id="auth_token_create",
        summary="Obtain an API token",
        request=AuthTokenSerializer,
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(
                OpenApiTypes.OBJECT, description="Missing fields or wrong username/password."
            ),
        },
        auth=[],
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)
