"""How the API answers errors: the same small JSON bodies everywhere.

* ``ServiceError`` (bad input)          → 400 ``{detail, field, code}``
* ``NotAllowed`` (role lacks a capability) → 403 ``{detail, code}``
* ``Http404`` (missing *or out of scope*) → 404 ``{detail}``, one body for both, so existence never leaks
* no or bad credentials                  → 401 ``{detail}`` with ``WWW-Authenticate: Bearer``
"""

from __future__ import annotations

from django.http import Http404
from django.utils.translation import gettext as _
from ninja import NinjaAPI
from ninja.errors import AuthenticationError

from kehu.core.errors import NotAllowed, ServiceError


def not_found_body() -> dict:
    return {"detail": _("Not found.")}


def install_error_handlers(api: NinjaAPI) -> None:
    @api.exception_handler(ServiceError)
    def _service_error(request, exc: ServiceError):
        return api.create_response(
            request, {"detail": exc.message, "field": exc.field, "code": exc.code}, status=400
        )

    @api.exception_handler(NotAllowed)
    def _not_allowed(request, exc: NotAllowed):
        return api.create_response(request, {"detail": exc.message, "code": exc.code}, status=403)

    @api.exception_handler(Http404)
    def _not_found(request, exc: Http404):
        # Never the exception's own text: "missing" and "not yours" must read the same.
        return api.create_response(request, not_found_body(), status=404)

    @api.exception_handler(AuthenticationError)
    def _unauthenticated(request, exc: AuthenticationError):
        response = api.create_response(
            request,
            {"detail": _("Authentication required: send a valid bearer token or sign in.")},
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="kehu"'
        return response
