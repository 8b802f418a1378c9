"""Error answers: the site's pages in words for the shop, JSON with a detail under /api/."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.db import IntegrityError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.test import Client, RequestFactory

from storefront.error_pages import ErrorPageMiddleware, page_not_found, server_error
from tests.factories import OrderFactory, ProductFactory, UserFactory, api_token_for

pytestmark = pytest.mark.django_db

SITE_LAYOUT = 'class="site-header"'
EXCEPTION_NAMES = ("Resolver404", "Http404", "PermissionDenied", "SuspiciousOperation")


def site_error(response: HttpResponse, status: int) -> str:
    """The body of one of the site's own error pages (layout, no exception names)."""
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("text/html")
    body = response.content.decode()
    assert SITE_LAYOUT in body
    assert 'class="error-page"' in body
    assert not any(name in body for name in EXCEPTION_NAMES), body
    return body


def api_error(response: HttpResponse, status: int) -> str:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    detail = json.loads(response.content)["detail"]
    assert isinstance(detail, str) and detail
    return detail


# --- the shop's pages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/no/such/page/", "Page not found: there is no page at /no/such/page/."),
        ("/products/no-such-lamp/", "No product called “no-such-lamp”."),
        ("/products/Not A Slug/", "Page not found: there is no page at /products/Not%20A%20Slug/."),
        ("/products/?category=nothing", "There is no category called “nothing”."),
    ],
)
def test_a_404_says_what_was_not_found(client: Client, path: str, message: str) -> None:
    assert message in site_error(client.get(path), 404)


def test_an_unknown_order_is_a_404_in_words(client: Client) -> None:
    someone_elses = OrderFactory()
    client.force_login(UserFactory())
    for number in ("SF-NONE-0000", someone_elses.number):
        body = site_error(client.get(f"/orders/{number}/"), 404)
        assert "We could not find that order in your account." in body


def test_a_404_without_a_message_names_the_path() -> None:
    request = RequestFactory().get("/somewhere/<b>odd</b>/")
    response = page_not_found(request, Http404())
    body = site_error(response, 404)
    assert "there is no page at /somewhere/%3Cb%3Eodd%3C/b%3E/." in body


@pytest.mark.parametrize(
    ("method", "path", "allowed", "message"),
    [
        (
            "get",
            "/cart/add/1/",
            "POST",
            "This address only takes a form submission (POST), not GET",
        ),
        ("put", "/cart/add/1/", "POST", "not PUT"),
        ("put", "/products/", "GET, HEAD", "This address answers GET or HEAD requests, not PUT."),
        ("delete", "/products/some-lamp/", "GET, HEAD", "not DELETE"),
    ],
)
def test_a_405_is_the_site_page_with_a_message(
    client: Client, method: str, path: str, allowed: str, message: str
) -> None:
    ProductFactory(slug="some-lamp")
    response = getattr(client, method)(path)
    body = site_error(response, 405)
    assert response["Allow"] == allowed
    assert "Not available this way" in body
    assert message in body


@pytest.mark.parametrize(
    ("empty", "status", "title"),
    [
        (HttpResponseBadRequest(), 400, "Bad request"),
        (HttpResponse(status=410), 410, "Gone"),
        (HttpResponse(status=413), 413, "Request Entity Too Large"),
    ],
)
def test_other_empty_4xx_get_the_site_error_page(
    empty: HttpResponse, status: int, title: str
) -> None:
    middleware = ErrorPageMiddleware(lambda request: empty)
    body = site_error(middleware(RequestFactory().get("/anywhere/")), status)
    assert f"<h1>{title}</h1>" in body
    assert '<p class="lead">' in body


def test_responses_with_a_body_are_left_alone() -> None:
    own = HttpResponse("Out of stock.", status=409, content_type="text/plain")
    assert ErrorPageMiddleware(lambda request: own)(RequestFactory().get("/cart/")) is own


def test_a_malformed_request_is_the_site_400_page(client: Client, settings) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    body = site_error(client.post("/cart/add/1/", {f"f{i}": "x" for i in range(10)}), 400)
    assert "We could not understand that request." in body


def test_a_server_error_page_stands_alone() -> None:
    response = server_error(RequestFactory().get("/products/"))
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


def _server_error_while_raising(exc: Exception, path: str) -> HttpResponse:
    """server_error as Django calls it: inside the `except` block of the unhandled exception."""
    try:
        raise exc
    except Exception:
        return server_error(RequestFactory().get(path))


@pytest.mark.parametrize("exc", [OperationalError("connection refused"), InterfaceError("closed")])
def test_an_unreachable_database_is_a_503_page_with_retry_after(exc: Exception) -> None:
    response = _server_error_while_raising(exc, "/orders/")
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert "briefly unavailable" in response.content.decode()
    assert "Something went wrong" not in response.content.decode()


def test_an_unreachable_database_is_a_503_in_json_under_the_api() -> None:
    response = _server_error_while_raising(OperationalError("too many clients"), "/api/orders/")
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert "unavailable" in json.loads(response.content)["detail"]


