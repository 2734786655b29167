"""Customer pages: the searchable list, the customer's 360° page with its tabs, the forms, personal data
and merging. Views parse input, call one service or selector and render; rules live in kehu.customers.

Every customer is fetched by code through ``get_visible_or_404`` (out of scope answers 404, like a
missing one); its contacts, agreements and photos through the same scoping point. Pages that change
anything need Capability.MANAGE_CUSTOMERS (else 403), and the services check again.
"""

from __future__ import annotations

import mimetypes
import os
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kehu.accounts.roles import ADMIN_ROLES, Capability
from kehu.accounts.selectors import unit_choices
from kehu.core.divisions import division_name
from kehu.core.errors import NotAllowed, ServiceError
from kehu.core.files import private_file_response
from kehu.core.scoping import get_visible_or_404
from kehu.customers.duplicates import SimilarNamesFound
from kehu.customers.models import Agreement, Contact, Customer, CustomerPhone, CustomerPhoto
from kehu.customers.personal import (
    customer_personal_data,
    customer_set_id_number,
    personal_data_reveal,
    phone_add,
    phone_remove,
)
from kehu.customers.selectors import (
    customer_agreements,
    customer_branches,
    customer_contacts,
    customer_counts,
    customer_history,
    customer_page,
    customer_photos,
)
from kehu.customers.services import (
    ATTACHMENT_TYPES,
    PHOTO_FORMATS,
    agreement_add,
    agreement_delete,
    agreement_update,
    contact_create,
    contact_delete,
    contact_update,
    customer_create,
    customer_update,
    photo_add,
    photo_delete,
)
from kehu.web.customer_forms import (
    AGREEMENT_TYPES,
    AgreementForm,
    ContactCreateForm,
    ContactForm,
    CustomerCreateForm,
    CustomerEditForm,
    CustomerFilterForm,
    IdNumberForm,
    MergeChooseForm,
    MergeConfirmForm,
    PhoneAddForm,
    PhotoForm,
    RevealForm,
)
from kehu.web.forms import add_service_error
from kehu.web.views.common import is_htmx

PAGE_SIZE = 50
TABS = (
    ("profile", gettext_lazy("Profile")),
    ("contacts", gettext_lazy("Contacts")),
    ("agreements", gettext_lazy("Agreements")),
    ("photos", gettext_lazy("Photos")),
    ("history", gettext_lazy("History")),
    ("sales", gettext_lazy("Sales")),
    ("visits", gettext_lazy("Visits")),
    ("complaints", gettext_lazy("Complaints")),
)
# Filled by later features; until then the tab says so and shows no invented data.
PLACEHOLDER_TABS = {"visits", "complaints"}


# ---------------------------------------------------------------- access


def can_read_customers(user) -> bool:
    """Business roles read the customers in their scope; administrator roles hold no business data."""
    return user.is_authenticated and user.is_active and bool(user.role_names() - ADMIN_ROLES)


def _guarded(view, allowed):
    @wraps(view)
    @login_required
    def wrapped(request, *args, **kwargs):
        if not allowed(request.user):
            raise PermissionDenied(_("Your roles do not allow this page."))
        try:
            return view(request, *args, **kwargs)
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from None

    return wrapped


def reader(view):
    return _guarded(view, can_read_customers)


def writer(view):
    return _guarded(view, lambda user: user.can(Capability.MANAGE_CUSTOMERS))


def _customer(request, code: str) -> Customer:
    qs = Customer.objects.select_related(
        "owning_unit", "lead_manager", "backup_manager", "sub_type", "parent"
    )
    return get_visible_or_404(qs, request.user, code=code)


def _child(model, request, customer: Customer, pk: int):
    """A contact, agreement, phone or photo of this customer, within the user's scope (else 404)."""
    return get_visible_or_404(model.objects.filter(customer=customer), request.user, pk=pk)


def _url_or(name: str, fallback: str) -> str:
    try:
        return reverse(name)
    except NoReverseMatch:
        return fallback


def _with(query, **values) -> str:
    query = query.copy()
    for key, value in values.items():
        query[key] = value
    return query.urlencode()


