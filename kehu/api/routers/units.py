"""The organisation tree, as far as the caller may see it."""

from __future__ import annotations

from ninja import Query, Router
from ninja.pagination import paginate

from kehu.accounts.roles import Capability
from kehu.api.pagination import KehuPagination
from kehu.api.schemas import Error, UnitDetailOut, UnitOut
from kehu.core.errors import require_any
from kehu.core.scoping import get_visible_or_404
from kehu.org.models import Unit
from kehu.org.selectors import unit_breadcrumbs, unit_list

router = Router(tags=["units"])


@router.get(
    "",
    response={200: list[UnitOut], 401: Error, 403: Error, 404: Error},
    summary="List units",
    description=(
        "Units the caller may see, in tree order (parents before their children). `within` restricts the "
        "list to one unit and everything below it (404 when that unit is missing or out of scope); `q` "
        "matches the name, the start of the code or of the division code; `type` is a unit type code "
        "(e.g. `city`, `station`); `active` filters on the active flag."
    ),
    operation_id="units_list",
)
@paginate(KehuPagination)
def units_list(
    request,
    within: int | None = Query(None, description="Unit id: only this unit and its subtree."),
    q: str = Query("", max_length=100, description="Search in name, code and division code."),
    unit_type: str = Query("", alias="type", max_length=32, description="Unit type code."),
    active: bool | None = Query(None, description="true: active units only; false: inactive only."),
):
    viewer = request.auth
    require_any(viewer, Capability.VIEW_ORG)
    within_unit = get_visible_or_404(Unit, viewer, pk=within) if within is not None else None
    return unit_list(viewer=viewer, q=q.strip(), within=within_unit, unit_type=unit_type, active=active)


@router.get(
    "/{int:unit_id}",
    response={200: UnitDetailOut, 401: Error, 403: Error, 404: Error},
    summary="Get one unit",
    description="A unit with the visible units above it and how many visible units sit directly below. "
    "A unit outside the caller's scope answers 404 exactly like a missing one.",
    operation_id="units_get",
)
def units_get(request, unit_id: int):
    viewer = request.auth
    require_any(viewer, Capability.VIEW_ORG)
    unit = get_visible_or_404(Unit.objects.select_related("unit_type"), viewer, pk=unit_id)
    ancestors = [u for u in unit_breadcrumbs(viewer=viewer, unit=unit) if u.pk != unit.pk]
    visible_parent = unit.parent_id if any(u.pk == unit.parent_id for u in ancestors) else None
    children_count = Unit.objects.visible_to(viewer).filter(parent=unit).count()
    return {
        "id": unit.pk,
        "code": unit.code,
        "name": unit.name,
        "unit_type": unit.unit_type,
        "parent_id": visible_parent,
        "division_code": unit.division_code,
        "is_active": unit.is_active,
        "depth": unit.depth,
        "ancestors": ancestors,
        "children_count": children_count,
    }
