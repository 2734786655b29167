"""Audit trail pages: search, one event, chain verification. Only the audit administrator; every read
is itself recorded (kehu.audit.access), refused attempts included."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from kehu.audit.access import audit_trail_event, audit_trail_search, audit_trail_verify
from kehu.audit.models import AuditEvent, Outcome
from kehu.audit.selectors import AuditAccessDenied

PAGE_SIZE = 50


class AuditFilterForm(forms.Form):
    q = forms.CharField(label=gettext_lazy("Search"), required=False, max_length=100,
                        widget=forms.TextInput(attrs={"type": "search",
                                                      "placeholder": gettext_lazy("object, user, IP or id")}))  # fmt: skip
    action = forms.CharField(label=gettext_lazy("Action (prefix)"), required=False, max_length=64,
                             widget=forms.TextInput(attrs={"placeholder": "user."}))  # fmt: skip
    username = forms.CharField(label=gettext_lazy("User"), required=False, max_length=64)
    object_type = forms.CharField(label=gettext_lazy("Object type"), required=False, max_length=64,
                                  widget=forms.TextInput(attrs={"placeholder": "accounts.user"}))  # fmt: skip
    outcome = forms.ChoiceField(label=gettext_lazy("Outcome"), required=False,
                                choices=[("", gettext_lazy("Any outcome"))] + list(Outcome.choices))  # fmt: skip
    since = forms.DateField(label=gettext_lazy("From"), required=False,
                            widget=forms.DateInput(attrs={"type": "date"}))  # fmt: skip
    until = forms.DateField(label=gettext_lazy("To (inclusive)"), required=False,
                            widget=forms.DateInput(attrs={"type": "date"}))  # fmt: skip

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and until < since:
            self.add_error("until", _("The end date is before the start date."))
        return data

    def filters(self) -> dict:
        """Valid filters for audit_event_search; dates become the bounds of whole local days."""
        self.is_valid()
        data = {k: v for k, v in getattr(self, "cleaned_data", {}).items() if k not in self.errors}
        tz = timezone.get_current_timezone()
        filters = {
            k: (data.get(k) or "").strip() for k in ("q", "action", "username", "object_type", "outcome")
        }
        since, until = data.get("since"), data.get("until")
        filters["since"] = timezone.make_aware(datetime.combine(since, time.min), tz) if since else None
        filters["until"] = (
            timezone.make_aware(datetime.combine(until + timedelta(days=1), time.min), tz) if until else None
        )
        return filters


def _pretty(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) if value else ""


def _row(event: AuditEvent) -> dict:
    return {"event": event, "changes": _pretty(event.changes), "extra": _pretty(event.extra)}


def _no_store(response):
    add_never_cache_headers(response)
    return response


@require_GET
@login_required
def audit_list(request):
    form = AuditFilterForm(request.GET)
    page_number = request.GET.get("page") or 1
    upto = request.GET.get("upto", "")
    try:
        events, upto = audit_trail_search(
            viewer=request.user, filters=form.filters(), page=str(page_number),
            upto=int(upto) if upto.isdigit() else None,
        )  # fmt: skip
    except AuditAccessDenied:
        raise PermissionDenied(_("Only the audit administrator reads the audit trail.")) from None
    page = Paginator(events, PAGE_SIZE).get_page(page_number)
    return _no_store(render(request, "web/audit/list.html", {
        "form": form, "page": page, "rows": [_row(e) for e in page.object_list], "upto": upto,
    }))  # fmt: skip


@require_GET
@login_required
def audit_detail(request, seq: int):
    try:
        event = audit_trail_event(viewer=request.user, seq=seq)
    except AuditAccessDenied:
        raise PermissionDenied(_("Only the audit administrator reads the audit trail.")) from None
    except AuditEvent.DoesNotExist:
        raise Http404(_("No such audit event.")) from None
    return _no_store(render(request, "web/audit/detail.html", {"row": _row(event)}))


@require_POST
@login_required
def audit_verify(request):
    try:
        result = audit_trail_verify(viewer=request.user)
    except AuditAccessDenied:
        raise PermissionDenied(_("Only the audit administrator verifies the audit trail.")) from None
    return _no_store(render(request, "web/audit/verify.html", {"result": result}))
