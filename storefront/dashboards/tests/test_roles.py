"""Staff roles (storefront/accounts/roles.py): what each role may open on every staff surface
(the staff dashboard, order exports, product imports, the product API, the admin), with the
403s the others get, and the groups the migration creates."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client

from storefront import seeding
from storefront.accounts.roles import ADMINS, CATALOG_MANAGERS, SUPPORT, sync_staff_roles
from storefront.catalog import imports
from storefront.catalog.models import Product
from storefront.dashboards.exports import produce_order_export, request_order_export
from tests.factories import ProductFactory, StaffFactory, UserFactory, order_with_lines

pytestmark = pytest.mark.django_db

NO_ROLE = "no role"
CSV = "sku,name,category,price,stock\nROLE-1,Role Lamp,Lighting,12.00,3\n"


@pytest.fixture
def world(settings, tmp_path) -> dict[str, str]:
    """One of everything the staff surfaces show; their URLs by name."""
    settings.PRIVATE_MEDIA_ROOT = tmp_path / "private"
    product = ProductFactory(slug="desk-lamp", price=Decimal("20.00"))
    order = order_with_lines(user=UserFactory(email="grace@example.com"), products=[product])
    export = request_order_export(user=StaffFactory())
    produce_order_export(export_id=export.pk)
    record = imports.create_product_import(file=ContentFile(CSV, name="p.csv"), enqueue=False)
    return {
        "staff dashboard": "/staff/dashboard/",
        "streamed export": "/staff/orders/export.csv",
        "exports page": "/staff/orders/exports/",
        "export download": f"/staff/orders/exports/{export.pk}/download/",
        "imports page": "/staff/products/import/",
        "import progress": f"/staff/products/import/{record.pk}/",
        "import status": f"/staff/products/import/{record.pk}/status.json",
        "operations page": "/staff/ops/",
        "operations json": "/staff/ops.json",
        "admin products": "/admin/catalog/product/",
        "admin categories": "/admin/catalog/category/",
        "admin imports": "/admin/catalog/productimport/",
        "admin orders": "/admin/orders/order/",
        "admin order": f"/admin/orders/order/{order.pk}/change/",
        "admin users": "/admin/accounts/user/",
        "admin groups": "/admin/auth/group/",
        "admin lockouts": "/admin/axes/accessattempt/",
        "admin api tokens": "/admin/knox/authtoken/",
    }


# The surfaces each role opens (200); every other one answers it 403.
OPENS = {
    ADMINS: "everything",
    CATALOG_MANAGERS: {
        "imports page",
        "import progress",
        "import status",
        "admin products",
        "admin categories",
        "admin imports",
    },
    SUPPORT: {
        "streamed export",
        "exports page",
        "export download",
        "admin orders",
        "admin order",
    },
    NO_ROLE: set(),
}


def staff_client(role: str) -> Client:
    client = Client()
    client.force_login(StaffFactory(roles=[] if role == NO_ROLE else [role]))
    return client


@pytest.mark.parametrize("role", list(OPENS))
def test_each_role_opens_its_surfaces_and_gets_403_elsewhere(
    role: str, world: dict[str, str]
) -> None:
    client = staff_client(role)
    opens = set(world) if OPENS[role] == "everything" else OPENS[role]

    statuses = {name: client.get(url).status_code for name, url in world.items()}

    assert statuses == {name: 200 if name in opens else 403 for name in world}


@pytest.mark.parametrize(
    ("role", "url", "message"),
    [
        (SUPPORT, "/staff/dashboard/", "does not include the staff dashboard"),
        (SUPPORT, "/staff/products/import/", "does not include product imports"),
        (CATALOG_MANAGERS, "/staff/orders/exports/", "does not include order exports"),
        (CATALOG_MANAGERS, "/staff/orders/export.csv", "(permission “orders.export_orders”)"),
        (NO_ROLE, "/staff/dashboard/", "ask an admin to add you to a role that does"),
    ],
)
def test_the_403_says_what_the_role_lacks(role: str, url: str, message: str) -> None:
    response = staff_client(role).get(url)

    assert response.status_code == 403
    assert message in response.content.decode()


def test_customers_and_visitors_get_no_staff_surface(world: dict[str, str]) -> None:
    customer = Client()
    customer.force_login(UserFactory())
    for name in ("staff dashboard", "exports page", "imports page"):
        response = customer.get(world[name])
        assert response.status_code == 403, name
        assert "This page is for staff only." in response.content.decode()
        anonymous = Client().get(world[name])
        assert anonymous.status_code == 302
        assert anonymous["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize(("role", "allowed"), [(SUPPORT, True), (CATALOG_MANAGERS, False)])
def test_requesting_a_file_export_needs_the_export_permission(
    role: str, allowed: bool, world: dict[str, str]
) -> None:
    response = staff_client(role).post(world["exports page"], {"since": "", "until": ""})

    assert response.status_code == (302 if allowed else 403)


@pytest.mark.parametrize(("role", "allowed"), [(CATALOG_MANAGERS, True), (SUPPORT, False)])
def test_uploading_an_import_needs_the_import_permission(
    role: str, allowed: bool, world: dict[str, str], django_capture_on_commit_callbacks
) -> None:
    upload = SimpleUploadedFile("products.csv", CSV.encode(), content_type="text/csv")

    with django_capture_on_commit_callbacks() as queued:
        response = staff_client(role).post(world["imports page"], {"file": upload})

    assert response.status_code == (302 if allowed else 403)
    assert len(queued) == (1 if allowed else 0)


@pytest.mark.parametrize(
    ("role", "status"), [(ADMINS, 200), (CATALOG_MANAGERS, 200), (SUPPORT, 403), (NO_ROLE, 403)]
)
def test_the_product_api_write_needs_change_product(
    role: str, status: int, world: dict[str, str]
) -> None:
    response = staff_client(role).patch(
        "/api/products/desk-lamp/", {"price": "18.00"}, content_type="application/json"
    )

    assert response.status_code == status
    price = Product.objects.get(slug="desk-lamp").price
    if status == 200:
        assert price == Decimal("18.00")
    else:
        assert price == Decimal("20.00")
        assert response.json() == {
            "detail": "Your staff role does not include the “catalog.change_product” permission."
        }


def test_the_product_api_write_refuses_customers_and_visitors(world: dict[str, str]) -> None:
    customer = Client()
    customer.force_login(UserFactory())
    body = {"price": "1.00"}

    refused = customer.patch("/api/products/desk-lamp/", body, content_type="application/json")
    anonymous = Client().patch("/api/products/desk-lamp/", body, content_type="application/json")

    assert (refused.status_code, refused.json()) == (403, {"detail": "This is for staff only."})
    assert anonymous.status_code == 401


@pytest.mark.parametrize(
    ("role", "links"),
    [
        (ADMINS, {"Staff", "Exports", "Import products"}),
        (CATALOG_MANAGERS, {"Import products"}),
        (SUPPORT, {"Exports"}),
        (NO_ROLE, set()),
    ],
)
def test_the_menu_shows_only_what_the_role_opens(role: str, links: set[str]) -> None:
    body = staff_client(role).get("/accounts/profile/").content.decode()

    shown = {name for name in ("Staff", "Exports", "Import products") if f">{name}</a>" in body}
    assert shown == links


def test_the_seeded_demo_staff_is_an_admin_and_opens_everything(world: dict[str, str]) -> None:
    _, staff = seeding.ensure_demo_accounts()
    client = Client()
    client.force_login(staff)

    assert list(staff.groups.values_list("name", flat=True)) == [ADMINS]
    assert {name: client.get(url).status_code for name, url in world.items()} == dict.fromkeys(
        world, 200
    )


# The groups themselves.


def perms(group: Group) -> set[str]:
    return {
        f"{app}.{codename}"
        for app, codename in group.permissions.values_list("content_type__app_label", "codename")
    }


def test_the_migration_creates_the_roles_with_their_permissions() -> None:
    assert perms(Group.objects.get(name=CATALOG_MANAGERS)) == {
        f"catalog.{action}_{model}"
        for action in ("add", "change", "view")
        for model in ("product", "category", "productimport")
    } | {"catalog.import_products"}
    assert perms(Group.objects.get(name=SUPPORT)) == {
        "orders.view_order",
        "orders.change_order",
        "orders.view_orderline",
        "orders.view_emaildelivery",
        "orders.export_orders",
    }
    assert perms(Group.objects.get(name=ADMINS)) == {
        f"{app}.{codename}"
        for app, codename in Permission.objects.values_list("content_type__app_label", "codename")
    }
    assert Permission.objects.get(codename="export_orders").name == (
        "Can export orders with customer emails"
    )


def test_syncing_keeps_an_admins_changes_to_a_role_and_restores_a_missing_one() -> None:
    support = Group.objects.get(name=SUPPORT)
    support.permissions.remove(Permission.objects.get(codename="export_orders"))
    Group.objects.filter(name=CATALOG_MANAGERS).delete()

    sync_staff_roles()

    assert "orders.export_orders" not in perms(Group.objects.get(name=SUPPORT))
    assert "catalog.import_products" in perms(Group.objects.get(name=CATALOG_MANAGERS))


@pytest.mark.django_db(transaction=True)
def test_the_roles_come_back_after_every_table_is_flushed() -> None:
    # As between transactional tests, or after `storefront flush`: post_migrate restores them.
    call_command("flush", interactive=False, verbosity=0)

    assert set(Group.objects.values_list("name", flat=True)) == {
        ADMINS,
        CATALOG_MANAGERS,
        SUPPORT,
    }
    assert Permission.objects.count() == Group.objects.get(name=ADMINS).permissions.count()
    assert "orders.export_orders" in perms(Group.objects.get(name=SUPPORT))
