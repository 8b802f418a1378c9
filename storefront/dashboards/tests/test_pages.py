import datetime as dt
import json
import time
from decimal import Decimal

import pytest
from django.core.cache import cache as django_cache
from django.test import Client
from django.utils import timezone

from storefront import caching
from storefront.dashboards import cached, selectors
from storefront.dashboards.sales import refresh_daily_sales
from storefront.orders.models import Order
from storefront.orders.services import OrderItem, place_order
from tests.factories import ProductFactory, StaffFactory, UserFactory, order_with_lines
from tests.querycount import queries_for

pytestmark = pytest.mark.django_db


def backdate(order: Order, days: int) -> Order:
    Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - dt.timedelta(days=days))
    return order


def chart_data(body: str, element_id: str) -> dict:
    start = body.index(f'<script id="{element_id}" type="application/json">')
    start = body.index(">", start) + 1
    return json.loads(body[start : body.index("</script>", start)])


def test_customer_dashboard_totals_and_spending(client: Client) -> None:
    user = UserFactory(full_name="Ada")
    product = ProductFactory(price=Decimal("25.00"))
    order_with_lines(user=user, products=[product], quantity=2)  # 50.00 today
    backdate(order_with_lines(user=user, products=[product]), days=40)  # 25.00 last month or so
    cancelled = order_with_lines(user=user, products=[product], quantity=4)
    Order.objects.filter(pk=cancelled.pk).update(status=Order.Status.CANCELLED)
    order_with_lines(user=UserFactory(), products=[product], quantity=3)  # someone else's

    client.force_login(user)
    response = client.get("/dashboard/")
    assert response.status_code == 200
    body = response.content.decode()
    totals = response.context["totals"]
    assert (totals.order_count, totals.total_spent, totals.average_order) == (
        2,
        Decimal("75.00"),
        Decimal("37.50"),
    )
    assert '<span class="stat-value" id="stat-spent">$75.00</span>' in body
    spending = chart_data(body, "spending-chart-data")
    assert len(spending["labels"]) == 12
    assert spending["values"][-1] == "50.00"
    assert sum(Decimal(v) for v in spending["values"]) == Decimal("75.00")
    assert 'id="spending-chart"' in body


def test_staff_dashboard_shows_revenue_top_products_low_stock(client: Client) -> None:
    buyer = UserFactory()
    lamp = ProductFactory(name="Best Lamp", price=Decimal("10.00"), stock=50)
    mug = ProductFactory(name="Rare Mug", price=Decimal("4.00"), stock=2)
    order_with_lines(user=buyer, products=[lamp], quantity=5)
    order_with_lines(user=buyer, products=[lamp, mug], quantity=1)
    backdate(order_with_lines(user=buyer, products=[mug], quantity=9), days=3)
    backdate(order_with_lines(user=buyer, products=[lamp], quantity=7), days=45)  # outside 30 days
    # Factory orders skip the checkout's increments: fill the sales tables as the nightly task.
    refresh_daily_sales()

    client.force_login(StaffFactory())
    response = client.get("/staff/dashboard/")
    assert response.status_code == 200
    body = response.content.decode()
    revenue = chart_data(body, "revenue-chart-data")
    assert len(revenue["labels"]) == 30
    assert revenue["labels"][-1] == timezone.localdate().strftime("%b %d")
    assert revenue["values"][-1] == "64.00"
    assert revenue["values"][-4] == "36.00"
    assert '<span class="stat-value" id="stat-revenue">$100.00</span>' in body
    assert '<span class="stat-value" id="stat-orders">3</span>' in body
    assert [(row["product_name"], row["units"]) for row in selectors.top_products()] == [
        ("Rare Mug", 10),
        ("Best Lamp", 6),
    ]
    top = body.split('id="top-products"')[1].split("</table>")[0]
    assert top.index("Rare Mug") < top.index("Best Lamp")
    assert '<td class="num">10</td>' in top
    assert "Rare Mug" in body.split('id="low-stock"')[1]
    assert 'id="revenue-chart"' in body


