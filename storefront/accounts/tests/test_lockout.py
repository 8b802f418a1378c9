"""Lockout after repeated failed logins (django-axes), on every login surface: the site's login
page, the admin's, the API token endpoint, and password-reset requests.

Defaults (settings.py): 5 failures for one account from one address, 20 from one address across
accounts, locked for 15 minutes after the latest failure. Failures live in the database; "the
cool-off passes" moves them back in time by the cool-off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.db.models import F
from django.http import HttpResponse
from django.test import Client
from knox.models import AuthToken

from tests.factories import TEST_PASSWORD, StaffFactory

pytestmark = pytest.mark.django_db

MESSAGE = "Too many failed attempts: try again in 15 minutes."
LIMIT = 5  # AXES_FAILURE_LIMIT
ADDRESS_LIMIT = 20  # STOREFRONT_LOCKOUT_ADDRESS_FAILURES
RESET = "/accounts/password/reset/"


@dataclass(frozen=True)
class Surface:
    name: str
    url: str
    success_status: int
    failure_status: int

    def login(self, client: Client, username: str, password: str, **extra: str) -> HttpResponse:
        credentials = {"username": username, "password": password}
        if self.name == "api":
            return client.post(self.url, credentials, content_type="application/json", **extra)
        return client.post(self.url, credentials, **extra)

    def assert_locked_out(self, response: HttpResponse) -> None:
        assert response.status_code == 429, response.content.decode()[:300]
        assert response["Retry-After"] == "900"
        if self.name == "api":
            assert response.json() == {"detail": MESSAGE}
        else:
            assert response["Content-Type"].startswith("text/html")
            assert MESSAGE in response.content.decode()

    def assert_signed_in(self, client: Client, response: HttpResponse) -> None:
        assert response.status_code == self.success_status, response.content.decode()[:300]
        if self.name == "api":
            assert response.json()["token"]
        else:
            assert "_auth_user_id" in client.session

    def assert_not_signed_in(self, client: Client) -> None:
        assert "_auth_user_id" not in client.session
        assert not AuthToken.objects.exists()


SURFACES = [
    Surface("site", "/accounts/login/", success_status=302, failure_status=400),
    # The admin's login form answers a wrong password with the form again, status 200.
    Surface("admin", "/admin/login/", success_status=302, failure_status=200),
    Surface("api", "/api/auth/token/", success_status=200, failure_status=400),
]


@pytest.fixture(params=SURFACES, ids=lambda s: s.name)
def surface(request: pytest.FixtureRequest) -> Surface:
    return request.param


@pytest.fixture
def ada() -> object:
    # Staff, so that the right password also opens the admin.
    return StaffFactory(username="ada", email="ada@example.com")


def fail(surface: Surface, client: Client, times: int, username: str = "ada", **extra: str) -> None:
    for _ in range(times):
        response = surface.login(client, username, "wrong-password", **extra)
        assert response.status_code == surface.failure_status, response.content.decode()[:300]


def lock_out(surface: Surface, client: Client, **extra: str) -> None:
    fail(surface, client, LIMIT - 1, **extra)
    surface.assert_locked_out(surface.login(client, "ada", "wrong-password", **extra))


def cool_off_passes() -> None:
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=15, seconds=1))


def test_repeated_failures_lock_out_with_a_message(
    surface: Surface, ada: object, client: Client
) -> None:
    fail(surface, client, LIMIT - 1)

    surface.assert_locked_out(surface.login(client, "ada", "wrong-password"))

    # Kept in the database, with the address it came from.
    attempt = AccessAttempt.objects.get()
    assert (attempt.username, attempt.ip_address, attempt.failures_since_start) == (
        "ada",
        "127.0.0.1",
        LIMIT,
    )


def test_the_right_password_is_refused_while_locked_out(
    surface: Surface, ada: object, client: Client
) -> None:
    fail(surface, client, LIMIT - 1)
    surface.login(client, "ada", "wrong-password")

    surface.assert_locked_out(surface.login(client, "ada", TEST_PASSWORD))

    surface.assert_not_signed_in(client)


def test_the_lock_ends_after_the_cool_off(surface: Surface, ada: object, client: Client) -> None:
    fail(surface, client, LIMIT - 1)
    surface.login(client, "ada", "wrong-password")
    surface.assert_locked_out(surface.login(client, "ada", TEST_PASSWORD))

    cool_off_passes()

    surface.assert_signed_in(client, surface.login(client, "ada", TEST_PASSWORD))


def test_failures_below_the_limit_do_not_stop_the_right_password(
    surface: Surface, ada: object, client: Client
) -> None:
    fail(surface, client, LIMIT - 1)

    surface.assert_signed_in(client, surface.login(client, "ada", TEST_PASSWORD))


@pytest.mark.parametrize(
    "forged",
    [
        {"HTTP_X_FORWARDED_FOR": "203.0.113.9"},
        {"HTTP_X_FORWARDED_FOR": "203.0.113.9, 127.0.0.1"},
        {"HTTP_X_REAL_IP": "203.0.113.9"},
        {"HTTP_FORWARDED": "for=203.0.113.9"},
    ],
)
def test_forged_forwarding_headers_do_not_reset_the_count(
    surface: Surface, ada: object, client: Client, forged: dict[str, str]
) -> None:
    # Each failure claims another address; all are counted against the real one.
    for number in range(LIMIT - 1):
        headers = {key: value.replace(".9", f".{10 + number}") for key, value in forged.items()}
        fail(surface, client, 1, **headers)

    surface.assert_locked_out(surface.login(client, "ada", "wrong-password", **forged))
    surface.assert_locked_out(surface.login(client, "ada", TEST_PASSWORD, **forged))
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}


def test_behind_nginx_the_proxy_header_is_the_address_and_forwarded_for_is_not(
    surface: Surface, ada: object, client: Client, settings
) -> None:
    settings.STOREFRONT_PROXY_CLIENT_IP_HEADER = "X-Real-IP"
    attacker = {"HTTP_X_REAL_IP": "198.51.100.7"}
    lock_out(surface, client, **attacker)

    surface.assert_locked_out(
        surface.login(
            client, "ada", TEST_PASSWORD, **attacker, HTTP_X_FORWARDED_FOR="198.51.100.99"
        )
    )
    # Ada herself, from her own address, is not locked out by someone else's failures.
    own = Client()
    surface.assert_signed_in(
        own, surface.login(own, "ada", TEST_PASSWORD, HTTP_X_REAL_IP="198.51.100.8")
    )


def test_nobody_is_locked_out_from_another_address(
    surface: Surface, ada: object, client: Client
) -> None:
    lock_out(surface, client)

    elsewhere = Client(REMOTE_ADDR="192.0.2.44")
    surface.assert_signed_in(elsewhere, surface.login(elsewhere, "ada", TEST_PASSWORD))


def test_one_address_cannot_try_many_accounts(
    surface: Surface, ada: object, client: Client
) -> None:
    # One failure for each of many accounts: no account reaches its limit, the address does.
    for number in range(ADDRESS_LIMIT - 1):
        fail(surface, client, 1, username=f"guess{number}")

    surface.assert_locked_out(surface.login(client, "another-guess", "wrong-password"))
    surface.assert_locked_out(surface.login(client, "ada", TEST_PASSWORD))
    elsewhere = Client(REMOTE_ADDR="192.0.2.44")
    surface.assert_signed_in(elsewhere, surface.login(elsewhere, "ada", TEST_PASSWORD))


def test_a_successful_login_does_not_clear_the_address_count(ada: object, client: Client) -> None:
    # Else an attacker with an account of their own could reset their address between guesses.
    site = SURFACES[0]
    for number in range(ADDRESS_LIMIT - 1):
        fail(site, client, 1, username=f"guess{number}")
    site.assert_signed_in(client, site.login(client, "ada", TEST_PASSWORD))

    site.assert_locked_out(site.login(Client(), "one-more-guess", "wrong-password"))


@pytest.mark.parametrize(
    ("command", "argument"),
    [("axes_reset_username", "ada"), ("axes_reset_ip", "127.0.0.1"), ("axes_reset", None)],
)
def test_a_staff_reset_command_unlocks(
    surface: Surface, ada: object, client: Client, command: str, argument: str | None
) -> None:
    lock_out(surface, client)
    surface.assert_locked_out(surface.login(client, "ada", TEST_PASSWORD))

    call_command(command, *([argument] if argument else []))

    surface.assert_signed_in(client, surface.login(client, "ada", TEST_PASSWORD))


def test_an_admin_unlocks_in_the_admin(ada: object, client: Client) -> None:
    site = SURFACES[0]
    lock_out(site, client)
    attempt = AccessAttempt.objects.get()
    admin = Client()
    admin.force_login(StaffFactory())  # the Admins role, not a superuser

    listing = admin.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200
    assert "ada" in listing.content.decode()
    response = admin.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302

    site.assert_signed_in(client, site.login(client, "ada", TEST_PASSWORD))


def test_the_message_gives_the_configured_wait(ada: object, client: Client, settings) -> None:
    settings.AXES_COOLOFF_TIME = timedelta(seconds=30)
    site = SURFACES[0]
    fail(site, client, LIMIT - 1)

    response = site.login(client, "ada", "wrong-password")

    assert response.status_code == 429
    assert "Too many failed attempts: try again in 1 minute." in response.content.decode()
    assert response["Retry-After"] == "60"


# Password reset: no password can fail, so every request counts.


def request_reset(client: Client, email: str, capture, **extra: str) -> tuple[HttpResponse, int]:
    """The response, and how many reset emails the request queued."""
    with capture() as callbacks:
        response = client.post(RESET, {"email": email}, **extra)
    return response, len(callbacks)


def test_reset_requests_for_one_email_are_limited(
    ada: object, client: Client, django_capture_on_commit_callbacks
) -> None:
    for _ in range(LIMIT - 1):
        response, emails = request_reset(
            client, "ada@example.com", django_capture_on_commit_callbacks
        )
        assert (response.status_code, emails) == (302, 1)

    response, emails = request_reset(client, "ADA@example.com", django_capture_on_commit_callbacks)

    assert (response.status_code, emails) == (429, 0)
    assert MESSAGE in response.content.decode()
    # The same count, whatever the address claims to be forwarded for.
    forged, emails = request_reset(
        client,
        "ada@example.com",
        django_capture_on_commit_callbacks,
        HTTP_X_FORWARDED_FOR="203.0.113.9",
    )
    assert (forged.status_code, emails) == (429, 0)
    # The visitor's own login is not locked by their reset requests.
    assert (
        client.post("/accounts/login/", {"username": "ada", "password": TEST_PASSWORD}).status_code
        == 302
    )


def test_reset_requests_from_one_address_are_limited(
    ada: object, client: Client, django_capture_on_commit_callbacks
) -> None:
    for number in range(ADDRESS_LIMIT - 1):
        response, _ = request_reset(
            client, f"guess{number}@example.com", django_capture_on_commit_callbacks
        )
        assert response.status_code == 302

    response, emails = request_reset(client, "ada@example.com", django_capture_on_commit_callbacks)

    assert (response.status_code, emails) == (429, 0)
    # The address shares one count with failed logins.
    SURFACES[0].assert_locked_out(SURFACES[0].login(client, "ada", TEST_PASSWORD))
    elsewhere = Client(REMOTE_ADDR="192.0.2.44")
    response, emails = request_reset(
        elsewhere, "ada@example.com", django_capture_on_commit_callbacks
    )
    assert (response.status_code, emails) == (302, 1)


def test_reset_requests_work_again_after_the_cool_off_or_a_staff_reset(
    ada: object, client: Client, django_capture_on_commit_callbacks
) -> None:
    def reset() -> tuple[int, int]:
        response, emails = request_reset(
            client, "ada@example.com", django_capture_on_commit_callbacks
        )
        return response.status_code, emails

    assert [reset() for _ in range(LIMIT)] == [(302, 1)] * (LIMIT - 1) + [(429, 0)]

    cool_off_passes()
    assert [reset() for _ in range(LIMIT)] == [(302, 1)] * (LIMIT - 1) + [(429, 0)]

    call_command("axes_reset_ip", "127.0.0.1")
    assert reset() == (302, 1)


def test_an_overlong_reset_email_is_a_400_not_a_500(client: Client) -> None:
    response = client.post(RESET, {"email": "a" * 5000 + "@example.com"})

    assert response.status_code == 400
    assert "Ensure this value has at most 254 characters" in response.content.decode()
    assert len(AccessAttempt.objects.get().username) == 254
