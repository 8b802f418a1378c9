"""The OpenAPI schema and the Swagger UI page that renders it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db

API_PATHS = {
    "/api/auth/token/": {"post"},
    "/api/auth/logout/": {"post"},
    "/api/products/": {"get"},
    "/api/products/{slug}/": {"get", "patch"},
    "/api/orders/": {"get", "post"},
    "/api/orders/{number}/": {"get"},
    "/api/orders/{number}/cancel/": {"post"},
}


def test_schema_is_openapi_3_with_every_endpoint(client: Client) -> None:
    response = client.get("/api/schema/")

    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    assert {path: set(ops) for path, ops in schema["paths"].items()} == API_PATHS


def test_schema_documents_filters_and_error_responses(client: Client) -> None:
    schema = yaml.safe_load(client.get("/api/schema/").content)

    listing = schema["paths"]["/api/products/"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {
        "q",
        "category",
        "min_price",
        "max_price",
        "sort",
        "cursor",
        "page_size",
    }
    create = schema["paths"]["/api/orders/"]["post"]
    assert set(create["responses"]) == {"201", "400", "401", "403", "409", "414", "415", "429"}
    assert set(create["requestBody"]["content"]) == {"application/json"}


def test_schema_documents_tokens_their_expiry_and_logout(client: Client) -> None:
    schema = yaml.safe_load(client.get("/api/schema/").content)

    obtain = schema["paths"]["/api/auth/token/"]["post"]
    assert set(obtain["responses"]) == {"200", "400", "401", "403", "414", "429"}
    token_ref = obtain["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    token = schema["components"]["schemas"][token_ref.rsplit("/", 1)[-1]]
    assert set(token["properties"]) == {"token", "expiry"}
    assert token["properties"]["expiry"]["format"] == "date-time"
    logout = schema["paths"]["/api/auth/logout/"]["post"]
    assert set(logout["responses"]) == {"204", "401", "403", "414", "429"}
    assert logout["security"] == [{"tokenAuth": []}]
    assert schema["components"]["securitySchemes"]["tokenAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": 'Token-based authentication with required prefix "Token"',
    }


def test_schema_generates_without_warnings(tmp_path: Path) -> None:
    # The same check as `storefront spectacular --validate --fail-on-warn`: an undocumented
    # parameter or an unresolvable field fails here rather than misleading API clients.
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml")
    )

    assert (tmp_path / "schema.yaml").stat().st_size > 0


def test_docs_page_uses_only_local_assets(client: Client, settings) -> None:
    # Plain storage: the hashed-manifest storage needs collectstatic, which tests do not run.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }

    response = client.get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
    assert all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    assert not re.search(r"https?://", html)


def test_docs_page_has_no_inline_script(client: Client, settings) -> None:
    # nginx serves /api/docs/ with script-src 'self' only: Swagger UI's start-up code must come
    # from a URL (drf-spectacular's split view, /api/docs/?script=), never from the page.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }

    html = client.get("/api/docs/").content.decode()
    script = client.get("/api/docs/?script=")

    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), html
    assert '<script src="/api/docs/?script="></script>' in html
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert '"/api/schema/"' in script.content.decode()


def test_every_operation_documents_the_errors_of_the_layers_around_it(client: Client) -> None:
    """401 (a bad token is refused anywhere), 429 (proxy limits, lockout), 403 on writes (CSRF,
    permissions): schemathesis in `make security` fails on any undocumented status code."""
    schema = yaml.safe_load(client.get("/api/schema/").content)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            expected = {"401", "414", "429"} | ({"403"} if method not in {"get", "head"} else set())
            assert expected <= set(operation["responses"]), (method, path)
