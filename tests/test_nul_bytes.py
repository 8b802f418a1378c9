"""NUL bytes anywhere in a request are a 4xx, never PostgreSQL's DataError (a 500).

PostgreSQL text cannot hold NUL; Django's and DRF's character fields refuse it, but a value that
reaches a query some other way (a URL segment, a related-object lookup) used to fail there.
Found by schemathesis in `make security`.
"""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import CategoryFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/api/orders/a%00b/",
        "/orders/a%00b/",
        "/products/?q=a%00b",
        "/products/?category=a%00b",
        "/api/products/?category=a%00b",
        "/api/products/?q=a%00b",
        "/accounts/login/?next=/a%00b",
    ],
)
def test_nul_bytes_in_urls_are_client_errors(client: Client, path: str) -> None:
    client.force_login(UserFactory())
    response = client.get(path)
    assert response.status_code < 500, response.status_code
    if path.startswith(("/api/orders/", "/orders/")):
        assert response.status_code == 404


def test_nul_byte_in_a_category_slug_of_a_product_patch_is_a_400(
    client: Client, require_postgres: None
) -> None:
    product = ProductFactory(category=CategoryFactory(slug="lamps"))
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.patch(
        f"/api/products/{product.slug}/",
        {"category": "la\x00mps"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "category" in response.json()
    product.refresh_from_db()
    assert product.category.slug == "lamps"
