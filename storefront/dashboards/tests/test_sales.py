"""The denormalized sales tables: kept current by the checkout, recomputed on status changes,
reconciled by the refresh; the dashboard's figures equal a recomputation from the orders."""

import datetime as dt
import threading
import time
from collections import defaultdict
from decimal import Decimal
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from storefront import seeding
from storefront.dashboards import sales_recompute, selectors
from storefront.dashboards.days import sales_day, sales_today
from storefront.dashboards.models import (
    DailySales,
    ProductDailySales,
    ProductSales30d,
    SalesWindow,
)
from storefront.dashboards.sales import refresh_daily_sales
from storefront.dashboards.tasks import refresh_daily_sales as refresh_task
from storefront.orders.models import Order, OrderLine
from storefront.orders.services import OrderItem, place_order
from tests.factories import ProductFactory, UserFactory, order_with_lines

pytestmark = pytest.mark.django_db


def place(user, *items: tuple, days_ago: int = 0) -> Order:
    """place_order as if it ran `days_ago` days ago (created_at is auto_now_add)."""
    moment = timezone.now() - dt.timedelta(days=days_ago)
    with mock.patch("django.utils.timezone.now", return_value=moment):
        return place_order(
            user=user, items=[OrderItem(product_id=p.id, quantity=q) for p, q in items]
        )


def table_contents() -> tuple[list, list, list]:
    daily = list(
        DailySales.objects.order_by("day").values_list("day", "orders", "items", "revenue")
    )
    products = sorted(
        ProductDailySales.objects.values_list(
            "day", "product_id", "product_name", "product_sku", "quantity", "orders", "revenue"
        ),
        key=str,
    )
    recent = sorted(
        ProductSales30d.objects.values_list(
            "product_id", "product_name", "product_sku", "quantity", "orders", "revenue"
        ),
        key=str,
    )
    return daily, products, recent


def recomputed_from_orders(days: int = 30) -> tuple[list, list]:
    """The dashboard's figures computed directly from Order/OrderLine, independently of the
    sales tables' code: revenue and orders per day, and top products by units."""
    first = sales_today() - dt.timedelta(days=days - 1)
    per_day: dict[dt.date, list] = defaultdict(lambda: [Decimal("0"), 0])
    for order in Order.objects.filter(status__in=Order.REVENUE_STATUSES):
        day = sales_day(order.created_at)
        if day >= first:
            per_day[day][0] += order.total
            per_day[day][1] += 1
    revenue = [
        (first + dt.timedelta(days=i), *per_day.get(first + dt.timedelta(days=i), (0, 0)))
        for i in range(days)
    ]
    units: dict[tuple, list] = defaultdict(lambda: [0, set()])
    for line in OrderLine.objects.filter(order__status__in=Order.REVENUE_STATUSES).select_related(
        "order", "product"
    ):
        if sales_day(line.order.created_at) >= first:
            key = (line.product_name, line.product_sku, line.product.slug if line.product else None)
            units[key][0] += line.quantity
            units[key][1].add(line.order_id)
    top = sorted(
        ((name, sku, slug, n, len(orders)) for (name, sku, slug), (n, orders) in units.items()),
        key=lambda row: (-row[3], row[0]),
    )
    return revenue, top[:10]


def dashboard_figures() -> tuple[list, list]:
    revenue = [(r.day, r.revenue, r.orders) for r in selectors.revenue_per_day(days=30)]
    top = [
        (r["product_name"], r["product_sku"], r["product__slug"], r["units"], r["orders"])
        for r in selectors.top_products(days=30)
    ]
    return revenue, top


def test_placing_an_order_updates_todays_rows_without_a_refresh() -> None:
    lamp = ProductFactory(price=Decimal("12.50"), stock=20)
    mug = ProductFactory(price=Decimal("4.00"), stock=20)
    place(UserFactory(), (lamp, 2), (mug, 1))
    place(UserFactory(), (lamp, 1))

    today = sales_today()
    daily = DailySales.objects.get(day=today)
    assert (daily.orders, daily.items, daily.revenue) == (2, 4, Decimal("41.50"))
    rows = {
        r.product_id: (r.quantity, r.orders, r.revenue)
        for r in ProductDailySales.objects.filter(day=today)
    }
    assert rows == {lamp.id: (3, 2, Decimal("37.50")), mug.id: (1, 1, Decimal("4.00"))}
    assert selectors.revenue_per_day(days=30)[-1].revenue == Decimal("41.50")
    assert selectors.top_products()[0]["product_name"] == lamp.name
    assert selectors.top_products()[0]["units"] == 3


