"""API token authentication: django-rest-knox's, one query per request like DRF's was."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication
from knox.models import AuthToken
from knox.signals import token_expired


class ApiTokenAuthentication(TokenAuthentication):
    """knox's token authentication, minus its sweep of the user's other tokens.

    On every authenticated request knox reads all the user's tokens to delete the expired ones:
    one more query per API call, reading more rows the more clients a user has. Here expired
    tokens are deleted when the user obtains a new one (services.api_token_create) instead;
    the token in use is still refused, and deleted, once it has expired.
    """

    def _cleanup_token(self, auth_token: AuthToken) -> bool:
        if auth_token.expiry is None or auth_token.expiry >= timezone.now():
            return False
        username = auth_token.user.get_username()
        auth_token.delete()
        token_expired.send(sender=type(self), username=username, source="auth_token")
        return True


class ApiTokenScheme(KnoxTokenScheme):
    """The OpenAPI security scheme for it: the same "tokenAuth" DRF's token had."""

    target_class = "storefront.accounts.authentication.ApiTokenAuthentication"
    name = "tokenAuth"
