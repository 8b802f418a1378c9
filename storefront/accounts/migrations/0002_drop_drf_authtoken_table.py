"""API tokens moved from DRF's authtoken app to django-rest-knox (hashed, expiring).

Removing `rest_framework.authtoken` from INSTALLED_APPS leaves its table behind, holding the
old tokens in plain text: it is dropped here. Old tokens stop working; clients obtain new ones
from /api/auth/token/. (Its leftover content type and permissions go with
`storefront remove_stale_contenttypes`.)
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "DROP TABLE IF EXISTS authtoken_token", reverse_sql=migrations.RunSQL.noop
        ),
    ]
