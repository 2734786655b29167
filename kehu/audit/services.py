"""Writing audit events. Every service that changes data calls ``audit_record`` inside its transaction."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.db.models.fields.files import FieldFile
from django.utils import timezone

from kehu.audit.masking import mask_any, mask_value
from kehu.audit.models import AuditChainHead, AuditEvent, Outcome
from kehu.core.context import current_context
from kehu.core.crypto import EncryptedTextField

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
    # Derived columns (search tokens, comparison keys) repeat what is audited already: leave them out.
    derived = getattr(type(obj), "audit_exclude", ())
    for field in obj._meta.concrete_fields:
        if (fields is not None and field.name not in fields) or field.name in derived:
            continue
        name = field.attname
        if isinstance(field, EncryptedTextField):
            # Never plaintext in the trail; the blind-index column beside it shows whether it changed.
            values[field.name] = "[encrypted]" if getattr(obj, name) else ""
            continue
        value = getattr(obj, name)
        if isinstance(value, FieldFile):
            value = value.name or ""  # a file is audited by its stored name
        values[field.name] = mask_value(field.name, value)
    return _jsonable(values)


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Only what changed: {"field": [before, after]}."""
    keys = sorted(set(before) | set(after))
    return {k: [before.get(k), after.get(k)] for k in keys if before.get(k) != after.get(k)}


@dataclass
class AuditEntry:
    """One event for ``audit_record_many``; the fields mean what they mean for ``audit_record``."""

    action: str
    obj: models.Model | None = None
    object_type: str = ""
    object_id: Any = ""
    object_repr: str = ""
    changes: dict[str, Any] | None = None
    extra: dict[str, Any] | None = None
    outcome: str = Outcome.SUCCESS


def _event_fields(*, actor, actor_username: str, entry: AuditEntry) -> dict[str, Any]:
    ctx = current_context()
    object_type, object_id, object_repr = entry.object_type, entry.object_id, entry.object_repr
    if entry.obj is not None:
        object_type = object_type or entry.obj._meta.label_lower
        object_id = object_id or entry.obj.pk
        object_repr = object_repr or str(entry.obj)
    is_user = actor is not None and getattr(actor, "pk", None) is not None
    return {
        "actor_id": actor.pk if is_user else None,
        "actor_username": (actor.get_username() if is_user else actor_username)[:64],
        "ip": ctx.ip or "",
        "user_agent": ctx.user_agent[:200],
        "channel": ctx.channel,
        "action": entry.action,
        "object_type": object_type,
        "object_id": str(object_id if object_id is not None else "")[:64],
        "object_repr": mask_any(str(object_repr))[:200],
        "outcome": str(entry.outcome),
        "changes": _jsonable(mask_value("changes", entry.changes or {})),
        "extra": _jsonable(mask_value("extra", entry.extra or {})),
    }


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
    entry = AuditEntry(action=action, obj=obj, object_type=object_type, object_id=object_id,
                       object_repr=object_repr, changes=changes, extra=extra, outcome=outcome)  # fmt: skip
    return audit_record_many(actor=actor, entries=[entry], actor_username=actor_username)[0]


def audit_record_many(*, actor, entries: list[AuditEntry], actor_username: str = "") -> list[AuditEvent]:
    """Append several events by one actor in one step: one lock and one update of the chain head.

    Bulk jobs (imports, the monthly close) use this. Updating the head row once per event inside one
    long transaction makes PostgreSQL walk an ever longer chain of row versions; once per batch does not.
    """
    if not entries:
        return []
    rows = [_event_fields(actor=actor, actor_username=actor_username, entry=e) for e in entries]
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
        if head is None:
            # The very first event: concurrent writers race to create the head. get_or_create lets the
            # loser of the race use the winner's row instead of failing with an IntegrityError.
            AuditChainHead.objects.get_or_create(pk=1, defaults={"seq": 0, "hash": GENESIS_HASH})
            head = AuditChainHead.objects.select_for_update().get(pk=1)
        # Stamped under the head's lock, so time order and sequence order agree.
        now = timezone.now()
        seq, prev_hash = head.seq, head.hash
        events = []
        for fields in rows:
            seq += 1
            fields.update(at=now, seq=seq, prev_hash=prev_hash)
            fields["hash"] = prev_hash = event_hash(fields)
            events.append(AuditEvent(**fields))
        AuditEvent.objects.bulk_create(events, batch_size=1000)
        AuditChainHead.objects.filter(pk=1).update(seq=seq, hash=prev_hash)
    return events
