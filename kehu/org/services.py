"""Writes to the organisation tree. Every change is audited in its transaction.

Only the system administrator (Capability.MANAGE_UNITS) changes the tree.
"""

from __future__ import annotations

from django.db import IntegrityError, models, transaction
from django.db.models import F, Value
from django.db.models.functions import Concat, Length, Substr
from django.utils import timezone
from django.utils.translation import gettext as _

from kehu.accounts.roles import Capability
from kehu.audit.services import audit_record, diff, snapshot
from kehu.core.divisions import division_code_error
from kehu.core.errors import ServiceError, require
from kehu.core.scoping import models_with_unit_path
from kehu.org.models import MAX_DEPTH, PATH_STEP, Unit, UnitType, path_segment

UNIT_EDITABLE_FIELDS = ("code", "name", "unit_type", "division_code")


def _require_manage(acting_user) -> None:
    require(
        acting_user, Capability.MANAGE_UNITS, _("Only the system administrator changes the organisation.")
    )


def _clean_code(code: str) -> str:
    code = (code or "").strip()
    if not code:
        raise ServiceError(_("A unit code is required."), field="code")
    if len(code) > 32 or any(c.isspace() for c in code):
        raise ServiceError(_("A unit code has at most 32 characters and no spaces."), field="code")
    return code


def _check_division(code: str) -> str:
    code = (code or "").strip()
    error = division_code_error(code)
    if error:
        raise ServiceError(_("Division code %(e)s.") % {"e": error}, field="division_code")
    return code


def unit_type_create(*, acting_user, code: str, name: str, name_en: str = "", rank: int = 0) -> UnitType:
    _require_manage(acting_user)
    if UnitType.objects.filter(code=code).exists():
        raise ServiceError(_("The unit type “%(c)s” exists already.") % {"c": code}, field="code")
    with transaction.atomic():
        unit_type = UnitType.objects.create(code=code, name=name, name_en=name_en, rank=rank)
        audit_record(actor=acting_user, action="unit_type.create", obj=unit_type, changes=snapshot(unit_type))
    return unit_type


def unit_create(*, acting_user, code: str, name: str, unit_type: UnitType, division_code: str,
                parent: Unit | None = None) -> Unit:  # fmt: skip
    """Add a unit under ``parent`` (None: a new root)."""
    _require_manage(acting_user)
    code = _clean_code(code)
    if not (name or "").strip():
        raise ServiceError(_("A unit name is required."), field="name")
    division_code = _check_division(division_code)
    if parent is not None and not parent.is_active:
        raise ServiceError(_("The parent unit %(u)s is inactive.") % {"u": parent.name}, field="parent")
    if parent is not None and parent.depth + 1 >= MAX_DEPTH:
        raise ServiceError(_("The tree may be at most %(n)d levels deep.") % {"n": MAX_DEPTH}, field="parent")
    if Unit.objects.filter(code=code).exists():
        raise ServiceError(_("The unit code “%(c)s” is taken.") % {"c": code}, field="code")
    try:
        with transaction.atomic():
            # The path needs the id, so insert with a unique placeholder and set it straight after.
            unit = Unit.objects.create(
                code=code, name=name.strip(), unit_type=unit_type, division_code=division_code, parent=parent,
                path=f"~{code}", depth=0 if parent is None else parent.depth + 1,
            )  # fmt: skip
            if unit.pk >= 10**PATH_STEP:
                raise ServiceError("Unit ids have outgrown the tree's path width (org.models.PATH_STEP).")
            unit.path = (parent.path if parent else "") + path_segment(unit.pk)
            Unit.objects.filter(pk=unit.pk).update(path=unit.path)
            audit_record(actor=acting_user, action="unit.create", obj=unit, changes=snapshot(unit))
    except IntegrityError:
        raise ServiceError(_("The unit code “%(c)s” is taken.") % {"c": code}, field="code") from None
    return unit


def unit_update(*, acting_user, unit: Unit, **fields) -> Unit:
    """Change a unit's code, name, type or division code. Moving is ``unit_move``."""
    _require_manage(acting_user)
    unknown = set(fields) - set(UNIT_EDITABLE_FIELDS)
    if unknown:
        raise ServiceError(_("Not editable: %(fields)s") % {"fields": ", ".join(sorted(unknown))})
    if "code" in fields:
        fields["code"] = _clean_code(fields["code"])
        if Unit.objects.filter(code=fields["code"]).exclude(pk=unit.pk).exists():
            raise ServiceError(_("The unit code “%(c)s” is taken.") % {"c": fields["code"]}, field="code")
    if "division_code" in fields:
        fields["division_code"] = _check_division(fields["division_code"])
    if "name" in fields and not (fields["name"] or "").strip():
        raise ServiceError(_("A unit name is required."), field="name")
    with transaction.atomic():
        before = snapshot(unit)
        for name, value in fields.items():
            setattr(unit, name, value)
        unit.updated_at = timezone.now()
        changes = diff(before, snapshot(unit))
        changes.pop("updated_at", None)
        if changes:
            # Only the edited fields: a copy loaded before a move must not write its old path back.
            unit.save(update_fields=[*fields, "updated_at"])
            audit_record(actor=acting_user, action="unit.update", obj=unit, changes=changes)
    return unit


