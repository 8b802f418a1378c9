import threading
from decimal import Decimal

import pytest
from django.db import connection

from storefront.catalog.models import Product
from storefront.orders.models import Order, OrderLine
from storefront.orders.services import CheckoutError, OrderItem, place_order
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_place_order_totals_lines_and_stock() -> None:
    user = UserFactory(full_name="Ada Lovelace", address_line="1 Loop Road", city="London")
    lamp = ProductFactory(name="Lamp", sku="L-1", price=Decimal("19.99"), stock=5)
    mug = ProductFactory(name="Mug", sku="M-1", price=Decimal("7.50"), stock=2)
    order = place_order(
        user=user, items=[OrderItem(lamp.id, 3), OrderItem(mug.id, 2), OrderItem(lamp.id, 1)]
    )
    assert order.total == Decimal("94.96")  # 4 × 19.99 + 2 × 7.50
    assert order.item_count == 6
    assert order.status == Order.Status.PLACED
    assert order.number.startswith("SF-") and len(order.number) == 12
    assert order.shipping_name == "Ada Lovelace"
    assert "1 Loop Road" in order.shipping_address
    lines = list(order.lines.order_by("product_sku"))
    assert [(ln.product_sku, ln.quantity, ln.unit_price) for ln in lines] == [
        ("L-1", 4, Decimal("19.99")),
        ("M-1", 2, Decimal("7.50")),
    ]
    lamp.refresh_from_db()
    mug.refresh_from_db()
    assert (lamp.stock, mug.stock) == (1, 0)


def test_order_snapshot_survives_product_rename_and_delete() -> None:
    user = UserFactory()
    product = ProductFactory(name="Old Name", sku="OLD-1", price=Decimal("10.00"), stock=5)
    order = place_order(user=user, items=[OrderItem(product.id, 2)])
    product.name, product.sku, product.price = "New Name", "NEW-1", Decimal("99.00")
    product.save()
    line = order.lines.get()
    assert (line.product_name, line.product_sku, line.unit_price) == (
        "Old Name",
        "OLD-1",
        Decimal("10.00"),
    )
    product.delete()
    line.refresh_from_db()
    assert line.product_id is None
    assert (line.product_name, line.line_total) == ("Old Name", Decimal("20.00"))
    order.refresh_from_db()
    assert order.total == Decimal("20.00")


@pytest.mark.parametrize(
    ("quantity", "stock", "message"),
    [
        (3, 2, "Only 2 of Lamp left in stock (you asked for 3)."),
        (1, 0, "Lamp is out of stock."),
        (0, 5, "Quantities must be at least 1."),
        (-2, 5, "Quantities must be at least 1."),
        (10**9, 5, "You can order at most 99 of one product."),
    ],
)
def test_failed_checkout_changes_nothing(quantity: int, stock: int, message: str) -> None:
    user = UserFactory()
    lamp = ProductFactory(name="Lamp", stock=stock)
    mug = ProductFactory(name="Mug", stock=5)
    with pytest.raises(CheckoutError) as exc:
        place_order(user=user, items=[OrderItem(mug.id, 1), OrderItem(lamp.id, quantity)])
    assert message in exc.value.messages
    assert Order.objects.count() == 0
    assert OrderLine.objects.count() == 0
    assert Product.objects.get(pk=mug.pk).stock == 5
    assert Product.objects.get(pk=lamp.pk).stock == stock


def test_inactive_or_missing_products_cannot_be_ordered() -> None:
    user = UserFactory()
    gone = ProductFactory(name="Retired Lamp", is_active=False)
    with pytest.raises(CheckoutError) as exc:
        place_order(user=user, items=[OrderItem(gone.id, 1), OrderItem(999999, 1)])
    assert exc.value.messages == [
        "Retired Lamp is no longer sold.",
        "Product #999999 is no longer sold.",
    ]
    with pytest.raises(CheckoutError, match=r"Your cart is empty\."):
        place_order(user=user, items=[])


def race_checkouts(buyers: list, product: Product) -> list[object]:
    """Each buyer checks out one unit at the same moment, on its own thread and connection;
    returns the placed orders and CheckoutErrors."""
    start = threading.Barrier(len(buyers))
    results: list[object] = []

    def checkout(user) -> None:
        try:
            start.wait(timeout=10)
            results.append(place_order(user=user, items=[OrderItem(product.id, 1)]))
        except CheckoutError as exc:
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=checkout, args=(u,)) for u in buyers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


@pytest.mark.django_db(transaction=True)
def test_last_unit_is_sold_exactly_once(require_postgres) -> None:
    """Two checkouts race for the last unit: one order, one clear error, stock never negative."""
    product = ProductFactory(name="Last Lamp", stock=1)
    results = race_checkouts([UserFactory(), UserFactory()], product)

    orders = [r for r in results if isinstance(r, Order)]
    errors = [r for r in results if isinstance(r, CheckoutError)]
    assert len(orders) == 1
    assert len(errors) == 1
    assert errors[0].messages == ["Last Lamp is out of stock."]
    assert Order.objects.count() == 1
    assert Product.objects.get(pk=product.pk).stock == 0


@pytest.mark.django_db(transaction=True)
def test_many_concurrent_checkouts_never_oversell(require_postgres) -> None:
    product = ProductFactory(stock=5)
    results = race_checkouts(UserFactory.create_batch(8), product)
    outcomes = sorted("ok" if isinstance(r, Order) else "refused" for r in results)
    assert outcomes == ["ok"] * 5 + ["refused"] * 3
    assert Product.objects.get(pk=product.pk).stock == 0
    assert OrderLine.objects.filter(product=product).count() == 5


def test_database_refuses_negative_stock_and_price() -> None:
    from django.db import IntegrityError, transaction

    product = ProductFactory(stock=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.filter(pk=product.pk).update(stock=-1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.filter(pk=product.pk).update(price=Decimal("-0.01"))
