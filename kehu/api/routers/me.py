"""The caller's own account."""

from __future__ import annotations

from ninja import Router

from kehu.api.schemas import Error, MeOut

router = Router(tags=["me"])


@router.get(
    "",
    response={200: MeOut, 401: Error},
    summary="Who am I",
    description="The authenticated user: unit, position, grade, language, roles with their data scopes "
    "and the capabilities those roles give.",
    operation_id="me",
)
def me(request):
    return request.auth
