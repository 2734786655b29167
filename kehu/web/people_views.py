"""People pages: the list and a person's page for managers, account administration for the security
administrator. Views parse input, call one service or selector and render; the rules live in
kehu.accounts.services (who may do what, separation of the three administrators, password rules)."""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kehu.accounts.exports import people_export_csv
from kehu.accounts.roles import Capability, Role
from kehu.accounts.selectors import people_with_roles, unit_choices, user_list
from kehu.accounts.services import (
    RoleGrant,
    role_grant,
    role_revoke,
    user_create,
    user_deactivate,
    user_password_reset,
    user_reactivate,
    user_unlock,
    user_update,
)
from kehu.core.errors import NotAllowed, ServiceError
from kehu.core.scoping import get_visible_or_404
from kehu.web.people_forms import (
    PasswordResetForm,
    PeopleFilterForm,
    PersonCreateForm,
    PersonEditForm,
    RoleGrantForm,
    RoleRevokeForm,
    SetActiveForm,
    role_defaults,
)

PAGE_SIZE = 50


def capability_required(*capabilities: Capability):
    """Signed-in users holding any of ``capabilities``; everyone else gets 403."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(request, *args, **kwargs):
            if not any(request.user.can(c) for c in capabilities):
                raise PermissionDenied(_("Your roles do not allow this page."))
            try:
                return view(request, *args, **kwargs)
            except NotAllowed as exc:
                raise PermissionDenied(exc.message) from None

        return wrapped

    return decorator


def _show_service_error(request, form, exc: ServiceError) -> None:
    """Next to the field the service named, or as a page message."""
    if exc.field and exc.field in form.fields:
        form.add_error(exc.field, exc.message)
    else:
        messages.error(request, exc.message)


def _person(request, pk: int):
    return get_visible_or_404(people_with_roles(), request.user, pk=pk)


def _render_person(request, person, *, status: int = 200):
    can_manage = request.user.can(Capability.MANAGE_USERS)
    context = {
        "person": person,
        "assignments": list(person.role_assignments.all()),
        "can_manage": can_manage,
        "is_self": person.pk == request.user.pk,
        "is_locked": person.is_locked(),
    }
    if can_manage:
        context["grant_form"] = RoleGrantForm()
        context["role_defaults"] = role_defaults()
    return render(request, "web/people/detail.html", context, status=status)


def _render_with_secret(request, person):
    """Show a page carrying a one-time secret (a generated password) in a message rendered right now:
    no redirect, so the password is never stored in the session or a cookie, and never cached."""
    response = _render_person(request, person)
    add_never_cache_headers(response)
    return response


# ---------------------------------------------------------------- reading


@require_GET
@capability_required(Capability.VIEW_PEOPLE, Capability.MANAGE_USERS)
def people_list(request):
    form = PeopleFilterForm(request.GET)
    filters = form.filters()
    page = Paginator(user_list(viewer=request.user, **filters), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "web/people/list.html", {
        "form": form, "page": page, "filtered": any(filters.values()),
        "units": unit_choices(viewer=request.user),
        "can_manage": request.user.can(Capability.MANAGE_USERS),
    })  # fmt: skip


@require_GET
@login_required
def person_detail(request, pk: int):
    # Scope only: anyone sees the people in their data scope (a customer manager: only themselves);
    # out of scope answers 404 exactly like a missing person.
    return _render_person(request, _person(request, pk))


@require_GET
@capability_required(Capability.VIEW_PEOPLE, Capability.MANAGE_USERS)
def people_export(request):
    filters = PeopleFilterForm(request.GET).filters()
    content = people_export_csv(viewer=request.user, filters=filters)
    response = HttpResponse(content, content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="people-{stamp}.csv"'
    add_never_cache_headers(response)
    return response


# ---------------------------------------------------------------- security administrator


@sensitive_post_parameters("password")
@sensitive_variables("password", "data")
@require_http_methods(["GET", "POST"])
@capability_required(Capability.MANAGE_USERS)
def person_create(request):
    form = PersonCreateForm(request.POST or None, viewer=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        password, generated = form.chosen_password(data["username"])
        roles = [RoleGrant(role=data["role"], scope=data["scope"] or None)] if data["role"] else []
        try:
            person = user_create(
                acting_user=request.user, username=data["username"], full_name=data["full_name"],
                password=password, unit=data["unit"], position=data["position"],
                manager_grade=data["manager_grade"], phone=data["phone"], email=data["email"],
                language=data["language"], roles=roles,
            )  # fmt: skip
        except NotAllowed:
            raise
        except ServiceError as exc:
            _show_service_error(request, form, exc)
        else:
            if generated:
                messages.success(request, _(
                    "Account %(username)s created. Temporary password, shown only this once: %(password)s"
                ) % {"username": person.username, "password": password})  # fmt: skip
                return _render_with_secret(request, _person(request, person.pk))
            messages.success(request, _("Account %(username)s created; the password must be changed at "
                                        "first sign-in.") % {"username": person.username})  # fmt: skip
            return redirect("person_detail", pk=person.pk)
    return render(request, "web/people/form.html", {
        "form": form, "creating": True, "units": unit_choices(viewer=request.user),
        "role_defaults": role_defaults(),
    })  # fmt: skip


@require_http_methods(["GET", "POST"])
@capability_required(Capability.MANAGE_USERS)
def person_edit(request, pk: int):
    person = _person(request, pk)
    form = PersonEditForm(
        request.POST or None, viewer=request.user, initial=PersonEditForm.initial_for(person)
    )
    if request.method == "POST" and form.is_valid():
        try:
            # Only what was edited: an untouched field (say, a unit deactivated since) is not re-checked,
            # and a concurrent edit of another field is not overwritten.
            changed = {name: form.cleaned_data[name] for name in form.changed_data}
            user_update(acting_user=request.user, user=person, **changed)
        except NotAllowed:
            raise
        except ServiceError as exc:
            _show_service_error(request, form, exc)
        else:
            messages.success(
                request, _("The account %(username)s was saved.") % {"username": person.username}
            )
            return redirect("person_detail", pk=person.pk)
    return render(request, "web/people/form.html", {
        "form": form, "creating": False, "person": person, "units": unit_choices(viewer=request.user),
    })  # fmt: skip


@require_POST
@capability_required(Capability.MANAGE_USERS)
def person_set_active(request, pk: int):
    person = _person(request, pk)
    form = SetActiveForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect("person_detail", pk=person.pk)
    try:
        if form.cleaned_data["active"]:
            user_reactivate(acting_user=request.user, user=person)
            messages.success(
                request, _("The account %(username)s is active again.") % {"username": person.username}
            )
        else:
            user_deactivate(acting_user=request.user, user=person, reason=form.cleaned_data["reason"].strip())
            messages.success(request, _("The account %(username)s was deactivated and signed out everywhere.")
                             % {"username": person.username})  # fmt: skip
    except NotAllowed:
        raise
    except ServiceError as exc:
        messages.error(request, exc.message)
    return redirect("person_detail", pk=person.pk)


@require_POST
@capability_required(Capability.MANAGE_USERS)
def person_unlock(request, pk: int):
    person = _person(request, pk)
    try:
        user_unlock(acting_user=request.user, user=person)
    except NotAllowed:
        raise
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("The account %(username)s was unlocked.") % {"username": person.username})
    return redirect("person_detail", pk=person.pk)


@sensitive_post_parameters("password")
@sensitive_variables("password")
@require_http_methods(["GET", "POST"])
@capability_required(Capability.MANAGE_USERS)
def person_password_reset(request, pk: int):
    person = _person(request, pk)
    form = PasswordResetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        password, generated = form.chosen_password(person.username)
        try:
            user_password_reset(acting_user=request.user, user=person, new_password=password)
        except NotAllowed:
            raise
        except ServiceError as exc:
            _show_service_error(request, form, exc)
        else:
            if generated:
                messages.success(request, _(
                    "New temporary password for %(username)s, shown only this once: %(password)s"
                ) % {"username": person.username, "password": password})  # fmt: skip
                return _render_with_secret(request, _person(request, person.pk))
            messages.success(request, _("The password of %(username)s was reset; it must be changed at the "
                                        "next sign-in.") % {"username": person.username})  # fmt: skip
            return redirect("person_detail", pk=person.pk)
    return render(request, "web/people/password_reset.html", {"form": form, "person": person})


@require_http_methods(["GET", "POST"])
@capability_required(Capability.MANAGE_USERS)
def person_role_grant(request, pk: int):
    person = _person(request, pk)
    form = RoleGrantForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        role = form.cleaned_data["role"]
        try:
            role_grant(
                acting_user=request.user, user=person, role=role, scope=form.cleaned_data["scope"] or None
            )
        except NotAllowed:
            raise
        except ServiceError as exc:
            _show_service_error(request, form, exc)
        else:
            messages.success(request, _("%(username)s now holds the role %(role)s.")
                             % {"username": person.username, "role": Role(role).label})  # fmt: skip
            return redirect("person_detail", pk=person.pk)
    return render(request, "web/people/role_grant.html", {
        "form": form, "person": person, "assignments": list(person.role_assignments.all()),
        "role_defaults": role_defaults(),
    })  # fmt: skip


@require_POST
@capability_required(Capability.MANAGE_USERS)
def person_role_revoke(request, pk: int):
    person = _person(request, pk)
    form = RoleRevokeForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose a role to revoke."))
        return redirect("person_detail", pk=person.pk)
    role = form.cleaned_data["role"]
    try:
        role_revoke(acting_user=request.user, user=person, role=role)
    except NotAllowed:
        raise
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("The role %(role)s was taken from %(username)s.")
                         % {"username": person.username, "role": Role(role).label})  # fmt: skip
    return redirect("person_detail", pk=person.pk)