def test_a_failed_checkout_leaves_the_sales_tables_alone() -> None:
    lamp = ProductFactory(stock=1)
    with pytest.raises(Exception, match="left in stock"):
        place(UserFactory(), (lamp, 2))
    assert not DailySales.objects.exists()
    assert not ProductDailySales.objects.exists()


def test_dashboard_figures_equal_a_full_recomputation(django_capture_on_commit_callbacks) -> None:
    users = UserFactory.create_batch(3)
    products = ProductFactory.create_batch(6, stock=500)
    products[1].price = Decimal("19.99")
    products[1].save()
    for i in range(18):
        picked = [(products[(i + k) % 6], 1 + (i * k) % 4) for k in range(1 + i % 3)]
        place(users[i % 3], *picked, days_ago=[0, 0, 1, 3, 6, 29, 31, 40][i % 8])
    # A customer cancels two orders (one today, one last week): their days are recomputed.
    cancel = Order.objects.filter(created_at__date__gte=timezone.now().date()).first()
    cancel_old = Order.objects.order_by("created_at").exclude(pk=cancel.pk)[5]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        for order in (cancel, cancel_old):
            order = Order.objects.get(pk=order.pk)
            order.status = Order.Status.CANCELLED
            order.save()
    assert len(callbacks) >= 2
    # A paid order stays revenue: no recomputation needed, figures unchanged.
    paid = Order.objects.exclude(status=Order.Status.CANCELLED).first()
    paid.status = Order.Status.PAID
    paid.save()

    kept_current = table_contents()
    assert dashboard_figures() == recomputed_from_orders()
    assert sum(r[1] for r in dashboard_figures()[0]) > 0
    # The rolling table holds the last 30 days only (the orders of 31 and 40 days ago are out).
    assert kept_current[2] and all(row[3] > 0 for row in kept_current[2])

    refresh_daily_sales()  # the full recomputation writes exactly what was kept current
    assert table_contents() == kept_current
    assert dashboard_figures() == recomputed_from_orders()
    refresh_daily_sales(days=35)  # so does the nightly one (and nothing to correct: no change)
    assert table_contents() == kept_current
    assert SalesWindow.objects.get().first_day == sales_today() - dt.timedelta(days=29)


def test_uncancelling_an_order_restores_its_day(django_capture_on_commit_callbacks) -> None:
    order = place(UserFactory(), (ProductFactory(price=Decimal("8.00")), 3), days_ago=2)
    day = sales_day(order.created_at)
    order = Order.objects.get(pk=order.pk)
    with django_capture_on_commit_callbacks(execute=True):
        order.status = Order.Status.CANCELLED
        order.save()
    assert not DailySales.objects.filter(day=day).exists()
    assert not ProductDailySales.objects.filter(day=day).exists()
    with django_capture_on_commit_callbacks(execute=True):
        order.status = Order.Status.SHIPPED
        order.save()
    assert DailySales.objects.get(day=day).revenue == Decimal("24.00")
    assert ProductDailySales.objects.get(day=day).quantity == 3


def test_refresh_recomputes_only_the_last_days_and_deletes_days_without_orders() -> None:
    user = UserFactory()
    product = ProductFactory(price=Decimal("5.00"), stock=100)
    recent = place(user, (product, 1), days_ago=1)
    old = place(user, (product, 2), days_ago=50)
    today, old_day = sales_today(), sales_day(old.created_at)
    DailySales.objects.filter(day=sales_day(recent.created_at)).update(revenue=Decimal("999"))
    DailySales.objects.filter(day=old_day).update(revenue=Decimal("999"))
    DailySales.objects.create(day=today, orders=7, items=7, revenue=Decimal("70"))  # no orders
    ProductDailySales.objects.create(
        day=today, product=product, product_name="ghost", product_sku="G", quantity=5
    )

    result = refresh_daily_sales(days=35)
    assert result.first_day == today - dt.timedelta(days=34)
    assert not DailySales.objects.filter(day=today).exists()
    assert not ProductDailySales.objects.filter(day=today).exists()
    assert DailySales.objects.get(day=sales_day(recent.created_at)).revenue == Decimal("5.00")
    assert DailySales.objects.get(day=old_day).revenue == Decimal("999")  # outside the range

    call_command("refresh_sales", "--all", verbosity=0)
    assert DailySales.objects.get(day=old_day).revenue == Decimal("10.00")
    assert ProductDailySales.objects.get(day=old_day).quantity == 2


