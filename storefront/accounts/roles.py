"""Staff roles: Django groups holding the permissions each kind of staff work needs.

The staff pages and the staff API check these permissions (on top of "Staff status"), and the
admin checks the model permissions, so a staff member can do what their roles allow. To make
someone staff: tick "Staff status" and add them to a role (admin > Users). Superusers have
every permission whatever their groups.

The groups are created by a data migration (dashboards 0003) and looked after on every
`migrate` (post_migrate, storefront/accounts/apps.py): a missing role is created again, and
Admins get every permission, including those of models added later. The permissions of an
existing Catalog managers or Support group are never reset: an admin may have changed them.
"""

from __future__ import annotations

from django.apps import apps as global_apps
from django.apps.registry import Apps
from django.contrib.auth.models import Group
from django.db.models import Q

CATALOG_MANAGERS = "Catalog managers"
SUPPORT = "Support"
ADMINS = "Admins"

# Permissions that no model's add/change/view expresses: (app label, model, codename, name).
CUSTOM_PERMISSIONS = (
    ("orders", "order", "export_orders", "Can export orders with customer emails"),
    ("catalog", "productimport", "import_products", "Can import products from CSV files"),
    ("dashboards", "dailysales", "view_staff_dashboard", "Can view the staff dashboard"),
)

# What each role may do ("app_label.codename"). Admins: every permission there is.
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    CATALOG_MANAGERS: (
        "catalog.add_product",
        "catalog.change_product",
        "catalog.view_product",
        "catalog.add_category",
        "catalog.change_category",
        "catalog.view_category",
        "catalog.add_productimport",
        "catalog.change_productimport",
        "catalog.view_productimport",
        "catalog.import_products",
    ),
    SUPPORT: (
        # Cancelling an order is changing its status (the admin's order page).
        "orders.view_order",
        "orders.change_order",
        # The order page's lines, and whether its confirmation email went out.
        "orders.view_orderline",
        "orders.view_emaildelivery",
        "orders.export_orders",
    ),
}


def _permissions(permission_model: type, names: tuple[str, ...]) -> list:
    wanted = Q()
    for name in names:
        app_label, codename = name.split(".", 1)
        wanted |= Q(content_type__app_label=app_label, codename=codename)
    found = list(permission_model.objects.filter(wanted).select_related("content_type"))
    missing = set(names) - {f"{p.content_type.app_label}.{p.codename}" for p in found}
    if missing:
        raise LookupError(f"Unknown permissions for a staff role: {', '.join(sorted(missing))}")
    return found


def sync_staff_roles(*, apps: Apps = global_apps) -> None:
    """Creates the custom permissions and any missing role; gives Admins every permission.

    `apps` is a migration's historical registry, or the project's. Idempotent.
    """
    content_type_model = apps.get_model("contenttypes", "ContentType")
    permission_model = apps.get_model("auth", "Permission")
    group_model = apps.get_model("auth", "Group")
    for app_label, model, codename, name in CUSTOM_PERMISSIONS:
        content_type, _ = content_type_model.objects.get_or_create(app_label=app_label, model=model)
        permission_model.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )
    for role, names in ROLE_PERMISSIONS.items():
        group, created = group_model.objects.get_or_create(name=role)
        if created:
            group.permissions.set(_permissions(permission_model, names))
    admins, _ = group_model.objects.get_or_create(name=ADMINS)
    admins.permissions.add(*permission_model.objects.exclude(group=admins))


def staff_role(name: str) -> Group:
    """The role group called `name`, created (with its permissions) if it was missing."""
    group = Group.objects.filter(name=name).first()
    if group is None:
        sync_staff_roles()
        group = Group.objects.get(name=name)
    return group
