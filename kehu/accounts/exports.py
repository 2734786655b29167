"""Exports of people. An export is a read that leaves an audit row: who took which list out, and how big."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from kehu.accounts.roles import Capability, ManagerGrade, Role
from kehu.accounts.selectors import user_list
from kehu.audit.services import audit_record
from kehu.core.errors import NotAllowed
from kehu.core.scoping import DataScope

EXPORT_FILTERS = ("q", "unit", "role", "status")
# Cells starting with these are formulas to Excel / WPS (CSV injection); a leading apostrophe defuses them.
_FORMULA_START = ("=", "@", "\t", "\r")
_SIGNED_NUMBER = re.compile(r"^[+-][\d\s()-]*$")


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) or (text[:1] in "+-" and text and not _SIGNED_NUMBER.match(text)):
        return "'" + text
    return text


def _roles_text(user) -> str:
    parts = []
    for a in user.role_assignments.all():
        label = str(Role(a.role).label) if a.role in Role.values else a.role
        parts.append(f"{label} ({DataScope(a.scope).label})" if a.scope in DataScope.values else label)
    return "; ".join(parts)


def people_export_csv(*, viewer, filters: dict[str, Any]) -> bytes:
    """The people list the viewer sees, with the same filters as the page, as UTF-8 CSV (with a BOM
    so Excel and WPS open Chinese text correctly). Writes one ``user.export`` audit row."""
    if viewer is None or not (viewer.can(Capability.VIEW_PEOPLE) or viewer.can(Capability.MANAGE_USERS)):
        raise NotAllowed(_("Your roles do not allow exporting the people list."))
    used = {k: v for k, v in filters.items() if k in EXPORT_FILTERS and v not in (None, "")}
    now = timezone.now()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([
        _("Username"), _("Full name"), _("Unit code"), _("Unit"), _("Position"), _("Grade"), _("Phone"),
        _("E-mail"), _("Roles"), _("Active"), _("Locked"), _("Created at"),
    ])  # fmt: skip
    count = 0
    with transaction.atomic():
        for user in user_list(viewer=viewer, **used):
            writer.writerow([_cell(v) for v in (
                user.username, user.full_name, user.unit.code if user.unit else "",
                user.unit.name if user.unit else "", user.position,
                ManagerGrade(user.manager_grade).label if user.manager_grade in ManagerGrade.values else "",
                user.phone, user.email, _roles_text(user),
                _("yes") if user.is_active else _("no"), _("yes") if user.is_locked(now) else _("no"),
                timezone.localtime(user.date_joined).strftime("%Y-%m-%d %H:%M"),
            )])  # fmt: skip
            count += 1
        audit_record(actor=viewer, action="user.export", object_type="accounts.user",
                     extra={"count": count, "filters": {k: str(v) for k, v in used.items()},
                            "format": "csv"})  # fmt: skip
    return ("\ufeff" + out.getvalue()).encode("utf-8")