def test_refresh_corrects_only_wrong_rows_and_reports_them(require_postgres) -> None:
    # The difference-applying refresh is PostgreSQL's; SQLite rewrites the rows in place.
    user = UserFactory()
    lamp = ProductFactory(price=Decimal("5.00"), stock=100)
    mug = ProductFactory(price=Decimal("2.00"), stock=100)
    place(user, (lamp, 1), (mug, 2), days_ago=3)
    place(user, (lamp, 2))
    assert refresh_daily_sales(days=35).product_rows == 0  # kept current: nothing to correct
    correct = table_contents()
    ProductDailySales.objects.filter(product=mug).update(quantity=77)
    ProductSales30d.objects.filter(product=lamp).delete()
    DailySales.objects.filter(day=sales_today()).update(items=0)

    result = refresh_daily_sales(days=35)
    assert result.product_rows == 1
    assert 0 < result.locked_seconds < result.seconds
    assert table_contents() == correct


def test_the_rolling_window_drops_the_day_that_left_it_at_the_nightly_refresh() -> None:
    user = UserFactory()
    old, new = ProductFactory(name="Old Lamp", stock=100), ProductFactory(name="New", stock=100)
    place(user, (old, 5), days_ago=29)
    place(user, (new, 1))
    refresh_daily_sales(days=35)
    assert [r["product_name"] for r in selectors.top_products()] == ["Old Lamp", "New"]

    tomorrow = timezone.now() + dt.timedelta(days=1)
    with mock.patch("django.utils.timezone.now", return_value=tomorrow):
        # After midnight, before the nightly refresh: 31 days (documented).
        assert [r["product_name"] for r in selectors.top_products()] == ["Old Lamp", "New"]
        result = refresh_daily_sales(days=35)
        assert result.window_first_day == sales_today() - dt.timedelta(days=29)
        assert [r["product_name"] for r in selectors.top_products()] == ["New"]
        assert SalesWindow.objects.get().first_day == result.window_first_day
        # A checkout back-dated before the window is not counted in the rolling table.
        place(user, (old, 1), days_ago=31)
        assert [r["product_name"] for r in selectors.top_products()] == ["New"]


def test_refresh_counts_factory_orders_and_deleted_products_by_snapshot() -> None:
    product = ProductFactory(name="Gone Soon", price=Decimal("3.00"))
    order_with_lines(user=UserFactory(), products=[product], quantity=4)  # not via the checkout
    refresh_daily_sales()
    product.delete()  # SET NULL on the sales rows too
    assert [
        (r["product_name"], r["units"], r["product__slug"]) for r in selectors.top_products()
    ] == [("Gone Soon", 4, None)]
    refresh_daily_sales()
    assert ProductDailySales.objects.get().product_id is None


def test_a_day_is_a_date_in_time_zone(settings) -> None:
    settings.TIME_ZONE = "America/New_York"
    user, product = UserFactory(), ProductFactory(price=Decimal("1.00"), stock=10)
    # 03:00 UTC is still the previous evening in New York.
    utc_moment = dt.datetime.combine(
        timezone.now().date() - dt.timedelta(days=1), dt.time(3), dt.UTC
    )
    with mock.patch("django.utils.timezone.now", return_value=utc_moment):
        place_order(user=user, items=[OrderItem(product_id=product.id, quantity=1)])
    expected = utc_moment.date() - dt.timedelta(days=1)
    assert list(DailySales.objects.values_list("day", flat=True)) == [expected]
    refresh_daily_sales()
    assert list(DailySales.objects.values_list("day", flat=True)) == [expected]


@pytest.mark.parametrize("argv", [["--days", "0"], ["--days", "-3"]])
def test_refresh_command_refuses_bad_days(argv: list[str]) -> None:
    with pytest.raises(CommandError, match="--days must be 1 or more"):
        call_command("refresh_sales", *argv, verbosity=0)


