"""The cache layer as users see it: cached anonymous pages, fresh pages after every kind of
write (service, admin, API, checkout), no personal page ever shared, and manual invalidation.

The data cache here is the configured one (real Redis in CI, the file cache otherwise); each
test starts with a new global generation (root conftest.py).
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import Client

from storefront import caching
from storefront.cache_pages import CACHE_HEADER, CSRF_PLACEHOLDER
from storefront.catalog import services as catalog_services
from storefront.catalog.models import Product
from storefront.orders.services import OrderItem, place_order
from tests.factories import (
    CategoryFactory,
    ProductFactory,
    StaffFactory,
    UserFactory,
    api_token_for,
)

pytestmark = pytest.mark.django_db

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def page(client: Client, url: str) -> tuple[str, str]:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response[CACHE_HEADER], response.content.decode()


def test_second_anonymous_listing_request_is_a_counted_hit(client: Client) -> None:
    ProductFactory.create_batch(3)

    first, first_body = page(client, "/products/")
    second, second_body = page(client, "/products/")

    assert (first, second) == ("MISS", "HIT")
    assert second_body == first_body
    # Misses: the page, then what rendering it looked up: the category list, the listing's count,
    # the page's rows, the category menus and the 3 product cards (storefront/catalog/
    # fragments.py). Hit: the page.
    assert caching.stats()["catalog"] == {"hits": 1, "misses": 8, "hit_ratio": 0.1111}


def test_cached_pages_vary_by_query_string(client: Client) -> None:
    cheap = ProductFactory(name="Cheap Lamp", price=Decimal("5.00"))
    dear = ProductFactory(name="Dear Lamp", price=Decimal("500.00"))

    _, ascending = page(client, "/products/?sort=price_asc")
    state, descending = page(client, "/products/?sort=price_desc")

    assert state == "MISS"
    assert ascending.index(cheap.name) < ascending.index(dear.name)
    assert descending.index(dear.name) < descending.index(cheap.name)


def test_signed_in_user_never_gets_the_anonymous_page(client: Client) -> None:
    ProductFactory(name="Desk Lamp")
    anonymous = Client()
    page(anonymous, "/products/")
    assert page(anonymous, "/products/")[0] == "HIT"

    user = UserFactory(username="ada")
    client.force_login(user)
    state, body = page(client, "/products/")

    assert state == "BYPASS"
    assert user.display_name in body and "Log out" in body
    # ...and their page was not stored for anyone else.
    state, body = page(anonymous, "/products/")
    assert state == "HIT"
    assert "Log out" not in body


def test_a_shopper_with_a_cart_gets_a_fresh_page(client: Client) -> None:
    lamp = ProductFactory(name="Desk Lamp", stock=10)
    page(Client(), "/products/")  # cached for anonymous visitors

    response = client.post(f"/cart/add/{lamp.id}/", {"quantity": 2})
    assert response.status_code in (302, 303)
    state, body = page(client, "/products/")

    assert state == "BYPASS"  # the session cookie marks a personal page
    assert '<span class="badge" id="cart-count">2</span>' in body


def test_cached_pages_hand_each_client_its_own_csrf_token() -> None:
    # The login page (product pages hold no token: tests/test_add_to_cart_token.py).
    first, second = Client(), Client()

    state_one, body_one = page(first, "/accounts/login/")
    state_two, body_two = page(second, "/accounts/login/")

    assert (state_one, state_two) == ("MISS", "HIT")
    tokens = [CSRF_INPUT.search(body).group(1) for body in (body_one, body_two)]
    assert tokens[0] != tokens[1]
    assert CSRF_PLACEHOLDER not in body_one + body_two
    assert first.cookies["csrftoken"].value != second.cookies["csrftoken"].value


def test_login_page_from_cache_works_for_two_fresh_browsers() -> None:
    for name in ("grace", "linus"):
        user = UserFactory(username=name)
        user.set_password("correct-horse-2026")
        user.save()
    browsers = {name: Client(enforce_csrf_checks=True) for name in ("grace", "linus")}
    states = []
    for name, browser in browsers.items():
        state, body = page(browser, "/accounts/login/")
        states.append(state)
        token = CSRF_INPUT.search(body).group(1)
        response = browser.post(
            "/accounts/login/",
            {"username": name, "password": "correct-horse-2026", "csrfmiddlewaretoken": token},
        )
        assert response.status_code == 302, response.content.decode()[:500]
        assert browser.get("/dashboard/").status_code == 200

    assert states == ["MISS", "HIT"]
    assert caching.stats()["accounts"]["hits"] == 1
    # Browsers are still told not to keep the page (its token is theirs alone).
    assert "no-store" in Client().get("/accounts/login/")["Cache-Control"]


def test_login_page_without_a_token_is_still_refused() -> None:
    browser = Client(enforce_csrf_checks=True)
    page(Client(), "/accounts/login/")  # cache it
    page(browser, "/accounts/login/")
    response = browser.post("/accounts/login/", {"username": "x", "password": "y"})
    assert response.status_code == 403


def test_product_update_through_the_service_refreshes_its_pages(
    client: Client, django_capture_on_commit_callbacks
) -> None:
    product = ProductFactory(name="Desk Lamp", price=Decimal("20.00"))
    page(client, product.get_absolute_url())
    page(client, "/products/")

    with django_capture_on_commit_callbacks(execute=True):
        catalog_services.update_product(product=product, price=Decimal("17.50"))

    state, body = page(client, product.get_absolute_url())
    assert state == "MISS" and "$17.50" in body
    state, body = page(client, "/products/")
    assert state == "MISS" and "$17.50" in body


def test_product_update_through_the_admin_refreshes_its_page(
    client: Client, django_capture_on_commit_callbacks
) -> None:
    product = ProductFactory(name="Desk Lamp", price=Decimal("20.00"))
    page(Client(), product.get_absolute_url())
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    form = {
        "name": "Desk Lamp Deluxe",
        "slug": product.slug,
        "sku": product.sku,
        "description": product.description,
        "price": "21.00",
        "stock": "10",
        "category": product.category_id,
        "is_active": "on",
    }

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/catalog/product/{product.id}/change/", form)

    assert response.status_code == 302, response.content.decode()[:2000]
    state, body = page(Client(), product.get_absolute_url())
    assert state == "MISS"
    assert "Desk Lamp Deluxe" in body and "$21.00" in body


def test_product_update_through_the_api_refreshes_its_page(
    django_capture_on_commit_callbacks,
) -> None:
    product = ProductFactory(name="Desk Lamp", price=Decimal("20.00"))
    page(Client(), product.get_absolute_url())
    api = Client(HTTP_AUTHORIZATION=f"Token {api_token_for(StaffFactory())}")

    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch(
            f"/api/products/{product.slug}/",
            {"price": "19.99", "stock": 3, "stock_version": product.stock_version},
            content_type="application/json",
        )

    assert response.status_code == 200, response.content
    assert response.json()["price"] == "19.99"
    state, body = page(Client(), product.get_absolute_url())
    assert state == "MISS"
    assert "$19.99" in body and "Only 3 left" in body


def test_api_product_update_is_for_staff_and_validated() -> None:
    product = ProductFactory(price=Decimal("20.00"))
    url = f"/api/products/{product.slug}/"
    customer = Client(HTTP_AUTHORIZATION=f"Token {api_token_for(UserFactory())}")
    staff = Client(HTTP_AUTHORIZATION=f"Token {api_token_for(StaffFactory())}")

    assert Client().patch(url, {"price": "1"}, content_type="application/json").status_code == 401
    assert customer.patch(url, {"price": "1"}, content_type="application/json").status_code == 403
    bad = staff.patch(url, {"price": "-1", "stock": "many"}, content_type="application/json")
    assert bad.status_code == 400
    assert set(bad.json()) >= {"price", "stock"}
    empty = staff.patch(url, {}, content_type="application/json")
    assert empty.status_code == 400
    assert "at least one of" in empty.content.decode()
    missing = staff.patch(
        "/api/products/no-such-product/", {"price": "1"}, content_type="application/json"
    )
    assert missing.status_code == 404
    product.refresh_from_db()
    assert product.price == Decimal("20.00")


def test_renamed_category_refreshes_the_product_pages_under_it(
    django_capture_on_commit_callbacks,
) -> None:
    category = CategoryFactory(name="Lighting")
    product = ProductFactory(category=category)
    _, body = page(Client(), product.get_absolute_url())
    assert "Lighting" in body

    with django_capture_on_commit_callbacks(execute=True):
        category.name = "Lamps & Lights"
        category.save()

    state, body = page(Client(), product.get_absolute_url())
    assert state == "MISS"
    assert "Lamps &amp; Lights" in body


def test_checkout_refreshes_stock_on_product_pages_and_low_stock_on_listings(
    django_capture_on_commit_callbacks,
) -> None:
    lamp = ProductFactory(name="Desk Lamp", stock=8)
    other = ProductFactory(name="Chair", stock=50)
    buyer = UserFactory()
    for url in (lamp.get_absolute_url(), other.get_absolute_url(), "/products/"):
        page(Client(), url)

    # 8 → 7: the lamp's page changes; listings show no stock above the threshold: still cached.
    with django_capture_on_commit_callbacks(execute=True):
        place_order(user=buyer, items=[OrderItem(lamp.id, 1)])
    state, body = page(Client(), lamp.get_absolute_url())
    assert state == "MISS" and "In stock (7)" in body
    assert page(Client(), other.get_absolute_url())[0] == "HIT"
    assert page(Client(), "/products/")[0] == "HIT"

    # 7 → 4: now within "Only N left": listings are refreshed too.
    with django_capture_on_commit_callbacks(execute=True):
        place_order(user=buyer, items=[OrderItem(lamp.id, 3)])
    state, body = page(Client(), "/products/")
    assert state == "MISS" and "Only 4 left" in body
    assert Product.objects.get(pk=lamp.pk).stock == 4


def test_cache_clear_command_invalidates_everything_or_one_namespace() -> None:
    product = ProductFactory()
    page(Client(), product.get_absolute_url())
    page(Client(), "/accounts/login/")

    call_command("cache", "clear", "--namespace", "accounts")
    assert page(Client(), "/accounts/login/")[0] == "MISS"
    assert page(Client(), product.get_absolute_url())[0] == "HIT"

    call_command("cache", "clear")
    assert page(Client(), product.get_absolute_url())[0] == "MISS"


def test_cache_stats_command_reports_ratios_and_size(capsys) -> None:
    ProductFactory()
    page(Client(), "/products/")
    page(Client(), "/products/")

    call_command("cache", "stats")
    out = capsys.readouterr().out

    # Misses: the page, the category list, the count, the rows, the category menus, the card.
    assert re.search(r"catalog\s+1\s+6\s+14\.3%", out), out
    assert re.search(r"backend (redis|file): \d+ keys", out), out


def test_keys_carry_every_version_they_depend_on() -> None:
    first = caching.make_key("catalog", "page", "/products/", scopes=["stock"])
    assert first == caching.make_key("catalog", "page", "/products/", scopes=["stock"])
    caching.bump_stock_display()
    second = caching.make_key("catalog", "page", "/products/", scopes=["stock"])
    caching.bump_namespace("catalog")
    third = caching.make_key("catalog", "page", "/products/", scopes=["stock"])
    caching.clear()
    fourth = caching.make_key("catalog", "page", "/products/", scopes=["stock"])
    assert len({first, second, third, fourth}) == 4
    # Other namespaces are untouched by a catalog bump.
    before = caching.make_key("accounts", "page", "/accounts/login/")
    caching.bump_namespace("catalog")
    assert caching.make_key("accounts", "page", "/accounts/login/") == before
    with pytest.raises(ValueError, match="unknown cache namespace"):
        caching.make_key("nope", "page")


def test_staff_clear_the_catalog_cache_from_the_admin(client: Client) -> None:
    product = ProductFactory()
    page(Client(), product.get_absolute_url())
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    response = client.post(
        "/admin/catalog/product/",
        {"action": "clear_catalog_cache", "_selected_action": [product.id]},
        follow=True,
    )

    assert response.status_code == 200
    assert "The cached catalog pages were cleared." in response.content.decode()
    assert page(Client(), product.get_absolute_url())[0] == "MISS"


def test_lookup_serves_only_values_stamped_with_the_current_versions() -> None:
    value, slot = caching.lookup("catalog", "page", "/x/", scopes=["product:lamp"])
    assert value is caching.MISSING
    caching.store_in(slot, "page one", timeout=60)
    assert caching.lookup("catalog", "page", "/x/", scopes=["product:lamp"])[0] == "page one"

    caching.bump_products(["lamp"])  # a scoped counter
    value, fresh_slot = caching.lookup("catalog", "page", "/x/", scopes=["product:lamp"])
    assert value is caching.MISSING
    # A slow writer that looked before the bump cannot put its stale page back in service.
    caching.store_in(slot, "stale page", timeout=60)
    assert caching.lookup("catalog", "page", "/x/", scopes=["product:lamp"])[0] is caching.MISSING
    caching.store_in(fresh_slot, "page two", timeout=60)
    assert caching.lookup("catalog", "page", "/x/", scopes=["product:lamp"])[0] == "page two"

    caching.clear()  # the global generation
    assert caching.lookup("catalog", "page", "/x/", scopes=["product:lamp"])[0] is caching.MISSING


def test_read_many_answers_as_get_many_does(settings) -> None:
    """caching.read_many decodes django-redis values itself (pickles and int counters): the same
    answer as cache.get_many for every kind of value the app stores, and missing keys left out."""
    from django.core.cache import cache

    values = {
        "rm:page": (("stamp", 1), {"content": b"<html>", "headers": {"Content-Type": "text/html"}}),
        "rm:counter": 1_733_000_000_123_456,
        "rm:negative": -3,
        "rm:text": "Only 3 left",
        "rm:bytes": b"\x80 not a pickle of ours",
        "rm:none-like": 0,
    }
    cache.set_many(values)
    keys = [*values, "rm:absent"]
    assert caching.read_many(keys) == cache.get_many(keys) == values
    assert caching.read_many([]) == {}


def test_read_many_with_redis_down_is_all_misses(settings) -> None:
    """Nothing listens on port 9: a miss for every key, as django-redis' IGNORE_EXCEPTIONS gives
    (the breaker of that address opens; the test server's own is untouched)."""
    assert "django_redis" in settings.CACHES["default"]["BACKEND"]
    settings.CACHES = {
        **settings.CACHES,
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:9/0"},
    }
    assert caching.read_many(["a", "b"]) == {}


def test_read_many_reads_through_a_redis_restart(settings) -> None:
    """read_many sends its MGET on a pooled connection itself (caching._mget): the connection a
    restart broke is replaced (the pool checks it out only after checking it), so the first read
    after the restart answers (a miss here would open the breaker and make every read a miss
    for its cool-down), and the pool gets the connection back after every read."""
    from django.core.cache import caches

    from harness.cache_servers import running_redis

    with running_redis() as server:
        settings.CACHES = {
            **settings.CACHES,
            "default": {**settings.CACHES["default"], "LOCATION": server.url},
        }
        cache = caches["default"]
        cache.set("rm:before", "kept")
        assert caching.read_many(["rm:before", "rm:absent"]) == {"rm:before": "kept"}
        pool = cache.client.get_client(write=False).connection_pool
        assert len(pool._in_use_connections) == 0

        server.stop()
        server.start()  # empty again: no persistence
        server.client().set(cache.make_key("rm:after"), b"3")  # an int counter, as stored

        assert caching.read_many(["rm:before", "rm:after"]) == {"rm:after": 3}
        assert len(pool._in_use_connections) == 0