def test_other_errors_stay_500_without_retry_after() -> None:
    response = _server_error_while_raising(ValueError("a bug"), "/products/")
    assert response.status_code == 500
    assert "Retry-After" not in response
    # A database error that is no outage (an integrity error is a bug) is a 500 too.
    response = _server_error_while_raising(IntegrityError("duplicate key"), "/products/")
    assert response.status_code == 500


def test_a_view_that_cannot_reach_the_database_answers_503(client: Client, monkeypatch) -> None:
    # Through Django's whole handler (middleware, handler500): the 503 page, not the 500 one.
    from storefront.catalog import selectors

    def down(**kwargs: object) -> None:
        raise OperationalError("connection to server failed: Connection refused")

    monkeypatch.setattr(selectors, "product_detail", down)
    client.raise_request_exception = False
    response = client.get(f"/products/{ProductFactory().slug}/")
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert "briefly unavailable" in response.content.decode()


def test_a_csrf_failure_page_shows_no_empty_reason() -> None:
    strict = Client(enforce_csrf_checks=True)
    body = site_error(strict.post("/cart/update/1/", {"quantity": 1}), 403)
    assert "Your form expired" in body
    assert "()" not in body


# --- the API ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/api/nope/", "There is no API endpoint at this address."),
        ("/api/", "There is no API endpoint at this address."),
        ("/api", "There is no API endpoint at this address."),
        ("/api/products/no-such-lamp/", "No product with that slug."),
        ("/api/products/%%%/", "No product has that slug"),
        ("/api/products/UPPER CASE/", "No product has that slug"),
        ("/api/orders/SF-NONE-0000/", "Authentication credentials were not provided."),
    ],
)
def test_api_errors_are_json_with_a_detail(client: Client, path: str, detail: str) -> None:
    status = 401 if path.startswith("/api/orders/") else 404
    assert detail in api_error(client.get(path, HTTP_ACCEPT="text/html"), status)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "/api/products/"),
        ("delete", "/api/products/"),
        ("post", "/api/schema/"),
        ("delete", "/api/schema/"),
        ("put", "/api/docs/"),
        ("get", "/api/auth/token/"),
    ],
)
def test_api_wrong_methods_are_a_json_405(client: Client, method: str, path: str) -> None:
    user = UserFactory()
    api = Client(HTTP_AUTHORIZATION=f"Token {api_token_for(user)}")
    response = getattr(api, method)(path, HTTP_ACCEPT="text/html")
    detail = api_error(response, 405)
    assert detail == f'Method "{method.upper()}" not allowed.'
    assert "GET" in response["Allow"] or "POST" in response["Allow"]


def test_api_csrf_failure_is_json() -> None:
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(UserFactory())
    detail = api_error(strict.post("/api/orders/", {}, content_type="application/json"), 403)
    assert detail.startswith("CSRF Failed")


def test_api_malformed_request_is_a_json_400(client: Client, settings) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    response = client.post("/api/auth/token/", {f"f{i}": "x" for i in range(10)})
    assert api_error(response, 400) == "Malformed request."
    api = Client(HTTP_AUTHORIZATION=f"Token {api_token_for(UserFactory())}")
    broken = api.post("/api/orders/", "{not json", content_type="application/json")
    assert api_error(broken, 400).startswith("JSON parse error")


def test_api_server_error_is_json() -> None:
    response = server_error(RequestFactory().get("/api/products/"))
    assert response.status_code == 500
    assert json.loads(response.content) == {"detail": "A server error occurred."}


def test_api_non_json_errors_are_converted() -> None:
    # An HTML 403 under /api/ (as Django's CSRF page would be) becomes the API's JSON.
    html = HttpResponse("<h1>Forbidden</h1>", status=403)
    request: HttpRequest = RequestFactory().post("/api/orders/")
    response = ErrorPageMiddleware(lambda request: html)(request)
    assert api_error(response, 403) == "You do not have permission to perform this action."


# --- the browsable API --------------------------------------------------------------------------


def test_browsers_get_json_from_the_api_outside_debug(client: Client) -> None:
    ProductFactory(name="Oak Lamp")
    browser_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    for accept in ("text/html", browser_accept):
        response = client.get("/api/products/", HTTP_ACCEPT=accept)
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        assert response.json()["results"][0]["name"] == "Oak Lamp"
    # The OpenAPI docs stay an HTML page.
    assert client.get("/api/docs/")["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(("debug", "browsable"), [("0", False), ("1", True)])
def test_the_browsable_api_is_for_debug_only(debug: str, browsable: bool) -> None:
    script = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.REST_FRAMEWORK['DEFAULT_RENDERER_CLASSES'])"
    )
    env = {**os.environ, "DJANGO_DEBUG": debug, "DJANGO_SETTINGS_MODULE": "storefront.settings"}
    renderers = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "rest_framework.renderers.JSONRenderer" in renderers
    assert ("BrowsableAPIRenderer" in renderers) is browsable