def unit_move(*, acting_user, unit: Unit, new_parent: Unit | None) -> Unit:
    """Move a unit, with its whole subtree, under ``new_parent``.

    One UPDATE rewrites the paths of the subtree; the row lock on the moved unit serialises
    concurrent moves of the same branch.
    """
    _require_manage(acting_user)
    with transaction.atomic():
        unit = Unit.objects.select_for_update().get(pk=unit.pk)
        if new_parent is not None:
            new_parent = Unit.objects.select_for_update().get(pk=new_parent.pk)
            if new_parent.pk == unit.pk or new_parent.is_descendant_of(unit):
                raise ServiceError(
                    _("A unit cannot be moved under itself or its own sub-units."), field="parent"
                )
            if unit.is_active and not new_parent.is_active:
                raise ServiceError(
                    _("The parent unit %(u)s is inactive.") % {"u": new_parent.name}, field="parent"
                )
        if (unit.parent_id or None) == (new_parent.pk if new_parent else None):
            return unit
        old_path = unit.path
        new_path = (new_parent.path if new_parent else "") + path_segment(unit.pk)
        depth_delta = (new_parent.depth + 1 if new_parent else 0) - unit.depth
        low, high = unit.subtree_path_range()
        deepest = Unit.objects.filter(path__gte=low, path__lt=high).aggregate(m=models.Max("depth"))["m"]
        if deepest + depth_delta >= MAX_DEPTH:
            raise ServiceError(
                _("The tree may be at most %(n)d levels deep.") % {"n": MAX_DEPTH}, field="parent"
            )
        old_parent_id = unit.parent_id
        Unit.objects.filter(path__gte=low, path__lt=high).update(
            path=Concat(Value(new_path), Substr("path", len(old_path) + 1, Length("path"))),
            depth=F("depth") + depth_delta,
            updated_at=timezone.now(),
        )
        Unit.objects.filter(pk=unit.pk).update(parent=new_parent)
        # Rows keeping a copy of their unit's path (customers…) follow the move in the same transaction.
        for model, field in models_with_unit_path():
            model.objects.filter(**{f"{field}__gte": low, f"{field}__lt": high}).update(
                **{field: Concat(Value(new_path), Substr(field, len(old_path) + 1, Length(field)))}
            )
        unit.refresh_from_db()
        audit_record(
            actor=acting_user, action="unit.move", obj=unit,
            changes={"parent": [old_parent_id, new_parent.pk if new_parent else None]},
            extra={"subtree_size": Unit.objects.subtree_of(unit).count()},
        )  # fmt: skip
    return unit


def unit_set_active(*, acting_user, unit: Unit, active: bool) -> Unit:
    """Deactivate (or reactivate) a unit. A unit with active sub-units cannot be deactivated."""
    _require_manage(acting_user)
    if unit.is_active == active:
        return unit
    if not active and unit.children.filter(is_active=True).exists():
        raise ServiceError(_("Deactivate the active sub-units of %(u)s first.") % {"u": unit.name})
    if active and unit.parent is not None and not unit.parent.is_active:
        raise ServiceError(_("Reactivate the parent unit %(u)s first.") % {"u": unit.parent.name})
    with transaction.atomic():
        unit.is_active = active
        unit.updated_at = timezone.now()
        unit.save(update_fields=["is_active", "updated_at"])
        audit_record(actor=acting_user, action="unit.activate" if active else "unit.deactivate", obj=unit,
                     changes={"is_active": [not active, active]})  # fmt: skip
    return unit


def unit_delete(*, acting_user, unit: Unit) -> None:
    """Delete a unit that has no sub-units, people, customers or other records; otherwise deactivate it."""
    _require_manage(acting_user)
    if unit.children.exists():
        raise ServiceError(
            _("%(u)s has sub-units; it cannot be deleted, only deactivated.") % {"u": unit.name}
        )
    with transaction.atomic():
        before = snapshot(unit)
        try:
            with transaction.atomic():
                unit.delete()
        except models.ProtectedError as exc:
            kinds = sorted({str(o._meta.verbose_name_plural) for o in exc.protected_objects})
            raise ServiceError(
                _("%(u)s still has %(what)s; it cannot be deleted, only deactivated.")
                % {"u": unit.name, "what": ", ".join(kinds)}
            ) from None
        audit_record(actor=acting_user, action="unit.delete", object_type="org.unit", object_id=before["id"],
                     object_repr=f"{before['name']} ({before['code']})", changes=before)  # fmt: skip
