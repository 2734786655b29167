"""Template context shared by every page: the navigation the user's roles may use."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from kehu.accounts.roles import Capability


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str
    url_name: str
    capability: Capability | tuple[Capability, ...] | None  # None: every signed-in user; a tuple: any of them


NAVIGATION: tuple[NavItem, ...] = (
    NavItem("home", _("Home"), "home", None),
    NavItem("org", _("Organisation"), "org_tree", Capability.VIEW_ORG),
    NavItem("people", _("People"), "people_list", Capability.VIEW_PEOPLE),
    NavItem("audit", _("Audit trail"), "audit_list", Capability.READ_AUDIT),
    NavItem("close", _("Monthly close"), "close_home", (Capability.RUN_CLOSE, Capability.MANAGE_POLICIES)),
    NavItem("overrides", _("Overrides"), "override_list", Capability.APPROVE_OVERRIDE),
)


def _allowed(item: NavItem, caps) -> bool:
    if item.capability is None:
        return True
    if isinstance(item.capability, tuple):
        return any(c in caps for c in item.capability)
    return item.capability in caps


def nav_items_for(user) -> list[dict]:
    if user is None or not user.is_authenticated:
        return []
    caps = user.capabilities()
    return [
        {"key": item.key, "label": item.label, "url": reverse(item.url_name)}
        for item in NAVIGATION
        if _allowed(item, caps)
    ]


def navigation(request):
    user = getattr(request, "user", None)
    items = nav_items_for(user)
    path = request.path
    active = ""
    for item in items:
        if item["url"] != "/" and path.startswith(item["url"]):
            active = item["key"]
    if not active and path == "/":
        active = "home"
    caps = {str(c) for c in user.capabilities()} if user is not None and user.is_authenticated else set()
    return {"nav_items": items, "nav_active": active, "caps": caps}
