"""API tokens (django-rest-knox): obtaining one, using it, its expiry, revoking it; and the
session authentication browsers use."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from knox.models import AuthToken

from tests.factories import TEST_PASSWORD, UserFactory, api_token_for

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/auth/token/"
LOGOUT_URL = "/api/auth/logout/"
CREDENTIALS = {"username": "ada", "password": TEST_PASSWORD}


def token_client(token: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {token}")


def obtain(client: Client) -> dict:
    response = client.post(TOKEN_URL, CREDENTIALS, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def test_obtaining_and_using_a_token(client: Client) -> None:
    UserFactory(username="ada")

    before = timezone.now()
    body = obtain(client)

    assert set(body) == {"token", "expiry"}
    # STOREFRONT_API_TOKEN_TTL_HOURS: 30 days by default.
    expiry = parse_datetime(body["expiry"])
    assert before + timedelta(days=30) <= expiry <= timezone.now() + timedelta(days=30)
    orders = token_client(body["token"]).get("/api/orders/")
    assert orders.status_code == 200
    assert orders.json()["results"] == []


def test_tokens_are_stored_hashed(client: Client) -> None:
    user = UserFactory(username="ada")

    token = obtain(client)["token"]

    [stored] = AuthToken.objects.filter(user=user)
    assert token not in (stored.digest, stored.token_key)
    assert not AuthToken.objects.filter(digest=token).exists()


def test_the_token_response_sets_no_session(client: Client) -> None:
    UserFactory(username="ada")

    response = client.post(TOKEN_URL, CREDENTIALS)

    assert response.status_code == 200
    assert "sessionid" not in response.cookies


def test_each_login_gets_its_own_token_and_both_work(client: Client) -> None:
    UserFactory(username="ada")

    first = obtain(client)["token"]
    second = client.post(TOKEN_URL, CREDENTIALS).json()["token"]  # form-encoded works too

    assert first != second
    assert token_client(first).get("/api/orders/").status_code == 200
    assert token_client(second).get("/api/orders/").status_code == 200


def test_logout_revokes_only_the_token_in_use(client: Client) -> None:
    UserFactory(username="ada")
    laptop, phone = obtain(client)["token"], obtain(client)["token"]

    response = token_client(laptop).post(LOGOUT_URL)

    assert response.status_code == 204
    assert response.content == b""
    revoked = token_client(laptop).get("/api/orders/")
    assert revoked.status_code == 401
    assert revoked.json() == {"detail": "Invalid token."}
    assert token_client(phone).get("/api/orders/").status_code == 200
    assert token_client(laptop).post(LOGOUT_URL).status_code == 401


def test_logout_needs_a_token_not_a_session(client: Client) -> None:
    client.force_login(UserFactory())

    response = client.post(LOGOUT_URL)

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert response["WWW-Authenticate"] == "Token"


def test_logging_out_of_the_site_leaves_api_tokens_working(client: Client) -> None:
    user = UserFactory(username="ada")
    token = api_token_for(user)
    client.force_login(user)

    assert client.post("/accounts/logout/").status_code == 302

    assert token_client(token).get("/api/orders/").status_code == 200


def test_an_expired_token_is_refused_and_deleted(client: Client) -> None:
    user = UserFactory(username="ada")
    token = obtain(client)["token"]
    AuthToken.objects.filter(user=user).update(expiry=timezone.now() - timedelta(seconds=1))

    response = token_client(token).get("/api/orders/")

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}
    assert not AuthToken.objects.filter(user=user).exists()


def test_a_new_login_deletes_the_users_expired_tokens(client: Client) -> None:
    user = UserFactory(username="ada")
    old = obtain(client)["token"]
    AuthToken.objects.filter(user=user).update(expiry=timezone.now() - timedelta(seconds=1))

    fresh = obtain(client)["token"]

    assert AuthToken.objects.filter(user=user).count() == 1
    assert token_client(old).get("/api/orders/").status_code == 401
    assert token_client(fresh).get("/api/orders/").status_code == 200


def test_token_lifetime_follows_the_setting(client: Client, settings) -> None:
    settings.REST_KNOX = {**settings.REST_KNOX, "TOKEN_TTL": timedelta(hours=2)}
    UserFactory(username="ada")

    expiry = parse_datetime(obtain(client)["expiry"])

    assert timedelta(hours=1, minutes=59) < expiry - timezone.now() <= timedelta(hours=2)


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
        (
            {"username": "a" * 151, "password": "x"},
            {"username": ["Ensure this field has no more than 150 characters."]},
        ),
    ],
)
def test_bad_credentials_are_a_400_with_a_message(
    client: Client, credentials: dict[str, str], errors: dict[str, list[str]]
) -> None:
    UserFactory(username="ada")

    response = client.post(TOKEN_URL, credentials, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == errors
    assert not AuthToken.objects.exists()


def test_inactive_users_get_no_token(client: Client) -> None:
    UserFactory(username="ada", is_active=False)

    response = client.post(TOKEN_URL, CREDENTIALS)

    assert response.status_code == 400


def test_a_deactivated_users_token_stops_working(client: Client) -> None:
    user = UserFactory(username="ada")
    token = api_token_for(user)
    user.is_active = False
    user.save()

    response = token_client(token).get("/api/orders/")

    assert response.status_code == 401
    assert response.json() == {"detail": "User inactive or deleted."}


def test_login_works_despite_a_stale_token_header(client: Client) -> None:
    UserFactory(username="ada")

    response = client.post(TOKEN_URL, CREDENTIALS, HTTP_AUTHORIZATION="Token revoked-long-ago")

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
