"""Accounts API: trading a username and password for an API token, and revoking it.

Tokens are django-rest-knox's: a new one per login, stored only as a hash, expiring after
STOREFRONT_API_TOKEN_TTL_HOURS. Clients send "Authorization: Token <token>".
"""

from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from storefront.accounts import services
from storefront.accounts.authentication import ApiTokenAuthentication
from storefront.api import ErrorSerializer

BAD_CREDENTIALS = "Unable to log in with provided credentials."


class TokenObtainApi(APIView):
    """A new token on every login: each client (script, device) holds its own, so logging one
    out leaves the others working."""

    # Logging in must work whatever stale token or session the client still sends.
    authentication_classes = ()
    permission_classes = (AllowAny,)

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=4096, trim_whitespace=False)

        class Meta:
            ref_name = "AuthTokenCredentials"

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField(help_text='Send as "Authorization: Token <token>".')
        expiry = serializers.DateTimeField(
            help_text="When the token stops working; then obtain a new one."
        )

        class Meta:
            ref_name = "AuthToken"

    @extend_schema(
        operation_id="auth_token_create",
        summary="Obtain an API token",
        description=(
            "Each call returns a new token, valid until `expiry`. The server keeps only a hash: "
            "the token is shown once. Repeated wrong passwords lock the account (from that "
            "address) and the address out for a while: 429."
        ),
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(
                OpenApiTypes.OBJECT, description="Missing fields or wrong username/password."
            ),
            429: OpenApiResponse(
                ErrorSerializer,
                description="Too many failed attempts: the detail says how long to wait "
                "(Retry-After, in seconds, too).",
            ),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        credentials = self.InputSerializer(data=request.data)
        credentials.is_valid(raise_exception=True)
        # Django's request, not DRF's wrapper: axes flags a locked-out client on the object its
        # middleware sees, which then answers 429 instead of this view's 400.
        user = authenticate(
            request._request,
            username=credentials.validated_data["username"],
            password=credentials.validated_data["password"],
        )
        if user is None:
            raise exceptions.ValidationError({"non_field_errors": [BAD_CREDENTIALS]})
        # No user_logged_in signal: that is the session login's (its receivers work on the
        # session, e.g. restoring the saved cart), and a token client has none.
        instance, token = services.api_token_create(user=user)
        return Response(self.OutputSerializer({"token": token, "expiry": instance.expiry}).data)


class TokenLogoutApi(APIView):
    """Revokes the token that authenticates this request; other tokens and site sessions stay."""

    authentication_classes = (ApiTokenAuthentication,)
    permission_classes = (IsAuthenticated,)

    @extend_schema(
        operation_id="auth_logout",
        summary="Revoke the API token in use",
        request=None,
        responses={
            204: OpenApiResponse(description="The token no longer works."),
            401: OpenApiResponse(ErrorSerializer, description="No valid token was sent."),
        },
    )
    def post(self, request: Request) -> Response:
        services.api_token_revoke(token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)
