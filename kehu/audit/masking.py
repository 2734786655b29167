"""Keeps secrets and personal identifiers out of the audit trail."""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"
_SECRET_NAMES = ("password", "token", "secret", "digest", "api_key", "otp")
_ID_NUMBER_NAMES = ("id_number", "id_card", "identity", "passport")
# Resident identity card numbers (GB 11643): 17 digits and a digit or X.
_ID_CARD = re.compile(r"(?<!\d)(\d{6})\d{8}(\d{3}[\dXx])(?!\d)")


def mask_id_number(value: str) -> str:
    value = str(value)
    if len(value) <= 4:
        return "*" * len(value)
    return (
        value[:3] + "*" * (len(value) - 7) + value[-4:]
        if len(value) > 7
        else "*" * (len(value) - 2) + value[-2:]
    )


def mask_text(value: str) -> str:
    """Masks anything that looks like an ID card number inside free text."""
    return _ID_CARD.sub(lambda m: m.group(1) + "********" + m.group(2), value)


# Names about a secret that hold a time, a count or a flag, not the secret itself
# (password_changed_at, tokens_revoked, must_change_password).
_NOT_SECRET_SUFFIXES = ("_at", "_count", "_revoked", "_ended")


def _is_flag(value: Any) -> bool:
    if isinstance(value, list | tuple):  # a diff: [before, after]
        return bool(value) and all(v is None or isinstance(v, bool) for v in value)
    return isinstance(value, bool)


def _is_secret(lowered: str, value: Any) -> bool:
    return (
        any(s in lowered for s in _SECRET_NAMES)
        and not lowered.endswith(_NOT_SECRET_SUFFIXES)
        and not _is_flag(value)
    )


def mask_value(name: str, value: Any) -> Any:
    lowered = name.lower()
    if _is_secret(lowered, value):
        return REDACTED if value not in (None, "") else value
    if any(s in lowered for s in _ID_NUMBER_NAMES) and value not in (None, ""):
        if isinstance(value, list | tuple):  # {"id_number": [before, after]} keeps its shape
            return [mask_value(name, v) for v in value]
        if isinstance(value, dict):
            return {k: mask_value(name, v) for k, v in value.items()}
        return mask_id_number(value)
    return mask_any(value)


def mask_any(value: Any) -> Any:
    if isinstance(value, str):
        # NUL cannot be stored in PostgreSQL text or jsonb; keep it visible rather than failing the write.
        return mask_text(value.replace("\x00", "\\x00"))
    if isinstance(value, dict):
        return {k: mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_any(v) for v in value]
    return value
