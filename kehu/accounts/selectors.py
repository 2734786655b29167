"""Reads of people (user accounts), always through the viewer's scope."""

from __future__ import annotations

from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from kehu.accounts.models import RoleAssignment, User
from kehu.accounts.roles import Role
from kehu.core.errors import ServiceError
from kehu.core.scoping import subtree_q
from kehu.org.models import Unit

STATUS_ACTIVE = "active"
STATUS_INACTIVE = "inactive"
STATUS_LOCKED = "locked"
STATUSES = (STATUS_ACTIVE, STATUS_INACTIVE, STATUS_LOCKED)


def visible_unit_by_code(*, viewer, code: str) -> Unit | None:
    """The unit with this code if the viewer may see it; None when missing or out of scope (the same)."""
    code = (code or "").strip()
    if not code:
        return None
    visible = Unit.objects.visible_to(viewer)
    code = code.strip()
    exact = visible.filter(code=code).first()
    if exact is not None:
        return exact
    # Case-insensitive only when it names one unit: "a1" must never pick between "A1" and "a1".
    matches = list(visible.filter(code__iexact=code)[:2])
    return matches[0] if len(matches) == 1 else None


def user_list(
    *,
    viewer,
    q: str = "",
    unit: str | Unit | None = None,
    role: str = "",
    status: str = "",
) -> QuerySet[User]:
    """People the viewer may see, filtered.

    q: part of the username, full name or phone number.
    unit: a unit (or its code); only people in that unit's subtree. A code the viewer cannot see
        matches nobody, exactly like an unknown one.
    role: people holding that role.
    status: "active", "inactive" or "locked" (locked now, whether active or not).
    """
    qs = people_with_roles().visible_to(viewer)
    q = (q or "").strip()
    if q:
        qs = qs.filter(Q(username__icontains=q) | Q(full_name__icontains=q) | Q(phone__contains=q))
    if unit:
        within = unit if isinstance(unit, Unit) else visible_unit_by_code(viewer=viewer, code=unit)
        if within is None:
            return qs.none()
        qs = qs.filter(subtree_q(within, prefix="unit"))
    if role:
        if role not in Role.values:
            raise ServiceError(_("Unknown role “%(r)s”.") % {"r": role}, field="role")
        qs = qs.filter(role_assignments__role=role)  # one assignment per (user, role): no duplicates
    if status == STATUS_ACTIVE:
        qs = qs.filter(is_active=True)
    elif status == STATUS_INACTIVE:
        qs = qs.filter(is_active=False)
    elif status == STATUS_LOCKED:
        qs = qs.filter(locked_until__gt=timezone.now())
    return qs.order_by("username")


def people_with_roles() -> QuerySet[User]:
    """People with their unit and roles loaded, *not yet scoped*: pass it to ``get_visible_or_404``."""
    return User.objects.select_related("unit").prefetch_related(
        Prefetch("role_assignments", queryset=RoleAssignment.objects.order_by("role"))
    )


def unit_choices(*, viewer, limit: int = 2000) -> list[Unit]:
    """Active units the viewer may see, for the unit picker (a datalist; any visible code is accepted)."""
    return list(Unit.objects.visible_to(viewer).filter(is_active=True).only("code", "name", "path")
                .order_by("path")[:limit])  # fmt: skip
