"""Staff roles as groups: Catalog managers, Support, Admins (storefront/accounts/roles.py),
with the permissions no model expresses (export orders, import products, staff dashboard)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from storefront.accounts.roles import ROLE_PERMISSIONS, ADMINS, sync_staff_roles


def create_staff_roles(apps, schema_editor):
    # Django creates model permissions after the last migration (post_migrate); the roles need
    # them now, so they are created here the same way (existing ones are left alone).
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    sync_staff_roles(apps=apps)


def delete_staff_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=[*ROLE_PERMISSIONS, ADMINS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("dashboards", "0002_product_sales_30d"),
        ("catalog", "0003_product_import"),
        ("orders", "0004_saved_cart"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_staff_roles, delete_staff_roles)]
