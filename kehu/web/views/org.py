"""The organisation tree: browse and search for everyone with Capability.VIEW_ORG; changes for MANAGE_UNITS.

Style: fetch with ``get_visible_or_404`` (out of scope is a 404), call the service in
``try/except ServiceError`` and show its message next to the field it names.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kehu.accounts.roles import Capability
from kehu.core.errors import NotAllowed, ServiceError
from kehu.core.scoping import get_visible_or_404
from kehu.jobs.services import job_submit
from kehu.org.exports import units_export
from kehu.org.models import Unit
from kehu.org.services import unit_create, unit_delete, unit_move, unit_set_active, unit_update
from kehu.web.forms import UnitFieldsForm, UnitImportForm, UnitMoveForm, UnitSearchForm, add_service_error
from kehu.web.selectors import org_search, org_tree_level, org_tree_start, unit_detail
from kehu.web.views.common import capability_required, is_htmx


def _unit(request, pk: int) -> Unit:
    return get_visible_or_404(Unit.objects.select_related("unit_type", "parent"), request.user, pk=pk)


# ---------------------------------------------------------------- reading


@require_GET
@capability_required(Capability.VIEW_ORG)
def org_tree_view(request):
    form = UnitSearchForm(request.GET or None)
    q = form.cleaned_data["q"].strip() if form.is_valid() else ""
    context = {
        "form": form,
        "q": q,
        "can_manage": request.user.can(Capability.MANAGE_UNITS),
        "can_export": request.user.can(Capability.EXPORT_UNITS) or request.user.can(Capability.MANAGE_UNITS),
    }
    if q:
        context["search"] = org_search(viewer=request.user, q=q)
    else:
        context["roots"] = org_tree_start(viewer=request.user)
    if is_htmx(request):
        response = render(request, "web/org/_results.html", context)
    else:
        response = render(request, "web/org/tree.html", context)
    response["Vary"] = "HX-Request"
    return response


@require_GET
@capability_required(Capability.VIEW_ORG)
def org_tree_children_view(request, pk: int):
    parent = _unit(request, pk)
    units = org_tree_level(viewer=request.user, parent=parent)
    return render(request, "web/org/_tree_level.html", {"units": units, "parent": parent})


@require_GET
@capability_required(Capability.VIEW_ORG)
def unit_detail_view(request, pk: int):
    detail = unit_detail(viewer=request.user, unit=_unit(request, pk))
    return render(
        request,
        "web/org/unit_detail.html",
        {"d": detail, "unit": detail.unit, "can_manage": request.user.can(Capability.MANAGE_UNITS)},
    )


# ---------------------------------------------------------------- changing (system administrator)


@require_http_methods(["GET", "POST"])
@capability_required(Capability.MANAGE_UNITS)
def unit_create_view(request, pk: int | None = None):
    parent = _unit(request, pk) if pk is not None else None
    form = UnitFieldsForm(request.POST or None, parent=parent)
    if request.method == "POST" and form.is_valid():
        try:
            unit = unit_create(acting_user=request.user, parent=parent, **form.cleaned_data)
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from exc
        except ServiceError as exc:
            add_service_error(form, exc, form.SERVICE_FIELDS)
        else:
            messages.success(request, _("Unit %(unit)s created.") % {"unit": unit})
            return redirect("unit_detail", pk=unit.pk)
    return render(request, "web/org/unit_form.html", {"form": form, "parent": parent, "mode": "create"})


@require_http_methods(["GET", "POST"])
@capability_required(Capability.MANAGE_UNITS)
def unit_edit_view(request, pk: int):
    unit = _unit(request, pk)
    initial = {
        "code": unit.code,
        "name": unit.name,
        "unit_type": unit.unit_type_id,
        "division_code": unit.division_code,
    }
    form = UnitFieldsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            unit_update(acting_user=request.user, unit=unit, **form.cleaned_data)
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from exc
        except ServiceError as exc:
            add_service_error(form, exc, form.SERVICE_FIELDS)
        else:
            messages.success(request, _("Unit %(unit)s saved.") % {"unit": unit})
            return redirect("unit_detail", pk=unit.pk)
    return render(request, "web/org/unit_form.html", {"form": form, "unit": unit, "mode": "edit"})


@require_http_methods(["GET", "POST"])
@capability_required(Capability.MANAGE_UNITS)
def unit_move_view(request, pk: int):
    unit = _unit(request, pk)
    form = UnitMoveForm(request.POST or None, units=Unit.objects.visible_to(request.user))
    if request.method == "POST" and form.is_valid():
        try:
            unit = unit_move(acting_user=request.user, unit=unit, new_parent=form.cleaned_data["new_parent"])
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from exc
        except ServiceError as exc:
            add_service_error(form, exc, form.SERVICE_FIELDS)
        else:
            messages.success(request, _("Unit %(unit)s moved.") % {"unit": unit})
            return redirect("unit_detail", pk=unit.pk)
    return render(request, "web/org/unit_move.html", {"form": form, "unit": unit})


@require_POST
@capability_required(Capability.MANAGE_UNITS)
def unit_set_active_view(request, pk: int):
    unit = _unit(request, pk)
    active = request.POST.get("active") == "1"
    try:
        unit_set_active(acting_user=request.user, unit=unit, active=active)
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from exc
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        if active:
            messages.success(request, _("Unit %(unit)s reactivated.") % {"unit": unit})
        else:
            messages.success(request, _("Unit %(unit)s deactivated.") % {"unit": unit})
    return redirect("unit_detail", pk=unit.pk)


@require_http_methods(["GET", "POST"])
@capability_required(Capability.MANAGE_UNITS)
def unit_delete_view(request, pk: int):
    unit = _unit(request, pk)
    if request.method == "POST":
        parent_id, label = unit.parent_id, str(unit)
        try:
            unit_delete(acting_user=request.user, unit=unit)
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from exc
        except ServiceError as exc:
            messages.error(request, exc.message)
            return redirect("unit_detail", pk=unit.pk)
        messages.success(request, _("Unit %(unit)s deleted.") % {"unit": label})
        return redirect("unit_detail", pk=parent_id) if parent_id else redirect("org_tree")
    return render(request, "web/org/unit_delete.html", {"unit": unit})


# ---------------------------------------------------------------- import and export


@require_GET
@login_required
def units_export_view(request):
    """The visible units as CSV or XLSX (the import format), optionally below one unit."""
    within = None
    if request.GET.get("within"):
        within = _unit(request, _int_or_404(request.GET["within"]))
    try:
        filename, content, _count = units_export(
            acting_user=request.user, fmt=request.GET.get("format", "xlsx"), within=within
        )
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from None
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("org_tree")
    content_type = (
        "text/csv; charset=utf-8"
        if filename.endswith(".csv")
        else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


@require_http_methods(["GET", "POST"])
@capability_required(Capability.MANAGE_UNITS)
def units_import_view(request):
    """Upload a units file (CSV/XLSX); a background job checks every row, then applies it or lists the problems."""
    form = UnitImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            job = job_submit(
                acting_user=request.user, kind="units_import", filename=upload.name, content=upload.read(),
                params={"create_types": form.cleaned_data["create_types"], "dry_run": form.cleaned_data["dry_run"]},
            )  # fmt: skip
        except ServiceError as exc:
            add_service_error(form, exc)
        else:
            return redirect("job_detail", pk=job.pk)
    return render(request, "web/org/import.html", {"form": form})


def _int_or_404(value: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Http404 from None
