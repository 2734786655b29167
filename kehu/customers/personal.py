"""Phones and ID card numbers of customers: validation, storage, masking and audited unmasking.

Reads return masked values (138****1234, 110***********001X). Only a role with
Capability.VIEW_PERSONAL_DATA may see a value in full, through ``personal_data_reveal``, and every
reveal is written to the audit trail.
"""

from __future__ import annotations

import re
from datetime import date

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from kehu.accounts.roles import Capability
from kehu.audit.services import audit_record
from kehu.core.crypto import blind_index, mask_id_card, mask_phone
from kehu.core.errors import NotAllowed, ServiceError, require
from kehu.customers.models import Contact, Customer, CustomerPhone

PHONE_PURPOSE = "phone"
ID_PURPOSE = "id_card"
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0\d{9,11}$")  # area code (3–4 digits with the 0) + 7–8 digits
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def normalise_phone(raw: str) -> str:
    """Digits only, without +86/0086; full-width digits (Chinese IME) accepted."""
    text = "".join(chr(ord(c) - 0xFEE0) if "０" <= c <= "９" else c for c in (raw or ""))
    digits = re.sub(r"[\s\-()（）+]", "", text)
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and _MOBILE.match(digits[len(prefix) :]):
            digits = digits[len(prefix) :]
    return digits


def phone_error(number: str) -> str | None:
    if not number.isdigit():
        return _("a phone number has only digits (and spaces, dashes or brackets)")
    if _MOBILE.match(number) or _LANDLINE.match(number):
        return None
    return _(
        "write a mobile number (11 digits starting with 1) or a landline with its area code (e.g. 0531-88886666)"
    )


def id_card_error(number: str) -> str | None:
    """Why an 18-character resident ID card number (GB 11643) is not valid, or None."""
    if len(number) != 18 or not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        return _("an ID card number has 17 digits and a final digit or X")
    try:
        date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return _("digits 7 to 14 are the date of birth, and %(d)s is no date") % {"d": number[6:14]}
    expected = "10X98765432"[sum(int(c) * w for c, w in zip(number[:17], _ID_WEIGHTS, strict=True)) % 11]
    if number[17] != expected:
        return _("the check character is wrong: it must be %(c)s") % {"c": expected}
    return None


def _visible(acting_user, customer: Customer) -> None:
    if not Customer.objects.visible_to(acting_user).filter(pk=customer.pk).exists():
        raise NotAllowed(_("The customer is outside your scope."))


def phone_add(*, acting_user, customer: Customer, number: str, label: str = "",
              contact: Contact | None = None) -> CustomerPhone:  # fmt: skip
    """Add a phone. The same number on another customer is refused (a collision), naming that customer
    only if the user may see it."""
    require(acting_user, Capability.MANAGE_CUSTOMERS, _("Your roles do not allow editing customers."))
    _visible(acting_user, customer)
    number = normalise_phone(number)
    error = phone_error(number)
    if error:
        raise ServiceError(_("Phone: %(e)s.") % {"e": error}, field="phone")
    if contact is not None and contact.customer_id != customer.pk:
        raise ServiceError(_("The contact belongs to another customer."), field="contact")
    index = blind_index(number, purpose=PHONE_PURPOSE)
    holder = CustomerPhone.objects.filter(number_index=index).select_related("customer").first()
    if holder is not None and holder.customer_id == customer.pk:
        raise ServiceError(_("This customer has that number already."), field="phone", code="duplicate")
    if holder is not None:
        if Customer.objects.visible_to(acting_user).filter(pk=holder.customer_id).exists():
            raise ServiceError(
                _("This number belongs to %(name)s (%(code)s), already in the archive.")
                % {"name": holder.customer.name, "code": holder.customer.code},
                field="phone", code="duplicate",
            )  # fmt: skip
        raise ServiceError(_("This number is already registered by another unit."), field="phone",
                           code="duplicate")  # fmt: skip
    try:
        with transaction.atomic():
            phone = CustomerPhone.objects.create(customer=customer, contact=contact, label=label, number=number,
                                                 number_index=index)  # fmt: skip
            audit_record(actor=acting_user, action="customer.phone_add", obj=customer,
                         extra={"phone": mask_phone(number), "label": label,
                                "contact": contact.pk if contact else None})  # fmt: skip
    except IntegrityError:
        # Registered by someone else a moment ago: the unique blind index settles it, same answer as above.
        raise ServiceError(_("This number is already registered by another unit."), field="phone",
                           code="duplicate") from None  # fmt: skip
    return phone


def phone_remove(*, acting_user, phone: CustomerPhone) -> None:
    require(acting_user, Capability.MANAGE_CUSTOMERS, _("Your roles do not allow editing customers."))
    _visible(acting_user, phone.customer)
    with transaction.atomic():
        masked = mask_phone(phone.number)
        phone.delete()
        audit_record(actor=acting_user, action="customer.phone_remove", obj=phone.customer,
                     extra={"phone": masked})  # fmt: skip


def customer_set_id_number(*, acting_user, customer: Customer, id_number: str) -> Customer:
    require(acting_user, Capability.MANAGE_CUSTOMERS, _("Your roles do not allow editing customers."))
    _visible(acting_user, customer)
    id_number = (id_number or "").strip().upper()
    if id_number:
        error = id_card_error(id_number)
        if error:
            raise ServiceError(_("ID card number: %(e)s.") % {"e": error}, field="id_number")
    with transaction.atomic():
        customer.id_number = id_number
        customer.id_number_index = blind_index(id_number, purpose=ID_PURPOSE) if id_number else ""
        customer.save(update_fields=["id_number", "id_number_index"])
        audit_record(actor=acting_user, action="customer.id_number_set", obj=customer,
                     extra={"id_number": mask_id_card(id_number) if id_number else ""})  # fmt: skip
    return customer


def customer_personal_data(*, viewer, customer: Customer) -> dict:
    """What a page, an export or the API shows: everything masked."""
    _visible(viewer, customer)
    return {
        "phones": [
            {"id": p.pk, "label": p.label, "number": mask_phone(p.number), "contact": p.contact_id}
            for p in customer.phones.order_by("pk")
        ],
        "id_number": mask_id_card(customer.id_number) if customer.id_number else "",
    }


def personal_data_reveal(*, acting_user, customer: Customer, reason: str = "") -> dict:
    """The same data unmasked, for a role that may see it; every reveal is audited."""
    require(
        acting_user, Capability.VIEW_PERSONAL_DATA, _("Your roles do not allow seeing personal data in full.")
    )
    _visible(acting_user, customer)
    data = {
        "phones": [
            {"id": p.pk, "label": p.label, "number": p.number, "contact": p.contact_id}
            for p in customer.phones.order_by("pk")
        ],  # fmt: skip
        "id_number": customer.id_number,
    }
    with transaction.atomic():
        audit_record(actor=acting_user, action="personal_data.reveal", obj=customer,
                     extra={"phones": len(data["phones"]), "id_number": bool(data["id_number"]),
                            "reason": reason})  # fmt: skip
    return data


def customers_by_phone(*, viewer, number: str):
    """Exact search by phone through the blind index, within the viewer's scope."""
    index = blind_index(normalise_phone(number), purpose=PHONE_PURPOSE)
    return Customer.objects.visible_to(viewer).filter(phones__number_index=index).distinct()


def customers_by_id_number(*, viewer, id_number: str):
    index = blind_index((id_number or "").strip().upper(), purpose=ID_PURPOSE)
    return Customer.objects.visible_to(viewer).filter(id_number_index=index)
