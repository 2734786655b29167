"""Request and response shapes of the classification API (``kehu.api.routers.policies``): policy documents,
validation, simulation, the monthly close and its results, overrides. Input shapes refuse unknown fields
(422). Months are written ``YYYY-MM``; customers are referenced by their 14-digit code."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Field, Schema
from pydantic import ConfigDict

from kehu.api.customer_schemas import CustomerRef, PersonRef
from kehu.api.schemas import FieldError


class StrictIn(Schema):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- policies


class ProblemOut(Schema):
    line: int | None = Field(None, description="1-based line of the document, when known.")
    column: int | None = None
    path: str = Field(..., description="Where in the document, e.g. `outputs.size.first_match[1].if`.")
    message: str


class PolicyInvalidError(FieldError):
    problems: list[ProblemOut] = Field(..., description="Every problem found, in document order.")


class ValueOut(Schema):
    value: str
    label: str = Field(..., description="The policy's display label (Chinese), or empty.")


class OutputOut(Schema):
    name: str
    label: str
    type: str = Field(..., description="`choice`, `boolean`, `integer`, `points` or `number`.")
    export: bool = Field(..., description="false: computed and explained, not a column of the results.")
    values: list[ValueOut] = Field(..., description="A choice's values, best first; empty for other types.")


class ThresholdOut(Schema):
    path: str = Field(..., description="The key to edit this constant in `POST /policies/simulate` `edits`.")
    value: str = Field(..., description="The constant as written in the document.")


class PolicyListItem(Schema):
    name: str
    version: int
    title: str
    comment: str
    created_by: PersonRef | None = Field(None, description="Empty for the version `kehu setup` installed.")
    created_at: datetime
    applies_from: list[str] = Field(
        ..., description="Months (YYYY-MM) from which this version decides the close."
    )


class PolicyOut(PolicyListItem):
    document: str = Field(..., description="The YAML document as loaded.")
    products: list[str]
    outputs: list[OutputOut]
    thresholds: list[ThresholdOut]


class PolicyTextIn(StrictIn):
    text: str = Field(..., max_length=512 * 1024, description="The YAML document.")


class PolicyLoadIn(PolicyTextIn):
    comment: str = Field("", max_length=500, description="What changed and why.")


class ValidationOut(Schema):
    valid: bool
    name: str = Field("", description="The policy's name when valid.")
    outputs: list[str] = Field(default_factory=list, description="Its outputs when valid.")
    problems: list[ProblemOut] = Field(default_factory=list)


class PolicyLoaded(PolicyOut):
    created: bool = Field(..., description="false: the latest version already held this document.")


class ActivateIn(StrictIn):
    valid_from: str = Field(..., description="YYYY-MM: closes of this month and later use this version.")
    comment: str = Field("", max_length=500)


class ActivationOut(Schema):
    name: str
    version: int
    valid_from: str
    comment: str


class SimulateIn(StrictIn):
    month: str = Field(..., description="YYYY-MM.")
    draft: str | None = Field(None, max_length=512 * 1024, description="A draft document; or use `edits`.")
    edits: dict[str, str] | None = Field(
        None, description="The policy in force with these constants changed: threshold path → new value."
    )
    changed_limit: int = Field(100, ge=0, le=1000, description="How many changed customers to list.")


class ChangedOut(Schema):
    customer: CustomerRef
    now: dict[str, str] = Field(..., description="Output → value under the policy in force (empty: none).")
    draft: dict[str, str] = Field(..., description="Output → value under the draft.")
    explanation: str = Field(..., description="The draft's explanation.")


class MoveOut(Schema):
    now: str
    draft: str
    customers: int


class SimulationOut(Schema):
    month: str
    policy_now: str
    policy_draft: str
    customers: int = Field(..., description="Customers evaluated (those in your scope).")
    changed_count: int
    distribution: dict[str, dict[str, dict[str, int]]] = Field(
        ..., description="Output → value → {now, draft} customer counts (choice and yes/no outputs)."
    )
    moves: dict[str, list[MoveOut]] = Field(
        ..., description="Output → how many go from one value to another."
    )
    seconds: float
    changed: list[ChangedOut] = Field(
        ..., description="The first `changed_limit` customers that would change."
    )


# ---------------------------------------------------------------- the close


class CloseIn(StrictIn):
    month: str = Field(..., description="YYYY-MM.")
    unit_code: str = Field("", description="Only the customers of this unit's subtree (within your scope).")


class UnitBrief(Schema):
    code: str
    name: str


class CloseRunOut(Schema):
    id: int
    month: str
    policy: str = Field(..., description="`name vN`.")
    unit: UnitBrief | None = Field(None, description="Empty: every customer in the starter's scope.")
    status: str = Field(..., description="`running`, `succeeded` or `failed`.")
    started_by: PersonRef
    started_at: datetime
    finished_at: datetime | None
    seconds: float | None
    customers: int
    changes: int
    summary: dict[str, Any] = Field(..., description="Distribution per output value and changes per kind.")
    error: str
    job_id: int | None


class ResultOut(Schema):
    customer: CustomerRef
    month: str
    outputs: dict[str, Any] = Field(..., description="Output → value (null: not applicable).")
    responsible_level: str
    explanation: str
    policy: str


class OverrideIn(StrictIn):
    customer_code: str
    output: str
    value: str = Field("", max_length=64, description="The value to force; empty: not applicable.")
    reason: str = Field(..., max_length=1000)


class NoteIn(StrictIn):
    note: str = Field("", max_length=500)


class OverrideOut(Schema):
    id: int
    customer: CustomerRef
    output: str
    value: str
    reason: str
    status: str = Field(..., description="`pending`, `approved` (in force), `refused` or `revoked`.")
    requested_by: PersonRef
    requested_at: datetime
    decided_by: PersonRef | None
    decided_at: datetime | None
    decision_note: str
    revoked_by: PersonRef | None
    revoked_at: datetime | None
