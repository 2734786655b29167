"""The organisation tree: browse and search for everyone with Capability.VIEW_ORG; changes for MANAGE_UNITS.

Style: fetch with ``get_visible_or_404`` (out of scope is a 404), call the service in
``try/except ServiceError`` and show its message next to the field it names.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kehu.accounts.roles import Capability
from kehu.core.errors import NotAllowed, ServiceError
from kehu.core.scoping import get_visible_or_404
from kehu.org.models import Unit
from kehu.org.services import unit_create, unit_delete, unit_move, unit_set_active, unit_update
from kehu.web.forms import UnitFieldsForm, UnitMoveForm, UnitSearchForm, add_service_error
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
    context = {"form": form, "q": q, "can_manage": request.user.can(Capability.MANAGE_UNITS)}
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
