"""Units of the organisation tree and the deployment's names for their levels.

The tree is a materialised path: each unit's ``path`` is its ancestors' ids and its own, each written
as a fixed-width run of digits (``PATH_STEP``). Digits only, fixed width: string order equals tree
order under every collation, so "the subtree of X" is the half-open range
``[X.path, X.path with its last segment + 1)`` — one B-tree range scan on SQLite and PostgreSQL alike,
for tens of thousands of units. Ancestors are read straight off the path.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kehu.core.scoping import ScopedQuerySet, ScopePolicy

PATH_STEP = 8
MAX_DEPTH = 30


def path_segment(pk: int) -> str:
    return f"{pk:0{PATH_STEP}d}"


def path_ids(path: str) -> list[int]:
    return [int(path[i : i + PATH_STEP]) for i in range(0, len(path), PATH_STEP)]


class UnitType(models.Model):
    """A level of the tree as this deployment names it (province, city, area, station / bureau, branch…)."""

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=50)
    name_en = models.CharField(_("English name"), max_length=50, blank=True)
    rank = models.PositiveSmallIntegerField(
        _("rank"), default=0, help_text=_("0 for the top level, larger further down; used for ordering")
    )

    class Meta:
        verbose_name = _("unit type")
        verbose_name_plural = _("unit types")
        ordering = ["rank", "code"]

    def __str__(self) -> str:
        return self.name


def _own_unit_and_ancestors(user) -> Q:
    # Everyone may see the chain of units above their own (breadcrumbs, "my city"), never their siblings.
    if user.unit_id is None:
        return Q(pk__in=[])
    return Q(pk__in=user.unit.ancestor_ids(include_self=True))


class UnitQuerySet(ScopedQuerySet):
    def subtree_of(self, unit: Unit, *, include_self: bool = True) -> UnitQuerySet:
        low, high = unit.subtree_path_range()
        qs = self.filter(path__gte=low, path__lt=high)
        return qs if include_self else qs.exclude(pk=unit.pk)

    def ancestors_of(self, unit: Unit, *, include_self: bool = False) -> UnitQuerySet:
        return self.filter(pk__in=unit.ancestor_ids(include_self=include_self)).order_by("depth")


class Unit(models.Model):
    code = models.CharField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    unit_type = models.ForeignKey(
        UnitType, verbose_name=_("type"), on_delete=models.PROTECT, related_name="units"
    )
    parent = models.ForeignKey(
        "self",
        verbose_name=_("parent unit"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="children",
    )
    division_code = models.CharField(_("division code"), max_length=6, help_text=_("GB/T 2260, 6 digits"))
    is_active = models.BooleanField(_("active"), default=True)
    path = models.CharField(max_length=PATH_STEP * MAX_DEPTH, unique=True, editable=False)
    depth = models.PositiveSmallIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = UnitQuerySet.as_manager()

    scope_policy = ScopePolicy(
        unit="",
        owners=(),
        see_all_roles=frozenset({"system_admin", "security_admin"}),
        extra=_own_unit_and_ancestors,
    )

    class Meta:
        verbose_name = _("unit")
        verbose_name_plural = _("units")
        ordering = ["path"]
        indexes = [models.Index(fields=["parent", "name"], name="org_unit_parent_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    def ancestor_ids(self, *, include_self: bool = False) -> list[int]:
        ids = path_ids(self.path)
        return ids if include_self else ids[:-1]

    def subtree_path_range(self) -> tuple[str, str]:
        """The half-open string range holding this unit's path and all its descendants' paths."""
        head, last = self.path[:-PATH_STEP], int(self.path[-PATH_STEP:])
        return self.path, head + path_segment(last + 1)

    def is_descendant_of(self, other: Unit) -> bool:
        return self.path.startswith(other.path) and self.pk != other.pk
