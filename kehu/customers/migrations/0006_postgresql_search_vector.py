"""PostgreSQL: the search tokens get a stored tsvector column with its own GIN index and statistics."""

from django.db import migrations


def create_search_index(apps, schema_editor):
    from kehu.customers.search import ensure_search_index

    ensure_search_index(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("customers", "0005_retired_codes")]

    operations = [migrations.RunPython(create_search_index, migrations.RunPython.noop)]
