"""Forms of the customer pages. They parse input only; the rules are in kehu.customers.services."""

from __future__ import annotations

import re
from datetime import date

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from kehu.accounts.selectors import visible_unit_by_code
from kehu.customers.models import (
    AgreementStatus,
    CustomerKind,
    CustomerStatus,
    CustomerSubType,
    DecisionRole,
    PaymentProfile,
    SigningLevel,
)
from kehu.customers.selectors import CustomerFilters, assignable_managers, visible_customer_by_code

TAG_SPLIT = re.compile(r"[,，;；、\s]+")
PHONE_SPLIT = re.compile(r"[,，;；、/\n]+")
SORTS = [
    ("code", _("Code")),
    ("-code", _("Code, descending")),
    ("name", _("Name")),
    ("-name", _("Name, descending")),
    ("-updated", _("Recently updated")),
    ("updated", _("Least recently updated")),
]


def _blank(label):
    return [("", label)]


class UnitCodeField(forms.CharField):
    """A unit typed as its code (with a datalist of visible units), resolved within the viewer's scope."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 32)
        kwargs.setdefault(
            "widget",
            forms.TextInput(
                attrs={"list": "unit-codes", "autocomplete": "off", "placeholder": _("unit code")}
            ),
        )
        super().__init__(*args, **kwargs)


def _resolve_unit(viewer, code: str):
    code = (code or "").strip()
    if not code:
        return None
    unit = visible_unit_by_code(viewer=viewer, code=code)
    if unit is None:
        raise ValidationError(_("There is no unit with the code “%(code)s”."), params={"code": code})
    return unit


class ManagerChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        unit = f" · {obj.unit.name}" if obj.unit_id else ""
        return f"{obj.full_name or obj.username} ({obj.username}){unit}"


class SubTypeChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.name} ({obj.get_kind_display()})" if obj.kind else obj.name


# ---------------------------------------------------------------- the list


class CustomerFilterForm(forms.Form):
    q = forms.CharField(
        label=_("Search"), required=False, max_length=100,
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off", "enterkeyhint": "search",
                                      "placeholder": _("name, pinyin, initials, code, phone or credit code")}),
    )  # fmt: skip
    unit = UnitCodeField(label=_("Unit (with the units below it)"), required=False)
    kind = forms.ChoiceField(
        label=_("Kind"), required=False, choices=_blank(_("Any kind")) + CustomerKind.choices
    )
    sub_type = SubTypeChoiceField(label=_("Sub-type"), required=False, queryset=CustomerSubType.objects.all(),
                                  empty_label=_("Any sub-type"), to_field_name="code")  # fmt: skip
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=_blank(_("Any status")) + CustomerStatus.choices
    )
    manager = ManagerChoiceField(label=_("Manager (lead or backup)"), required=False, queryset=None,
                                 empty_label=_("Any manager"), to_field_name="username")  # fmt: skip
    tag = forms.CharField(label=_("Tag"), required=False, max_length=50)
    order = forms.ChoiceField(label=_("Sort by"), required=False, choices=SORTS)

    def __init__(self, *args, viewer, **kwargs):
        super().__init__(*args, **kwargs)
        self.viewer = viewer
        self.fields["manager"].queryset = assignable_managers(viewer=viewer)

    def clean_unit(self):
        return _resolve_unit(self.viewer, self.cleaned_data.get("unit"))

    def filters(self) -> CustomerFilters:
        """The valid filters (a bad value is dropped and shown beside its field, so a bad link still lists)."""
        self.is_valid()
        data = {k: v for k, v in getattr(self, "cleaned_data", {}).items() if k not in self.errors}
        return CustomerFilters(
            q=(data.get("q") or "").strip(), within=data.get("unit"), kind=data.get("kind") or "",
            sub_type=data.get("sub_type"), status=data.get("status") or "", manager=data.get("manager"),
            tag=(data.get("tag") or "").strip(), order=data.get("order") or "code",
        )  # fmt: skip

    def is_filtered(self) -> bool:
        return any((self.data.get(k) or "").strip() for k in self.fields if k != "order")


# ---------------------------------------------------------------- a customer's profile


class CustomerFieldsForm(forms.Form):
    """The profile fields, shared by the create and edit pages."""

    name = forms.CharField(label=_("Name"), max_length=200)
    short_name = forms.CharField(label=_("Short name"), max_length=100, required=False)
    kind = forms.ChoiceField(label=_("Kind"), choices=CustomerKind.choices)
    sub_type = SubTypeChoiceField(label=_("Sub-type"), required=False, queryset=CustomerSubType.objects.all(),
                                  empty_label=_("(none)"))  # fmt: skip
    status = forms.ChoiceField(
        label=_("Status"), choices=CustomerStatus.choices, initial=CustomerStatus.PROSPECT
    )
    owning_unit = UnitCodeField(label=_("Owning unit"))
    division_code = forms.CharField(
        label=_("Division code"), max_length=6, required=False,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "pattern": "[0-9]*", "autocomplete": "off"}),
        help_text=_("GB/T 2260, 6 digits, where the customer is; empty: the owning unit's."),
    )  # fmt: skip
    credit_code = forms.CharField(
        label=_("Unified social credit code"), max_length=24, required=False,
        widget=forms.TextInput(attrs={"autocapitalize": "characters", "autocomplete": "off", "spellcheck": "false"}),
        help_text=_("18 characters, for organisations."),
    )  # fmt: skip
    legal_representative = forms.CharField(
        label=_("Legal representative or owner"), max_length=100, required=False
    )
    address = forms.CharField(label=_("Address"), max_length=300, required=False)
    latitude = forms.DecimalField(label=_("Latitude"), required=False, max_digits=9, decimal_places=6,
                                  min_value=-90, max_value=90)  # fmt: skip
    longitude = forms.DecimalField(label=_("Longitude"), required=False, max_digits=9, decimal_places=6,
                                   min_value=-180, max_value=180)  # fmt: skip
    payment_profile = forms.ChoiceField(label=_("Payment"), required=False,
                                        choices=_blank(_("(not known)")) + PaymentProfile.choices)  # fmt: skip
    business_scope = forms.CharField(label=_("Business scope"), required=False,
                                     widget=forms.Textarea(attrs={"rows": 2}))  # fmt: skip
    floor_area = forms.DecimalField(label=_("Floor area (m²)"), required=False, max_digits=10, decimal_places=2,
                                    min_value=0)  # fmt: skip
    lead_manager = ManagerChoiceField(label=_("Lead manager (A)"), required=False, queryset=None,
                                      empty_label=_("(none)"))  # fmt: skip
    backup_manager = ManagerChoiceField(label=_("Backup manager (B)"), required=False, queryset=None,
                                        empty_label=_("(none)"))  # fmt: skip
    tags = forms.CharField(label=_("Tags"), max_length=300, required=False,
                           help_text=_("Separate tags with commas or spaces."))  # fmt: skip
    notes = forms.CharField(label=_("Notes"), required=False, widget=forms.Textarea(attrs={"rows": 3}))

    # Service field names → form field names, where they differ.
    SERVICE_FIELDS = {"phone": "phones"}
    field_order = [
        "duplicate_reason", "name", "short_name", "kind", "sub_type", "phones", "owning_unit", "status",
        "credit_code", "legal_representative", "address", "division_code", "latitude", "longitude",
        "payment_profile", "business_scope", "floor_area", "lead_manager", "backup_manager", "tags", "notes",
        "parent", "code",
    ]  # fmt: skip

    def __init__(self, *args, viewer, current=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.viewer = viewer
        managers = assignable_managers(viewer=viewer)
        if current is not None:
            # The managers already named stay choosable even if the editor could not assign them.
            from kehu.accounts.models import User

            keep = [pk for pk in (current.lead_manager_id, current.backup_manager_id) if pk]
            managers = User.objects.filter(
                pk__in=list(managers.values_list("pk", flat=True)) + keep
            ).select_related("unit")
        for name in ("lead_manager", "backup_manager"):
            self.fields[name].queryset = managers

    def clean_owning_unit(self):
        return _resolve_unit(self.viewer, self.cleaned_data.get("owning_unit"))

    def clean_credit_code(self):
        return (self.cleaned_data.get("credit_code") or "").strip()

    def clean_tags(self):
        return list(dict.fromkeys(t for t in TAG_SPLIT.split(self.cleaned_data.get("tags") or "") if t))

    def clean_division_code(self):
        return (self.cleaned_data.get("division_code") or "").strip()

    def clean(self):
        data = super().clean()
        if not data.get("division_code") and data.get("owning_unit") is not None:
            data["division_code"] = data["owning_unit"].division_code
        return data

    def service_fields(self) -> dict:
        data = dict(self.cleaned_data)
        for name in (
            "short_name",
            "legal_representative",
            "address",
            "business_scope",
            "notes",
            "payment_profile",
        ):
            data[name] = data.get(name) or ""
        return data

    @staticmethod
    def initial_for(customer) -> dict:
        return {
            "name": customer.name, "short_name": customer.short_name, "kind": customer.kind,
            "sub_type": customer.sub_type_id, "status": customer.status, "owning_unit": customer.owning_unit.code,
            "division_code": customer.division_code, "credit_code": customer.credit_code,
            "legal_representative": customer.legal_representative, "address": customer.address,
            "latitude": customer.latitude, "longitude": customer.longitude,
            "payment_profile": customer.payment_profile, "business_scope": customer.business_scope,
            "floor_area": customer.floor_area, "lead_manager": customer.lead_manager_id,
            "backup_manager": customer.backup_manager_id, "tags": ", ".join(customer.tags or []),
            "notes": customer.notes,
        }  # fmt: skip


class CustomerCreateForm(CustomerFieldsForm):
    phones = forms.CharField(
        label=_("Phones"), required=False, max_length=300,
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off", "inputmode": "tel"}),
        help_text=_("Mobile or landline with area code; several separated by commas."),
    )  # fmt: skip
    parent = forms.CharField(
        label=_("Head office (for a branch)"), required=False, max_length=14,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off", "placeholder": _("customer code")}),
        help_text=_("The 14-digit code of the head office; the branch gets the next branch number."),
    )  # fmt: skip
    code = forms.CharField(
        label=_("Customer code"), required=False, max_length=14,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
        help_text=_("Empty: the next free code is assigned. Give one only to keep an existing number."),
    )  # fmt: skip
    duplicate_reason = forms.CharField(
        label=_("Why this is another customer"), required=False, max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Needed only when customers with a similar name exist; recorded in the audit trail."),
    )  # fmt: skip

    SERVICE_FIELDS = {"phone": "phones", "parent": "parent", "similar_name": "duplicate_reason"}

    def clean_parent(self):
        code = (self.cleaned_data.get("parent") or "").strip()
        if not code:
            return None
        parent = visible_customer_by_code(viewer=self.viewer, code=code)
        if parent is None:
            raise ValidationError(_("There is no customer with the code “%(code)s”."), params={"code": code})
        return parent

    def clean_phones(self):
        return [p.strip() for p in PHONE_SPLIT.split(self.cleaned_data.get("phones") or "") if p.strip()]

    def service_fields(self) -> dict:
        data = super().service_fields()
        data["code"] = (data.get("code") or "").strip()
        data["duplicate_reason"] = (data.get("duplicate_reason") or "").strip()
        return data


class CustomerEditForm(CustomerFieldsForm):
    pass


class PhoneAddForm(forms.Form):
    number = forms.CharField(label=_("Phone"), max_length=40,
                             widget=forms.TextInput(attrs={"type": "tel", "inputmode": "tel", "autocomplete": "off"}))  # fmt: skip
    label = forms.CharField(label=_("Label"), max_length=32, required=False,
                            widget=forms.TextInput(attrs={"placeholder": _("e.g. mobile, office")}))  # fmt: skip
    SERVICE_FIELDS = {"phone": "number"}


class IdNumberForm(forms.Form):
    id_number = forms.CharField(
        label=_("ID card number"), max_length=18, required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"}),
        help_text=_("18 characters; empty removes it."),
    )  # fmt: skip


class RevealForm(forms.Form):
    reason = forms.CharField(label=_("Why you need the full values"), max_length=200, required=False)


# ---------------------------------------------------------------- contacts


def parse_important_dates(text: str) -> list[dict]:
    """One date a line: "2024-05-01 company anniversary" → [{"date": "2024-05-01", "label": "…"}]."""
    result = []
    for n, line in enumerate((text or "").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        when, _sep, label = line.partition(" ")
        try:
            date.fromisoformat(when)
        except ValueError:
            raise ValidationError(
                _("Line %(n)d: start with a date written as YYYY-MM-DD (“%(text)s”)."),
                params={"n": n, "text": when},
            ) from None
        result.append({"date": when, "label": label.strip()})
    return result


def format_important_dates(value) -> str:
    lines = []
    for item in value or []:
        if isinstance(item, dict):
            lines.append(f"{item.get('date', '')} {item.get('label', '')}".strip())
        else:
            lines.append(str(item))
    return "\n".join(lines)


class ContactForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    title = forms.CharField(label=_("Title"), max_length=100, required=False)
    decision_role = forms.ChoiceField(label=_("Role in decisions"), required=False,
                                      choices=_blank(_("(not known)")) + DecisionRole.choices)  # fmt: skip
    birthday = forms.DateField(
        label=_("Birthday"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    important_dates = forms.CharField(
        label=_("Important dates"), required=False, widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("One a line: the date (YYYY-MM-DD), a space, what it is."),
    )  # fmt: skip
    preferences = forms.CharField(
        label=_("Preferences"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    relations = forms.CharField(
        label=_("Relations"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    notes = forms.CharField(label=_("Notes"), required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def clean_important_dates(self):
        return parse_important_dates(self.cleaned_data.get("important_dates"))

    @staticmethod
    def initial_for(contact) -> dict:
        return {
            "name": contact.name, "title": contact.title, "decision_role": contact.decision_role,
            "birthday": contact.birthday, "important_dates": format_important_dates(contact.important_dates),
            "preferences": contact.preferences, "relations": contact.relations, "notes": contact.notes,
        }  # fmt: skip


class ContactCreateForm(ContactForm):
    phone = forms.CharField(label=_("Phone"), max_length=40, required=False,
                            widget=forms.TextInput(attrs={"type": "tel", "inputmode": "tel", "autocomplete": "off"}))  # fmt: skip


# ---------------------------------------------------------------- agreements and photos


AGREEMENT_TYPES = [("supply", _("Supply agreement")), ("framework", _("Framework agreement"))]


class AgreementForm(forms.Form):
    number = forms.CharField(label=_("Number"), max_length=64)
    agreement_type = forms.CharField(
        label=_("Type"), max_length=32, required=False, initial="supply",
        widget=forms.TextInput(attrs={"list": "agreement-types", "autocomplete": "off"}),
        help_text=_("supply, framework, or another word."),
    )  # fmt: skip
    signing_level = forms.ChoiceField(label=_("Signing level"), choices=SigningLevel.choices)
    signing_unit = UnitCodeField(label=_("Signing unit"), required=False)
    parties = forms.CharField(label=_("Parties"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    start_date = forms.DateField(label=_("Start date"), widget=forms.DateInput(attrs={"type": "date"}))
    end_date = forms.DateField(label=_("End date"), required=False, widget=forms.DateInput(attrs={"type": "date"}),
                               help_text=_("Empty: open-ended."))  # fmt: skip
    status = forms.ChoiceField(
        label=_("Status"), choices=AgreementStatus.choices, initial=AgreementStatus.ACTIVE
    )
    attachment = forms.FileField(
        label=_("Attachment"), required=False,
        help_text=_("PDF, OFD, Word, Excel or a photo of the signed pages; at most 20 MB."),
        widget=forms.ClearableFileInput(attrs={"accept": ".pdf,.ofd,.doc,.docx,.xls,.xlsx,image/*"}),
    )  # fmt: skip
    remove_attachment = forms.BooleanField(label=_("Remove the current attachment"), required=False)

    def __init__(self, *args, viewer, editing=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.viewer = viewer
        if editing is None or not editing.attachment:
            del self.fields["remove_attachment"]

    def clean_signing_unit(self):
        return _resolve_unit(self.viewer, self.cleaned_data.get("signing_unit"))

    def clean(self):
        data = super().clean()
        start, end = data.get("start_date"), data.get("end_date")
        if start and end and end < start:
            self.add_error("end_date", _("The agreement cannot end before it starts."))
        return data

    def service_fields(self) -> dict:
        data = {k: v for k, v in self.cleaned_data.items() if k not in ("attachment", "remove_attachment")}
        data["agreement_type"] = (data.get("agreement_type") or "").strip() or "supply"
        return data

    @staticmethod
    def initial_for(agreement) -> dict:
        return {
            "number": agreement.number, "agreement_type": agreement.agreement_type,
            "signing_level": agreement.signing_level,
            "signing_unit": agreement.signing_unit.code if agreement.signing_unit_id else "",
            "parties": agreement.parties, "start_date": agreement.start_date, "end_date": agreement.end_date,
            "status": agreement.status,
        }  # fmt: skip


class PhotoForm(forms.Form):
    # A plain FileField: the service opens the file with Pillow and says what is wrong with it.
    image = forms.FileField(
        label=_("Photo"),
        widget=forms.ClearableFileInput(attrs={"accept": "image/*", "capture": "environment"}),
        help_text=_("JPEG, PNG or WebP, at most 10 MB."),
    )  # fmt: skip
    caption = forms.CharField(label=_("Caption"), max_length=200, required=False)


# ---------------------------------------------------------------- merging


class MergeChooseForm(forms.Form):
    keep = forms.CharField(
        label=_("Code of the customer to keep"), max_length=14,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )  # fmt: skip

    def __init__(self, *args, viewer, remove, **kwargs):
        super().__init__(*args, **kwargs)
        self.viewer, self.remove = viewer, remove

    def clean_keep(self):
        code = (self.cleaned_data.get("keep") or "").strip()
        keep = visible_customer_by_code(viewer=self.viewer, code=code)
        if keep is None:
            raise ValidationError(_("There is no customer with the code “%(code)s”."), params={"code": code})
        if keep.pk == self.remove.pk:
            raise ValidationError(_("Choose another customer: a record cannot be merged into itself."))
        return keep


class MergeConfirmForm(MergeChooseForm):
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 2}),
                             help_text=_("Why these two records are one customer; recorded in the audit trail."))  # fmt: skip
