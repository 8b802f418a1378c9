"""Order history pages: numbered first, then keyset cursors for older orders."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from storefront.orders import selectors
from storefront.orders.models import Order
from storefront.pagination import MAX_NUMBERED_PAGES
from tests.factories import OrderFactory, UserFactory

pytestmark = pytest.mark.django_db

PAGE_SIZE = 3
ORDER_COUNT = PAGE_SIZE * (MAX_NUMBERED_PAGES + 3) + 1


@pytest.fixture
def history(client: Client, monkeypatch) -> list[str]:
    """A customer with ORDER_COUNT orders (timestamps with ties), signed in; their numbers,
    newest first. Someone else's orders are interleaved and must never show."""
    monkeypatch.setattr(selectors, "ORDER_HISTORY_PAGE_SIZE", PAGE_SIZE)
    user, other = UserFactory(), UserFactory()
    base = timezone.now() - dt.timedelta(days=30)
    for i in range(ORDER_COUNT):
        for owner in (user, other):
            order = OrderFactory(user=owner)
            Order.objects.filter(pk=order.pk).update(created_at=base + dt.timedelta(days=i // 2))
    client.force_login(user)
    return list(
        Order.objects.filter(user=user)
        .order_by("-created_at", "-id")
        .values_list("number", flat=True)
    )


def numbers(response) -> list[str]:
    return [order.number for order in response.context["orders"]]


def test_a_full_walk_shows_every_order_once(client: Client, history: list[str]) -> None:
    seen, url, pages = [], "/orders/", 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        seen += numbers(response)
        link = response.context["page"].next_url
        url = f"/orders/{link}" if link else None
        pages += 1
    assert seen == history
    assert pages == -(-ORDER_COUNT // PAGE_SIZE)


def test_older_orders_by_cursor_and_back(client: Client, history: list[str]) -> None:
    last_numbered = client.get(f"/orders/?page={MAX_NUMBERED_PAGES}")
    deep_url = f"/orders/{last_numbered.context['page'].next_url}"
    deep = client.get(deep_url)
    start = PAGE_SIZE * MAX_NUMBERED_PAGES
    assert numbers(deep) == history[start : start + PAGE_SIZE]
    following = client.get(f"/orders/{deep.context['page'].next_url}")
    back = client.get(f"/orders/{following.context['page'].previous_url}")
    assert numbers(back) == numbers(deep)
    before = client.get(f"/orders/{deep.context['page'].previous_url}")
    assert numbers(before) == numbers(last_numbered)
    with CaptureQueriesContext(connection) as ctx:
        client.get(deep_url)
    [sql] = [q["sql"] for q in ctx.captured_queries if "orders_order" in q["sql"]]
    assert "OFFSET" not in sql.upper()
    assert "COUNT(" not in sql.upper()


def test_another_customers_cursor_shows_only_your_orders(
    client: Client, history: list[str]
) -> None:
    deep = client.get(f"/orders/?page={MAX_NUMBERED_PAGES}").context["page"].next_url
    client.force_login(UserFactory())
    response = client.get(f"/orders/{deep}")
    assert response.status_code == 200
    assert numbers(response) == []
    assert "No more orders here." in response.content.decode()


@pytest.mark.parametrize("query", ["after=abc", "before=", "page=1&after=x", "page=x", "page=0"])
def test_bad_history_pages_are_400(client: Client, history: list[str], query: str) -> None:
    response = client.get(f"/orders/?{query}")
    assert response.status_code == 400
    assert response.content.decode()
