"""People, as far as the caller may see them. Never secrets: see ``kehu.api.schemas.UserOut``."""

from __future__ import annotations

from ninja import Query, Router
from ninja.pagination import paginate

from kehu.accounts.roles import Capability
from kehu.accounts.selectors import STATUS_ACTIVE, STATUS_INACTIVE, people_with_roles, user_list
from kehu.api.pagination import KehuPagination
from kehu.api.schemas import Error, FieldError, UserOut
from kehu.core.errors import require_any
from kehu.core.scoping import get_visible_or_404
from kehu.org.models import Unit

router = Router(tags=["users"])


@router.get(
    "",
    response={200: list[UserOut], 400: FieldError, 401: Error, 403: Error, 404: Error},
    summary="List people",
    description=(
        "Accounts the caller may see: their own, those in the units their roles reach, or all of them "
        "for the security administrator. `q` matches username and full name; `unit` restricts to a unit "
        "and everything below it (404 when out of scope); `role` is a role code (400 when unknown); "
        "`active` filters on the active flag. Needs a role that may view people (403 otherwise)."
    ),
    operation_id="users_list",
)
@paginate(KehuPagination)
def users_list(
    request,
    q: str = Query("", max_length=100, description="Search in username and full name."),
    unit: int | None = Query(None, description="Unit id: people in this unit and its subtree."),
    role: str = Query("", max_length=32, description="Role code, e.g. customer_manager."),
    active: bool | None = Query(None, description="true: active accounts only; false: inactive only."),
):
    viewer = request.auth
    require_any(viewer, Capability.VIEW_PEOPLE, Capability.MANAGE_USERS)
    unit_obj = get_visible_or_404(Unit, viewer, pk=unit) if unit is not None else None
    status = "" if active is None else (STATUS_ACTIVE if active else STATUS_INACTIVE)
    return user_list(viewer=viewer, q=q.strip(), unit=unit_obj, role=role.strip(), status=status)


@router.get(
    "/{int:user_id}",
    response={200: UserOut, 401: Error, 404: Error},
    summary="Get one person",
    description="One account. A person outside the caller's scope answers 404 exactly like a missing one.",
    operation_id="users_get",
)
def users_get(request, user_id: int):
    return get_visible_or_404(people_with_roles(), request.auth, pk=user_id)
