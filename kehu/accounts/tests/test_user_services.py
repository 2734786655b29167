"""Account services: create, update, deactivate, reactivate, unlock, password reset — and their audit rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone, translation

from kehu.accounts.models import ApiToken, RoleAssignment, User
from kehu.accounts.roles import Role
from kehu.accounts.services import (
    LoginFailed,
    RoleGrant,
    api_token_issue,
    api_token_user,
    login_check,
    password_change,
    password_expired,
    user_create,
    user_deactivate,
    user_password_reset,
    user_reactivate,
    user_set_language,
    user_unlock,
    user_update,
)
from kehu.audit.masking import REDACTED
from kehu.audit.models import AuditEvent
from kehu.core.errors import NotAllowed, ServiceError
from kehu.core.scoping import DataScope

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Temp#Start2026"


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


def create(people, **overrides):
    fields = dict(acting_user=people.secadmin, username="zhao", full_name="赵强", password=NEW_PASSWORD,
                  unit=people.alice.unit)  # fmt: skip
    fields.update(overrides)
    return user_create(**fields)


def last_event(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).latest("seq")


def sessions_of(user: User) -> list[Session]:
    return [s for s in Session.objects.all() if str(s.get_decoded().get("_auth_user_id")) == str(user.pk)]


# ---------------------------------------------------------------- create


def test_create_makes_an_account_that_must_change_its_password(people):
    user = create(people, roles=[RoleGrant(Role.CUSTOMER_MANAGER)])
    user = User.objects.get(pk=user.pk)
    assert user.check_password(NEW_PASSWORD)
    assert user.must_change_password and password_expired(user)
    assert user.role_names() == {Role.CUSTOMER_MANAGER}
    assert user.data_scopes() == {DataScope.OWN}
    assert login_check(username="zhao", password=NEW_PASSWORD) == user

    event = last_event("user.create")
    assert event.actor_id == people.secadmin.pk
    assert event.object_type == "accounts.user" and event.object_id == str(user.pk)
    assert event.changes["username"] == "zhao"
    assert event.changes["unit"] == people.alice.unit.pk
    assert event.changes["password"] == REDACTED
    assert NEW_PASSWORD not in str(event.changes)
    assert user.password not in str(event.changes)
    grant = last_event("role.grant")
    assert grant.seq > event.seq
    assert grant.changes == {"role": Role.CUSTOMER_MANAGER, "scope": DataScope.OWN}


@pytest.mark.parametrize(
    "password",
    ["short1A", "alllowercase", "Zhao#2026x", "P@ssw0rd"],
    ids=["short", "simple", "name", "common"],
)
def test_create_applies_the_password_rules(people, password):
    with pytest.raises(ServiceError) as exc:
        create(people, password=password)
    assert exc.value.field == "password"
    assert not User.objects.filter(username="zhao").exists()
    assert not AuditEvent.objects.filter(action="user.create").exists()


def test_create_refuses_a_taken_username(people):
    count = User.objects.count()
    with pytest.raises(ServiceError) as exc:
        create(people, username="alice")
    assert exc.value.field == "username"
    assert "taken" in exc.value.message
    with pytest.raises(ServiceError) as exc:
        create(people, username="  alice ")
    assert exc.value.field == "username"
    assert User.objects.count() == count
    assert not AuditEvent.objects.filter(action="user.create").exists()


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"username": "  "}, "username"),
        ({"full_name": ""}, "full_name"),
        ({"manager_grade": "grade9"}, "manager_grade"),
        ({"language": "fr"}, "language"),
    ],
)
def test_create_validates_its_fields(people, overrides, field):
    with pytest.raises(ServiceError) as exc:
        create(people, **overrides)
    assert exc.value.field == field


def test_create_refuses_an_inactive_unit(people, org):
    org.a2.is_active = False
    org.a2.save()
    with pytest.raises(ServiceError) as exc:
        create(people, unit=org.a2)
    assert exc.value.field == "unit"


def test_create_is_all_or_nothing_with_its_roles(people):
    with pytest.raises(ServiceError):
        create(people, roles=[RoleGrant(Role.CUSTOMER_MANAGER), RoleGrant(Role.AUDIT_ADMIN, DataScope.ALL)])
    assert not User.objects.filter(username="zhao").exists()
    assert not AuditEvent.objects.filter(object_type="accounts.user").exists()
    with pytest.raises(ServiceError) as exc:
        create(people, roles=[RoleGrant(Role.SYSTEM_ADMIN), RoleGrant(Role.AUDIT_ADMIN)])
    assert exc.value.code == "separation_of_duties"
    assert not User.objects.filter(username="zhao").exists()


@pytest.mark.parametrize("actor", ["sysadmin", "auditor", "head_p", "alice"])
def test_only_the_security_administrator_manages_accounts(people, actor):
    acting = getattr(people, actor)
    target = User.objects.get(pk=people.bob.pk)
    with pytest.raises(NotAllowed):
        create(people, acting_user=acting)
    with pytest.raises(NotAllowed):
        user_update(acting_user=acting, user=target, full_name="x")
    with pytest.raises(NotAllowed):
        user_deactivate(acting_user=acting, user=target)
    with pytest.raises(NotAllowed):
        user_reactivate(acting_user=acting, user=target)
    with pytest.raises(NotAllowed):
        user_unlock(acting_user=acting, user=target)
    with pytest.raises(NotAllowed):
        user_password_reset(acting_user=acting, user=target, new_password=NEW_PASSWORD)
    assert not AuditEvent.objects.exists()


# ---------------------------------------------------------------- update


def test_update_audits_only_what_changed(people, org):
    bob = User.objects.get(pk=people.bob.pk)
    user_update(acting_user=people.secadmin, user=bob, full_name="张博士", phone="13800000000",
                position="", unit=org.b1)  # fmt: skip
    event = last_event("user.update")
    assert event.changes == {"full_name": ["张博", "张博士"], "phone": ["", "13800000000"]}
    assert event.object_id == str(bob.pk)
    bob.refresh_from_db()
    assert bob.full_name == "张博士" and bob.phone == "13800000000"

    user_update(acting_user=people.secadmin, user=bob, unit=org.a2)
    assert last_event("user.update").changes == {"unit": [org.b1.pk, org.a2.pk]}


def test_update_without_a_change_writes_no_audit_row(people):
    user_update(acting_user=people.secadmin, user=User.objects.get(pk=people.bob.pk), full_name="张博")
    assert not AuditEvent.objects.filter(action="user.update").exists()


def test_update_refuses_fields_it_does_not_edit(people):
    bob = User.objects.get(pk=people.bob.pk)
    for field, value in [("password", "x"), ("is_active", False), ("username", "robert"),
                         ("failed_login_count", 0)]:  # fmt: skip
        with pytest.raises(ServiceError):
            user_update(acting_user=people.secadmin, user=bob, **{field: value})
    with pytest.raises(ServiceError) as exc:
        user_update(acting_user=people.secadmin, user=bob, language="klingon")
    assert exc.value.field == "language"


def test_update_with_a_stale_copy_does_not_undo_other_changes(people, password):
    """An edit form loaded before the user changed their password must not restore the old one."""
    stale = User.objects.get(pk=people.bob.pk)
    bob = User.objects.get(pk=people.bob.pk)
    password_change(acting_user=bob, old_password=password, new_password="Fresh#NewPass27")
    user_update(acting_user=people.secadmin, user=stale, phone="13900000000")
    bob.refresh_from_db()
    assert bob.phone == "13900000000"
    assert bob.check_password("Fresh#NewPass27")


# ---------------------------------------------------------------- deactivate / reactivate


def test_deactivate_ends_sessions_and_revokes_tokens(people, password):
    bob_client, alice_client = Client(), Client()
    bob_client.force_login(people.bob)
    alice_client.force_login(people.alice)
    raw, token = api_token_issue(username="bob", password=password)
    alice_raw, _ = api_token_issue(username="alice", password=password)
    assert len(sessions_of(people.bob)) == 1
    assert api_token_user(raw) == people.bob

    user_deactivate(acting_user=people.secadmin, user=User.objects.get(pk=people.bob.pk), reason="left")

    bob = User.objects.get(pk=people.bob.pk)
    assert not bob.is_active
    assert sessions_of(bob) == []
    assert not Session.objects.filter(session_key=bob_client.session.session_key).exists()
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert api_token_user(raw) is None
    # nobody else is affected
    assert len(sessions_of(people.alice)) == 1
    assert api_token_user(alice_raw) == people.alice

    event = last_event("user.deactivate")
    assert event.changes == {"is_active": [True, False]}
    assert event.extra == {"reason": "left", "sessions_ended": 1, "tokens_revoked": 1}
    with pytest.raises(LoginFailed):
        login_check(username="bob", password=password)


def test_reactivate_clears_a_lock_and_is_audited(people, password):
    bob = User.objects.get(pk=people.bob.pk)
    user_deactivate(acting_user=people.secadmin, user=bob)
    User.objects.filter(pk=bob.pk).update(
        failed_login_count=3, locked_until=timezone.now() + timedelta(hours=1)
    )
    bob = User.objects.get(pk=bob.pk)
    user_reactivate(acting_user=people.secadmin, user=bob)
    bob.refresh_from_db()
    assert bob.is_active and bob.failed_login_count == 0 and bob.locked_until is None
    assert last_event("user.reactivate").changes == {"is_active": [False, True]}
    assert login_check(username="bob", password=password) == bob


def test_unlock_is_audited(people, password):
    User.objects.filter(pk=people.bob.pk).update(
        failed_login_count=0, locked_until=timezone.now() + timedelta(hours=1)
    )
    bob = User.objects.get(pk=people.bob.pk)
    user_unlock(acting_user=people.secadmin, user=bob)
    assert User.objects.get(pk=bob.pk).locked_until is None
    event = last_event("user.unlock")
    assert event.actor_id == people.secadmin.pk and event.object_id == str(bob.pk)
    assert login_check(username="bob", password=password) == bob


# ---------------------------------------------------------------- password reset and language


def test_password_reset_sets_a_temporary_password(people, password):
    User.objects.filter(pk=people.bob.pk).update(
        failed_login_count=0, locked_until=timezone.now() + timedelta(hours=1)
    )
    bob = User.objects.get(pk=people.bob.pk)
    with pytest.raises(ServiceError) as exc:
        user_password_reset(acting_user=people.secadmin, user=bob, new_password="Bob#2026xyz")
    assert exc.value.field == "password"
    user_password_reset(acting_user=people.secadmin, user=bob, new_password=NEW_PASSWORD)
    bob.refresh_from_db()
    assert bob.check_password(NEW_PASSWORD) and not bob.check_password(password)
    assert bob.must_change_password and password_expired(bob)
    assert not bob.is_locked()
    event = last_event("user.password_reset")
    assert event.actor_id == people.secadmin.pk and event.object_id == str(bob.pk)
    assert NEW_PASSWORD not in str(event.changes) + str(event.extra)


def test_set_language_is_audited_only_on_change(people):
    alice = User.objects.get(pk=people.alice.pk)
    original = alice.language
    user_set_language(acting_user=alice, language=original)
    assert not AuditEvent.objects.exists()
    other = "en" if original == "zh-hans" else "zh-hans"
    user_set_language(acting_user=alice, language=other)
    assert User.objects.get(pk=alice.pk).language == other
    assert last_event("user.set_language").changes == {"language": [original, other]}
    with pytest.raises(ServiceError):
        user_set_language(acting_user=alice, language="xx")


def test_created_accounts_are_never_stored_with_a_raw_password(people):
    user = create(people)
    stored = User.objects.filter(pk=user.pk).values_list("password", flat=True).get()
    assert NEW_PASSWORD not in stored
    assert not RoleAssignment.objects.filter(user=user).exists()
    assert not ApiToken.objects.filter(user=user).exists()