def test_seeding_leaves_the_sales_tables_filled() -> None:
    seeding.seed_shop(products=40, orders=150, users=5, categories=12, seed=3)
    revenue = Order.objects.filter(status__in=Order.REVENUE_STATUSES)
    assert DailySales.objects.count() > 0
    assert sum(DailySales.objects.values_list("orders", flat=True)) == revenue.count()
    assert sum(DailySales.objects.values_list("revenue", flat=True)) == sum(
        revenue.values_list("total", flat=True)
    )
    assert sum(ProductDailySales.objects.values_list("quantity", flat=True)) == sum(
        OrderLine.objects.filter(order__in=revenue).values_list("quantity", flat=True)
    )


def test_refresh_task_defaults_to_35_days() -> None:
    assert refresh_task.name == "storefront.dashboards.tasks.refresh_daily_sales"
    with mock.patch(
        "storefront.dashboards.sales.refresh_daily_sales", wraps=refresh_daily_sales
    ) as refresh:
        refresh_task.delay()
    refresh.assert_called_once_with(days=35)


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_the_refresh_task_run_by_a_worker_fixes_a_corrupted_row(celery_worker) -> None:
    order = place(UserFactory(), (ProductFactory(price=Decimal("6.00"), stock=10), 2))
    day = sales_day(order.created_at)
    assert DailySales.objects.get(day=day).revenue == Decimal("12.00")
    DailySales.objects.filter(day=day).update(orders=99, revenue=Decimal("1.00"))

    refresh_task.delay()

    deadline = time.monotonic() + 30
    while DailySales.objects.get(day=day).orders != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    row = DailySales.objects.get(day=day)
    assert (row.orders, row.items, row.revenue) == (1, 2, Decimal("12.00"))
    assert "storefront.dashboards.tasks.refresh_daily_sales" in celery_worker.log()


@pytest.mark.django_db(transaction=True)
def test_checkouts_complete_while_a_refresh_aggregates_and_nothing_is_lost_or_doubled(
    require_postgres,
) -> None:
    """A refresh paused after computing its differences (holding only the recomputations'
    lock) does not stop checkouts: they all complete meanwhile, and after its apply step the
    tables equal a full recomputation (their orders counted once, its corrections applied)."""
    users = UserFactory.create_batch(4)
    products = ProductFactory.create_batch(5, price=Decimal("3.50"), stock=1000)
    for i in range(12):
        place(users[i % 4], (products[i % 5], 1 + i % 3), days_ago=i % 4)
    # Wrong rows for the refresh to correct: a day's revenue, a ghost row, a missing row.
    DailySales.objects.filter(day=sales_today() - dt.timedelta(days=1)).update(revenue=999)
    ProductDailySales.objects.create(
        day=sales_today(), product=products[0], product_name="ghost", product_sku="G", quantity=4
    )
    ProductSales30d.objects.filter(product=products[1]).delete()

    differences_ready, checkouts_done = threading.Event(), threading.Event()
    real_lock = sales_recompute.sales_lock
    errors: list[BaseException] = []
    refreshes: list[sales_recompute.SalesRefresh] = []

    def lock_after_the_checkouts(*, exclusive: bool) -> None:
        if exclusive and threading.current_thread().name == "refresh":
            differences_ready.set()
            assert checkouts_done.wait(timeout=30), "checkouts blocked by the refresh"
        real_lock(exclusive=exclusive)

    def refresh() -> None:
        try:
            refreshes.append(refresh_daily_sales(days=35))
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    placed: list[Order] = []

    def checkout(user, product) -> None:
        try:
            for round_number in (1, 2, 3):
                placed.append(
                    place_order(user=user, items=[OrderItem(product_id=product.id, quantity=2)])
                )
                if round_number == 1:  # the others commit between the snapshot and the apply
                    differences_ready.wait(timeout=30)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    with mock.patch.object(sales_recompute, "sales_lock", lock_after_the_checkouts):
        refresher = threading.Thread(target=refresh, name="refresh")
        buyers = [threading.Thread(target=checkout, args=(users[i], products[i])) for i in range(4)]
        refresher.start()
        for thread in buyers:
            thread.start()
        for thread in buyers:
            thread.join(timeout=60)
        checkouts_done.set()
        refresher.join(timeout=60)

    assert errors == []
    assert len(placed) == 12 and len(refreshes) == 1
    assert refreshes[0].product_rows >= 1
    after_refresh = table_contents()
    assert dashboard_figures() == recomputed_from_orders()
    refresh_daily_sales(days=None)  # a full recomputation changes nothing
    assert table_contents() == after_refresh
    assert not ProductDailySales.objects.filter(product_name="ghost").exists()
