"""Separation of the three administrators (三员分立) and who may grant what."""

from __future__ import annotations

import itertools

import pytest
from django.db import IntegrityError, transaction
from django.utils import translation
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kehu.accounts.models import RoleAssignment, User
from kehu.accounts.roles import ADMIN_ROLES, ROLE_CAPABILITIES, Capability, Role
from kehu.accounts.services import (
    bootstrap_security_admin,
    role_grant,
    role_revoke,
    user_deactivate,
)
from kehu.audit.selectors import AuditAccessDenied, audit_event_search
from kehu.core.errors import NotAllowed, ServiceError
from kehu.core.scoping import DataScope
from kehu.testing.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


def fresh(user: User) -> User:
    """The user as the database has it, roles not yet cached."""
    return User.objects.get(pk=user.pk)


def admin_roles_in_db(user: User) -> set[str]:
    return set(RoleAssignment.objects.filter(user=user, role__in=ADMIN_ROLES).values_list("role", flat=True))


# ---------------------------------------------------------------- one administrator role per account


@pytest.mark.parametrize(
    "holder,second",
    [
        ("sysadmin", Role.SECURITY_ADMIN),
        ("sysadmin", Role.AUDIT_ADMIN),
        ("auditor", Role.SYSTEM_ADMIN),
        ("auditor", Role.SECURITY_ADMIN),
    ],
)
def test_a_second_administrator_role_is_refused(people, holder, second):
    user = getattr(people, holder)
    before = admin_roles_in_db(user)
    with pytest.raises(ServiceError) as exc:
        role_grant(acting_user=people.secadmin, user=user, role=second)
    assert exc.value.code == "separation_of_duties"
    assert exc.value.field == "role"
    assert admin_roles_in_db(user) == before


def test_second_security_admin_cannot_also_be_system_admin(people):
    second = UserFactory(username="secadmin2", unit=people.secadmin.unit, roles=[Role.SECURITY_ADMIN])
    with pytest.raises(ServiceError) as exc:
        role_grant(acting_user=people.secadmin, user=second, role=Role.SYSTEM_ADMIN)
    assert exc.value.code == "separation_of_duties"


def test_stale_role_cache_is_caught_by_the_constraint(people):
    """The service's own check reads cached roles; the database constraint is the last word."""
    user = fresh(people.bob)
    user._role_cache = []  # what the service believes: no roles at all
    RoleAssignment.objects.create(user=user, role=Role.AUDIT_ADMIN, scope="")
    with pytest.raises(ServiceError) as exc:
        role_grant(acting_user=people.secadmin, user=user, role=Role.SYSTEM_ADMIN)
    assert exc.value.code == "separation_of_duties"
    assert admin_roles_in_db(user) == {Role.AUDIT_ADMIN}


@pytest.mark.parametrize("first,second", list(itertools.permutations(sorted(ADMIN_ROLES), 2)))
def test_database_constraint_alone_forbids_two_administrator_roles(people, first, second):
    user = people.bob
    RoleAssignment.objects.create(user=user, role=first, scope="")
    with pytest.raises(IntegrityError), transaction.atomic():
        RoleAssignment.objects.create(user=user, role=second, scope="")
    assert admin_roles_in_db(user) == {first}


def test_database_constraint_allows_admin_plus_business_roles_and_admins_side_by_side(people):
    RoleAssignment.objects.create(user=people.bob, role=Role.SYSTEM_ADMIN, scope="")
    RoleAssignment.objects.create(user=people.alice, role=Role.AUDIT_ADMIN, scope="")
    RoleAssignment.objects.create(user=people.bob, role=Role.ANALYST, scope=DataScope.SUBTREE)
    assert admin_roles_in_db(people.bob) == {Role.SYSTEM_ADMIN}


def test_database_refuses_an_administrator_role_with_a_data_scope(people):
    with pytest.raises(IntegrityError), transaction.atomic():
        RoleAssignment.objects.create(user=people.bob, role=Role.AUDIT_ADMIN, scope=DataScope.ALL)


def test_database_refuses_the_same_role_twice(people):
    with pytest.raises(IntegrityError), transaction.atomic():
        RoleAssignment.objects.create(user=people.alice, role=Role.CUSTOMER_MANAGER, scope=DataScope.OWN)


