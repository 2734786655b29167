"""Reads that put together what one page shows. Every query goes through ``visible_to(viewer)``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Count, Q
from django.utils import timezone

from kehu.accounts.models import User
from kehu.accounts.roles import Capability, Role
from kehu.core.divisions import division_name
from kehu.org.models import Unit
from kehu.org.selectors import (
    unit_breadcrumbs,
    unit_children,
    unit_list,
    unit_roots,
    units_with_visible_counts,
)

# The order role panels appear in on the home page: the daily work first, administration last.
ROLE_ORDER: tuple[str, ...] = tuple(Role.values)

SEARCH_LIMIT = 100


# ---------------------------------------------------------------- home page


@dataclass
class ScopeSummary:
    """The viewer's own place in the organisation and what their data scope reaches."""

    unit: Unit | None
    breadcrumbs: list[Unit]
    units_below: int  # visible units under the viewer's own unit
    units_visible: int
    people_visible: int  # active accounts the viewer may see, themselves included
    customer_managers_visible: int


@dataclass
class AccountCounts:
    total: int
    active: int
    inactive: int
    locked: int
    must_change: int


@dataclass
class UnitTypeCount:
    name: str
    total: int
    active: int


@dataclass
class RolePanel:
    code: str
    label: str


@dataclass
class Dashboard:
    roles: list[RolePanel]
    scope: ScopeSummary
    accounts: AccountCounts | None = None
    units_by_type: list[UnitTypeCount] | None = None
    units_total: int | None = None
    login_failures_24h: int | None = None
    lockouts_24h: int | None = None
    capabilities: frozenset[Capability] = field(default_factory=frozenset)

    @property
    def can_view_org(self) -> bool:
        return Capability.VIEW_ORG in self.capabilities

    @property
    def can_view_people(self) -> bool:
        return Capability.VIEW_PEOPLE in self.capabilities

    @property
    def can_manage_units(self) -> bool:
        return Capability.MANAGE_UNITS in self.capabilities


def _scope_summary(viewer: User) -> ScopeSummary:
    units = Unit.objects.visible_to(viewer)
    people = User.objects.visible_to(viewer).filter(is_active=True)
    managers = people.filter(role_assignments__role=Role.CUSTOMER_MANAGER).distinct()
    unit = viewer.unit
    return ScopeSummary(
        unit=unit,
        breadcrumbs=unit_breadcrumbs(viewer=viewer, unit=unit) if unit is not None else [],
        units_below=units.subtree_of(unit, include_self=False).count() if unit is not None else 0,
        units_visible=units.count(),
        people_visible=people.count(),
        customer_managers_visible=managers.count(),
    )


def account_counts(*, viewer: User) -> AccountCounts:
    """Accounts by state, among those the viewer may see (all of them for the security administrator)."""
    now = timezone.now()
    row = User.objects.visible_to(viewer).aggregate(
        total=Count("pk"),
        active=Count("pk", filter=Q(is_active=True)),
        inactive=Count("pk", filter=Q(is_active=False)),
        locked=Count("pk", filter=Q(is_active=True, locked_until__gt=now)),
        must_change=Count("pk", filter=Q(is_active=True, must_change_password=True)),
    )
    return AccountCounts(**row)


def units_by_type(*, viewer: User) -> list[UnitTypeCount]:
    rows = (
        Unit.objects.visible_to(viewer)
        .values("unit_type__name", "unit_type__rank", "unit_type__code")
        .annotate(total=Count("pk"), active=Count("pk", filter=Q(is_active=True)))
        .order_by("unit_type__rank", "unit_type__code")
    )
    return [UnitTypeCount(name=r["unit_type__name"], total=r["total"], active=r["active"]) for r in rows]


def home_dashboard(*, viewer: User) -> Dashboard:
    """What the home page shows: one panel per role the viewer holds, with real numbers only."""
    held = viewer.role_names()
    caps = viewer.capabilities() if viewer.is_active else frozenset()
    board = Dashboard(
        roles=[RolePanel(code=r, label=Role(r).label) for r in ROLE_ORDER if r in held],
        scope=_scope_summary(viewer),
        capabilities=caps,
    )
    if Role.SECURITY_ADMIN in held and Capability.MANAGE_USERS in caps:
        board.accounts = account_counts(viewer=viewer)
    if Role.SYSTEM_ADMIN in held and Capability.MANAGE_UNITS in caps:
        board.units_by_type = units_by_type(viewer=viewer)
        board.units_total = sum(t.total for t in board.units_by_type)
    if Role.AUDIT_ADMIN in held and viewer.can(Capability.READ_AUDIT):
        from kehu.audit.selectors import audit_event_search

        since = timezone.now() - timedelta(hours=24)
        board.login_failures_24h = audit_event_search(
            viewer=viewer, action="auth.login_failed", since=since
        ).count()
        board.lockouts_24h = audit_event_search(viewer=viewer, action="auth.lockout", since=since).count()
    return board


# ---------------------------------------------------------------- organisation tree


def org_tree_level(*, viewer: User, parent: Unit | None = None) -> list[Unit]:
    """One level of the tree browser: the viewer's top-most units, or the visible children of ``parent``."""
    if parent is None:
        ids = [u.pk for u in unit_roots(viewer=viewer)]
        units = list(
            Unit.objects.visible_to(viewer).filter(pk__in=ids).select_related("unit_type").order_by("path")
        )
    else:
        units = list(unit_children(viewer=viewer, parent=parent))
    return units_with_visible_counts(viewer=viewer, units=units)


def org_tree_start(*, viewer: User) -> list[Unit]:
    """The tree browser's first view: the top-most units; a lone top unit comes opened one level."""
    roots = org_tree_level(viewer=viewer)
    for root in roots:
        root.preloaded_children = None
    if len(roots) == 1 and roots[0].child_count:
        roots[0].preloaded_children = org_tree_level(viewer=viewer, parent=roots[0])
    return roots


@dataclass
class UnitSearch:
    q: str
    units: list[Unit]
    more: bool  # more matches than shown


def org_search(*, viewer: User, q: str, limit: int = SEARCH_LIMIT) -> UnitSearch:
    found = list(unit_list(viewer=viewer, q=q)[: limit + 1])
    return UnitSearch(q=q, units=found[:limit], more=len(found) > limit)


@dataclass
class UnitDetail:
    unit: Unit
    breadcrumbs: list[Unit]
    parent: Unit | None  # None for a top-level unit (a parent is always visible with its child)
    division_name: str | None
    children: list[Unit]
    people: list[User]


def unit_detail(*, viewer: User, unit: Unit) -> UnitDetail:
    """Everything the unit page shows; ``unit`` must come from ``get_visible_or_404``."""
    crumbs = unit_breadcrumbs(viewer=viewer, unit=unit)
    parent = next((u for u in crumbs if u.pk == unit.parent_id), None)
    people = list(
        User.objects.visible_to(viewer)
        .filter(unit=unit)
        .prefetch_related("role_assignments")
        .order_by("-is_active", "full_name", "username")
    )
    return UnitDetail(
        unit=unit,
        breadcrumbs=crumbs,
        parent=parent,
        division_name=division_name(unit.division_code),
        children=org_tree_level(viewer=viewer, parent=unit),
        people=people,
    )
