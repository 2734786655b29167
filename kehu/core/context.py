"""Where the current action comes from (IP address, user agent, channel), for the audit trail.

The web middleware, the API and the CLI set it once per request or command; services never take it
as an argument, so a web form, an API call and a CLI command reach the same service unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    ip: str | None = None
    user_agent: str = ""
    channel: str = "system"  # web | api | cli | task | system


_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar("kehu_request_context")


def current_context() -> RequestContext:
    return _current.get(RequestContext())


@contextlib.contextmanager
def request_context(
    *, ip: str | None = None, user_agent: str = "", channel: str = "system"
) -> Iterator[None]:
    token = _current.set(RequestContext(ip=ip, user_agent=user_agent[:200], channel=channel))
    try:
        yield
    finally:
        _current.reset(token)


def client_ip(request) -> str | None:
    """The client's address; X-Forwarded-For is trusted only when Kehu is configured behind a proxy."""
    from django.conf import settings

    if settings.KEHU_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            # The rightmost entry is the one our proxy added; those to its left are the client's word.
            return forwarded.split(",")[-1].strip()[:45]
    return (request.META.get("REMOTE_ADDR") or None) and request.META["REMOTE_ADDR"][:45]
