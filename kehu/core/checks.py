"""Kehu's own deployment checks (``kehu check --deploy``)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Warning, register

from kehu.core.crypto import current_keys


@register(deploy=True)
def personal_data_keys(app_configs, **kwargs):
    problems = []
    if not settings.KEHU_DATA_KEYS.strip():
        problems.append(Warning(
            "KEHU_DATA_KEYS is not set: personal data is encrypted with a key derived from KEHU_SECRET_KEY.",
            hint="Set KEHU_DATA_KEYS=k1=<base64 of 32 random bytes> (16 for sm4-gcm) and keep it with the backups.",
            id="kehu.W001",
        ))  # fmt: skip
    if not settings.KEHU_INDEX_KEY.strip():
        problems.append(Warning(
            "KEHU_INDEX_KEY is not set: the blind index of phones and ID numbers is keyed from KEHU_SECRET_KEY.",
            hint="Set KEHU_INDEX_KEY to a long random string and never change it.",
            id="kehu.W002",
        ))  # fmt: skip
    try:
        current_keys()
    except Exception as exc:  # ImproperlyConfigured with the fix in its message
        problems.append(Error(str(exc), id="kehu.E001"))
    return problems
