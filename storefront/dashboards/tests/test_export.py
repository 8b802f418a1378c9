import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.http import StreamingHttpResponse
from django.test import Client
from django.utils import timezone

from storefront.orders.models import Order
from tests.factories import ProductFactory, StaffFactory, UserFactory, order_with_lines

pytestmark = pytest.mark.django_db
URL = "/staff/orders/export.csv"


def rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_export_streams_every_order_as_csv(client: Client) -> None:
    buyer = UserFactory(username="ada", email="ada@example.com")
    product = ProductFactory(price=Decimal("12.50"))
    first = order_with_lines(user=buyer, products=[product], quantity=2)
    second = order_with_lines(user=buyer, products=[product])
    client.force_login(StaffFactory())
    response = client.get(URL)
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="orders.csv"'
    table = rows(response)
    assert table[0] == ["number", "created_at", "status", "username", "email", "items", "total"]
    assert [r[0] for r in table[1:]] == [first.number, second.number]
    assert table[1][3:] == ["ada", "ada@example.com", "2", "25.00"]


def test_export_filters_by_date(client: Client) -> None:
    old = order_with_lines(user=UserFactory(), products=[ProductFactory()])
    Order.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=10))
    new = order_with_lines(user=UserFactory(), products=[ProductFactory()])
    client.force_login(StaffFactory())
    since = (timezone.localdate() - dt.timedelta(days=1)).isoformat()
    assert [r[0] for r in rows(client.get(f"{URL}?since={since}"))[1:]] == [new.number]
    assert [r[0] for r in rows(client.get(f"{URL}?until={since}"))[1:]] == [old.number]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("since=yesterday", "Enter a valid date."),
        ("since=2026-02-01&until=2026-01-01", "must not be after"),
    ],
)
def test_bad_export_filters_are_400(client: Client, query: str, message: str) -> None:
    client.force_login(StaffFactory())
    response = client.get(f"{URL}?{query}")
    assert response.status_code == 400
    assert message in response.content.decode()


def test_export_is_staff_only(client: Client) -> None:
    assert client.get(URL).status_code == 302
    client.force_login(UserFactory())
    assert client.get(URL).status_code == 403
