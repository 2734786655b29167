"""Request and response shapes of the customer archive's API (``kehu.api.routers.customers``).

Phones and ID card numbers leave the server masked (138****1234, 110***********001X) in every shape
here except ``PersonalDataOut``, which only ``POST /customers/{code}/reveal`` answers (audited, and only
for roles that may see personal data). Input shapes refuse unknown fields (422), so a misspelt field is
never silently ignored; references are by code or username, never by database id.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ninja import Field, Schema
from pydantic import ConfigDict

from kehu.api.schemas import FieldError, UnitRef

KINDS = "`institution` or `individual`"
STATUSES = "`prospect`, `registered`, `active`, `dormant` or `lost`"
PAYMENTS = "`fuel_card`, `bank_card`, `cash`, or empty"
DECISION_ROLES = "`decision_maker`, `influencer`, `user`, `payer`, or empty"
SIGNING_LEVELS = "`province`, `city`, `county` or `station`"
AGREEMENT_STATUSES = "`draft`, `active`, `ended` or `terminated`"


# ---------------------------------------------------------------- small references


class SubTypeRef(Schema):
    code: str
    name: str


class PersonRef(Schema):
    username: str
    full_name: str


class CustomerRef(Schema):
    code: str = Field(..., description="The 14-digit customer id.")
    name: str


class PhoneOut(Schema):
    id: int
    label: str
    number: str = Field(..., description="Masked (138****1234), except in the answer of `reveal`.")
    contact: int | None = Field(None, description="Id of the contact the number belongs to, if any.")


# ---------------------------------------------------------------- customers


class CustomerListItem(Schema):
    code: str = Field(..., description="The 14-digit customer id: division (6) + sequence (5) + branch (3).")
    name: str
    short_name: str
    kind: str = Field(..., description=KINDS)
    sub_type: SubTypeRef | None
    status: str = Field(..., description=STATUSES)
    owning_unit: UnitRef
    lead_manager: PersonRef | None = Field(None, description="The A manager.")
    backup_manager: PersonRef | None = Field(None, description="The B manager.")
    tags: list[str]
    updated_at: datetime


class ContactSummary(Schema):
    id: int
    name: str
    title: str
    decision_role: str = Field(..., description=DECISION_ROLES)


class AgreementSummary(Schema):
    id: int
    number: str
    agreement_type: str
    signing_level: str = Field(..., description=SIGNING_LEVELS)
    start_date: date
    end_date: date | None = Field(None, description="Empty: open-ended.")
    status: str = Field(..., description=AGREEMENT_STATUSES)


class CustomerOut(CustomerListItem):
    credit_code: str = Field(..., description="Unified social credit code (GB 32100-2015), or empty.")
    legal_representative: str
    id_number: str = Field(..., description="ID card number, always masked here (110***********001X).")
    address: str
    division_code: str = Field(..., description="GB/T 2260 administrative division code.")
    latitude: float | None
    longitude: float | None
    payment_profile: str = Field(..., description=PAYMENTS)
    business_scope: str
    floor_area: float | None = Field(None, description="Square metres.")
    parent_code: str | None = Field(None, description="The head office's code, for a branch.")
    notes: str
    phones: list[PhoneOut] = Field(..., description="Masked.")
    contacts: list[ContactSummary] = Field(..., description="By name; the first 100 (all at `/contacts`).")
    contacts_count: int
    agreements: list[AgreementSummary] = Field(
        ..., description="Newest start date first; the first 100 (all at `/agreements`)."
    )
    agreements_count: int
    created_at: datetime
    created_by: PersonRef
    updated_by: PersonRef


class PhoneIn(Schema):
    model_config = ConfigDict(extra="forbid")

    number: str = Field(
        ..., max_length=40, description="A mobile or landline number; spaces, dashes, +86 are accepted."
    )
    label: str = Field("", max_length=32, description="e.g. 办公室, 手机.")


class IdNumberIn(Schema):
    model_config = ConfigDict(extra="forbid")

    id_number: str = Field(
        ..., max_length=32, description="The 18-character ID card number (GB 11643); empty clears it."
    )


class IdNumberOut(Schema):
    id_number: str = Field(..., description="Always masked (110***********001X), or empty.")


class LookupIn(Schema):
    """Exactly one of the two. In the body, not the URL: the numbers stay out of access logs."""

    model_config = ConfigDict(extra="forbid")

    phone: str = Field("", max_length=40, description="A whole phone number (any spacing, +86 accepted).")
    id_number: str = Field("", max_length=32, description="A whole 18-character ID card number.")


class MergeIn(Schema):
    model_config = ConfigDict(extra="forbid")

    remove: str = Field(
        ..., max_length=14, description="Code of the record merged into this one and then deleted."
    )
    reason: str = Field(
        ..., max_length=500, description="Why the two records are one customer (kept in the audit trail)."
    )


class PhotoOut(Schema):
    id: int
    caption: str
    uploaded_by: PersonRef
    created_at: datetime
    url: str = Field(..., description="Where to fetch the image (scoped like the customer).")


class PersonalDataOut(Schema):
    phones: list[PhoneOut] = Field(..., description="In full.")
    id_number: str = Field(..., description="In full, or empty.")


class RevealIn(Schema):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        "", max_length=200, description="Why the full values are needed (kept in the audit trail)."
    )


class _CustomerFields(Schema):
    """The editable profile; references by code (units, sub-types, customers) and username (managers)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(None, max_length=200)
    kind: str = Field(None, max_length=16, description=KINDS)
    owning_unit: str | None = Field(
        None, max_length=64, description="Code of the owning unit (within your scope)."
    )
    division_code: str = Field(None, max_length=6, description="GB/T 2260 administrative division code.")
    short_name: str = Field(None, max_length=100)
    sub_type: str | None = Field(None, max_length=32, description="Sub-type code; null for none.")
    credit_code: str = Field(None, max_length=40, description="Unified social credit code; empty for none.")
    legal_representative: str = Field(None, max_length=100)
    address: str = Field(None, max_length=300)
    latitude: Decimal | None = Field(None, max_digits=9, decimal_places=6)
    longitude: Decimal | None = Field(None, max_digits=9, decimal_places=6)
    payment_profile: str = Field(None, max_length=16, description=PAYMENTS)
    business_scope: str = Field(None, max_length=5000)
    floor_area: Decimal | None = Field(None, max_digits=10, decimal_places=2, description="Square metres.")
    status: str = Field(None, max_length=16, description=STATUSES)
    lead_manager: str | None = Field(
        None, max_length=150, description="Username of the A manager; null for none."
    )
    backup_manager: str | None = Field(
        None, max_length=150, description="Username of the B manager; null for none."
    )
    tags: list[str] = Field(None, max_length=50)
    notes: str = Field(None, max_length=10000)


