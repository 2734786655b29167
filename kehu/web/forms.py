"""Web forms: they parse and check the shape of input only. Rules live in the services they feed."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import password_validation
from django.utils.translation import gettext_lazy as _

from kehu.core.errors import ServiceError
from kehu.org.models import UnitType


def add_service_error(form: forms.Form, exc: ServiceError, field_map: dict[str, str] | None = None) -> None:
    """Show a service's error next to the field it names, or above the form when it names none we show."""
    field = (field_map or {}).get(exc.field or "", exc.field)
    form.add_error(field if field in form.fields else None, exc.message)


class LoginForm(forms.Form):
    username = forms.CharField(
        label=_("Username"),
        max_length=64,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "username",
                "autocapitalize": "none",
                "spellcheck": "false",
                "autofocus": True,
            }
        ),
    )
    password = forms.CharField(
        label=_("Password"),
        max_length=256,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class LanguageForm(forms.Form):
    language = forms.ChoiceField(choices=settings.LANGUAGES)
    next = forms.CharField(required=False, max_length=2000)


class PasswordChangeForm(forms.Form):
    old_password = forms.CharField(
        label=_("Current password"),
        strip=False,
        max_length=256,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )
    new_password = forms.CharField(
        label=_("New password"),
        strip=False,
        max_length=256,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    new_password_confirm = forms.CharField(
        label=_("New password again"),
        strip=False,
        max_length=256,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    # The service names the new password "password" when a validator refuses it.
    SERVICE_FIELDS = {"password": "new_password"}

    def clean(self):
        data = super().clean()
        new, again = data.get("new_password"), data.get("new_password_confirm")
        if new and again and new != again:
            self.add_error("new_password_confirm", _("The two new passwords differ."))
        return data

    @staticmethod
    def rules() -> list[str]:
        return password_validation.password_validators_help_texts()


class UnitFieldsForm(forms.Form):
    code = forms.CharField(label=_("Code"), max_length=32)
    name = forms.CharField(label=_("Name"), max_length=100)
    unit_type = forms.ModelChoiceField(label=_("Type"), queryset=UnitType.objects.none(), empty_label=None)
    division_code = forms.CharField(
        label=_("Division code"),
        max_length=6,
        help_text=_("6-digit GB/T 2260 administrative division code, e.g. 370102"),
        widget=forms.TextInput(attrs={"inputmode": "numeric", "pattern": "[0-9]{6}"}),
    )

    SERVICE_FIELDS = {"parent": None}

    def __init__(self, *args, parent=None, **kwargs):
        """``parent``: for a new sub-unit, suggests its division code and the next level's type."""
        super().__init__(*args, **kwargs)
        # Unit types are deployment configuration, the same for everyone; not scoped data.
        types = UnitType.objects.order_by("rank", "code")
        self.fields["unit_type"].queryset = types
        if parent is not None and not self.is_bound:
            self.initial.setdefault("division_code", parent.division_code)
            below = types.filter(rank__gt=parent.unit_type.rank).first()
            if below is not None:
                self.initial.setdefault("unit_type", below.pk)


class UnitMoveForm(forms.Form):
    new_parent_code = forms.CharField(
        label=_("Code of the new parent unit"),
        max_length=32,
        required=False,
        widget=forms.TextInput(attrs={"autocapitalize": "none", "spellcheck": "false"}),
    )
    to_top = forms.BooleanField(label=_("Make it a top-level unit (no parent)"), required=False)

    SERVICE_FIELDS = {"parent": "new_parent_code"}

    def __init__(self, *args, units=None, **kwargs):
        """``units``: the units the acting user may see; the new parent is looked up among them."""
        super().__init__(*args, **kwargs)
        self.units = units

    def clean(self):
        data = super().clean()
        code = (data.get("new_parent_code") or "").strip()
        if data.get("to_top"):
            if code:
                self.add_error(
                    "new_parent_code", _("Either give a parent code or choose top level, not both.")
                )
            data["new_parent"] = None
            return data
        if not code:
            self.add_error("new_parent_code", _("Give the code of the new parent unit."))
            return data
        parent = self.units.filter(code=code).first() if self.units is not None else None
        if parent is None:
            self.add_error(
                "new_parent_code", _("There is no unit with the code “%(code)s”.") % {"code": code}
            )
        data["new_parent"] = parent
        return data


class UnitSearchForm(forms.Form):
    q = forms.CharField(
        label=_("Search units"),
        required=False,
        max_length=100,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": _("Name, code or division code"), "autocomplete": "off"}
        ),
    )


class UnitImportForm(forms.Form):
    file = forms.FileField(
        label=_("File"),
        help_text=_(
            "CSV (UTF-8 or GBK) or XLSX with the columns code, name, type, parent_code, division_code."
        ),
    )
    create_types = forms.BooleanField(label=_("Create unit types that do not exist yet"), required=False)
    dry_run = forms.BooleanField(label=_("Only check the file, change nothing"), required=False)

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith((".csv", ".xlsx")):
            raise forms.ValidationError(_("Upload a .csv or .xlsx file."))
        return upload
