"""Password reset by email, password change and the logout message, as a user goes through them.

Reset emails go through a real SMTP server (aiosmtpd, the `smtp_sink` fixture). The quick tests
run the Celery task eagerly (the test settings) when the request's on_commit callbacks run;
the `stack` test sends it through Redis to a real worker subprocess.
"""

from __future__ import annotations

import re
import time
from email.message import EmailMessage

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.test import Client
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from harness.smtp import SmtpSink
from storefront.accounts.tasks import send_password_reset_email
from storefront.cache_pages import CACHE_HEADER
from storefront.orders.models import EmailDelivery
from tests.factories import TEST_PASSWORD, UserFactory
from tests.querycount import queries_for

RESET = "/accounts/password/reset/"
RESET_DONE = "/accounts/password/reset/done/"
RESET_COMPLETE = "/accounts/reset/done/"
CHANGE = "/accounts/password/change/"
CHANGE_DONE = "/accounts/password/change/done/"
NEW_PASSWORD = "a-brand-new-passphrase-2026"
INVALID_LINK = "This link is invalid or has already been used."
RESET_LINK = re.compile(r"(https?)://([^/\s]+)(/accounts/reset/[^/\s]+/[^/\s]+/)")


def _text(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def _html(message: EmailMessage) -> str:
    return message.get_body(("html",)).get_content()


def _reset_link(message: EmailMessage) -> tuple[str, str, str]:
    """(scheme, host:port, path) of the link in the text part; the HTML part has the same."""
    match = RESET_LINK.search(_text(message))
    assert match, _text(message)
    assert f'href="{match.group(0)}"' in _html(message)
    return match.group(1), match.group(2), match.group(3)


def _can_log_in(username: str, password: str) -> bool:
    response = Client().post("/accounts/login/", {"username": username, "password": password})
    return response.status_code == 302


def _request_reset(client: Client, email: str, capture, **extra) -> str:
    """Submit the reset form, run what it left for after the commit; return the Location."""
    with capture(execute=True):
        response = client.post(RESET, {"email": email}, **extra)
    assert response.status_code == 302, response.content.decode()[:500]
    return response["Location"]


# Links from the login and profile pages.


@pytest.mark.django_db
def test_the_login_page_links_to_the_reset_page_cached_or_not() -> None:
    for expected in ("MISS", "HIT"):
        response = Client().get("/accounts/login/")
        assert response[CACHE_HEADER] == expected
        assert (
            f'<a id="forgot-password-link" href="{RESET}">Forgot password?</a>'
            in response.content.decode()
        )


@pytest.mark.django_db
def test_the_profile_page_links_to_password_change(client: Client) -> None:
    client.force_login(UserFactory())
    body = client.get("/accounts/profile/").content.decode()
    assert f'<a id="change-password-link" href="{CHANGE}">Change password</a>' in body


@pytest.mark.django_db
def test_password_pages_query_budget(client: Client) -> None:
    assert queries_for(client, RESET) == 0
    assert queries_for(client, RESET_DONE) == 0
    assert queries_for(client, RESET_COMPLETE) == 0


# Password reset.


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("host", "secure", "scheme"),
    [("127.0.0.1:8000", False, "http"), ("localhost:8443", True, "https")],
)
def test_full_reset_through_the_emailed_link(
    smtp_sink: SmtpSink, django_capture_on_commit_callbacks, host: str, secure: bool, scheme: str
) -> None:
    user = UserFactory(username="ada", email="ada@example.com", full_name="Ada Lovelace")
    browser = Client(HTTP_HOST=host)

    form = browser.get(RESET, secure=secure)
    assert 'id="password-reset-form"' in form.content.decode()
    # The address as the user types it: the match is case-insensitive.
    location = _request_reset(
        browser, "ADA@Example.com", django_capture_on_commit_callbacks, secure=secure
    )
    assert location == RESET_DONE
    assert "Check your inbox" in browser.get(RESET_DONE, secure=secure).content.decode()

    [message] = smtp_sink.received()
    assert message["To"] == "ada@example.com"
    assert message["From"] == "Storefront <shop@storefront.test>"
    assert message["Subject"] == "Reset your Storefront password"
    assert "Hello Ada Lovelace," in _text(message)
    assert "expires in 3 days" in _text(message)
    # The link goes back to the scheme, host AND port this request used.
    link_scheme, link_host, path = _reset_link(message)
    assert (link_scheme, link_host) == (scheme, host)

    # The emailed link moves the token into the session and out of the address bar.
    response = browser.get(path, secure=secure)
    assert response.status_code == 302
    set_password_url = response["Location"]
    assert set_password_url.endswith("/set-password/")
    page = browser.get(set_password_url, secure=secure)
    assert page.status_code == 200
    assert 'id="set-password-form"' in page.content.decode()
    response = browser.post(
        set_password_url,
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        secure=secure,
    )
    assert response.status_code == 302
    assert response["Location"] == RESET_COMPLETE
    complete = browser.get(RESET_COMPLETE, secure=secure).content.decode()
    assert 'id="password-reset-login-link"' in complete and 'href="/accounts/login/"' in complete

    assert _can_log_in("ada", NEW_PASSWORD)
    assert not _can_log_in("ada", TEST_PASSWORD)

    # One use only: the token was derived from the old password hash, which is gone.
    token = path.rstrip("/").rsplit("/", 1)[1]
    user.refresh_from_db()
    assert not default_token_generator.check_token(user, token)
    for attempt in (Client(HTTP_HOST=host), browser):
        dead = attempt.get(path, secure=secure)
        assert dead.status_code == 400
        assert INVALID_LINK in dead.content.decode()
        assert f'href="{RESET}"' in dead.content.decode()

    # The delivery is on the shop's email ledger (admin), without the link.
    delivery = EmailDelivery.objects.get(kind=EmailDelivery.Kind.PASSWORD_RESET)
    assert (delivery.status, delivery.attempts, delivery.recipients) == (
        "sent",
        1,
        ["ada@example.com"],
    )
    assert delivery.idempotency_key.startswith(f"password-reset:{user.pk}:")
    assert token not in delivery.idempotency_key + delivery.subject + delivery.last_error
    assert message["Message-ID"] == f"<{delivery.idempotency_key.replace(':', '.')}@127.0.0.1>"


