"""Migration operations for indexes only PostgreSQL has.

The GIN full-text index is declared in Product.Meta.indexes (so the model state knows it), but
SQLite, the embedded default, has no GIN: this operation records the index in the migration
state everywhere and creates it in the database only on PostgreSQL.
"""

from __future__ import annotations

from django.db import migrations


class AddIndexOnPostgres(migrations.AddIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class AddFieldWithoutTableRebuild(migrations.AddField):
    """AddField that never makes SQLite rebuild the products table.

    SQLite adds a NOT NULL column with a default by rebuilding the whole table, and the rebuild
    re-creates every index of the model state, the PostgreSQL-only GIN index included, which
    SQLite cannot parse. `ALTER TABLE ... ADD COLUMN ... NOT NULL DEFAULT <constant>` is valid
    SQLite for such a column: used there; other databases take Django's usual path.
    """

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "sqlite":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
            return
        model = to_state.apps.get_model(app_label, self.model_name)
        field = model._meta.get_field(self.name)
        definition, params = schema_editor.column_sql(model, field, include_default=True)
        schema_editor.execute(
            f"ALTER TABLE {schema_editor.quote_name(model._meta.db_table)} "
            f"ADD COLUMN {schema_editor.quote_name(field.column)} {definition}",
            params,
        )
