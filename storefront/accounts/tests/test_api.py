"""Obtaining an API token and authenticating with it (or with the session)."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/auth/token/"


def test_obtaining_and_using_a_token(client: Client) -> None:
    user = UserFactory(username="ada")

    response = client.post(
        TOKEN_URL, {"username": "ada", "password": TEST_PASSWORD}, content_type="application/json"
    )

    assert response.status_code == 200
    token = response.json()["token"]
    assert token == user.auth_token.key
    orders = Client().get("/api/orders/", HTTP_AUTHORIZATION=f"Token {token}")
    assert orders.status_code == 200


def test_the_same_token_is_returned_on_every_login(client: Client) -> None:
    UserFactory(username="ada")
    credentials = {"username": "ada", "password": TEST_PASSWORD}

    first = client.post(TOKEN_URL, credentials).json()["token"]
    second = client.post(TOKEN_URL, credentials, content_type="application/json").json()["token"]

    assert first == second


@pytest.mark.parametrize(
    ("credentials", "errors"),
    [
        (
            {"username": "ada", "password": "wrong"},
            {"non_field_errors": ["Unable to log in with provided credentials."]},
        ),
        (
            {"username": "nobody", "password": TEST_PASSWORD},
            {"non_field_errors": ["Unable to log in with provided credentials."]},
        ),
        ({"username": "ada"}, {"password": ["This field is required."]}),
    ],
)
def test_bad_credentials_are_a_400_with_a_message(
    client: Client, credentials: dict[str, str], errors: dict[str, list[str]]
) -> None:
    UserFactory(username="ada")

    response = client.post(TOKEN_URL, credentials, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == errors


def test_inactive_users_get_no_token(client: Client) -> None:
    UserFactory(username="ada", is_active=False)

    response = client.post(TOKEN_URL, {"username": "ada", "password": TEST_PASSWORD})

    assert response.status_code == 400


def test_login_works_despite_a_stale_token_header(client: Client) -> None:
    UserFactory(username="ada")

    response = client.post(
        TOKEN_URL,
        {"username": "ada", "password": TEST_PASSWORD},
        HTTP_AUTHORIZATION="Token revoked-long-ago",
    )

    assert response.status_code == 200


def test_a_wrong_token_is_a_401(client: Client) -> None:
    response = client.get("/api/orders/", HTTP_AUTHORIZATION="Token not-a-real-token")

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


def test_session_authentication_works_too(client: Client) -> None:
    client.force_login(UserFactory())

    response = client.get("/api/orders/")

    assert response.status_code == 200
    assert response.json()["results"] == []


def test_session_writes_need_the_csrf_token() -> None:
    # Token clients are not exposed to CSRF; a browser session is, so DRF insists on the token.
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory())

    response = client.post("/api/orders/", {"items": []}, content_type="application/json")

    assert response.status_code == 403
    assert response.json()["detail"].startswith("CSRF Failed")
