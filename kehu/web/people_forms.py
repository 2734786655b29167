"""Forms of the people pages. They parse input only; the rules are in kehu.accounts.services."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from kehu.accounts.models import Language, User
from kehu.accounts.passwords import generate_password
from kehu.accounts.roles import ADMIN_ROLES, DEFAULT_SCOPE, ManagerGrade, Role
from kehu.accounts.selectors import STATUS_ACTIVE, STATUS_INACTIVE, STATUS_LOCKED, visible_unit_by_code
from kehu.core.scoping import DataScope


def _role_choices(blank: str | None = None):
    choices = [(value, label) for value, label in Role.choices]
    return ([("", blank)] if blank is not None else []) + choices


STATUS_CHOICES = [
    ("", _("Any status")),
    (STATUS_ACTIVE, _("Active")),
    (STATUS_INACTIVE, _("Inactive")),
    (STATUS_LOCKED, _("Locked")),
]


class PeopleFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=100,
                        widget=forms.TextInput(attrs={"placeholder": _("username, name or phone"),
                                                      "type": "search"}))  # fmt: skip
    unit = forms.CharField(label=_("Unit (with the units below it)"), required=False, max_length=32,
                           widget=forms.TextInput(attrs={"list": "unit-codes", "placeholder": _("unit code")}))  # fmt: skip
    role = forms.ChoiceField(label=_("Role"), required=False, choices=_role_choices(_("Any role")))
    status = forms.ChoiceField(label=_("Status"), required=False, choices=STATUS_CHOICES)

    def filters(self) -> dict:
        """The valid filters (invalid ones are dropped, so a bad link still shows a list)."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {k: data.get(k, "") for k in ("q", "unit", "role", "status") if k not in self.errors}


class _PersonFieldsForm(forms.Form):
    full_name = forms.CharField(label=_("Full name"), max_length=100)
    # A unit is typed as its code (with a datalist) and resolved against the units the acting user sees.
    unit = forms.CharField(label=_("Unit code"), required=False, max_length=32,
                         widget=forms.TextInput(attrs={"list": "unit-codes", "autocomplete": "off"}))  # fmt: skip
    position = forms.CharField(label=_("Position"), required=False, max_length=100)
    manager_grade = forms.ChoiceField(
        label=_("Customer manager grade"), required=False,
        choices=[("", _("(none)"))] + list(ManagerGrade.choices),
    )  # fmt: skip
    phone = forms.CharField(label=_("Phone"), required=False, max_length=32)
    email = forms.EmailField(label=_("E-mail"), required=False)
    language = forms.ChoiceField(label=_("Language"), choices=Language.choices, initial=Language.ZH_HANS)

    def __init__(self, *args, viewer, **kwargs):
        super().__init__(*args, **kwargs)
        self.viewer = viewer

    def clean_unit(self):
        code = (self.cleaned_data.get("unit") or "").strip()
        if not code:
            return None
        unit = visible_unit_by_code(viewer=self.viewer, code=code)
        if unit is None:
            raise ValidationError(_("There is no unit with the code “%(code)s”."), params={"code": code})
        return unit


class PasswordChoiceMixin(forms.Form):
    generate = forms.BooleanField(
        label=_("Generate a temporary password"), required=False, initial=True,
        help_text=_("12 characters; shown once after saving."),
    )  # fmt: skip
    password = forms.CharField(
        label=_("Temporary password"), required=False, strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Only when not generating. The person must change it at first sign-in."),
    )  # fmt: skip

    def clean(self):
        data = super().clean()
        if not data.get("generate") and not data.get("password"):
            self.add_error("password", _("Enter a temporary password or tick “Generate”."))
        return data

    def chosen_password(self, username: str) -> tuple[str, bool]:
        """(password, generated?). A typed password is checked by the service, not here."""
        if self.cleaned_data.get("generate"):
            return generate_password(User(username=username)), True
        return self.cleaned_data["password"], False


class PersonCreateForm(_PersonFieldsForm, PasswordChoiceMixin):
    username = forms.CharField(label=_("Username"), max_length=64,
                               widget=forms.TextInput(attrs={"autocomplete": "off"}))  # fmt: skip
    role = forms.ChoiceField(label=_("First role"), required=False, choices=_role_choices(_("(none yet)")))
    scope = forms.ChoiceField(label=_("Data scope"), required=False,
                              choices=[("", _("the role's default"))] + list(DataScope.choices))  # fmt: skip

    field_order = ["username", "full_name", "unit", "position", "manager_grade", "phone", "email",
                   "language", "role", "scope", "generate", "password"]  # fmt: skip


class PersonEditForm(_PersonFieldsForm):
    @classmethod
    def initial_for(cls, user) -> dict:
        return {
            "full_name": user.full_name, "unit": user.unit.code if user.unit else "",
            "position": user.position, "manager_grade": user.manager_grade, "phone": user.phone,
            "email": user.email, "language": user.language,
        }  # fmt: skip


class PasswordResetForm(PasswordChoiceMixin):
    pass


class SetActiveForm(forms.Form):
    active = forms.TypedChoiceField(choices=[("1", "1"), ("0", "0")], coerce=lambda v: v == "1")
    reason = forms.CharField(label=_("Reason"), required=False, max_length=500)

    def clean(self):
        data = super().clean()
        if data.get("active") is False and not (data.get("reason") or "").strip():
            self.add_error("reason", _("Give a reason for deactivating the account."))
        return data


class RoleGrantForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=_role_choices())
    scope = forms.ChoiceField(label=_("Data scope"), required=False,
                              choices=[("", _("the role's default"))] + list(DataScope.choices))  # fmt: skip


class RoleRevokeForm(forms.Form):
    role = forms.ChoiceField(choices=_role_choices())


def role_defaults() -> list[dict]:
    """For the role pickers: each role's default scope, and whether it is an administrator role."""
    return [
        {"role": value, "label": label, "default_scope": DEFAULT_SCOPE.get(value) or "",
         "admin": value in ADMIN_ROLES}
        for value, label in Role.choices
    ]  # fmt: skip