class CustomerIn(_CustomerFields):
    name: str = Field(..., max_length=200)
    kind: str = Field(..., max_length=16, description=KINDS)
    owning_unit: str = Field(..., max_length=64, description="Code of the owning unit (within your scope).")
    division_code: str = Field(..., max_length=6, description="GB/T 2260 administrative division code.")
    code: str = Field(
        "", max_length=14, description="Empty: the next free id is assigned. Given: checked and reserved."
    )
    parent: str = Field("", max_length=14, description="For a branch: the head office's customer code.")
    phones: list[str] = Field(
        [], max_length=20, description="Mobile or landline numbers; each must be new to the archive."
    )
    duplicate_reason: str = Field(
        "", max_length=500,
        description="Why this is another customer than the ones with a similar name (after a 409). Audited.",
    )  # fmt: skip


class CustomerPatch(_CustomerFields):
    """Only the fields sent are changed; the code never changes."""


class SimilarNamesError(FieldError):
    candidates: list[CustomerRef] = Field(..., description="Similar customers you may open.")
    hidden: int = Field(..., description="How many more are registered by units outside your scope.")


# ---------------------------------------------------------------- contacts


class ContactOut(Schema):
    id: int
    name: str
    title: str
    decision_role: str = Field(..., description=DECISION_ROLES)
    birthday: date | None
    important_dates: list[Any]
    preferences: str
    relations: str
    notes: str
    phones: list[PhoneOut] = Field(..., description="The contact's numbers, masked.")
    created_at: datetime


class _ContactFields(Schema):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(None, max_length=100)
    title: str = Field(None, max_length=100)
    decision_role: str = Field(None, max_length=16, description=DECISION_ROLES)
    birthday: date | None = None
    important_dates: list[Any] = Field(
        None, max_length=50, description='e.g. [{"label": "开业", "date": "2020-05-01"}]'
    )
    preferences: str = Field(None, max_length=5000)
    relations: str = Field(None, max_length=5000)
    notes: str = Field(None, max_length=10000)


class ContactIn(_ContactFields):
    name: str = Field(..., max_length=100)


class ContactPatch(_ContactFields):
    """Only the fields sent are changed."""


# ---------------------------------------------------------------- agreements


class AgreementOut(AgreementSummary):
    signing_unit: UnitRef | None = Field(None, description="Shown when you may see that unit.")
    parties: str
    has_attachment: bool
    created_at: datetime


class _AgreementFields(Schema):
    model_config = ConfigDict(extra="forbid")

    number: str = Field(None, max_length=64)
    signing_level: str = Field(None, max_length=16, description=SIGNING_LEVELS)
    start_date: date = None
    end_date: date | None = Field(None, description="Empty: open-ended.")
    agreement_type: str = Field(None, max_length=32, description="e.g. `supply`, `framework`.")
    signing_unit: str | None = Field(
        None, max_length=64, description="Code of the signing unit; null for none."
    )
    parties: str = Field(None, max_length=5000)
    status: str = Field(None, max_length=16, description=AGREEMENT_STATUSES)


class AgreementIn(_AgreementFields):
    number: str = Field(..., max_length=64)
    signing_level: str = Field(..., max_length=16, description=SIGNING_LEVELS)
    start_date: date


class AgreementPatch(_AgreementFields):
    """Only the fields sent are changed."""


# ---------------------------------------------------------------- import jobs


class JobOut(Schema):
    id: int
    kind: str = Field(..., description="e.g. `customers_import`, `contacts_import`, `agreements_import`.")
    status: str = Field(..., description="`queued`, `running`, `succeeded` or `failed`.")
    done: int = Field(..., description="Rows processed so far (as last reported).")
    total: int = Field(..., description="Rows to process; 0 until the job has counted them.")
    input_name: str = Field(..., description="The uploaded file's name.")
    params: dict[str, Any]
    result: dict[str, Any] = Field(..., description="The job's answer once finished, e.g. an import's counts "
                                   "and row errors (row, field, value, message).")  # fmt: skip
    error: str = Field(..., description="Why the job failed, or empty.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
