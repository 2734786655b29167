"""Reads of the organisation tree, always through the viewer's scope."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from kehu.org.models import Unit


def unit_list(*, viewer, q: str = "", within: Unit | None = None, unit_type: str = "",
              active: bool | None = None) -> QuerySet[Unit]:  # fmt: skip
    qs = Unit.objects.visible_to(viewer).select_related("unit_type", "parent")
    if within is not None:
        qs = qs.subtree_of(within)
    if q:
        qs = qs.filter(Q(name__icontains=q) | Q(code__istartswith=q) | Q(division_code__startswith=q))
    if unit_type:
        qs = qs.filter(unit_type__code=unit_type)
    if active is not None:
        qs = qs.filter(is_active=active)
    return qs.order_by("path")


def unit_children(*, viewer, parent: Unit | None) -> QuerySet[Unit]:
    """Visible children of ``parent`` (roots when None). Counts come from ``units_with_visible_counts``."""
    visible = Unit.objects.visible_to(viewer)
    qs = visible.filter(parent=parent) if parent is not None else visible.filter(parent__isnull=True)
    return qs.select_related("unit_type").order_by("unit_type__rank", "name")


def units_with_visible_counts(*, viewer, units: list[Unit]) -> list[Unit]:
    """Sets ``child_count`` and ``people_count`` to what the viewer may see: counts never reveal hidden units."""
    from kehu.accounts.models import User

    if not units:
        return units
    children = dict(
        Unit.objects.visible_to(viewer).filter(parent__in=units).order_by()
        .values_list("parent").annotate(n=Count("pk"))
    )  # fmt: skip
    people = dict(
        User.objects.visible_to(viewer).filter(unit__in=units, is_active=True).order_by()
        .values_list("unit").annotate(n=Count("pk"))
    )  # fmt: skip
    for unit in units:
        unit.child_count = children.get(unit.pk, 0)
        unit.people_count = people.get(unit.pk, 0)
    return units


def unit_roots(*, viewer) -> list[Unit]:
    """The top-most units the viewer sees: the tree browser starts here.

    What a user sees is closed under "parent of" (their own unit's chain up to the root, plus subtrees
    below it, or everything), so the visible roots are the visible units without a parent.
    """
    return list(Unit.objects.visible_to(viewer).filter(parent__isnull=True).order_by("path"))


def unit_breadcrumbs(*, viewer, unit: Unit) -> list[Unit]:
    return list(Unit.objects.visible_to(viewer).ancestors_of(unit, include_self=True))