def _partial(request) -> bool:
    """An htmx swap (not a history restore, which needs the whole page)."""
    return is_htmx(request) and request.headers.get("HX-History-Restore-Request") != "true"


def _show_error(request, form, exc: ServiceError, field_map: dict | None = None) -> None:
    field = (field_map or {}).get(exc.field or "", exc.field)
    if form is not None and field in form.fields:
        form.add_error(field, exc.message)
    else:
        messages.error(request, exc.message)


# ---------------------------------------------------------------- the list


@require_GET
@reader
def customer_list(request):
    form = CustomerFilterForm(request.GET or None, viewer=request.user)
    filters = form.filters()
    try:
        page = max(1, int(request.GET.get("page") or 1))
    except ValueError:
        page = 1
    rows, total, more = customer_page(viewer=request.user, filters=filters, page=page, per_page=PAGE_SIZE)
    last_page = None if more else max(1, -(-total // PAGE_SIZE))
    query = request.GET.copy()
    query.pop("page", None)
    export_url = _url_or("customers_export", "/customers/io/export/")
    context = {
        "form": form,
        "rows": rows,
        "total": total,
        "more": more,
        "total_display": f"{total:,}" + ("+" if more else ""),
        "page": page,
        "last_page": last_page,
        "has_previous": page > 1,
        "has_next": more or page * PAGE_SIZE < total,
        "filtered": form.is_filtered(),
        "units": unit_choices(viewer=request.user),
        "can_manage": request.user.can(Capability.MANAGE_CUSTOMERS),
        "export_url": export_url + (f"?{query.urlencode()}" if query else ""),
        "export_csv_url": export_url + "?" + _with(query, format="csv"),
        "import_url": _url_or("customers_import", "/customers/io/import/"),
    }
    if _partial(request):
        response = render(request, "web/customers/_results.html", context)
    else:
        response = render(request, "web/customers/list.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response


# ---------------------------------------------------------------- the customer's page


def _tab_context(request, customer: Customer, tab: str, **extra) -> dict:
    user = request.user
    can_manage = user.can(Capability.MANAGE_CUSTOMERS)
    counts = customer_counts(viewer=user, customer=customer)
    context = {
        "customer": customer,
        "tab": tab,
        "tab_items": [
            {
                "key": key,
                "label": label,
                "count": counts.get(key),
                "url": reverse("customer_tab", kwargs={"code": customer.code, "tab": key}),
            }
            for key, label in TABS
        ],  # fmt: skip
        "placeholder": tab in PLACEHOLDER_TABS,
        "tab_label": dict(TABS)[tab],
        "counts": counts,
        "division_name": division_name(customer.division_code),
        "can_manage": can_manage,
        "can_reveal": user.can(Capability.VIEW_PERSONAL_DATA),
        "branches": list(customer_branches(viewer=user, customer=customer)[:100]),
        "head_office": customer.parent
        if customer.parent_id and Customer.objects.visible_to(user).filter(pk=customer.parent_id).exists()
        else None,
    }
    revealed = extra.pop("revealed", None)
    if tab in ("profile", "contacts"):
        personal = revealed or customer_personal_data(viewer=user, customer=customer)
        context["revealed"] = revealed is not None
        context["reveal_form"] = extra.pop("reveal_form", None) or RevealForm()
        context["own_phones"] = [p for p in personal["phones"] if p["contact"] is None]
        context["id_number"] = personal["id_number"]
        by_contact: dict[int, list] = {}
        for p in personal["phones"]:
            if p["contact"] is not None:
                by_contact.setdefault(p["contact"], []).append(p)
        context["contact_phones"] = by_contact
    if tab == "profile" and can_manage:
        context["phone_form"] = extra.pop("phone_form", None) or PhoneAddForm()
        context["id_form"] = extra.pop("id_form", None) or IdNumberForm()
    if tab == "contacts":
        contacts = list(customer_contacts(viewer=user, customer=customer))
        for contact in contacts:
            contact.shown_phones = context["contact_phones"].get(contact.pk, [])
        context["contacts"] = contacts
    elif tab == "agreements":
        context["agreements"] = list(customer_agreements(viewer=user, customer=customer))
        context["agreement_types"] = dict(AGREEMENT_TYPES)
    elif tab == "photos":
        context["photos"] = list(customer_photos(viewer=user, customer=customer))
        if can_manage:
            context["photo_form"] = extra.pop("photo_form", None) or PhotoForm()
    elif tab == "history":
        context["history"], context["history_more"] = customer_history(viewer=user, customer=customer)
    elif tab == "sales":
        from kehu.web.views.sales import sales_tab_context

        context.update(sales_tab_context(user, customer))
    context.update(extra)
    return context


def _render_tab(request, customer: Customer, tab: str, *, status: int = 200, **extra):
    context = _tab_context(request, customer, tab, **extra)
    template = "web/customers/_tabs.html" if _partial(request) else "web/customers/detail.html"
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    if context.get("revealed"):
        add_never_cache_headers(response)  # full personal data: never kept in a cache
    return response


@require_GET
@reader
def customer_detail(request, code: str):
    return _render_tab(request, _customer(request, code), "profile")


@require_GET
@reader
def customer_tab(request, code: str, tab: str):
    if tab not in dict(TABS):
        raise Http404("No such tab.")
    return _render_tab(request, _customer(request, code), tab)


@require_POST
@reader
def customer_reveal(request, code: str):
    """Show the customer's phones and ID number in full (audited); the page shows them masked otherwise."""
    customer = _customer(request, code)
    tab = request.POST.get("tab") if request.POST.get("tab") in ("profile", "contacts") else "profile"
    form = RevealForm(request.POST)
    reason = form.cleaned_data["reason"].strip() if form.is_valid() else ""
    data = personal_data_reveal(acting_user=request.user, customer=customer, reason=reason)
    return _render_tab(request, customer, tab, revealed=data, reveal_form=form)


# ---------------------------------------------------------------- create and edit


@require_http_methods(["GET", "POST"])
@writer
def customer_create_view(request):
    initial = {"owning_unit": request.user.unit.code if request.user.unit_id else ""}
    if request.method == "GET" and request.GET.get("parent"):
        initial["parent"] = request.GET["parent"]
    form = CustomerCreateForm(request.POST or None, viewer=request.user, initial=initial)
    similar = None
    if request.method == "POST" and form.is_valid():
        data = form.service_fields()
        try:
            customer = customer_create(acting_user=request.user, **data)
        except SimilarNamesFound as exc:
            similar = exc.similar
            form.add_error("duplicate_reason", exc.message)
        except ServiceError as exc:  # NotAllowed too: "would fall outside your scope" is about this form
            add_service_error(form, exc, form.SERVICE_FIELDS)
        else:
            messages.success(request, _("Customer %(name)s created with the code %(code)s.")
                             % {"name": customer.name, "code": customer.code})  # fmt: skip
            return redirect("customer_detail", code=customer.code)
    return render(request, "web/customers/form.html", {
        "form": form, "creating": True, "similar": similar, "units": unit_choices(viewer=request.user),
    })  # fmt: skip


@require_http_methods(["GET", "POST"])
@writer
def customer_edit_view(request, code: str):
    customer = _customer(request, code)
    form = CustomerEditForm(request.POST or None, viewer=request.user, current=customer,
                            initial=CustomerEditForm.initial_for(customer))  # fmt: skip
    if request.method == "POST" and form.is_valid():
        data = form.service_fields()
        # Only what was edited: an untouched field is not re-checked, a concurrent edit of another not undone.
        changed = {name: data[name] for name in form.changed_data if name in data}
        try:
            customer_update(acting_user=request.user, customer=customer, **changed)
        except ServiceError as exc:  # NotAllowed too: "would fall outside your scope" is about this form
            add_service_error(form, exc, form.SERVICE_FIELDS)
        else:
            messages.success(request, _("Customer %(name)s saved.") % {"name": customer.name})
            return redirect("customer_detail", code=customer.code)
    return render(request, "web/customers/form.html", {
        "form": form, "creating": False, "customer": customer, "units": unit_choices(viewer=request.user),
    })  # fmt: skip


# ---------------------------------------------------------------- phones and the ID number (profile tab)


@require_POST
@writer
def customer_phone_add(request, code: str):
    customer = _customer(request, code)
    form = PhoneAddForm(request.POST)
    if form.is_valid():
        try:
            phone_add(acting_user=request.user, customer=customer, number=form.cleaned_data["number"],
                      label=form.cleaned_data["label"].strip())  # fmt: skip
        except NotAllowed:
            raise
        except ServiceError as exc:
            _show_error(request, form, exc, form.SERVICE_FIELDS)
        else:
            messages.success(request, _("Phone added."))
            return redirect("customer_detail", code=customer.code)
    return _render_tab(request, customer, "profile", phone_form=form, status=400)


@require_POST
@writer
def customer_phone_remove(request, code: str, pk: int):
    customer = _customer(request, code)
    phone = _child(CustomerPhone, request, customer, pk)
    contact = phone.contact
    try:
        phone_remove(acting_user=request.user, phone=phone)
    except NotAllowed:
        raise
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Phone removed."))
    if contact is not None:
        return redirect("contact_edit", code=customer.code, pk=contact.pk)
    return redirect("customer_detail", code=customer.code)


@require_POST
@writer
def customer_id_number(request, code: str):
    customer = _customer(request, code)
    form = IdNumberForm(request.POST)
    if form.is_valid():
        try:
            customer_set_id_number(acting_user=request.user, customer=customer,
                                   id_number=form.cleaned_data["id_number"])  # fmt: skip
        except NotAllowed:
            raise
        except ServiceError as exc:
            _show_error(request, form, exc)
        else:
            messages.success(request, _("ID card number saved."))
            return redirect("customer_detail", code=customer.code)
    return _render_tab(request, customer, "profile", id_form=form, status=400)


# ---------------------------------------------------------------- contacts


def _tab_url(customer: Customer, tab: str) -> str:
    return reverse("customer_tab", kwargs={"code": customer.code, "tab": tab})


@require_http_methods(["GET", "POST"])
@writer
def contact_add(request, code: str):
    customer = _customer(request, code)
    form = ContactCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        phone = data.pop("phone").strip()
        try:
            # The contact and its phone stand or fall together.
            contact = _contact_with_phone(request.user, customer, data, phone)
        except NotAllowed:
            raise
        except ServiceError as exc:
            _show_error(request, form, exc)
        else:
            messages.success(request, _("Contact %(name)s added.") % {"name": contact.name})
            return redirect(_tab_url(customer, "contacts"))
    return render(request, "web/customers/contact_form.html", {"form": form, "customer": customer})


def _contact_with_phone(user, customer, data: dict, phone: str):
    from django.db import transaction

    with transaction.atomic():
        contact = contact_create(acting_user=user, customer=customer, **data)
        if phone:
            phone_add(acting_user=user, customer=customer, number=phone, contact=contact)
    return contact


@require_http_methods(["GET", "POST"])
@writer
def contact_edit(request, code: str, pk: int):
    customer = _customer(request, code)
    contact = _child(Contact, request, customer, pk)
    form = ContactForm(request.POST or None, initial=ContactForm.initial_for(contact))
    phone_form = PhoneAddForm(prefix="phone")
    if request.method == "POST" and form.is_valid():
        changed = {name: form.cleaned_data[name] for name in form.changed_data}
        try:
            contact_update(acting_user=request.user, contact=contact, **changed)
        except NotAllowed:
            raise
        except ServiceError as exc:
            _show_error(request, form, exc)
        else:
            messages.success(request, _("Contact %(name)s saved.") % {"name": contact.name})
            return redirect(_tab_url(customer, "contacts"))
    return _render_contact_edit(request, customer, contact, form, phone_form)


def _render_contact_edit(request, customer, contact, form, phone_form, status: int = 200):
    personal = customer_personal_data(viewer=request.user, customer=customer)
    phones = [p for p in personal["phones"] if p["contact"] == contact.pk]
    return render(request, "web/customers/contact_form.html", {
        "form": form, "customer": customer, "contact": contact, "phones": phones, "phone_form": phone_form,
    }, status=status)  # fmt: skip


@require_POST
@writer
def contact_phone_add(request, code: str, pk: int):
    customer = _customer(request, code)
    contact = _child(Contact, request, customer, pk)
    phone_form = PhoneAddForm(request.POST, prefix="phone")
    if phone_form.is_valid():
        try:
            phone_add(acting_user=request.user, customer=customer, number=phone_form.cleaned_data["number"],
                      label=phone_form.cleaned_data["label"].strip(), contact=contact)  # fmt: skip
        except NotAllowed:
            raise
        except ServiceError as exc:
            _show_error(request, phone_form, exc, phone_form.SERVICE_FIELDS)
        else:
            messages.success(request, _("Phone added."))
            return redirect("contact_edit", code=customer.code, pk=contact.pk)
    form = ContactForm(initial=ContactForm.initial_for(contact))
    return _render_contact_edit(request, customer, contact, form, phone_form, status=400)


@require_POST
@writer
def contact_delete_view(request, code: str, pk: int):
    customer = _customer(request, code)
    contact = _child(Contact, request, customer, pk)
    name = contact.name
    try:
        contact_delete(acting_user=request.user, contact=contact)
    except NotAllowed:
        raise
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Contact %(name)s removed.") % {"name": name})
    return redirect(_tab_url(customer, "contacts"))


# ---------------------------------------------------------------- agreements


@require_http_methods(["GET", "POST"])
@writer
def agreement_add_view(request, code: str):
    customer = _customer(request, code)
    form = AgreementForm(request.POST or None, request.FILES or None, viewer=request.user)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data.get("attachment")
        try:
            agreement = agreement_add(acting_user=request.user, customer=customer, attachment=upload or None,
                                      **form.service_fields())  # fmt: skip
        except NotAllowed:
            raise
        except ServiceError as exc:
            _show_error(request, form, exc)
        else:
            messages.success(request, _("Agreement %(n)s added.") % {"n": agreement.number})
            return redirect(_tab_url(customer, "agreements"))
    return render(request, "web/customers/agreement_form.html", {
        "form": form, "customer": customer, "units": unit_choices(viewer=request.user),
        "agreement_types": AGREEMENT_TYPES,
    })  # fmt: skip


@require_http_methods(["GET", "POST"])
@writer
def agreement_edit_view(request, code: str, pk: int):
    customer = _customer(request, code)
    agreement = _child(Agreement, request, customer, pk)
    form = AgreementForm(request.POST or None, request.FILES or None, viewer=request.user, editing=agreement,
                         initial=AgreementForm.initial_for(agreement))  # fmt: skip
    if request.method == "POST" and form.is_valid():
        data = form.service_fields()
        changed = {name: data[name] for name in form.changed_data if name in data}
        try:
            agreement_update(acting_user=request.user, agreement=agreement,
                             attachment=form.cleaned_data.get("attachment") or None,
                             remove_attachment=bool(form.cleaned_data.get("remove_attachment")), **changed)  # fmt: skip
        except NotAllowed:
            raise
        except ServiceError as exc:
            _show_error(request, form, exc)
        else:
            messages.success(request, _("Agreement %(n)s saved.") % {"n": agreement.number})
            return redirect(_tab_url(customer, "agreements"))
    return render(request, "web/customers/agreement_form.html", {
        "form": form, "customer": customer, "agreement": agreement, "units": unit_choices(viewer=request.user),
        "agreement_types": AGREEMENT_TYPES,
    })  # fmt: skip


@require_POST
@writer
def agreement_delete_view(request, code: str, pk: int):
    customer = _customer(request, code)
    agreement = _child(Agreement, request, customer, pk)
    number = agreement.number
    try:
        agreement_delete(acting_user=request.user, agreement=agreement)
    except NotAllowed:
        raise
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Agreement %(n)s removed.") % {"n": number})
    return redirect(_tab_url(customer, "agreements"))


@require_GET
@reader
def agreement_attachment(request, code: str, pk: int):
    customer = _customer(request, code)
    agreement = _child(Agreement, request, customer, pk)
    if not agreement.attachment:
        raise Http404("No attachment.")
    ext = os.path.splitext(agreement.attachment.name)[1].lower().lstrip(".")
    content_type = ATTACHMENT_TYPES.get(ext, ("application/octet-stream",))[0]
    safe_number = "".join(c if c.isalnum() or c in "-_" else "_" for c in agreement.number)
    return private_file_response(agreement.attachment, content_type=content_type, as_attachment=True,
                         filename=f"{customer.code}-{safe_number}.{ext}")  # fmt: skip


# ---------------------------------------------------------------- photos


@require_POST
@writer
def photo_add_view(request, code: str):
    customer = _customer(request, code)
    form = PhotoForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            photo_add(acting_user=request.user, customer=customer, image=form.cleaned_data["image"],
                      caption=form.cleaned_data["caption"])  # fmt: skip
        except NotAllowed:
            raise
        except ServiceError as exc:
            _show_error(request, form, exc)
        else:
            messages.success(request, _("Photo added."))
            return redirect(_tab_url(customer, "photos"))
    return _render_tab(request, customer, "photos", photo_form=form, status=400)


@require_GET
@reader
def photo_file(request, code: str, pk: int):
    customer = _customer(request, code)
    photo = _child(CustomerPhoto, request, customer, pk)
    ext = os.path.splitext(photo.image.name)[1].lower().lstrip(".")
    types = {e: t for e, t in PHOTO_FORMATS.values()}
    content_type = types.get(ext) or mimetypes.guess_type(photo.image.name)[0] or "application/octet-stream"
    if not content_type.startswith("image/") or content_type == "image/svg+xml":
        content_type = "application/octet-stream"
    return private_file_response(photo.image, content_type=content_type, as_attachment=False,
                         filename=f"{customer.code}-{photo.pk}.{ext}")  # fmt: skip


@require_POST
@writer
def photo_delete_view(request, code: str, pk: int):
    customer = _customer(request, code)
    photo = _child(CustomerPhoto, request, customer, pk)
    try:
        photo_delete(acting_user=request.user, photo=photo)
    except NotAllowed:
        raise
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Photo removed."))
    return redirect(_tab_url(customer, "photos"))


# ---------------------------------------------------------------- merging


@require_http_methods(["GET", "POST"])
@writer
def customer_merge_view(request, code: str):
    """Merge this customer into another one (the one kept): choose it, see what moves, give a reason."""
    remove = _customer(request, code)
    data = request.POST if request.method == "POST" else (request.GET if "keep" in request.GET else None)
    choose = MergeChooseForm(data, viewer=request.user, remove=remove)
    context = {"remove": remove, "form": choose, "stage": "choose"}
    if data is not None and choose.is_valid():
        keep = choose.cleaned_data["keep"]
        confirm = MergeConfirmForm(request.POST if "reason" in request.POST else None, viewer=request.user,
                                   remove=remove, initial={"keep": keep.code})  # fmt: skip
        context.update(stage="confirm", form=confirm, keep=keep,
                       moving=customer_counts(viewer=request.user, customer=remove),
                       kept=customer_counts(viewer=request.user, customer=keep))  # fmt: skip
        if confirm.is_bound and confirm.is_valid():
            try:
                from kehu.customers.merge import customer_merge
            except ImportError:
                raise Http404("Merging is not available.") from None
            try:
                customer_merge(acting_user=request.user, keep=keep, remove=remove,
                               reason=confirm.cleaned_data["reason"].strip())  # fmt: skip
            except NotAllowed:
                raise
            except ServiceError as exc:
                _show_error(request, confirm, exc)
            else:
                messages.success(request, _("%(removed)s was merged into %(kept)s.")
                                 % {"removed": f"{remove.name} ({remove.code})", "kept": f"{keep.name} ({keep.code})"})  # fmt: skip
                return redirect("customer_detail", code=keep.code)
    return render(request, "web/customers/merge.html", context)