def test_service_refuses_a_data_scope_on_an_administrator_role(people):
    with pytest.raises(ServiceError) as exc:
        role_grant(acting_user=people.secadmin, user=people.bob, role=Role.AUDIT_ADMIN, scope=DataScope.ALL)
    assert exc.value.field == "scope"


@hsettings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(grants=st.lists(st.sampled_from(list(Role.values)), min_size=1, max_size=6))
def test_any_sequence_of_grants_leaves_at_most_one_administrator_role(people, grants):
    """At most one administrator role, and never an administrator role beside a business role."""
    user = UserFactory(unit=people.alice.unit)
    for role in grants:
        held = fresh(user).role_names()
        try:
            role_grant(acting_user=people.secadmin, user=user, role=role)
        except ServiceError as exc:
            assert exc.code == "separation_of_duties"
            assert (role in ADMIN_ROLES and held - {role}) or (role not in ADMIN_ROLES and held & ADMIN_ROLES)
    roles = fresh(user).role_names()
    assert len(admin_roles_in_db(user)) <= 1
    assert not (roles & ADMIN_ROLES and roles - ADMIN_ROLES)


# ---------------------------------------------------------------- who grants


@pytest.mark.parametrize("actor", ["sysadmin", "auditor", "head_p", "head_a", "alice"])
def test_only_the_security_administrator_grants_and_revokes(people, actor):
    acting = getattr(people, actor)
    with pytest.raises(NotAllowed):
        role_grant(acting_user=acting, user=people.bob, role=Role.ANALYST)
    with pytest.raises(NotAllowed):
        role_revoke(acting_user=acting, user=people.bob, role=Role.CUSTOMER_MANAGER)
    assert fresh(people.bob).role_names() == {Role.CUSTOMER_MANAGER}


def test_inactive_security_administrator_grants_nothing(people):
    people.secadmin.is_active = False
    with pytest.raises(NotAllowed):
        role_grant(acting_user=people.secadmin, user=people.bob, role=Role.ANALYST)


def test_security_administrator_grants_and_revokes(people):
    role_grant(acting_user=people.secadmin, user=people.bob, role=Role.ANALYST)
    assert fresh(people.bob).role_names() == {Role.CUSTOMER_MANAGER, Role.ANALYST}
    assignment = RoleAssignment.objects.get(user=people.bob, role=Role.ANALYST)
    assert assignment.scope == DataScope.SUBTREE
    assert assignment.granted_by == people.secadmin
    role_revoke(acting_user=people.secadmin, user=people.bob, role=Role.ANALYST)
    assert fresh(people.bob).role_names() == {Role.CUSTOMER_MANAGER}


def test_nobody_grants_to_or_revokes_from_themselves(people):
    with pytest.raises(NotAllowed):
        role_grant(acting_user=people.secadmin, user=people.secadmin, role=Role.ANALYST)
    with pytest.raises(NotAllowed):
        role_grant(acting_user=people.secadmin, user=fresh(people.secadmin), role=Role.UNIT_HEAD)
    with pytest.raises(NotAllowed):
        role_revoke(acting_user=people.secadmin, user=people.secadmin, role=Role.SECURITY_ADMIN)
    assert fresh(people.secadmin).role_names() == {Role.SECURITY_ADMIN}


def test_unknown_role_and_scope_are_refused(people):
    with pytest.raises(ServiceError) as exc:
        role_grant(acting_user=people.secadmin, user=people.bob, role="superuser")
    assert exc.value.field == "role"
    with pytest.raises(ServiceError) as exc:
        role_grant(acting_user=people.secadmin, user=people.bob, role=Role.ANALYST, scope="galaxy")
    assert exc.value.field == "scope"


def test_unit_scope_needs_a_unit(people):
    nomad = UserFactory(username="nomad", unit=None)
    for scope in (DataScope.UNIT, DataScope.SUBTREE):
        with pytest.raises(ServiceError) as exc:
            role_grant(acting_user=people.secadmin, user=nomad, role=Role.ANALYST, scope=scope)
        assert exc.value.field == "scope"
    role_grant(acting_user=people.secadmin, user=nomad, role=Role.ANALYST, scope=DataScope.ALL)
    assert fresh(nomad).data_scopes() == {DataScope.ALL}


# ---------------------------------------------------------------- the last security administrator


