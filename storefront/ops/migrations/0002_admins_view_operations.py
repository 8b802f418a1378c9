"""Admins may open the operations page (ops.view_operations); other roles may be given it in
the admin. (Admins also get every new permission on each migrate: storefront/accounts/roles.py.)"""

from django.db import migrations

ADMINS = "Admins"


def grant(apps, schema_editor):
    content_type_model = apps.get_model("contenttypes", "ContentType")
    permission_model = apps.get_model("auth", "Permission")
    group_model = apps.get_model("auth", "Group")
    content_type, _ = content_type_model.objects.get_or_create(app_label="ops", model="opssample")
    permission, _ = permission_model.objects.get_or_create(
        content_type=content_type,
        codename="view_operations",
        defaults={"name": "Can view the operations page"},
    )
    admins, _ = group_model.objects.get_or_create(name=ADMINS)
    admins.permissions.add(permission)


def revoke(apps, schema_editor):
    permission_model = apps.get_model("auth", "Permission")
    group_model = apps.get_model("auth", "Group")
    for admins in group_model.objects.filter(name=ADMINS):
        admins.permissions.remove(
            *permission_model.objects.filter(
                content_type__app_label="ops", codename="view_operations"
            )
        )


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0001_initial"),
        ("dashboards", "0003_staff_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
