"""Token issue: the only endpoint that needs no authentication."""

from __future__ import annotations

import math

from django.http import HttpResponse
from django.utils import timezone
from ninja import Router
from ninja.responses import Status

from kehu.accounts.services import LoginFailed, api_token_issue, api_token_revoke
from kehu.api.auth import BearerTokenAuth
from kehu.api.schemas import Error, LockedError, LoginError, TokenIn, TokenOut

router = Router(tags=["auth"])

_STATUS = {"invalid": 401, "locked": 423, "password_change_required": 403}


@router.post(
    "/token",
    auth=None,
    response={200: TokenOut, 401: LoginError, 403: LoginError, 423: LockedError},
    summary="Issue a bearer token",
    description=(
        "Exchange a username and password for a bearer token, valid for `KEHU_API_TOKEN_HOURS` hours. "
        "Send it on every other call as `Authorization: Bearer <token>`.\n\n"
        "The same rules apply as for the web sign-in and every attempt is audited: a wrong username or "
        "password answers **401**; after too many failures the account is locked and the answer is "
        "**423** with `locked_until` (and `Retry-After`), even for the right password; an account whose "
        "password is temporary or expired answers **403** until the password is changed on the web."
    ),
    operation_id="auth_token_issue",
)
def token_issue(request, payload: TokenIn, response: HttpResponse):
    try:
        raw, token = api_token_issue(username=payload.username, password=payload.password)
    except LoginFailed as exc:
        status = _STATUS.get(exc.code, 401)
        body = {"detail": exc.message, "code": exc.code}
        if status == 423:
            body["locked_until"] = exc.locked_until
            if exc.locked_until is not None:
                seconds = (exc.locked_until - timezone.now()).total_seconds()
                response["Retry-After"] = str(max(1, math.ceil(seconds)))
        return Status(status, body)
    return Status(
        200, {"token": raw, "token_type": "Bearer", "expires_at": token.expires_at, "user": token.user}
    )


@router.delete(
    "/token",
    auth=BearerTokenAuth(),
    response={204: None, 401: Error},
    summary="Revoke the bearer token",
    description="Sign an API client out: the token sent with this call stops working at once. Audited.",
    operation_id="auth_token_revoke",
)
def token_revoke(request):
    raw = request.headers.get("Authorization", "").partition(" ")[2].strip()
    api_token_revoke(acting_user=request.auth, raw=raw)
    return Status(204, None)