def test_staff_dashboard_refuses_customers_and_anonymous(client: Client) -> None:
    response = client.get("/staff/dashboard/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    client.force_login(UserFactory())
    response = client.get("/staff/dashboard/")
    assert response.status_code == 403
    assert "This page is for staff only." in response.content.decode()


def test_customer_dashboard_needs_login(client: Client) -> None:
    assert client.get("/dashboard/").status_code == 302


def test_revenue_per_day_is_zero_filled() -> None:
    rows = selectors.revenue_per_day(days=30)
    assert len(rows) == 30
    assert all(r.revenue == 0 and r.orders == 0 for r in rows)


def test_top_products_keep_deleted_products_by_snapshot() -> None:
    product = ProductFactory(name="Gone Soon")
    order_with_lines(user=UserFactory(), products=[product], quantity=3)
    refresh_daily_sales()
    product.delete()
    assert [
        (r["product_name"], r["units"], r["product__slug"]) for r in selectors.top_products()
    ] == [("Gone Soon", 3, None)]


# Query budgets (exact, the same for 5 or 40 orders), cold cache then warm cache.
# (cached_db sessions: the session comes from the cache, so no session query.)
CUSTOMER_DASHBOARD_QUERIES = 4  # user, totals, recent orders, spending per month
CUSTOMER_DASHBOARD_QUERIES_CACHED = 1  # user: the figures come from the cache
# user, the user's permissions (direct, then through their roles: the page needs
# dashboards.view_staff_dashboard), revenue per day (DailySales), top products
# (ProductSales30d), low stock, recent orders
STAFF_DASHBOARD_QUERIES = 7
STAFF_DASHBOARD_QUERIES_CACHED = 3  # user and permissions: the four parts come from the cache


@pytest.mark.parametrize("size", [5, 40])
def test_dashboard_query_budgets(client: Client, size: int) -> None:
    user = UserFactory()
    products = ProductFactory.create_batch(size, stock=1)
    for i in range(size):
        backdate(order_with_lines(user=user, products=products[: 1 + i % 3]), days=i % 60)
    refresh_daily_sales()
    client.force_login(user)
    assert queries_for(client, "/dashboard/") == CUSTOMER_DASHBOARD_QUERIES
    assert queries_for(client, "/dashboard/") == CUSTOMER_DASHBOARD_QUERIES_CACHED
    client.force_login(StaffFactory())
    assert queries_for(client, "/staff/dashboard/") == STAFF_DASHBOARD_QUERIES
    assert queries_for(client, "/staff/dashboard/") == STAFF_DASHBOARD_QUERIES_CACHED
    caching.clear()  # cold again
    assert queries_for(client, "/staff/dashboard/") == STAFF_DASHBOARD_QUERIES
    client.force_login(user)
    assert queries_for(client, "/dashboard/") == CUSTOMER_DASHBOARD_QUERIES


def stat(body: str, element_id: str) -> str:
    start = body.index(f'id="{element_id}">') + len(f'id="{element_id}">')
    return body[start : body.index("<", start)]


def test_customer_dashboard_is_cached_per_user_and_fresh_after_an_order(
    client: Client, django_capture_on_commit_callbacks
) -> None:
    ada, bob = UserFactory(), UserFactory()
    lamp = ProductFactory(price=Decimal("10.00"), stock=50)
    first = order_with_lines(user=ada, products=[lamp], quantity=2)
    bob_order = order_with_lines(user=bob, products=[lamp], quantity=5)

    client.force_login(ada)
    body = client.get("/dashboard/").content.decode()
    assert stat(body, "stat-spent") == "$20.00" and first.number in body
    assert queries_for(client, "/dashboard/") == CUSTOMER_DASHBOARD_QUERIES_CACHED
    assert caching.stats()["dashboards"]["hits"] == 1

    with django_capture_on_commit_callbacks(execute=True):
        new = place_order(user=ada, items=[OrderItem(product_id=lamp.id, quantity=1)])
    assert queries_for(client, "/dashboard/") == CUSTOMER_DASHBOARD_QUERIES  # fresh
    body = client.get("/dashboard/").content.decode()
    assert stat(body, "stat-orders") == "2" and stat(body, "stat-spent") == "$30.00"
    assert new.number in body

    # Bob's dashboard is his own, though Ada's figures are cached.
    client.force_login(bob)
    body = client.get("/dashboard/").content.decode()
    assert stat(body, "stat-spent") == "$50.00" and bob_order.number in body
    assert first.number not in body and new.number not in body
    body = client.get("/dashboard/").content.decode()  # cached now: still his
    assert stat(body, "stat-spent") == "$50.00" and first.number not in body


def test_staff_dashboard_parts_are_cached_fragments_rotating_with_the_time_bucket(
    client: Client, settings, monkeypatch
) -> None:
    settings.STOREFRONT_CACHE_TTL_STAFF = 60
    bucket = [1000]
    monkeypatch.setattr(caching, "time_bucket", lambda seconds, now=None: bucket[0])
    buyer = UserFactory(username="first-buyer")
    lamp = ProductFactory(name="Lamp", price=Decimal("10.00"), stock=50)
    first = order_with_lines(user=buyer, products=[lamp])
    staff = StaffFactory(username="viewing-staff")
    client.force_login(staff)

    assert queries_for(client, "/staff/dashboard/") == STAFF_DASHBOARD_QUERIES
    assert caching.stats()["dashboards"] == {"hits": 0, "misses": 4, "hit_ratio": 0.0}
    body = client.get("/staff/dashboard/").content.decode()
    assert caching.stats()["dashboards"]["hits"] == 4
    assert first.number in body and "csrfmiddlewaretoken" in body  # the page's own form
    # The parts are shared by every staff member: no CSRF token, nothing about the viewer.
    for name in cached.STAFF_PARTS:
        html = django_cache.get(cached.staff_part_key(name))
        assert html and html in body
        assert "csrfmiddlewaretoken" not in html and staff.username not in html

    later = order_with_lines(user=UserFactory(), products=[lamp])
    assert queries_for(client, "/staff/dashboard/") == STAFF_DASHBOARD_QUERIES_CACHED
    assert later.number not in client.get("/staff/dashboard/").content.decode()  # <= 60 s old

    bucket[0] += 1  # the next time bucket: every part is rendered again
    assert queries_for(client, "/staff/dashboard/") == STAFF_DASHBOARD_QUERIES
    assert later.number in client.get("/staff/dashboard/").content.decode()


def test_staff_part_keys_rotate_with_a_one_second_bucket(settings) -> None:
    settings.STOREFRONT_CACHE_TTL_STAFF = 1
    before = caching.time_bucket(1)
    key = cached.staff_part_key("revenue")
    assert key.rsplit(":t", 1)[1] in {str(before), str(before + 1)}
    time.sleep(1.1)
    assert cached.staff_part_key("revenue") != key


def test_new_customer_dashboard_shows_an_empty_state_not_an_empty_chart(client: Client) -> None:
    client.force_login(UserFactory(full_name="Newbie"))
    response = client.get("/dashboard/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Hello, Newbie" in body
    assert "You have not ordered anything yet." in body
    assert '<a class="btn btn-primary" href="/products/">Browse products</a>' in body
    assert "<canvas" not in body
    assert "spending-chart-data" not in body
    assert "chart-4.6.1.umd.min.js" not in body
    assert 'id="stat-spent"' not in body


def test_customer_with_only_cancelled_orders_sees_them_without_a_chart(client: Client) -> None:
    user = UserFactory()
    cancelled = order_with_lines(user=user, products=[ProductFactory()])
    Order.objects.filter(pk=cancelled.pk).update(status=Order.Status.CANCELLED)
    client.force_login(user)
    body = client.get("/dashboard/").content.decode()
    assert cancelled.number in body
    assert "Nothing spent in the last 12 months." in body
    assert "<canvas" not in body
    assert "You have not ordered anything yet." not in body


def test_empty_dashboard_keeps_the_query_budget(client: Client) -> None:
    client.force_login(UserFactory())
    # The empty state is decided from the same figures: no extra query, cold or cached.
    assert queries_for(client, "/dashboard/") == CUSTOMER_DASHBOARD_QUERIES
    assert queries_for(client, "/dashboard/") == CUSTOMER_DASHBOARD_QUERIES_CACHED
