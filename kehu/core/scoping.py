"""Data scoping: the one place that decides which records a user may see.

Every query that returns data to a user goes through ``Model.objects.visible_to(user)``; single
objects go through ``get_visible_or_404``. A model takes part by using ``ScopedQuerySet`` as its
manager and declaring a ``ScopePolicy``: which lookup leads to its owning unit and which lookups lead
to its owning people. Nothing else is needed — customers, visits and complaints only declare how they
attach to a unit and an owner.

A user's reach is the union of the data scopes of their role assignments:

* ``own``     — records whose owner lookups point at the user
* ``unit``    — records attached to the user's own unit
* ``subtree`` — records attached to the user's unit or any unit below it
* ``all``     — everything

Out-of-scope records are indistinguishable from missing ones (404), so existence never leaks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models import Q
from django.db.models.lookups import GreaterThanOrEqual, LessThan
from django.http import Http404
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:  # pragma: no cover
    from kehu.accounts.models import User


class DataScope(models.TextChoices):
    OWN = "own", _("own records")
    UNIT = "unit", _("own unit")
    SUBTREE = "subtree", _("unit subtree")
    ALL = "all", _("all")


NOTHING = Q(pk__in=[])


@dataclass(frozen=True)
class ScopePolicy:
    """How a model's rows attach to the organisation.

    unit: lookup from the model to its owning ``org.Unit`` ("" when the model *is* the unit).
    owners: lookups from the model to the ``accounts.User`` rows that own it (for the ``own`` scope).
    unit_path: a field of the model holding a copy of its unit's path. Large tables (customers) keep
        one so that "in my subtree" is a range on their own index instead of a lookup in org_unit;
        ``org.services.unit_move`` rewrites these copies with the units' paths.
    see_all_roles: roles that see every row of this model whatever their data scope
        (e.g. the security administrator for user accounts).
    extra: a function ``(user) -> Q`` for rows always visible to a user (e.g. their own account).
    """

    unit: str | None = None
    unit_path: str | None = None
    owners: tuple[str, ...] = ()
    see_all_roles: frozenset[str] = field(default_factory=frozenset)
    extra: Callable[[User], Q] | None = None


def _prefixed(prefix: str, name: str) -> str:
    return f"{prefix}__{name}" if prefix else name


def subtree_q(unit, *, prefix: str = "") -> Q:
    """Rows whose unit (reached through ``prefix``) is ``unit`` or lies below it.

    Units carry a materialised path of fixed-width digit segments, so a subtree is one index range
    scan on both SQLite and PostgreSQL (see ``org.models.Unit``). For other models the range becomes
    ``unit_id IN (SELECT id FROM org_unit WHERE path range)``: OR-ed with the other scopes it stays an
    index lookup, where a join would push PostgreSQL into hashing whole tables.
    """
    low, high = unit.subtree_path_range()
    if not prefix:
        return Q(path__gte=low, path__lt=high)
    from kehu.org.models import Unit

    return Q(**{f"{prefix}__in": Unit.objects.filter(path__gte=low, path__lt=high).values("pk")})


class _Unindexed(models.Func):
    """A column SQLite must not pick an index for (``+col``); other databases see the plain column.

    SQLite's planner has no histograms: it takes any range on an indexed column for a narrow one, and for a
    province head "unit_path in my subtree" is every row. Walking the sort order's index instead and
    checking the path per row then returns the first page at once.
    """

    template = "%(expressions)s"
    output_field = models.CharField()

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="+%(expressions)s", **extra)


def path_range_q(field: str, low: str, high: str, *, path_index: bool) -> Q:
    if path_index:
        return Q(**{f"{field}__gte": low, f"{field}__lt": high})
    column = _Unindexed(models.F(field))
    return Q(GreaterThanOrEqual(column, low)) & Q(LessThan(column, high))


def scope_q(model: type[models.Model], user: User | None, *, path_index: bool = True) -> Q:
    """The filter that restricts ``model`` to what ``user`` may see.

    ``path_index=False``: the caller knows the user's subtree holds a large share of the rows and asks the
    database to filter the path copy row by row rather than through its index (see ``_Unindexed``).
    """
    policy: ScopePolicy | None = getattr(model, "scope_policy", None)
    if policy is None:
        raise TypeError(f"{model.__name__} has no scope_policy; declare one to make it scoped.")
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return NOTHING
    roles = user.role_names()
    if roles & policy.see_all_roles:
        return Q()
    q = NOTHING
    for scope in user.data_scopes():
        if scope == DataScope.ALL:
            return Q()
        if policy.unit is not None and user.unit_id is not None:
            if scope == DataScope.SUBTREE and policy.unit_path:
                low, high = user.unit.subtree_path_range()
                q |= path_range_q(policy.unit_path, low, high, path_index=path_index)
            elif scope == DataScope.SUBTREE:
                q |= subtree_q(user.unit, prefix=policy.unit)
            elif scope == DataScope.UNIT:
                q |= Q(**{_prefixed(policy.unit, "pk") if policy.unit else "pk": user.unit_id})
        if scope == DataScope.OWN:
            for owner in policy.owners:
                q |= Q(**{owner: user.pk})
    if policy.extra is not None:
        q |= policy.extra(user)
    return q


class ScopedQuerySet(models.QuerySet):
    def visible_to(self, user: User | None, *, path_index: bool = True) -> ScopedQuerySet:
        return self.filter(scope_q(self.model, user, path_index=path_index))


def models_with_unit_path() -> list[tuple[type[models.Model], str]]:
    """Models keeping a copy of their unit's path (see ScopePolicy.unit_path)."""
    from django.apps import apps

    found = []
    for model in apps.get_models():
        policy = getattr(model, "scope_policy", None)
        # A path reached through a relation ("customer__unit_path") is the related row's copy: it moves with it.
        if policy is not None and policy.unit_path and "__" not in policy.unit_path:
            found.append((model, policy.unit_path))
    return found


def get_visible_or_404(queryset_or_model: Any, user: User | None, **lookup: Any):
    """Fetch one object the user may see; out of scope answers 404 exactly like a missing object."""
    qs = (
        queryset_or_model
        if isinstance(queryset_or_model, models.QuerySet)
        else queryset_or_model.objects.all()
    )
    try:
        return qs.visible_to(user).get(**lookup)
    except (qs.model.DoesNotExist, ValueError, TypeError):
        raise Http404("No such record.") from None


def is_visible(obj: models.Model, user: User | None) -> bool:
    return type(obj).objects.visible_to(user).filter(pk=obj.pk).exists()


def ids_visible(model: type[models.Model], user: User | None, ids: Iterable[Any]) -> set[Any]:
    return set(model.objects.visible_to(user).filter(pk__in=list(ids)).values_list("pk", flat=True))