@pytest.mark.django_db
def test_the_set_password_form_rejects_bad_passwords_and_keeps_the_link(
    smtp_sink: SmtpSink, django_capture_on_commit_callbacks
) -> None:
    user = UserFactory(username="ada", email="ada@example.com")
    browser = Client()
    _request_reset(browser, "ada@example.com", django_capture_on_commit_callbacks)
    _, _, path = _reset_link(smtp_sink.received()[0])
    set_password_url = browser.get(path)["Location"]

    mismatch = browser.post(
        set_password_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD + "x"}
    )
    assert mismatch.status_code == 400
    assert "The two password fields didn’t match." in mismatch.content.decode()
    short = browser.post(set_password_url, {"new_password1": "abc", "new_password2": "abc"})
    assert short.status_code == 400
    assert "This password is too short." in short.content.decode()

    user.refresh_from_db()
    assert user.check_password(TEST_PASSWORD)
    # Not used up by the failed tries: the link still works (until the password changes, or
    # the user logs in: the token covers last_login too).
    assert browser.get(path).status_code == 302
    assert _can_log_in("ada", TEST_PASSWORD)
    assert browser.get(path).status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize(
    "who",
    [
        "nobody",  # no account has the address
        "inactive",
        "unusable password",
    ],
)
def test_no_email_for_an_address_that_cannot_reset_yet_the_same_page(
    smtp_sink: SmtpSink, django_capture_on_commit_callbacks, who: str
) -> None:
    if who == "inactive":
        UserFactory(email="someone@example.com", is_active=False)
    elif who == "unusable password":
        user = UserFactory(email="someone@example.com")
        user.set_unusable_password()
        user.save()
    UserFactory(email="ada@example.com")

    unknown = _request_reset(Client(), "someone@example.com", django_capture_on_commit_callbacks)
    known = _request_reset(Client(), "ada@example.com", django_capture_on_commit_callbacks)

    assert unknown == known == RESET_DONE  # no account enumeration
    assert [m["To"] for m in smtp_sink.received()] == ["ada@example.com"]
    assert EmailDelivery.objects.count() == 1


