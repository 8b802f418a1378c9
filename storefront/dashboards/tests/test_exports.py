"""Order exports written to a private file by a task: the staff page, the download, the task."""

import csv
import datetime as dt
import io
import os
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from storefront.dashboards.exports import produce_order_export, request_order_export
from storefront.dashboards.models import OrderExport
from storefront.orders.models import Order
from tests.factories import ProductFactory, StaffFactory, UserFactory, order_with_lines

pytestmark = pytest.mark.django_db
PAGE = "/staff/orders/exports/"


@pytest.fixture
def private_media(settings) -> Path:
    """The per-test PRIVATE_MEDIA_ROOT (the root conftest isolates it; a worker gets it too)."""
    return Path(settings.PRIVATE_MEDIA_ROOT)


def some_orders() -> list[Order]:
    buyer = UserFactory(username="ada", email="ada@example.com")
    product = ProductFactory(price=Decimal("12.50"))
    old = order_with_lines(user=buyer, products=[product], quantity=2)
    Order.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=10))
    return [old, order_with_lines(user=UserFactory(), products=[product])]


def download(client: Client, export: OrderExport) -> bytes:
    response = client.get(f"{PAGE}{export.pk}/download/")
    assert response.status_code == 200, response
    assert response["Content-Disposition"] == (
        f'attachment; filename="orders-export-{export.pk}.csv"'
    )
    return b"".join(response.streaming_content)


def streamed(client: Client, query: str = "") -> bytes:
    return b"".join(client.get(f"/staff/orders/export.csv?{query}").streaming_content)


def test_requesting_an_export_writes_the_same_csv_as_the_stream(
    client: Client, private_media: Path, django_capture_on_commit_callbacks
) -> None:
    some_orders()
    staff = StaffFactory()
    client.force_login(staff)
    since = (timezone.localdate() - dt.timedelta(days=1)).isoformat()
    with django_capture_on_commit_callbacks(execute=True):  # the task runs eagerly on commit
        response = client.post(PAGE, {"since": since, "until": ""})
    assert response.status_code == 302
    assert response["Location"] == PAGE

    export = OrderExport.objects.get()
    assert (export.requested_by, export.filters) == (staff, {"since": since, "until": None})
    assert (export.status, export.row_count) == (OrderExport.Status.DONE, 1)
    assert export.finished_at is not None
    # Private: under PRIVATE_MEDIA_ROOT/exports, nothing under the public MEDIA_ROOT, no temp.
    assert os.listdir(private_media / "exports") == [f"orders-export-{export.pk}.csv"]
    assert download(client, export) == streamed(client, f"since={since}")

    page = client.get(PAGE).content.decode()
    assert f'href="{PAGE}{export.pk}/download/"' in page
    assert f'<tr id="export-{export.pk}">' in page
    assert "Done" in page.split(f'id="export-{export.pk}"')[1]


def test_an_export_without_filters_has_every_order(client: Client, private_media: Path) -> None:
    orders = some_orders()
    export = request_order_export(user=StaffFactory())
    produce_order_export(export_id=export.pk)
    client.force_login(StaffFactory())
    body = download(client, OrderExport.objects.get())
    assert body == streamed(client)
    assert body.decode().count("\r\n") == len(orders) + 1


def test_the_export_file_writes_formulas_as_text(client: Client, private_media: Path) -> None:
    """The file export goes through the same safe writer as the stream (OWASP single quote)."""
    buyer = UserFactory(username="-50%lamp", email='=HYPERLINK("http://evil.example")@x.example')
    order_with_lines(user=buyer, products=[ProductFactory(price=Decimal("12.50"))])
    export = request_order_export(user=StaffFactory())
    produce_order_export(export_id=export.pk)
    client.force_login(StaffFactory())

    (row,) = list(csv.reader(io.StringIO(download(client, export).decode())))[1:]

    assert row[3:] == ["'-50%lamp", '\'=HYPERLINK("http://evil.example")@x.example', "1", "12.50"]


