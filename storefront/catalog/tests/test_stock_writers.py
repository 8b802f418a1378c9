"""Every writer of a product's stock against the checkout: the admin change form and change
list (optimistic, with the stock_version the page was rendered with), the API's PATCH (absolute
stock with a version, or a delta) and the CSV import (the file's count, under the row lock).

Each writer is also raced against a checkout holding the product's row lock on PostgreSQL: no
sale is undone, the stock ends right, and a stale writer gets the 409 or the form error.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from unittest import mock

import pytest
from django.core.files.base import ContentFile
from django.test import Client

from storefront.catalog import imports
from storefront.catalog.models import Product, ProductImport
from storefront.catalog.tests.admin_forms import form_data
from storefront.orders.models import Order
from storefront.orders.services import OrderItem, place_order
from storefront.orders.tests.races import (
    blocked_on_a_lock,
    checkout_held_open,
    finish,
    in_thread,
)
from tests.factories import CategoryFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

CONFLICT = (
    "Someone changed this product&#x27;s stock (now {stock}) since you opened the page: "
    "reload and try again."
)


def staff_client() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def current(product: Product) -> tuple[int, int]:
    product.refresh_from_db(fields=["stock", "stock_version"])
    return product.stock, product.stock_version


def sell(product: Product, quantity: int = 1) -> Order:
    return place_order(user=UserFactory(), items=[OrderItem(product.id, quantity)])


# --- the checkout -----------------------------------------------------------------------------


def test_a_sale_bumps_the_stock_version() -> None:
    product = ProductFactory(stock=10)
    assert current(product) == (10, 0)
    sell(product, 3)
    assert current(product) == (7, 1)


# --- the admin change form --------------------------------------------------------------------


def change_url(product: Product) -> str:
    return f"/admin/catalog/product/{product.pk}/change/"


def opened_change_form(client: Client, product: Product) -> dict[str, str]:
    response = client.get(change_url(product))
    assert response.status_code == 200
    return form_data(response.content.decode(), "product_form")


def test_change_form_carries_the_stock_it_showed_and_its_version() -> None:
    client = staff_client()
    product = ProductFactory(stock=10)
    sell(product)

    data = opened_change_form(client, product)

    assert (data["stock"], data["initial-stock"], data["stock_version"]) == ("9", "9", "1")


def test_change_form_refuses_a_stock_edit_made_on_a_stale_page() -> None:
    client = staff_client()
    product = ProductFactory(stock=10)
    data = opened_change_form(client, product)
    sell(product, 2)  # while the page is open

    response = client.post(change_url(product), {**data, "stock": "50", "price": "12.00"})

    assert response.status_code == 200
    assert CONFLICT.format(stock=8) in response.content.decode()
    product.refresh_from_db()
    assert (product.stock, product.stock_version, product.price) == (8, 1, Decimal("10.00"))


def test_change_form_keeps_a_sale_made_while_only_other_fields_were_edited() -> None:
    client = staff_client()
    product = ProductFactory(stock=10)
    data = opened_change_form(client, product)
    sell(product, 2)

    response = client.post(change_url(product), {**data, "price": "12.00"})

    assert response.status_code == 302
    product.refresh_from_db()
    assert (product.stock, product.stock_version, product.price) == (8, 1, Decimal("12.00"))


def test_change_form_saves_a_stock_edit_and_bumps_the_version() -> None:
    client = staff_client()
    product = ProductFactory(stock=10)
    data = opened_change_form(client, product)

    response = client.post(change_url(product), {**data, "stock": "50"})

    assert response.status_code == 302
    assert current(product) == (50, 1)
    # The page opened now carries the new version.
    assert opened_change_form(client, product)["stock_version"] == "1"


def test_change_form_without_the_version_may_not_change_the_stock() -> None:
    client = staff_client()
    product = ProductFactory(stock=10)
    data = opened_change_form(client, product)
    del data["stock_version"], data["initial-stock"]

    unchanged = client.post(change_url(product), {**data, "price": "11.00"})
    changed = client.post(change_url(product), {**data, "stock": "3"})

    assert unchanged.status_code == 302
    assert changed.status_code == 200
    assert CONFLICT.format(stock=10) in changed.content.decode()
    assert current(product) == (10, 0)


def test_adding_a_product_in_the_admin_still_works() -> None:
    client = staff_client()
    category = CategoryFactory()
    response = client.post(
        "/admin/catalog/product/add/",
        {
            "name": "New Lamp",
            "slug": "new-lamp",
            "sku": "NEW-1",
            "description": "",
            "price": "5.00",
            "stock": "4",
            "category": category.pk,
            "is_active": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Product.objects.get(sku="NEW-1").stock == 4


# --- the admin change list (list_editable) ----------------------------------------------------

CHANGELIST = "/admin/catalog/product/"


def opened_changelist(client: Client) -> dict[str, str]:
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    data = form_data(response.content.decode(), "changelist-form")
    data["_save"] = "Save"
    return data


def row_prefix(data: dict[str, str], product: Product) -> str:
    [key] = [k for k, v in data.items() if k.endswith("-id") and v == str(product.pk)]
    return key.removesuffix("-id")


def test_changelist_rows_carry_the_stock_they_showed_and_its_version() -> None:
    client = staff_client()
    product = ProductFactory(stock=10)
    sell(product)
    data = opened_changelist(client)
    row = row_prefix(data, product)
    assert (data[f"{row}-stock"], data[f"initial-{row}-stock"]) == ("9", "9")
    assert data[f"{row}-stock_version"] == "1"


def test_changelist_refuses_a_stock_edit_made_on_a_stale_page() -> None:
    client = staff_client()
    product, other = ProductFactory(stock=10), ProductFactory(stock=5)
    data = opened_changelist(client)
    sell(product, 3)
    row, other_row = row_prefix(data, product), row_prefix(data, other)

    response = client.post(CHANGELIST, {**data, f"{row}-stock": "40", f"{other_row}-stock": "6"})

    assert response.status_code == 200
    assert CONFLICT.format(stock=7) in response.content.decode()
    assert current(product) == (7, 1)
    assert current(other) == (5, 0)  # the list is saved all or nothing


def test_changelist_keeps_a_sale_made_while_only_the_price_was_edited() -> None:
    client = staff_client()
    product = ProductFactory(stock=10)
    data = opened_changelist(client)
    sell(product, 3)
    row = row_prefix(data, product)

    response = client.post(CHANGELIST, {**data, f"{row}-price": "12.50"})

    assert response.status_code == 302
    product.refresh_from_db()
    assert (product.stock, product.stock_version, product.price) == (7, 1, Decimal("12.50"))


def test_changelist_saves_a_stock_edit_and_bumps_the_version() -> None:
    client = staff_client()
    product = ProductFactory(stock=10)
    data = opened_changelist(client)
    row = row_prefix(data, product)

    response = client.post(CHANGELIST, {**data, f"{row}-stock": "25"})

    assert response.status_code == 302
    assert current(product) == (25, 1)


# --- the API ----------------------------------------------------------------------------------


def patch(client: Client, product: Product, body: dict, **headers: str):
    return client.patch(
        f"/api/products/{product.slug}/", body, content_type="application/json", headers=headers
    )


def test_the_product_detail_shows_the_stock_version(client: Client) -> None:
    product = ProductFactory(stock=10)
    sell(product)
    body = client.get(f"/api/products/{product.slug}/").json()
    assert (body["stock"], body["stock_version"]) == (9, 1)


def test_api_absolute_stock_needs_the_version_it_was_read_at() -> None:
    product = ProductFactory(stock=10)
    response = patch(staff_client(), product, {"stock": 3})
    assert response.status_code == 428
    assert "stock_version" in response.json()["detail"]
    assert current(product) == (10, 0)


@pytest.mark.parametrize("how", ["body", "if-match", "weak-if-match"])
def test_api_absolute_stock_with_the_current_version_is_saved(how: str) -> None:
    product = ProductFactory(stock=10)
    sell(product)
    body, headers = {"stock": 3}, {}
    if how == "body":
        body["stock_version"] = 1
    else:
        headers["If-Match"] = '"1"' if how == "if-match" else 'W/"1"'

    response = patch(staff_client(), product, body, **headers)

    assert response.status_code == 200, response.content
    assert (response.json()["stock"], response.json()["stock_version"]) == (3, 2)
    assert current(product) == (3, 2)


def test_api_absolute_stock_read_before_a_sale_is_a_409() -> None:
    client = staff_client()
    product = ProductFactory(stock=10)
    read = client.get(f"/api/products/{product.slug}/").json()
    sell(product, 4)

    response = patch(
        client, product, {"stock": 20, "price": "1.00", "stock_version": read["stock_version"]}
    )

    assert response.status_code == 409
    body = response.json()
    assert (body["stock"], body["stock_version"]) == (6, 1)
    assert body["detail"] == [
        "Someone changed this product's stock (now 6, stock_version 1) since you read it at "
        "stock_version 0: read it again and retry, or send stock_delta."
    ]
    product.refresh_from_db()
    assert (product.stock, product.price) == (6, Decimal("10.00"))  # nothing changed


def test_api_stock_delta_adds_to_the_stock_as_it_is() -> None:
    client = staff_client()
    product = ProductFactory(stock=10)
    sell(product, 4)

    added = patch(client, product, {"stock_delta": 5})
    assert added.status_code == 200
    assert current(product) == (11, 2)
    removed = patch(client, product, {"stock_delta": -11})
    assert removed.status_code == 200
    assert current(product) == (0, 3)
    too_many = patch(client, product, {"stock_delta": -1})
    assert too_many.status_code == 409
    assert too_many.json()["detail"] == ["Only 0 in stock: cannot take away 1."]
    assert current(product) == (0, 3)


@pytest.mark.parametrize(
    ("body", "headers", "field"),
    [
        ({"stock": 3, "stock_delta": 1}, {}, "stock_delta"),
        ({"stock_version": 0, "price": "2.00"}, {}, "stock_version"),
        ({"stock": 3}, {"If-Match": "*"}, "If-Match"),
        ({"stock": 3, "stock_version": 0}, {"If-Match": '"1"'}, "stock_version"),
    ],
)
def test_api_stock_input_mistakes_are_a_400(body: dict, headers: dict, field: str) -> None:
    product = ProductFactory(stock=10)
    response = patch(staff_client(), product, body, **headers)
    assert response.status_code == 400
    assert field in response.json()
    assert current(product) == (10, 0)


def test_api_other_fields_need_no_version() -> None:
    product = ProductFactory(stock=10)
    sell(product)
    response = patch(staff_client(), product, {"price": "3.00"})
    assert response.status_code == 200
    assert current(product) == (9, 1)


def test_the_schema_documents_the_stock_precondition(client: Client) -> None:
    import yaml

    schema = yaml.safe_load(client.get("/api/schema/").content)
    update = schema["paths"]["/api/products/{slug}/"]["patch"]
    assert "If-Match" in {p["name"] for p in update["parameters"]}
    assert {"409", "428"} <= set(update["responses"])


# --- the CSV import ---------------------------------------------------------------------------


def run_import(rows: str) -> ProductImport:
    upload = ContentFile(f"sku,name,category,price,stock\n{rows}".encode(), name="stock.csv")
    record = imports.create_product_import(file=upload, enqueue=False)
    return imports.run_product_import(import_id=record.pk)


def test_an_import_bumps_the_version_of_the_products_whose_stock_it_changes() -> None:
    category = CategoryFactory(slug="lamps")
    counted = ProductFactory(sku="A-1", name="Lamp A", category=category, stock=10)
    same = ProductFactory(sku="B-1", name="Lamp B", category=category, stock=4)
    priced = ProductFactory(sku="C-1", name="Lamp C", category=category, stock=2)

    record = run_import(
        "A-1,Lamp A,lamps,10.00,30\nB-1,Lamp B,lamps,10.00,4\nC-1,Lamp C,lamps,9.00,2\n"
    )

    assert (record.updated_count, record.unchanged_count) == (2, 1)
    assert current(counted) == (30, 1)
    assert current(same) == (4, 0)
    assert current(priced) == (2, 0)  # its price changed, not its stock


# --- races on PostgreSQL ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_change_form_racing_a_checkout_gets_the_form_error(require_postgres) -> None:
    client = staff_client()
    product = ProductFactory(stock=10)
    data = opened_change_form(client, product)

    with checkout_held_open(user=UserFactory(), product=product, quantity=3) as checkout:
        thread, outcome = in_thread(
            lambda: client.post(change_url(product), {**data, "stock": "50"})
        )
        blocked_on_a_lock()  # the admin waits for the checkout's row lock

    response = finish(thread, outcome)
    assert checkout.value.item_count == 3
    assert response.status_code == 200
    assert CONFLICT.format(stock=7) in response.content.decode()
    assert current(product) == (7, 1)


@pytest.mark.django_db(transaction=True)
def test_changelist_racing_a_checkout_gets_the_form_error(require_postgres) -> None:
    client = staff_client()
    product = ProductFactory(stock=10)
    data = opened_changelist(client)
    row = row_prefix(data, product)

    with checkout_held_open(user=UserFactory(), product=product, quantity=3):
        thread, outcome = in_thread(lambda: client.post(CHANGELIST, {**data, f"{row}-stock": "50"}))
        blocked_on_a_lock()

    response = finish(thread, outcome)
    assert response.status_code == 200
    assert CONFLICT.format(stock=7) in response.content.decode()
    assert current(product) == (7, 1)


@pytest.mark.django_db(transaction=True)
def test_changelist_price_edit_racing_a_checkout_keeps_the_sale(require_postgres) -> None:
    client = staff_client()
    product = ProductFactory(stock=10)
    data = opened_changelist(client)
    row = row_prefix(data, product)

    with checkout_held_open(user=UserFactory(), product=product, quantity=3):
        thread, outcome = in_thread(
            lambda: client.post(CHANGELIST, {**data, f"{row}-price": "9.99"})
        )
        blocked_on_a_lock()

    assert finish(thread, outcome).status_code == 302
    product.refresh_from_db()
    assert (product.stock, product.price) == (7, Decimal("9.99"))


@pytest.mark.django_db(transaction=True)
def test_api_absolute_stock_racing_a_checkout_is_a_409(require_postgres) -> None:
    client = staff_client()
    product = ProductFactory(stock=10)

    with checkout_held_open(user=UserFactory(), product=product, quantity=3):
        # Read while the sale is not committed yet: version 0.
        read = client.get(f"/api/products/{product.slug}/").json()
        thread, outcome = in_thread(
            lambda: patch(client, product, {"stock": 50, "stock_version": read["stock_version"]})
        )
        blocked_on_a_lock()

    response = finish(thread, outcome)
    assert response.status_code == 409
    assert (response.json()["stock"], response.json()["stock_version"]) == (7, 1)
    assert current(product) == (7, 1)


@pytest.mark.django_db(transaction=True)
def test_api_stock_delta_racing_a_checkout_adds_to_what_the_sale_left(require_postgres) -> None:
    client = staff_client()
    product = ProductFactory(stock=10)

    with checkout_held_open(user=UserFactory(), product=product, quantity=3):
        thread, outcome = in_thread(lambda: patch(client, product, {"stock_delta": 5}))
        blocked_on_a_lock()

    response = finish(thread, outcome)
    assert response.status_code == 200
    assert response.json()["stock"] == 12
    assert current(product) == (12, 2)


@pytest.mark.django_db(transaction=True)
def test_import_racing_a_checkout_waits_and_writes_the_files_count(require_postgres) -> None:
    """The import is the source of truth when it runs: it waits for the checkout's lock, then
    sets the counted stock (bumping the version past the sale's)."""
    product = ProductFactory(sku="A-1", name="Lamp A", category=CategoryFactory(slug="lamps"))

    with checkout_held_open(user=UserFactory(), product=product, quantity=3):
        thread, outcome = in_thread(lambda: run_import("A-1,Lamp A,lamps,10.00,30\n"))
        blocked_on_a_lock()

    record = finish(thread, outcome)
    assert (record.status, record.updated_count) == ("done", 1)
    assert current(product) == (30, 2)


@pytest.mark.django_db(transaction=True)
def test_a_checkout_waiting_for_an_import_sells_from_the_imported_count(require_postgres) -> None:
    """A checkout arriving while a batch holds the rows waits, then decrements the file's count:
    the batch's read, compare and write are one locked step, so no sale is lost between them."""
    product = ProductFactory(sku="A-1", name="Lamp A", category=CategoryFactory(slug="lamps"))
    read, go = threading.Event(), threading.Event()
    real_write = imports._write_batch

    def write_slowly(*args, **kwargs):
        # Between the batch's read of the stock and its write.
        with mock.patch.object(
            Product.objects,
            "bulk_create",
            side_effect=_after(read, go, Product.objects.bulk_create),
        ):
            return real_write(*args, **kwargs)

    with mock.patch.object(imports, "_write_batch", write_slowly):
        importer, imported = in_thread(lambda: run_import("A-1,Lamp A,lamps,10.00,30\n"))
        assert read.wait(timeout=10)
        buyer, bought = in_thread(lambda: sell(product, 3), name="checkout")
        blocked_on_a_lock()
        go.set()
        record = finish(importer, imported)
    finish(buyer, bought)
    assert record.updated_count == 1
    assert current(product) == (27, 2)


def _after(reached: threading.Event, go: threading.Event, call):
    def wait_then_call(*args, **kwargs):
        reached.set()
        assert go.wait(timeout=10)
        return call(*args, **kwargs)

    return wait_then_call