def test_another_security_administrator_can_be_removed(people):
    second = UserFactory(username="secadmin2", unit=people.secadmin.unit, roles=[Role.SECURITY_ADMIN])
    role_revoke(acting_user=people.secadmin, user=second, role=Role.SECURITY_ADMIN)
    assert fresh(second).role_names() == set()


def test_last_active_security_administrator_cannot_lose_the_role_or_be_deactivated(people):
    """Two security administrators remove each other at the same time: the second must be refused.

    ``second`` acts with the roles cached at the start of their request; meanwhile ``secadmin`` has
    revoked them, so ``secadmin`` is now the last active security administrator.
    """
    second = fresh(UserFactory(username="secadmin2", unit=people.secadmin.unit, roles=[Role.SECURITY_ADMIN]))
    assert second.can(Capability.MANAGE_USERS)  # roles cached now
    role_revoke(acting_user=people.secadmin, user=fresh(second), role=Role.SECURITY_ADMIN)

    with pytest.raises(ServiceError, match="(?i)last active holder of the role “Security administrator”"):
        role_revoke(acting_user=second, user=fresh(people.secadmin), role=Role.SECURITY_ADMIN)
    with pytest.raises(ServiceError, match="(?i)last active holder of the role “Security administrator”"):
        user_deactivate(acting_user=second, user=fresh(people.secadmin))
    secadmin = fresh(people.secadmin)
    assert secadmin.is_active and secadmin.role_names() == {Role.SECURITY_ADMIN}


def test_inactive_security_administrators_do_not_count(people):
    second = UserFactory(username="secadmin2", unit=people.secadmin.unit, roles=[Role.SECURITY_ADMIN])
    stale = fresh(second)
    stale.role_names()
    User.objects.filter(pk=second.pk).update(is_active=False)
    with pytest.raises(ServiceError, match="(?i)last active holder of the role “Security administrator”"):
        user_deactivate(acting_user=stale, user=fresh(people.secadmin))


def test_nobody_deactivates_themselves(people):
    with pytest.raises(ServiceError):
        user_deactivate(acting_user=people.secadmin, user=fresh(people.secadmin))
    assert fresh(people.secadmin).is_active


def test_bootstrap_only_while_there_is_no_security_administrator(people, password):
    with pytest.raises(ServiceError):
        bootstrap_security_admin(username="root2", full_name="根", password="Boot#Strap2026")
    RoleAssignment.objects.filter(role=Role.SECURITY_ADMIN).delete()
    first = bootstrap_security_admin(username="root2", full_name="根", password="Boot#Strap2026")
    assert fresh(first).role_names() == {Role.SECURITY_ADMIN}
    assert first.must_change_password


def test_bootstrap_applies_the_password_rules(db):
    with pytest.raises(ServiceError) as exc:
        bootstrap_security_admin(username="root", full_name="根", password="Root#2026x")
    assert exc.value.field == "password"
    assert not User.objects.exists()


# ---------------------------------------------------------------- who reads the audit trail


@pytest.mark.parametrize("viewer", ["sysadmin", "secadmin", "head_p", "head_a", "alice"])
def test_only_the_audit_administrator_reads_the_trail(people, viewer):
    with pytest.raises(AuditAccessDenied):
        audit_event_search(viewer=getattr(people, viewer))
    with pytest.raises(AuditAccessDenied):
        audit_event_search(viewer=None)


def test_audit_administrator_reads_the_trail(people):
    role_grant(acting_user=people.secadmin, user=people.bob, role=Role.ANALYST)
    events = list(audit_event_search(viewer=people.auditor, action="role."))
    assert [e.action for e in events] == ["role.grant"]
    people.auditor.is_active = False
    with pytest.raises(AuditAccessDenied):
        audit_event_search(viewer=people.auditor)


def test_the_three_administrator_powers_are_held_by_exactly_one_role_each():
    for capability, owner in [
        (Capability.MANAGE_UNITS, Role.SYSTEM_ADMIN),
        (Capability.MANAGE_USERS, Role.SECURITY_ADMIN),
        (Capability.READ_AUDIT, Role.AUDIT_ADMIN),
    ]:
        holders = {role for role, caps in ROLE_CAPABILITIES.items() if capability in caps}
        assert holders == {owner}, capability