def test_producing_an_export_is_idempotent(private_media: Path) -> None:
    some_orders()
    export = request_order_export(user=StaffFactory())
    first = produce_order_export(export_id=export.pk)
    path = Path(first.file.path)
    written = path.stat().st_mtime_ns
    assert produce_order_export(export_id=export.pk).status == OrderExport.Status.DONE
    assert path.stat().st_mtime_ns == written  # a finished export is left alone
    # Redelivered after its file vanished (or while "running" after a crash): written again.
    path.unlink()
    OrderExport.objects.filter(pk=export.pk).update(status=OrderExport.Status.RUNNING)
    again = produce_order_export(export_id=export.pk)
    assert again.status == OrderExport.Status.DONE
    assert sorted(os.listdir(path.parent)) == [path.name]
    assert produce_order_export(export_id=export.pk + 1000) is None  # deleted meanwhile


def test_an_export_that_fails_is_marked_failed(private_media: Path) -> None:
    export = OrderExport.objects.create(filters={"since": "not-a-date"})
    failed = produce_order_export(export_id=export.pk)
    assert failed.status == OrderExport.Status.FAILED
    assert "Enter a valid date" in failed.error
    assert not any(private_media.rglob("*.tmp"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"since": "yesterday"}, "Enter a valid date."),
        ({"since": "2026-02-01", "until": "2026-01-01"}, "must not be after"),
    ],
)
def test_bad_export_requests_are_400_with_a_message(
    client: Client, private_media: Path, data: dict, message: str
) -> None:
    client.force_login(StaffFactory())
    response = client.post(PAGE, data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not OrderExport.objects.exists()


def test_downloads_are_404_until_done(client: Client, private_media: Path) -> None:
    client.force_login(StaffFactory())
    export = OrderExport.objects.create(filters={})
    response = client.get(f"{PAGE}{export.pk}/download/")
    assert response.status_code == 404
    assert "is not ready (status: Queued)" in response.content.decode()
    response = client.get(f"{PAGE}{export.pk + 1}/download/")
    assert response.status_code == 404
    assert f"There is no export #{export.pk + 1}." in response.content.decode()
    OrderExport.objects.filter(pk=export.pk).update(
        status=OrderExport.Status.DONE, file="orders-export-missing.csv"
    )
    response = client.get(f"{PAGE}{export.pk}/download/")
    assert response.status_code == 404
    assert "is missing" in response.content.decode()


def test_exports_are_staff_only(client: Client, private_media: Path) -> None:
    export = OrderExport.objects.create(filters={})
    urls = [PAGE, f"{PAGE}{export.pk}/download/"]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    assert client.post(PAGE, {}).status_code == 302
    client.force_login(UserFactory())
    for url in urls:
        assert client.get(url).status_code == 403
    assert client.post(PAGE, {}).status_code == 403
    assert OrderExport.objects.count() == 1


def test_other_methods_are_405(client: Client, private_media: Path) -> None:
    client.force_login(StaffFactory())
    assert client.delete(PAGE).status_code == 405
    export = OrderExport.objects.create(filters={})
    assert client.post(f"{PAGE}{export.pk}/download/").status_code == 405


def test_staff_dashboard_and_nav_link_to_exports(client: Client) -> None:
    client.force_login(StaffFactory())
    body = client.get("/staff/dashboard/").content.decode()
    assert f'id="exports-link" href="{PAGE}"' in body
    assert f'<a href="{PAGE}">Exports</a>' in body
    client.force_login(UserFactory())
    assert f'href="{PAGE}"' not in client.get("/dashboard/").content.decode()


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_a_worker_produces_the_export_requested_through_the_page(
    private_media: Path, celery_worker
) -> None:
    some_orders()
    client = Client()
    client.force_login(StaffFactory())
    until = timezone.localdate().isoformat()
    response = client.post(PAGE, {"since": "", "until": until})
    assert response.status_code == 302

    export = OrderExport.objects.get()
    deadline = time.monotonic() + 60
    while export.status not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        export.refresh_from_db()
    assert export.status == OrderExport.Status.DONE, (export.error, celery_worker.log())
    assert "storefront.dashboards.tasks.export_orders" in celery_worker.log()
    assert export.row_count == 2
    assert download(client, export) == streamed(client, f"until={until}")
