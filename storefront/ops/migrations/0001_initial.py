from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="OpsSample",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("taken_at", models.DateTimeField(unique=True)),
                ("interval", models.FloatField(default=0)),
                ("figures", models.JSONField(default=dict)),
                ("counters", models.JSONField(default=dict)),
            ],
            options={
                "ordering": ["taken_at"],
                "default_permissions": (),
                "permissions": [("view_operations", "Can view the operations page")],
            },
        ),
    ]