@pytest.mark.django_db
def test_a_malformed_address_is_a_400_with_the_form(client: Client) -> None:
    response = client.post(RESET, {"email": "not-an-email"})
    assert response.status_code == 400
    assert "Enter a valid email address." in response.content.decode()
    assert 'id="password-reset-form"' in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "mangle",
    [
        lambda uid, token: (uid, token[:-1] + ("a" if token[-1] != "a" else "b")),
        lambda uid, token: (uid, "set-password"),  # no token in the session
        lambda uid, token: ("not-base64!", token),
        lambda uid, token: (urlsafe_base64_encode(b"999999"), token),  # no such user
        lambda uid, token: (urlsafe_base64_encode(force_bytes(10**30)), token),  # out of range
        lambda uid, token: (urlsafe_base64_encode(b"\xff\xfe"), token),  # not UTF-8
    ],
)
def test_a_bad_reset_link_is_a_400_page_offering_a_new_one(client: Client, mangle) -> None:
    user = UserFactory()
    uid, token = mangle(
        urlsafe_base64_encode(force_bytes(user.pk)), default_token_generator.make_token(user)
    )
    for response in (
        client.get(f"/accounts/reset/{uid}/{token}/"),
        client.post(
            f"/accounts/reset/{uid}/{token}/",
            {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        ),
    ):
        assert response.status_code == 400
        body = response.content.decode()
        assert INVALID_LINK in body and f'href="{RESET}"' in body
        assert 'id="set-password-form"' not in body
    user.refresh_from_db()
    assert user.check_password(TEST_PASSWORD)


@pytest.mark.django_db
def test_an_smtp_outage_still_shows_the_inbox_page_and_is_recorded(
    smtp_sink: SmtpSink, django_capture_on_commit_callbacks, settings
) -> None:
    UserFactory(email="ada@example.com")
    settings.EMAIL_PORT = smtp_sink.port + 1 if smtp_sink.port < 65535 else smtp_sink.port - 1

    # Run eagerly (no broker) the send fails inside the request: robust on_commit logs it and
    # the visitor sees the usual page. With a broker the task would retry with backoff.
    assert _request_reset(Client(), "ada@example.com", django_capture_on_commit_callbacks) == (
        RESET_DONE
    )
    delivery = EmailDelivery.objects.get(kind=EmailDelivery.Kind.PASSWORD_RESET)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert smtp_sink.received() == []


@pytest.mark.django_db
def test_a_redelivered_reset_task_sends_nothing_more(smtp_sink: SmtpSink) -> None:
    message = {
        "key": "password-reset:1:0123456789abcdef",
        "to": "ada@example.com",
        "subject": "Reset your Storefront password",
        "body": "Choose a new password: http://127.0.0.1:8000/accounts/reset/x/y/",
        "html": "",
    }
    assert send_password_reset_email.delay(**message).get() == "sent"
    assert send_password_reset_email.delay(**message).get() == "sent"

    assert len(smtp_sink.received()) == 1
    delivery = EmailDelivery.objects.get(idempotency_key=message["key"])
    assert (delivery.status, delivery.attempts) == ("sent", 1)


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_sends_the_reset_email(celery_worker, smtp_sink: SmtpSink) -> None:
    UserFactory(username="grace", email="grace@example.com")
    browser = Client(HTTP_HOST="127.0.0.1:8000")

    # A transactional test commits at once: on_commit hands the task to the broker right away.
    started = time.monotonic()
    response = browser.post(RESET, {"email": "grace@example.com"})
    assert response.status_code == 302 and response["Location"] == RESET_DONE
    assert smtp_sink.received() == []  # not sent in the request: queued for the worker
    assert time.monotonic() - started < 5

    [message] = smtp_sink.wait_for(1)
    assert message["To"] == "grace@example.com"
    scheme, host, path = _reset_link(message)
    assert (scheme, host) == ("http", "127.0.0.1:8000")
    assert "storefront.accounts.tasks.send_password_reset_email" in celery_worker.log()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        delivery = EmailDelivery.objects.get(kind=EmailDelivery.Kind.PASSWORD_RESET)
        if delivery.status == "sent":
            break
        time.sleep(0.1)
    assert (delivery.status, delivery.attempts) == ("sent", 1)

    # The link the worker mailed works.
    set_password_url = browser.get(path)["Location"]
    browser.post(set_password_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert _can_log_in("grace", NEW_PASSWORD)


# Password change.


@pytest.mark.django_db
def test_password_change_needs_login(client: Client) -> None:
    assert client.get(CHANGE)["Location"] == f"/accounts/login/?next={CHANGE}"
    assert client.get(CHANGE_DONE)["Location"] == f"/accounts/login/?next={CHANGE_DONE}"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "error"),
    [
        (
            {"old_password": "wrong", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
            "Your old password was entered incorrectly. Please enter it again.",
        ),
        (
            {
                "old_password": TEST_PASSWORD,
                "new_password1": NEW_PASSWORD,
                "new_password2": NEW_PASSWORD + "x",
            },
            "The two password fields didn’t match.",
        ),
        (
            {"old_password": TEST_PASSWORD, "new_password1": "abc", "new_password2": "abc"},
            "This password is too short.",
        ),
    ],
)
def test_password_change_rejects_bad_input(client: Client, data: dict, error: str) -> None:
    user = UserFactory(username="ada")
    client.force_login(user)

    response = client.post(CHANGE, data)

    assert response.status_code == 400
    body = response.content.decode()
    assert error in body and 'id="password-change-form"' in body
    user.refresh_from_db()
    assert user.check_password(TEST_PASSWORD)


@pytest.mark.django_db
def test_password_change_keeps_this_session_and_ends_the_others(client: Client) -> None:
    user = UserFactory(username="ada")
    other_device = Client()
    for browser in (client, other_device):
        assert (
            browser.post(
                "/accounts/login/", {"username": "ada", "password": TEST_PASSWORD}
            ).status_code
            == 302
        )
    assert 'id="password-change-form"' in client.get(CHANGE).content.decode()

    response = client.post(
        CHANGE,
        {
            "old_password": TEST_PASSWORD,
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
        follow=True,
    )

    assert response.redirect_chain == [(CHANGE_DONE, 302)]
    body = response.content.decode()
    assert "Your password has been changed." in body  # the success message
    assert response.wsgi_request.user == user  # still logged in here
    assert client.get("/accounts/profile/").status_code == 200
    # Elsewhere the old session no longer counts.
    assert other_device.get("/accounts/profile/").status_code == 302
    assert _can_log_in("ada", NEW_PASSWORD) and not _can_log_in("ada", TEST_PASSWORD)


# Logout.


@pytest.mark.django_db
def test_logout_says_so_on_the_page_it_lands_on_and_only_there(client: Client) -> None:
    anonymous = Client()
    anonymous.get("/")
    assert anonymous.get("/")[CACHE_HEADER] == "HIT"  # the landing page is cached for anyone
    client.force_login(UserFactory())

    response = client.post("/accounts/logout/", follow=True)

    assert response.redirect_chain == [("/", 302)]
    assert response[CACHE_HEADER] == "BYPASS"  # the messages cookie keeps it out of the cache
    assert "You have been logged out." in response.content.decode()
    assert "_auth_user_id" not in client.session
    # Shown once, and never to anyone else.
    assert "You have been logged out." not in client.get("/").content.decode()
    assert "You have been logged out." not in anonymous.get("/").content.decode()


@pytest.mark.django_db
def test_logout_without_a_session_says_nothing(client: Client) -> None:
    response = client.post("/accounts/logout/", follow=True)
    assert response.status_code == 200
    assert "You have been logged out." not in response.content.decode()
