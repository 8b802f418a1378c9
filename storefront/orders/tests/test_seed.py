"""`storefront seed`: sizes, determinism, consistent orders, demo logins, refusal rules."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import Count, DecimalField, ExpressionWrapper, F, Sum
from django.db.models.functions import TruncDate
from django.http import HttpRequest
from django.utils import timezone
from PIL import Image

from storefront import seeding
from storefront.accounts.models import User
from storefront.catalog.models import Category, Product
from storefront.orders.models import Order, OrderLine
from storefront.orders.services import NUMBER_ALPHABET
from storefront.seeding.catalogue import category_plan
from storefront.seeding.vocabulary import vocabulary
from tests.factories import OrderLineFactory, ProductFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db

SMALL = {"products": 80, "orders": 300, "users": 15, "categories": 12}


def seed(**options: object) -> str:
    out = StringIO()
    call_command("seed", **{**SMALL, **options}, stdout=out)
    return out.getvalue()


def shop_snapshot() -> tuple[list, list]:
    products = list(Product.objects.order_by("id").values_list("name", "sku", "price", "stock"))
    orders = list(Order.objects.order_by("id").values_list("number", "total", "item_count"))
    return products, orders


def test_writes_the_requested_sizes_and_a_category_tree() -> None:
    output = seed()

    assert Product.objects.count() == 80
    assert Order.objects.count() == 300
    assert Category.objects.count() == 12
    assert User.objects.filter(username__startswith="shopper").count() == 15
    lines = OrderLine.objects.count()
    assert 300 <= lines <= 1500
    parents = Category.objects.filter(parent__isnull=True)
    assert parents.count() == 4
    assert not Category.objects.filter(parent__parent__isnull=False).exists()  # two levels
    assert "orders" in output and "order lines" in output and "Done in" in output


def test_same_seed_gives_the_same_shop_and_another_seed_does_not() -> None:
    seed(seed=7)
    first = shop_snapshot()
    seed(seed=7, reset=True)
    assert shop_snapshot() == first
    seed(seed=8, reset=True)
    assert shop_snapshot() != first


def test_every_order_total_and_item_count_match_its_lines() -> None:
    seed()
    line_total = ExpressionWrapper(
        F("lines__unit_price") * F("lines__quantity"),
        output_field=DecimalField(max_digits=12, decimal_places=2),
    )
    orders = Order.objects.annotate(
        line_sum=Sum(line_total),
        quantities=Sum("lines__quantity"),
        line_count=Count("lines"),
        product_count=Count("lines__product", distinct=True),
    )
    for order in orders:
        assert order.total == Decimal(order.line_sum).quantize(Decimal("0.01")), order.number
        assert order.item_count == order.quantities
        assert 1 <= order.line_count <= 5
        assert order.product_count == order.line_count  # distinct products per order
    line = OrderLine.objects.select_related("product").first()
    assert (line.product_name, line.product_sku, line.unit_price) == (
        line.product.name,
        line.product.sku,
        line.product.price,
    )


def test_order_numbers_are_unique_and_well_formed() -> None:
    seed()
    numbers = list(Order.objects.values_list("number", flat=True))
    pattern = re.compile(rf"^SF-[{NUMBER_ALPHABET}]{{4}}-[{NUMBER_ALPHABET}]{{4}}$")
    assert all(pattern.match(number) for number in numbers)
    assert len(set(numbers)) == len(numbers)


def test_demo_accounts_can_log_in(client) -> None:
    seed()
    customer_name, customer_password = seeding.DEMO_CUSTOMER
    staff_name, staff_password = seeding.DEMO_STAFF

    # A request, as axes (the login lockout) requires of every authenticate().
    customer = authenticate(HttpRequest(), username=customer_name, password=customer_password)
    staff = authenticate(HttpRequest(), username=staff_name, password=staff_password)
    assert customer is not None and staff is not None
    assert staff.is_staff and staff.is_superuser
    assert not customer.is_staff
    assert client.login(request=HttpRequest(), username=customer_name, password=customer_password)
    assert customer.full_name and customer.address_line and customer.city
    assert 1 <= customer.orders.count() <= seeding.DEMO_ORDER_COUNT
    # Seeded shoppers share one password hash that works.
    shopper = User.objects.filter(username__startswith="shopper").first()
    assert authenticate(HttpRequest(), username=shopper.username, password=seeding.SHOPPER_PASSWORD)
    assert (
        User.objects.filter(username__startswith="shopper").values("password").distinct().count()
        == 1
    )


def test_if_empty_leaves_existing_data_untouched() -> None:
    seed(seed=3)
    before = shop_snapshot()

    output = seed(seed=4, if_empty=True, products=5, orders=5)

    assert "nothing seeded" in output
    assert shop_snapshot() == before


def test_refuses_a_shop_with_products_unless_reset() -> None:
    ProductFactory()
    with pytest.raises(CommandError, match="--reset"):
        seed()
    assert Product.objects.count() == 1


@pytest.mark.parametrize("options", [{}, {"if_empty": True}])
def test_refuses_production_without_allow_production(settings, options: dict) -> None:
    settings.IS_PRODUCTION = True
    with pytest.raises(CommandError) as refused:
        seed(**options)
    message = str(refused.value)
    assert "Refusing to seed a production database (STOREFRONT_ENV=production)" in message
    assert f"{seeding.DEMO_STAFF[0]!r}" in message and "published passwords" in message
    assert "--allow-production" in message
    assert not User.objects.filter(username=seeding.DEMO_STAFF[0]).exists()
    assert Product.objects.count() == 0


def test_reset_in_production_is_refused_and_deletes_nothing(settings) -> None:
    settings.IS_PRODUCTION = True
    OrderLineFactory(order__user=UserFactory(username="realcustomer"))
    with pytest.raises(CommandError, match="--reset deletes every order") as refused:
        seed(reset=True)
    assert "--allow-production" in str(refused.value)
    assert (Order.objects.count(), Product.objects.count()) == (1, 1)


def test_allow_production_seeds_a_production_database(settings) -> None:
    settings.IS_PRODUCTION = True
    OrderLineFactory()
    seed(reset=True, allow_production=True)
    assert Product.objects.count() == 80
    assert User.objects.filter(username=seeding.DEMO_STAFF[0], is_staff=True).exists()


def test_reset_replaces_shop_data_and_keeps_other_users() -> None:
    customer, staff = UserFactory(username="realcustomer"), StaffFactory()
    OrderLineFactory(order__user=customer)  # a real order and product, to be replaced

    seed(reset=True)

    assert User.objects.filter(pk__in=[customer.pk, staff.pk]).count() == 2
    assert not Order.objects.filter(user=customer).exists()
    assert Product.objects.count() == 80
    # Identities moved past the explicit ids the seed wrote, so new rows get fresh keys.
    assert ProductFactory().pk > 80
    assert UserFactory().pk > User.objects.filter(username__startswith="shopper").count()


def test_orders_fall_on_each_of_the_last_30_days_and_never_in_the_future() -> None:
    seed()
    today = timezone.localdate()
    days = set(Order.objects.annotate(day=TruncDate("created_at")).values_list("day", flat=True))
    assert {today - timedelta(days=n) for n in range(1, 31)} <= days
    midnight = timezone.make_aware(timezone.datetime.combine(today, timezone.datetime.min.time()))
    oldest = midnight - timedelta(days=seeding.HISTORY_DAYS)
    for model in (Order, Product):
        stamps = model.objects.values_list("created_at", flat=True)
        assert oldest <= min(stamps) and max(stamps) < midnight
    # auto_now_add did not flatten the dates.
    assert max(stamps) - min(stamps) > timedelta(days=90)
    assert (
        Order.objects.filter(created_at__gte=midnight - timedelta(days=2))
        .exclude(status__in=[Order.Status.DELIVERED])
        .exists()
    )


def test_dates_count_back_from_today() -> None:
    day = date(2026, 3, 10)
    seeding.seed_shop(**SMALL, seed=5, today=day)
    first = list(Product.objects.order_by("id").values_list("name", "created_at"))

    seeding.seed_shop(**SMALL, seed=5, today=day + timedelta(days=1), reset=True)
    second = list(Product.objects.order_by("id").values_list("name", "created_at"))

    assert [name for name, _ in second] == [name for name, _ in first]
    assert {b - a for (_, a), (_, b) in zip(first, second, strict=True)} == {timedelta(days=1)}


def test_stock_prices_and_activity_are_varied() -> None:
    seed(products=400, orders=100)
    assert Product.objects.filter(stock__lte=5).exists()
    assert Product.objects.filter(stock__gt=5).exists()
    assert Product.objects.filter(is_active=False).exists()
    prices = Product.objects.values_list("price", flat=True)
    assert all(Decimal("1.00") <= price <= Decimal("999.99") for price in prices)
    assert len(set(Product.objects.values_list("slug", flat=True))) == 400
    product = Product.objects.first()
    assert product.name.lower().split()[-1] in product.description.lower()


def test_placeholder_images_are_drawn_once_and_shared(settings) -> None:
    seed()
    folder = Path(settings.MEDIA_ROOT) / seeding.PLACEHOLDER_DIR
    files = sorted(folder.glob("*.png"))
    assert len(files) == seeding.PLACEHOLDER_COUNT
    with Image.open(files[0]) as image:
        assert image.size == (seeding.PLACEHOLDER_SIZE, seeding.PLACEHOLDER_SIZE)
    used = set(Product.objects.values_list("image", flat=True))
    assert used <= {f"{seeding.PLACEHOLDER_DIR}/{f.name}" for f in files}
    assert Path(Product.objects.first().image.path).is_file()

    stamps = [f.stat().st_mtime_ns for f in files]
    seed(reset=True)
    assert [f.stat().st_mtime_ns for f in sorted(folder.glob("*.png"))] == stamps


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"products": 0, "orders": 5}, "need products"),
        ({"categories": 0}, "--categories"),
        ({"users": -1}, "--users"),
    ],
)
def test_rejects_impossible_sizes(options: dict, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        seed(**options)


def test_without_shoppers_orders_go_to_the_demo_customer() -> None:
    seed(users=0, orders=40)
    assert Order.objects.count() == 40
    assert set(Order.objects.values_list("user__username", flat=True)) == {"demo"}


def test_postgres_load_restores_every_index_and_constraint(require_postgres) -> None:
    tables = ["catalog_product", "orders_order", "orders_orderline"]

    def schema() -> set[tuple[str, ...]]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s)", [tables]
            )
            indexes = set(cursor.fetchall())
            cursor.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = ANY(%s::regclass[])",
                [tables],
            )
            return indexes | set(cursor.fetchall())

    before = schema()
    seed()
    assert schema() == before
    assert "product_search_gin" in {name for name, _ in before}


def test_vocabulary_file_fits_the_generator() -> None:
    words = vocabulary()
    kinds = [kind for kind, _parent, _features in category_plan()]
    # Categories are looked up by name and SKUs prefixed by code, so both must be unique.
    assert len({kind.name for kind in kinds}) == len({kind.code for kind in kinds}) == len(kinds)
    assert len(kinds) == sum(1 + len(dept.children) for dept in words.departments)
    # A category's description names three uses; a product's may name two of them.
    assert all(len(kind.uses) >= 3 and kind.nouns and kind.materials for kind in kinds)
    assert ("Newcastle upon Tyne", "NE1") in words.cities
    assert words.adjectives and words.closing_sentences and words.first_names


def test_seeding_a_shop_that_already_served_pages_shows_the_new_catalog(
    client, django_capture_on_commit_callbacks
) -> None:
    """Seeding bulk-loads rows (no model signals): it clears the page caches itself, or pages
    cached before it (an empty listing) would outlive it."""
    assert '<a class="product-card"' not in client.get("/products/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        seed()
    body = client.get("/products/").content.decode()
    assert body.count('<a class="product-card"') == 24  # a full first page
