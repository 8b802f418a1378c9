"""nginx's limits: request body size and the auth rate limit (login, password forms, admin)."""

from __future__ import annotations

import http.client

import pytest

from tests.stack.nginx.helpers import Nginx, assert_security_headers, fetch

pytestmark = pytest.mark.stack


def test_body_over_limit_is_413(nginx: Nginx) -> None:
    body = b"x" * (10 * 1024 * 1024 + 1)
    answer = fetch(nginx.http_port, "/products/", method="POST", body=body)
    assert answer.status == 413
    assert_security_headers(answer)


def test_login_burst_gets_429(nginx: Nginx) -> None:
    statuses = [
        fetch(
            nginx.http_port,
            "/accounts/login/",
            method="POST",
            body=b"username=a&password=b",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ).status
        for _ in range(10)
    ]
    # rate 5r/m with burst 5: the first request plus the burst of 5 pass, the rest are refused.
    assert statuses[:6].count(429) == 0, statuses
    assert statuses[6:] == [429] * 4, statuses


@pytest.mark.parametrize(
    ("path", "client_address"),
    [
        ("/accounts/password/reset/", "127.0.0.3"),
        ("/accounts/reset/MQ/set-password/", "127.0.0.4"),
        ("/accounts/password/change/", "127.0.0.5"),
        ("/admin/login/", "127.0.0.6"),
    ],
)
def test_password_forms_and_admin_login_are_limited_like_login(
    nginx: Nginx, path: str, client_address: str
) -> None:
    """Each from an address of its own, so no test spends another's allowance."""
    statuses = []
    for _ in range(10):
        conn = http.client.HTTPConnection(
            "127.0.0.1", nginx.http_port, timeout=10, source_address=(client_address, 0)
        )
        try:
            conn.request(
                "POST",
                path,
                body=b"email=someone%40example.test",
                headers={"Host": "localhost", "Content-Type": "application/x-www-form-urlencoded"},
            )
            statuses.append(conn.getresponse().status)
        finally:
            conn.close()
    assert statuses[:6].count(429) == 0, statuses
    assert statuses[6:] == [429] * 4, statuses
