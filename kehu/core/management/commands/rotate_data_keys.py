"""``kehu rotate-data-keys``: re-encrypt every encrypted value with the current (first) data key.

Rotation: put a new key in front of KEHU_DATA_KEYS (keep the old one behind it), restart, run this
command; once it reports nothing left under old keys, the old key may be removed.
"""

from __future__ import annotations

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.utils.translation import gettext as _

from kehu.audit.services import audit_record
from kehu.core.context import request_context
from kehu.core.crypto import EncryptedTextField, current_keys, key_id_of


def encrypted_fields():
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, EncryptedTextField):
                yield model, field


def rotate(batch_size: int = 1000) -> dict[str, int]:
    """Re-encrypt values stored under any key but the current one; returns counts per model field."""
    current, _keys = current_keys()
    counts: dict[str, int] = {}
    for model, field in encrypted_fields():
        table, column, pk = model._meta.db_table, field.column, model._meta.pk.column
        quote = connection.ops.quote_name
        done, last = 0, None
        while True:
            # Raw SQL: the stored tokens (with their key ids), not the decrypted values.
            sql = f"SELECT {quote(pk)}, {quote(column)} FROM {quote(table)} WHERE {quote(column)} <> ''"
            params: list = []
            if last is not None:
                sql += f" AND {quote(pk)} > %s"
                params.append(last)
            sql += f" ORDER BY {quote(pk)} LIMIT {int(batch_size)}"
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                rows = cursor.fetchall()
            if not rows:
                break
            with transaction.atomic():
                for row_pk, token in rows:
                    if token and key_id_of(token) != current:
                        plaintext = field.from_db_value(token, None, connection)
                        model.objects.filter(pk=row_pk).update(**{field.attname: plaintext})
                        done += 1
            last = rows[-1][0]
        counts[f"{model._meta.label_lower}.{field.name}"] = done
    return counts


class Command(BaseCommand):
    help = "Re-encrypt personal data with the current data key (the first in KEHU_DATA_KEYS)."

    def handle(self, *args, **options):
        with request_context(channel="cli"):
            counts = rotate()
            with transaction.atomic():
                audit_record(actor=None, actor_username="(operator)", action="personal_data.rotate",
                             extra={"current_key": current_keys()[0], "reencrypted": counts})  # fmt: skip
        for name, n in counts.items():
            self.stdout.write(_("%(field)s: %(n)d values re-encrypted") % {"field": name, "n": n})
        self.stdout.write(_("All personal data is now under key %(k)s.") % {"k": current_keys()[0]})
