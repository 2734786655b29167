"""Writing audit events. Every service that changes data calls ``audit_record`` inside its transaction."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from kehu.audit.masking import mask_any, mask_value
from kehu.audit.models import AuditChainHead, AuditEvent, Outcome
from kehu.core.context import current_context

GENESIS_HASH = "0" * 64
HASHED_FIELDS = (
    "seq", "at", "actor_id", "actor_username", "ip", "user_agent", "channel", "action",
    "object_type", "object_id", "object_repr", "outcome", "changes", "extra", "prev_hash",
)  # fmt: skip


def _chain_key() -> bytes:
    key = getattr(settings, "KEHU_AUDIT_KEY", "") or settings.SECRET_KEY
    return hashlib.sha256(b"kehu.audit.chain:" + key.encode()).digest()


def _jsonable(value: Any) -> Any:
    """Round-trips through JSON so the hashed value equals what the database gives back."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False))


def _canonical(fields: dict[str, Any]) -> bytes:
    data = dict(fields)
    at = data["at"]
    data["at"] = at.astimezone(UTC).isoformat(timespec="microseconds") if isinstance(at, datetime) else at
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def event_hash(fields: dict[str, Any]) -> str:
    return hmac.new(
        _chain_key(), _canonical({k: fields[k] for k in HASHED_FIELDS}), hashlib.sha256
    ).hexdigest()


def snapshot(obj: models.Model, fields: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:
    """The audited values of a model instance: concrete fields, foreign keys as ids, secrets masked."""
    values: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if fields is not None and field.name not in fields:
            continue
        name = field.attname
        values[field.name] = mask_value(field.name, getattr(obj, name))
    return _jsonable(values)


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Only what changed: {"field": [before, after]}."""
    keys = sorted(set(before) | set(after))
    return {k: [before.get(k), after.get(k)] for k in keys if before.get(k) != after.get(k)}


def audit_record(
    *,
    actor,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: Any = "",
    object_repr: str = "",
    changes: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    outcome: str = Outcome.SUCCESS,
    actor_username: str = "",
) -> AuditEvent:
    """Append one event to the trail, in the caller's transaction.

    ``changes`` is {"field": [before, after]} for updates, or a snapshot for creates and deletes.
    Secrets and ID numbers are masked here whatever the caller passes.
    """
    ctx = current_context()
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
        object_repr = object_repr or str(obj)
    is_user = actor is not None and getattr(actor, "pk", None) is not None
    fields: dict[str, Any] = {
        "actor_id": actor.pk if is_user else None,
        "actor_username": (actor.get_username() if is_user else actor_username)[:64],
        "ip": ctx.ip or "",
        "user_agent": ctx.user_agent[:200],
        "channel": ctx.channel,
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id if object_id is not None else "")[:64],
        "object_repr": mask_any(str(object_repr))[:200],
        "outcome": str(outcome),
        "changes": _jsonable(mask_value("changes", changes or {})),
        "extra": _jsonable(mask_value("extra", extra or {})),
    }
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
        if head is None:
            # The very first event: concurrent writers race to create the head. get_or_create lets the
            # loser of the race use the winner's row instead of failing with an IntegrityError.
            AuditChainHead.objects.get_or_create(pk=1, defaults={"seq": 0, "hash": GENESIS_HASH})
            head = AuditChainHead.objects.select_for_update().get(pk=1)
        # Stamped under the head's lock, so time order and sequence order agree.
        fields["at"] = timezone.now()
        fields["seq"] = head.seq + 1
        fields["prev_hash"] = head.hash
        fields["hash"] = event_hash(fields)
        event = AuditEvent.objects.create(**fields)
        AuditChainHead.objects.filter(pk=1).update(seq=event.seq, hash=event.hash)
    return event
