"""Product CSV import: the service, the task, the staff pages, the admin and a real worker."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from storefront.catalog import imports, tasks
from storefront.catalog.models import Product, ProductImport
from tests.factories import CategoryFactory, ProductFactory, StaffFactory, UserFactory

HEADER = "sku,name,category,price,stock,description,is_active"
# Lines 4, 7 and 9 are bad, each in its own way; line 2 updates an existing product.
CSV_WITH_3_BAD_ROWS = "\n".join(
    [
        HEADER,  # line 1
        "LAMP-1,Oak Desk Lamp,lamps,49.90,12,Warm light,true",  # 2 (exists: updated)
        "LAMP-2,Brass Lamp,lamps,79,3,,",  # 3
        "LAMP-3,Ghost Lamp,no-such-category,10.00,1,,true",  # 4: unknown category
        "DESK-1,Standing Desk,desks,399.00,0,Adjustable,false",  # 5
        'DESK-2,"Desk, walnut",desks,549.50,2,"Two lines,\nof description",yes',  # 6-7
        "DESK-3,Cheap Desk,desks,12.345,4,,true",  # 8: three decimal places
        "LAMP-2,Brass Lamp again,lamps,80,3,,",  # 9: duplicate SKU
        "DESK-4,Small Desk,desks,99.99,7,,0",  # 10
    ]
)
BAD_LINES = [4, 8, 9]


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path, monkeypatch) -> None:
    # The environment variable reaches the Celery worker subprocess of the stack test.
    settings.PRIVATE_MEDIA_ROOT = tmp_path / "private"
    monkeypatch.setenv("PRIVATE_MEDIA_ROOT", str(tmp_path / "private"))


@pytest.fixture
def categories(db) -> dict:
    return {"lamps": CategoryFactory(slug="lamps"), "desks": CategoryFactory(slug="desks")}


@pytest.fixture
def existing_lamp(categories) -> Product:
    return ProductFactory(
        sku="LAMP-1", slug="oak-lamp", name="Oak Lamp", price=Decimal("45.00"), stock=1,
        category=categories["lamps"],
    )  # fmt: skip


@pytest.fixture
def staff_client(db) -> Client:
    client = Client()
    client.force_login(StaffFactory())
    return client


def run_import(content: str | bytes, name: str = "products.csv") -> ProductImport:
    data = content.encode() if isinstance(content, str) else content
    record = imports.create_product_import(file=ContentFile(data, name=name), enqueue=False)
    return imports.run_product_import(import_id=record.pk)


def upload(content: str | bytes, name: str = "products.csv") -> SimpleUploadedFile:
    data = content.encode() if isinstance(content, str) else content
    return SimpleUploadedFile(name, data, content_type="text/csv")


# --- the service ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_three_bad_rows_are_reported_and_the_rest_imported(existing_lamp) -> None:
    record = run_import(CSV_WITH_3_BAD_ROWS)

    assert record.status == ProductImport.Status.DONE
    assert record.error == ""
    assert [row["line"] for row in record.rejected_rows] == BAD_LINES
    assert [row["sku"] for row in record.rejected_rows] == ["LAMP-3", "DESK-3", "LAMP-2"]
    reasons = [row["reason"] for row in record.rejected_rows]
    assert "unknown category “no-such-category”" in reasons[0]
    assert "more than 2 decimal places" in reasons[1]
    assert "duplicate sku: already on line 3" in reasons[2]
    assert (record.total_rows, record.processed_rows) == (8, 8)
    assert (record.created_count, record.updated_count, record.unchanged_count) == (4, 1, 0)
    assert record.rejected_count == 3
    assert record.started_at and record.finished_at

    assert set(Product.objects.values_list("sku", flat=True)) == {
        "LAMP-1", "LAMP-2", "DESK-1", "DESK-2", "DESK-4",
    }  # fmt: skip
    lamp = Product.objects.get(sku="LAMP-1")
    assert (lamp.slug, lamp.name, lamp.price, lamp.stock) == (
        "oak-lamp",
        "Oak Desk Lamp",
        Decimal("49.90"),
        12,
    )  # fmt: skip — an existing product keeps its slug
    assert lamp.description == "Warm light"
    brass = Product.objects.get(sku="LAMP-2")
    assert (brass.name, brass.price, brass.is_active) == ("Brass Lamp", Decimal("79.00"), True)
    assert brass.slug == "brass-lamp-lamp-2"
    assert brass.category.slug == "lamps"
    standing = Product.objects.get(sku="DESK-1")
    assert (standing.stock, standing.is_active, standing.category.slug) == (0, False, "desks")
    walnut = Product.objects.get(sku="DESK-2")
    assert walnut.name == "Desk, walnut"
    assert walnut.description == "Two lines,\nof description"
    assert not Product.objects.get(sku="DESK-4").is_active


@pytest.mark.django_db
def test_reimporting_the_same_file_adds_nothing(existing_lamp) -> None:
    run_import(CSV_WITH_3_BAD_ROWS)
    before = {p.sku: (p.slug, p.updated_at) for p in Product.objects.all()}

    again = run_import(CSV_WITH_3_BAD_ROWS)

    assert again.status == ProductImport.Status.DONE
    assert (again.created_count, again.updated_count, again.unchanged_count) == (0, 0, 5)
    assert [row["line"] for row in again.rejected_rows] == BAD_LINES
    after = {p.sku: (p.slug, p.updated_at) for p in Product.objects.all()}
    assert after == before  # no duplicates, and equal rows are not even rewritten

    changed = run_import(
        CSV_WITH_3_BAD_ROWS.replace("Brass Lamp,lamps,79,", "Brass Lamp,lamps,75,")
    )
    assert (changed.created_count, changed.updated_count, changed.unchanged_count) == (0, 1, 4)
    assert Product.objects.count() == 5
    assert Product.objects.get(sku="LAMP-2").price == Decimal("75.00")
    assert Product.objects.get(sku="LAMP-2").slug == before["LAMP-2"][0]


@pytest.mark.django_db
def test_rows_go_in_batches_with_progress(categories, monkeypatch) -> None:
    monkeypatch.setattr(imports, "BATCH_SIZE", 3)
    rows = [f"S-{n},Thing {n},lamps,1.50,{n}" for n in range(10)]
    rows[5] = "S-5,,lamps,-2,x"  # several reasons at once
    record = run_import("\n".join(["sku,name,category,price,stock", *rows]))

    assert (record.total_rows, record.processed_rows, record.created_count) == (10, 10, 9)
    assert record.rejected_rows == [
        {
            "line": 7,
            "sku": "S-5",
            "reason": "name is blank; price -2 is negative; it must be positive; "
            "stock “x” is not a whole number",
        }
    ]
    assert record.percent == 100


@pytest.mark.django_db
def test_new_slugs_never_collide(categories) -> None:
    ProductFactory(slug="lamp-a-1", sku="OTHER")
    record = run_import("sku,name,category,price,stock\nA-1,Lamp,lamps,1,1\na 1,Lamp,lamps,1,1\n")
    assert record.created_count == 2
    assert sorted(Product.objects.filter(name="Lamp").values_list("slug", flat=True)) == [
        "lamp-a-1-2",
        "lamp-a-1-3",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"sku,name,category\nA,B,lamps\n", "lacks the required column(s) price, stock"),
        (b"", "The file is empty."),
        (b"sku,name,category,price,stock\nA,Caf\xe9,lamps,1,1\n", "not UTF-8 text"),
        (b"sku,name,category,price,stock\nA,B,lamps,1,1\nC,\x00,lamps,1,1\n", "not valid CSV"),
        (b'sku,name,category,price,stock\n"A,B,lamps,1,1\n', "not valid CSV"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8 text"),
    ],
    ids=["header", "empty", "latin-1", "nul", "open-quote", "png"],
)
@pytest.mark.django_db
def test_unreadable_files_fail_as_a_whole(categories, content: bytes, message: str) -> None:
    record = run_import(content)
    assert record.status == ProductImport.Status.FAILED
    assert message in record.error
    assert not Product.objects.exists()  # not even the rows before the bad byte


@pytest.mark.django_db
def test_non_utf8_late_in_a_big_file_writes_nothing(categories, monkeypatch) -> None:
    monkeypatch.setattr(imports, "BATCH_SIZE", 2)
    rows = [f"S-{n},Thing {n},lamps,1.50,1".encode() for n in range(20)]
    rows.append(b"S-X,Th\xe9,lamps,1,1")
    record = run_import(b"\n".join([b"sku,name,category,price,stock", *rows]))
    assert record.status == ProductImport.Status.FAILED
    assert "Line 22 is not UTF-8 text" in record.error
    assert not Product.objects.exists()


@pytest.mark.django_db
def test_the_task_leaves_a_finished_import_alone(categories) -> None:
    record = run_import("sku,name,category,price,stock\nA-1,Lamp,lamps,1,1\n")
    Product.objects.all().delete()

    assert tasks.import_products(record.pk) == "done"

    assert not Product.objects.exists()
    assert tasks.import_products(10**9) is None  # a deleted import is no error


@pytest.mark.django_db
def test_a_redelivered_running_import_starts_over_safely(categories) -> None:
    record = imports.create_product_import(
        file=ContentFile(b"sku,name,category,price,stock\nA-1,Lamp,lamps,1,1\n", name="a.csv"),
        enqueue=False,
    )
    ProductImport.objects.filter(pk=record.pk).update(
        status=ProductImport.Status.RUNNING, processed_rows=1, created_count=1
    )
    ProductFactory(
        sku="A-1", name="Lamp", price=Decimal("1.00"), stock=1, category=categories["lamps"]
    )

    assert tasks.import_products(record.pk) == "done"

    record.refresh_from_db()
    assert (record.processed_rows, record.created_count, record.unchanged_count) == (1, 0, 1)
    assert Product.objects.filter(sku="A-1").count() == 1


# --- pages ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_staff_upload_goes_to_the_progress_page_with_the_report(
    staff_client, existing_lamp, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/staff/products/import/", {"file": upload(CSV_WITH_3_BAD_ROWS)}
        )
    record = ProductImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/staff/products/import/{record.pk}/"
    assert record.original_name == "products.csv"
    assert record.created_by.is_staff

    page = staff_client.get(response["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="rejected-rows"' in html
    for line, reason in [(4, "unknown category"), (8, "decimal places"), (9, "duplicate sku")]:
        assert f'<td class="num">{line}</td>' in html
        assert reason in html
    assert '<progress id="import-progress" max="100" value="100">' in html
    assert "import-progress.js" not in html  # finished: nothing to follow
    assert 'style="' not in html

    listing = staff_client.get("/staff/products/import/").content.decode()
    assert f'id="import-{record.pk}"' in listing
    assert "Import products</a>" in listing  # the nav link


@pytest.mark.django_db
def test_the_file_is_stored_privately(staff_client, categories, settings) -> None:
    staff_client.post("/staff/products/import/", {"file": upload(CSV_WITH_3_BAD_ROWS)})
    record = ProductImport.objects.get()
    path = record.file.path
    assert path.startswith(str(settings.PRIVATE_MEDIA_ROOT / "imports"))
    assert not path.startswith(str(settings.MEDIA_ROOT))
    assert record.file.storage.base_url is None  # no URL for it is ever built


@pytest.mark.django_db
def test_a_queued_import_page_follows_progress_with_a_static_script(staff_client) -> None:
    record = imports.create_product_import(
        file=ContentFile(b"sku,name,category,price,stock\n", name="a.csv"), enqueue=False
    )
    html = staff_client.get(f"/staff/products/import/{record.pk}/").content.decode()
    assert "/static/js/import-progress.js" in html
    assert f'data-status-url="/staff/products/import/{record.pk}/status.json"' in html
    assert '<progress id="import-progress" max="100">' in html
    assert ">Refresh</a>" in html
    assert "<script>" not in html

    status = staff_client.get(f"/staff/products/import/{record.pk}/status.json")
    assert status.status_code == 200
    assert status.json() == {
        "id": record.pk,
        "status": "queued",
        "status_display": "Queued",
        "finished": False,
        "total_rows": None,
        "processed_rows": 0,
        "percent": 0,
        "created": 0,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
        "error": "",
    }
    assert "no-cache" in status["Cache-Control"]


@pytest.mark.django_db
def test_status_json_of_a_finished_import(staff_client, existing_lamp) -> None:
    record = run_import(CSV_WITH_3_BAD_ROWS)
    data = staff_client.get(f"/staff/products/import/{record.pk}/status.json").json()
    assert data["status"] == "done" and data["finished"] is True
    assert (data["total_rows"], data["processed_rows"], data["percent"]) == (8, 8, 100)
    assert (data["created"], data["updated"], data["unchanged"], data["rejected"]) == (4, 1, 0, 3)


@pytest.mark.django_db
def test_a_failed_import_page_shows_the_error(staff_client, categories) -> None:
    record = run_import(b"sku,name\nA,B\n")
    html = staff_client.get(f"/staff/products/import/{record.pk}/").content.decode()
    assert 'id="import-error"' in html
    assert "lacks the required column(s) category, price, stock" in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/staff/products/import/",
        "/staff/products/import/1/",
        "/staff/products/import/1/status.json",
    ],
)
def test_customers_get_403_and_anonymous_visitors_the_login_page(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")

    client.force_login(UserFactory())
    assert client.get(url).status_code == 403
    if url == "/staff/products/import/":
        assert client.post(url, {"file": upload(HEADER)}).status_code == 403
        assert not ProductImport.objects.exists()
    assert "Import products" not in client.get("/products/").content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("products.txt", HEADER + "\n", "File extension “txt” is not allowed"),
        ("products.csv", "", "The submitted file is empty."),
        ("products.csv", "sku,name,price\n", "lacks the required column(s) category, stock"),
        ("products.csv", b"sku,n\xe9,category\n", "not UTF-8 text"),
        ("products.csv", b"\x00\x01\x02binary", "not a CSV file"),
    ],
)
def test_bad_uploads_are_a_400_with_a_message(staff_client, name, content, message) -> None:
    response = staff_client.post("/staff/products/import/", {"file": upload(content, name)})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not ProductImport.objects.exists()


@pytest.mark.django_db
def test_oversized_and_missing_uploads_are_a_400(staff_client, settings) -> None:
    settings.STOREFRONT_MAX_UPLOAD_MB = 1
    big = HEADER + "\n" + "X-1,Name,lamps,1,1,,\n" * 60_000
    response = staff_client.post("/staff/products/import/", {"file": upload(big)})
    assert response.status_code == 400
    assert "the limit is 1 MB" in response.content.decode()

    response = staff_client.post("/staff/products/import/", {})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert not ProductImport.objects.exists()


@pytest.mark.django_db
def test_unknown_imports_are_404(staff_client) -> None:
    assert staff_client.get("/staff/products/import/999/").status_code == 404
    response = staff_client.get("/staff/products/import/999/status.json")
    assert response.status_code == 404
    assert response.json() == {"error": "There is no product import #999."}


@pytest.mark.django_db
def test_an_import_refreshes_the_cached_listing(
    staff_client, categories, django_capture_on_commit_callbacks
) -> None:
    anonymous = Client()
    assert anonymous.get("/products/")["X-Storefront-Cache"] == "MISS"
    assert anonymous.get("/products/")["X-Storefront-Cache"] == "HIT"

    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(
            "/staff/products/import/",
            {
                "file": upload(
                    "sku,name,category,price,stock\nNEW-1,Freshly Imported Lamp,lamps,5,5\n"
                )
            },
        )

    response = anonymous.get("/products/")
    assert response["X-Storefront-Cache"] == "MISS"
    assert "Freshly Imported Lamp" in response.content.decode()


# --- admin ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_add_form_uploads_and_queues_an_import(
    existing_lamp, django_capture_on_commit_callbacks
) -> None:
    client = Client()
    client.force_login(StaffFactory(is_superuser=True))
    assert client.get("/admin/catalog/productimport/add/").status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/catalog/productimport/add/", {"file": upload(CSV_WITH_3_BAD_ROWS, "admin.csv")}
        )
    record = ProductImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/staff/products/import/{record.pk}/"
    assert (record.status, record.original_name, record.rejected_count) == ("done", "admin.csv", 3)

    changelist = client.get("/admin/catalog/productimport/")
    assert changelist.status_code == 200
    assert "admin.csv" in changelist.content.decode()
    detail = client.get(f"/admin/catalog/productimport/{record.pk}/change/").content.decode()
    assert "duplicate sku: already on line 3" in detail
    assert f'href="/staff/products/import/{record.pk}/"' in detail
    assert 'name="_save"' not in detail  # read-only

    bad = client.post("/admin/catalog/productimport/add/", {"file": upload("a,b\n", "x.csv")})
    assert bad.status_code == 200  # the admin re-renders its form with the error
    assert "lacks the required column(s)" in bad.content.decode()
    bad = client.post("/admin/catalog/productimport/add/", {"file": upload(HEADER, "x.xlsx")})
    assert "File extension “xlsx” is not allowed" in bad.content.decode()
    assert ProductImport.objects.count() == 1


# --- a real worker ----------------------------------------------------------------------------


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_imports_an_upload_while_the_page_polls(celery_worker) -> None:
    CategoryFactory(slug="lamps")
    CategoryFactory(slug="desks")
    ProductFactory(sku="LAMP-1", slug="oak-lamp", category=CategoryFactory(slug="other"))
    client = Client()
    client.force_login(StaffFactory())
    anonymous = Client()
    anonymous.get("/products/")
    assert anonymous.get("/products/")["X-Storefront-Cache"] == "HIT"

    response = client.post("/staff/products/import/", {"file": upload(CSV_WITH_3_BAD_ROWS)})
    assert response.status_code == 302
    status_url = response["Location"] + "status.json"

    deadline = time.monotonic() + 60
    data = client.get(status_url).json()
    while not data["finished"] and time.monotonic() < deadline:
        time.sleep(0.2)
        data = client.get(status_url).json()
    assert data["status"] == "done", celery_worker.log()
    assert (data["created"], data["updated"], data["unchanged"], data["rejected"]) == (4, 1, 0, 3)
    assert "storefront.catalog.tasks.import_products" in celery_worker.log()

    html = client.get(response["Location"]).content.decode()
    assert html.count('<td class="num">') >= 3 and "duplicate sku: already on line 3" in html
    assert Product.objects.count() == 5
    listing = anonymous.get("/products/")
    assert listing["X-Storefront-Cache"] == "MISS"
    assert "Brass Lamp" in listing.content.decode()  # active (Standing Desk is not)


@pytest.mark.django_db
def test_a_large_import_refreshes_the_row_estimate(categories, require_postgres) -> None:
    """The listing's "About N products" reads the planner's estimate: fresh after an import."""
    from django.db import connection

    rows = [f"BULK-{n},Bulk thing {n},lamps,2.50,3" for n in range(imports.ANALYZE_AFTER_CREATED)]
    record = run_import("\n".join(["sku,name,category,price,stock", *rows]))
    assert record.created_count == imports.ANALYZE_AFTER_CREATED
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'catalog_product'")
        (estimate,) = cursor.fetchone()
    assert estimate >= imports.ANALYZE_AFTER_CREATED


# --- a full disk (make faults: "the media/var disk full") -------------------------------------


@pytest.fixture
def full_disk(monkeypatch):
    """The private storage's disk fills up half-way through writing a file: a partial file is
    left on disk and the write fails with ENOSPC, as FileSystemStorage does on a full disk."""
    import errno
    import os

    from storefront.storage import PrivateStorage

    def write_then_fail(self: PrivateStorage, name: str, content) -> str:
        path = self.path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as partial:
            partial.write(b"sku,name,categ")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(PrivateStorage, "_save", write_then_fail)


def _stored_files(settings) -> list:
    root = settings.PRIVATE_MEDIA_ROOT
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.mark.django_db
def test_a_full_disk_refuses_the_upload_and_leaves_nothing(full_disk, settings) -> None:
    with pytest.raises(imports.UploadStorageFull):
        imports.create_product_import(file=ContentFile(b"x", name="p.csv"), enqueue=False)
    assert not ProductImport.objects.exists()
    assert _stored_files(settings) == []  # the partial file was removed


@pytest.mark.django_db
def test_other_storage_errors_are_not_called_a_full_disk(monkeypatch) -> None:
    import errno

    from storefront.storage import PrivateStorage

    def denied(self, name, content):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(PrivateStorage, "_save", denied)
    with pytest.raises(PermissionError):
        imports.create_product_import(file=ContentFile(b"x", name="p.csv"), enqueue=False)


@pytest.mark.django_db
def test_staff_upload_on_a_full_disk_gets_the_form_with_a_message(
    staff_client, categories, full_disk, settings
) -> None:
    response = staff_client.post("/staff/products/import/", {"file": upload(CSV_WITH_3_BAD_ROWS)})
    assert response.status_code == 507
    assert "no room to store this file" in response.content.decode()
    assert not ProductImport.objects.exists()
    assert _stored_files(settings) == []
    # The rest of the staff pages still answer.
    assert staff_client.get("/staff/products/import/").status_code == 200
