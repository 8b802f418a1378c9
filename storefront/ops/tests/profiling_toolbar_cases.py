"""Run by test_profiling.py in a child pytest with DJANGO_DEBUG=true and STOREFRONT_PROFILING=1
(and pytest-django's debug mode kept): the toolbar as a developer sees it."""

from __future__ import annotations

import re

import pytest
from django.conf import settings

from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def test_settings_load_the_toolbar() -> None:
    assert settings.DEBUG
    assert settings.STOREFRONT_TOOLBAR_ON
    assert "debug_toolbar.middleware.DebugToolbarMiddleware" in settings.MIDDLEWARE


def test_listing_from_this_machine_has_the_toolbar_with_local_assets(client) -> None:
    ProductFactory(name="Walnut Desk Lamp")
    response = client.get("/products/", REMOTE_ADDR="127.0.0.1")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="djDebug"' in html
    assert "Walnut Desk Lamp" in html
    assets = re.findall(r'(?:src|href)="([^"]*debug_toolbar[^"]*)"', html)
    assert any(a.endswith("toolbar.js") for a in assets), assets
    assert any(a.endswith("toolbar.css") for a in assets), assets
    for asset in assets:
        # Served by this site from the package's static files: nothing from another host.
        assert asset.startswith("/static/debug_toolbar/"), asset
        assert client.get(asset).status_code == 200, asset
    # The SQL panel, rendered on demand, lists the listing's queries.
    store_id = re.search(r'data-request-id="([0-9a-f]+)"', html).group(1)
    panel = client.get(
        "/__debug__/render_panel/",
        {"request_id": store_id, "panel_id": "SQLPanel"},
        REMOTE_ADDR="127.0.0.1",
    )
    assert panel.status_code == 200
    assert "catalog_product" in panel.json()["content"]


def test_no_toolbar_for_other_addresses(client) -> None:
    response = client.get("/products/", REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 200
    assert b"djDebug" not in response.content
