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
