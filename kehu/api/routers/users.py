"""People, as far as the caller may see them. Never secrets: see ``kehu.api.schemas.UserOut``."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _
from ninja import Query, Router
from ninja.pagination import paginate

from kehu.accounts.models import User
from kehu.accounts.roles import Role
from kehu.api.pagination import KehuPagination
from kehu.api.schemas import Error, FieldError, UserOut
from kehu.core.errors import ServiceError
from kehu.core.scoping import get_visible_or_404
from kehu.org.models import Unit

router = Router(tags=["users"])


def _user_list(
    *, viewer, q: str = "", unit: Unit | None = None, role: str = "", active: bool | None = None
) -> QuerySet[User]:
    # TODO(lead): replace with kehu.accounts.selectors.user_list once it lands; same arguments.
    qs = User.objects.visible_to(viewer).select_related("unit").prefetch_related("role_assignments")
    if q:
        qs = qs.filter(Q(username__icontains=q) | Q(full_name__icontains=q))
    if unit is not None:
        low, high = unit.subtree_path_range()
        qs = qs.filter(unit__path__gte=low, unit__path__lt=high)
    if role:
        if role not in Role.values:
            raise ServiceError(_("Unknown role “%(r)s”.") % {"r": role}, field="role")
        qs = qs.filter(role_assignments__role=role)
    if active is not None:
        qs = qs.filter(is_active=active)
    return qs.order_by("username")


@router.get(
    "",
    response={200: list[UserOut], 400: FieldError, 401: Error, 404: Error},
    summary="List people",
    description=(
        "Accounts the caller may see: their own, those in the units their roles reach, or all of them "
        "for the security administrator. `q` matches username and full name; `unit` restricts to a unit "
        "and everything below it (404 when out of scope); `role` is a role code (400 when unknown); "
        "`active` filters on the active flag."
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
    unit_obj = get_visible_or_404(Unit, viewer, pk=unit) if unit is not None else None
    return _user_list(viewer=viewer, q=q.strip(), unit=unit_obj, role=role.strip(), active=active)


@router.get(
    "/{int:user_id}",
    response={200: UserOut, 401: Error, 404: Error},
    summary="Get one person",
    description="One account. A person outside the caller's scope answers 404 exactly like a missing one.",
    operation_id="users_get",
)
def users_get(request, user_id: int):
    qs = User.objects.select_related("unit").prefetch_related("role_assignments")
    return get_visible_or_404(qs, request.auth, pk=user_id)
