"""Roles, their default data scopes and what each may do.

Separation of the three administrators (三员分立): the system administrator runs the system (the
organisation tree, configuration) but cannot grant roles or read the audit trail; only the security
administrator manages accounts and roles; only the audit administrator reads the audit trail. No
account may hold two of them — enforced by a database constraint as well as by the services.
"""

from __future__ import annotations

import enum

from django.db import models
from django.utils.translation import gettext_lazy as _

from kehu.core.scoping import DataScope


class Role(models.TextChoices):
    CUSTOMER_MANAGER = "customer_manager", _("Customer manager")
    MARKET_MANAGER = "market_manager", _("Market manager")
    AREA_MANAGER = "area_manager", _("Area manager")
    STATION_MANAGER = "station_manager", _("Station manager")
    UNIT_HEAD = "unit_head", _("Unit head")
    ANALYST = "analyst", _("Analyst")
    SYSTEM_ADMIN = "system_admin", _("System administrator")
    SECURITY_ADMIN = "security_admin", _("Security administrator")
    AUDIT_ADMIN = "audit_admin", _("Audit administrator")


ADMIN_ROLES: frozenset[str] = frozenset({Role.SYSTEM_ADMIN, Role.SECURITY_ADMIN, Role.AUDIT_ADMIN})


class ManagerGrade(models.TextChoices):
    """Customer-manager grades, pay rising from trainee to grade 1."""

    TRAINEE = "trainee", _("Trainee (见习)")
    GRADE_3 = "grade3", _("Grade 3")
    GRADE_2 = "grade2", _("Grade 2")
    GRADE_1 = "grade1", _("Grade 1")


# The scope a role gets unless the security administrator chooses another when granting it.
# Administrators get no business-data scope: they reach accounts or units through ScopePolicy.see_all_roles.
DEFAULT_SCOPE: dict[str, str | None] = {
    Role.CUSTOMER_MANAGER: DataScope.OWN,
    Role.MARKET_MANAGER: DataScope.SUBTREE,
    Role.AREA_MANAGER: DataScope.SUBTREE,
    Role.STATION_MANAGER: DataScope.SUBTREE,
    Role.UNIT_HEAD: DataScope.SUBTREE,
    Role.ANALYST: DataScope.SUBTREE,
    Role.SYSTEM_ADMIN: None,
    Role.SECURITY_ADMIN: None,
    Role.AUDIT_ADMIN: None,
}


class Capability(enum.StrEnum):
    """Things a role may do beyond reading the data in its scope."""

    VIEW_ORG = "view_org"
    MANAGE_UNITS = "manage_units"  # edit, move, deactivate, import units
    EXPORT_UNITS = "export_units"
    MANAGE_USERS = "manage_users"  # create, edit, deactivate accounts; grant and revoke roles
    READ_AUDIT = "read_audit"
    VIEW_PEOPLE = "view_people"
    MANAGE_CUSTOMERS = "manage_customers"  # create and edit customers in one's scope
    VIEW_PERSONAL_DATA = "view_personal_data"  # unmask phones and ID numbers (each time audited)
    IMPORT_SALES = "import_sales"  # import transactions and monthly sales facts for customers in scope
    MANAGE_POLICIES = "manage_policies"  # load, simulate and activate classification/grading policies
    RUN_CLOSE = "run_close"  # run the monthly close for one's unit subtree
    REQUEST_OVERRIDE = "request_override"  # ask for a manual override of a customer's result
    APPROVE_OVERRIDE = "approve_override"  # approve or refuse overrides (at the level the policy requires)


ROLE_CAPABILITIES: dict[str, frozenset[Capability]] = {
    Role.CUSTOMER_MANAGER: frozenset(
        {Capability.VIEW_PERSONAL_DATA, Capability.MANAGE_CUSTOMERS, Capability.VIEW_ORG}
    ),
    Role.MARKET_MANAGER: frozenset(
        {
            Capability.VIEW_PERSONAL_DATA,
            Capability.MANAGE_CUSTOMERS,
            Capability.VIEW_ORG,
            Capability.VIEW_PEOPLE,
            Capability.REQUEST_OVERRIDE,
        }
    ),
    Role.AREA_MANAGER: frozenset(
        {
            Capability.VIEW_PERSONAL_DATA,
            Capability.MANAGE_CUSTOMERS,
            Capability.VIEW_ORG,
            Capability.VIEW_PEOPLE,
            Capability.REQUEST_OVERRIDE,
        }
    ),
    Role.STATION_MANAGER: frozenset(
        {
            Capability.VIEW_PERSONAL_DATA,
            Capability.MANAGE_CUSTOMERS,
            Capability.VIEW_ORG,
            Capability.VIEW_PEOPLE,
            Capability.REQUEST_OVERRIDE,
        }
    ),
    Role.UNIT_HEAD: frozenset(
        {
            Capability.VIEW_PERSONAL_DATA,
            Capability.MANAGE_CUSTOMERS,
            Capability.VIEW_ORG,
            Capability.VIEW_PEOPLE,
            Capability.EXPORT_UNITS,
            Capability.IMPORT_SALES,
            Capability.RUN_CLOSE,
            Capability.MANAGE_POLICIES,
            Capability.REQUEST_OVERRIDE,
            Capability.APPROVE_OVERRIDE,
        }
    ),
    Role.ANALYST: frozenset(
        {
            Capability.VIEW_ORG,
            Capability.VIEW_PEOPLE,
            Capability.EXPORT_UNITS,
            Capability.IMPORT_SALES,
            Capability.RUN_CLOSE,
            Capability.MANAGE_POLICIES,
        }
    ),
    # The system administrator runs the deployment's operations (pack set-up, sales imports, the monthly
    # close) without seeing a customer: those services act on every customer for them, answer counts only.
    Role.SYSTEM_ADMIN: frozenset(
        {
            Capability.VIEW_ORG,
            Capability.MANAGE_UNITS,
            Capability.EXPORT_UNITS,
            Capability.IMPORT_SALES,
            Capability.RUN_CLOSE,
            Capability.MANAGE_POLICIES,
        }
    ),
    Role.SECURITY_ADMIN: frozenset({Capability.VIEW_ORG, Capability.VIEW_PEOPLE, Capability.MANAGE_USERS}),
    Role.AUDIT_ADMIN: frozenset({Capability.READ_AUDIT}),
}


def capabilities_of(roles: set[str]) -> frozenset[Capability]:
    caps: set[Capability] = set()
    for role in roles:
        caps |= ROLE_CAPABILITIES.get(role, frozenset())
    return frozenset(caps)
