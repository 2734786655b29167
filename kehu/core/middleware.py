"""Binds every web request to a RequestContext so audit rows know the client's address."""

from __future__ import annotations

from kehu.core.context import client_ip, request_context


class RequestContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        channel = "api" if request.path.startswith("/api/") else "web"
        with request_context(
            ip=client_ip(request), user_agent=request.META.get("HTTP_USER_AGENT", ""), channel=channel
        ):
            return self.get_response(request)
