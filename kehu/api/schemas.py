"""Request and response shapes of the REST API.

Response schemas list their fields explicitly: a field that is not named here never leaves the server
(password hashes, failure counters, lockout times and token digests in particular).
"""

from __future__ import annotations

from datetime import datetime

from ninja import Field, Schema


class Error(Schema):
    detail: str = Field(..., description="What went wrong, in the caller's language.")


class FieldError(Error):
    field: str | None = Field(None, description="The input at fault, when there is one.")
    code: str = Field("invalid", description="A stable machine-readable reason.")


class LoginError(Error):
    code: str = Field(..., description="invalid | locked | password_change_required")


class LockedError(LoginError):
    locked_until: datetime | None = Field(None, description="When the account may sign in again.")


# ---------------------------------------------------------------- small references


class UnitRef(Schema):
    id: int
    code: str
    name: str


class UnitTypeRef(Schema):
    code: str
    name: str


class RoleOut(Schema):
    role: str = Field(..., description="Role code, e.g. customer_manager, unit_head, security_admin.")
    scope: str = Field(..., description="Data scope: own | unit | subtree | all; empty for administrators.")


# ---------------------------------------------------------------- people


def _roles(user) -> list[dict]:
    return [{"role": a.role, "scope": a.scope} for a in sorted(user._assignments(), key=lambda a: a.role)]


class MeOut(Schema):
    id: int
    username: str
    full_name: str
    unit: UnitRef | None
    position: str
    manager_grade: str = Field(..., description="Customer-manager grade (trainee, grade3…), or empty.")
    language: str
    roles: list[RoleOut]
    capabilities: list[str] = Field(..., description="What the roles allow beyond reading in-scope data.")

    @staticmethod
    def resolve_roles(obj) -> list[dict]:
        return _roles(obj)

    @staticmethod
    def resolve_capabilities(obj) -> list[str]:
        return sorted(str(c) for c in obj.capabilities())


class UserOut(Schema):
    id: int
    username: str
    full_name: str
    unit: UnitRef | None
    position: str
    manager_grade: str
    phone: str
    email: str
    language: str
    is_active: bool
    date_joined: datetime
    roles: list[RoleOut]

    @staticmethod
    def resolve_roles(obj) -> list[dict]:
        return _roles(obj)


# ---------------------------------------------------------------- tokens


class TokenIn(Schema):
    username: str = Field(..., min_length=1, max_length=64)
    password: str = Field(..., min_length=1, max_length=4096)


class TokenOut(Schema):
    token: str = Field(..., description="Send as `Authorization: Bearer <token>`. Shown once, never stored.")
    token_type: str = "Bearer"
    expires_at: datetime
    user: MeOut


# ---------------------------------------------------------------- units


class UnitOut(Schema):
    id: int
    code: str
    name: str
    unit_type: UnitTypeRef
    parent_id: int | None
    division_code: str = Field(..., description="GB/T 2260 administrative division code.")
    is_active: bool
    depth: int = Field(..., description="0 for the top of the tree.")


class UnitDetailOut(UnitOut):
    ancestors: list[UnitRef] = Field(..., description="Visible units above this one, top first.")
    children_count: int = Field(..., description="Visible units directly below this one.")
