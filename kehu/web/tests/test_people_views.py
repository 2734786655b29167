"""People pages: scoping of the list, detail and export; the security administrator's account work;
separation of the three administrators as seen through the web."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import timedelta

import pytest
from django.contrib.auth import password_validation
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kehu.accounts.middleware import SESSION_LAST_SEEN, SESSION_LOGIN_AT
from kehu.accounts.models import RoleAssignment, User
from kehu.accounts.passwords import character_classes, generate_password
from kehu.accounts.roles import Role
from kehu.audit.models import AuditEvent
from kehu.core.scoping import DataScope
from kehu.org.models import Unit
from kehu.testing.factories import UserFactory

FULL_CAST = {"alice", "amy", "bob", "stan", "head_a", "head_p", "sysadmin", "secadmin", "auditor"}


def signin(client: Client, user) -> Client:
    """A signed-in session as the login view leaves it (force_login plus the session-timeout stamps)."""
    client.force_login(user)
    session = client.session
    session[SESSION_LOGIN_AT] = session[SESSION_LAST_SEEN] = time.time()
    session.save()
    return client


def listed(response) -> set[str]:
    assert response.status_code == 200, response
    return {p.username for p in response.context["page"].object_list}


def csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200, response
    text = response.content.decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def bob_viewer(people, org):
    """bob, also station manager of B1: may look at people, but only those of B1 (a peer branch of city A)."""
    RoleAssignment.objects.create(user=people.bob, role=Role.STATION_MANAGER, scope=DataScope.SUBTREE)
    UserFactory(username="bella", full_name="陈蓓", unit=org.b1, roles=[Role.CUSTOMER_MANAGER])
    return people.bob


# ---------------------------------------------------------------- scoping


def test_peer_branch_sees_nothing_of_city_a_in_list_search_and_filters(client, people, org, bob_viewer):
    signin(client, bob_viewer)
    url = reverse("people_list")
    assert listed(client.get(url)) == {"bob", "bella"}
    assert listed(client.get(url, {"q": "alice"})) == set()
    assert listed(client.get(url, {"q": "王丽"})) == set()
    assert listed(client.get(url, {"unit": "A1"})) == set()
    assert listed(client.get(url, {"unit": "CA"})) == set()
    assert listed(client.get(url, {"unit": "P"})) == {"bob", "bella"}
    assert "王丽" not in client.get(url).content.decode()


def test_peer_branch_gets_404_for_city_a_person_like_a_missing_one(client, people, bob_viewer):
    signin(client, bob_viewer)
    assert client.get(reverse("person_detail", args=[people.alice.pk])).status_code == 404
    assert client.get(reverse("person_detail", args=[people.head_a.pk])).status_code == 404
    assert client.get(reverse("person_detail", args=[999_999])).status_code == 404
    assert client.get(reverse("person_detail", args=[people.bob.pk])).status_code == 200


def test_peer_branch_export_has_no_city_a_rows(client, people, bob_viewer):
    signin(client, bob_viewer)
    rows = csv_rows(client.get(reverse("people_export")))
    assert {r[0] for r in rows[1:]} == {"bob", "bella"}
    assert csv_rows(client.get(reverse("people_export"), {"q": "alice"}))[1:] == []


def test_plain_customer_manager_has_no_people_list_and_sees_only_themselves(client, people):
    signin(client, people.bob)
    assert client.get(reverse("people_list")).status_code == 403
    assert client.get(reverse("people_export")).status_code == 403
    assert client.get(reverse("person_detail", args=[people.alice.pk])).status_code == 404
    assert client.get(reverse("person_detail", args=[people.bob.pk])).status_code == 200


def test_superior_unit_sees_its_subtree(client, people, org):
    signin(client, people.head_a)
    url = reverse("people_list")
    assert listed(client.get(url)) == {"alice", "amy", "stan", "head_a"}
    assert listed(client.get(url, {"unit": "A1"})) == {"alice", "amy", "stan"}
    assert listed(client.get(url, {"unit": "A2"})) == set()
    assert listed(client.get(url, {"unit": "B1"})) == set()
    assert client.get(reverse("person_detail", args=[people.alice.pk])).status_code == 200
    assert client.get(reverse("person_detail", args=[people.bob.pk])).status_code == 404
    assert client.get(reverse("person_detail", args=[people.head_p.pk])).status_code == 404
    rows = csv_rows(client.get(reverse("people_export")))
    assert {r[0] for r in rows[1:]} == {"alice", "amy", "stan", "head_a"}


def test_security_admin_sees_everyone(client, people):
    signin(client, people.secadmin)
    assert listed(client.get(reverse("people_list"))) == FULL_CAST
    assert client.get(reverse("person_detail", args=[people.bob.pk])).status_code == 200


def test_list_shows_unit_roles_scopes_and_badges(client, people, org):
    User.objects.filter(pk=people.alice_peer.pk).update(locked_until=timezone.now() + timedelta(minutes=10))
    User.objects.filter(pk=people.station_mgr_a1.pk).update(is_active=False)
    signin(client, people.head_a)
    html = client.get(reverse("people_list")).content.decode()
    row = html.split('data-username="alice"')[1].split("</tr>")[0]
    assert "历下加油站" in row and "A1" in row
    assert 'data-role="customer_manager"' in row
    assert str(DataScope.OWN.label) in row
    assert 'data-status="active"' in row
    amy_row = html.split('data-username="amy"')[1].split("</tr>")[0]
    assert 'data-status="locked"' in amy_row
    stan_row = html.split('data-username="stan"')[1].split("</tr>")[0]
    assert 'data-status="inactive"' in stan_row


def test_list_filters_by_status_and_role(client, people):
    User.objects.filter(pk=people.alice_peer.pk).update(locked_until=timezone.now() + timedelta(minutes=10))
    User.objects.filter(pk=people.station_mgr_a1.pk).update(is_active=False)
    signin(client, people.secadmin)
    url = reverse("people_list")
    assert listed(client.get(url, {"status": "locked"})) == {"amy"}
    assert listed(client.get(url, {"status": "inactive"})) == {"stan"}
    assert "stan" not in listed(client.get(url, {"status": "active"}))
    assert listed(client.get(url, {"role": Role.CUSTOMER_MANAGER})) == {"alice", "amy", "bob"}
    assert listed(client.get(url, {"role": Role.UNIT_HEAD, "unit": "CA"})) == {"head_a"}


def test_list_is_paginated_by_50(client, people, org):
    for i in range(55):
        UserFactory(username=f"extra{i:02d}", unit=org.a2)
    signin(client, people.head_a)
    first = client.get(reverse("people_list"))
    assert len(first.context["page"].object_list) == 50
    assert first.context["page"].paginator.count == 59
    second = client.get(reverse("people_list"), {"page": 2})
    assert len(second.context["page"].object_list) == 9


def test_anonymous_is_sent_to_login(client, people):
    response = client.get(reverse("people_list"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


# ---------------------------------------------------------------- separation of the administrators


ADMIN_PAGES = [
    ("get", "person_create", False, {}),
    ("post", "person_create", False, {"username": "mallory", "full_name": "M", "generate": "on",
                                      "language": "zh-hans"}),
    ("get", "person_edit", True, {}),
    ("post", "person_edit", True, {"full_name": "changed", "language": "zh-hans"}),
    ("post", "person_set_active", True, {"active": "0", "reason": "x"}),
    ("post", "person_unlock", True, {}),
    ("get", "person_password_reset", True, {}),
    ("post", "person_password_reset", True, {"generate": "on"}),
    ("get", "person_role_grant", True, {}),
    ("post", "person_role_grant", True, {"role": Role.UNIT_HEAD}),
    ("post", "person_role_revoke", True, {"role": Role.CUSTOMER_MANAGER}),
]  # fmt: skip


@pytest.mark.parametrize("who", ["sysadmin", "auditor", "head_p"])
@pytest.mark.parametrize(("method", "name", "with_pk", "data"), ADMIN_PAGES)
def test_only_the_security_admin_administers_accounts(client, people, who, method, name, with_pk, data):
    signin(client, getattr(people, who))
    before = AuditEvent.objects.count()
    url = reverse(name, args=[people.alice.pk]) if with_pk else reverse(name)
    response = getattr(client, method)(url, data)
    assert response.status_code == 403
    people.alice.refresh_from_db()
    assert people.alice.is_active and people.alice.full_name == "王丽"
    assert set(RoleAssignment.objects.filter(user=people.alice).values_list("role", flat=True)) == {
        Role.CUSTOMER_MANAGER
    }
    assert not User.objects.filter(username="mallory").exists()
    assert AuditEvent.objects.count() == before


def test_admin_pages_hidden_from_non_admins_on_the_detail_page(client, people):
    signin(client, people.head_a)
    html = client.get(reverse("person_detail", args=[people.alice.pk])).content.decode()
    assert reverse("person_edit", args=[people.alice.pk]) not in html
    assert reverse("person_role_grant", args=[people.alice.pk]) not in html
    signin(client, people.secadmin)
    html = client.get(reverse("person_detail", args=[people.alice.pk])).content.decode()
    assert reverse("person_edit", args=[people.alice.pk]) in html
    assert reverse("person_role_grant", args=[people.alice.pk]) in html


def test_second_admin_role_is_refused_with_the_separation_error(client, people):
    signin(client, people.secadmin)
    before = AuditEvent.objects.count()
    response = client.post(
        reverse("person_role_grant", args=[people.sysadmin.pk]), {"role": Role.AUDIT_ADMIN}
    )
    assert response.status_code == 200
    errors = response.context["form"].errors["role"]
    assert any("Separation of duties" in e for e in errors)
    assert "Separation of duties" in response.content.decode()
    assert set(RoleAssignment.objects.filter(user=people.sysadmin).values_list("role", flat=True)) == {
        Role.SYSTEM_ADMIN
    }
    assert AuditEvent.objects.count() == before


def test_security_admin_cannot_grant_themselves_a_role(client, people):
    signin(client, people.secadmin)
    response = client.post(reverse("person_role_grant", args=[people.secadmin.pk]), {"role": Role.UNIT_HEAD})
    assert response.status_code == 403
    assert not RoleAssignment.objects.filter(user=people.secadmin, role=Role.UNIT_HEAD).exists()


# ---------------------------------------------------------------- account work


def test_create_account_with_generated_password(client, people, org):
    signin(client, people.secadmin)
    response = client.post(reverse("person_create"), {
        "username": "carol", "full_name": "孙佳", "unit": "a2", "position": "客户经理",
        "manager_grade": "grade3", "phone": "13800000000", "email": "carol@example.cn",
        "language": "zh-hans", "role": Role.CUSTOMER_MANAGER, "scope": "", "generate": "on",
    })  # fmt: skip
    assert response.status_code == 200
    carol = User.objects.get(username="carol")
    assert carol.unit == org.a2 and carol.must_change_password and carol.is_active
    assert set(carol.role_assignments.values_list("role", "scope")) == {
        (Role.CUSTOMER_MANAGER, DataScope.OWN)
    }

    shown = [m for m in messages_of(response) if "carol" in m]
    assert len(shown) == 1
    password = shown[0].rsplit(": ", 1)[1]
    assert len(password) == 12 and character_classes(password) >= 3
    assert carol.check_password(password)
    assert response["Cache-Control"].startswith("max-age=0") or "no-store" in response["Cache-Control"]

    create = AuditEvent.objects.get(action="user.create", object_id=str(carol.pk))
    assert create.actor_username == "secadmin"
    assert create.changes["username"] == "carol" and create.changes["unit"] == org.a2.pk
    assert create.changes["password"] == "[redacted]"
    grant = AuditEvent.objects.get(action="role.grant", object_id=str(carol.pk))
    assert grant.changes == {"role": Role.CUSTOMER_MANAGER, "scope": DataScope.OWN}
    for event in AuditEvent.objects.all():
        stored = json.dumps([event.changes, event.extra, event.object_repr], ensure_ascii=False)
        assert password not in stored

    # Shown once: kept neither in a cookie nor in the session, and gone on the next page.
    assert all(password not in morsel.value for morsel in response.cookies.values())
    assert password not in json.dumps(dict(client.session.items()))
    again = client.get(reverse("person_detail", args=[carol.pk]))
    assert password not in again.content.decode()


def test_create_account_with_typed_password_then_errors_next_to_fields(client, people, org):
    signin(client, people.secadmin)
    url = reverse("person_create")
    base = {"username": "dave", "full_name": "周大", "unit": "A1", "language": "zh-hans"}
    weak = client.post(url, {**base, "password": "short"})
    assert weak.status_code == 200 and weak.context["form"].errors["password"]
    nothing = client.post(url, base)
    assert nothing.context["form"].errors["password"]
    unknown_unit = client.post(url, {**base, "unit": "NOPE", "generate": "on"})
    assert unknown_unit.context["form"].errors["unit"]
    taken = client.post(url, {**base, "username": "alice", "generate": "on"})
    assert "alice" in " ".join(taken.context["form"].errors["username"])
    assert not User.objects.filter(username="dave").exists()

    ok = client.post(url, {**base, "password": "Typed#Pass2026"})
    dave = User.objects.get(username="dave")
    assert ok.status_code == 302 and ok["Location"] == reverse("person_detail", args=[dave.pk])
    assert dave.check_password("Typed#Pass2026") and dave.must_change_password
    assert not dave.role_assignments.exists()


def test_admin_role_takes_no_scope_when_created(client, people):
    signin(client, people.secadmin)
    response = client.post(reverse("person_create"), {
        "username": "aud2", "full_name": "审计二", "language": "zh-hans", "role": Role.AUDIT_ADMIN,
        "scope": DataScope.ALL, "generate": "on",
    })  # fmt: skip
    assert response.context["form"].errors["scope"]
    assert not User.objects.filter(username="aud2").exists()


def test_edit_account_is_audited_with_before_and_after(client, people, org):
    signin(client, people.secadmin)
    url = reverse("person_edit", args=[people.alice.pk])
    form = client.get(url).context["form"]
    assert form.initial["unit"] == "A1"
    response = client.post(url, {"full_name": "王丽", "unit": "A2", "position": "高级客户经理",
                                 "manager_grade": "grade2", "language": "zh-hans"})  # fmt: skip
    assert response.status_code == 302
    people.alice.refresh_from_db()
    assert people.alice.unit == org.a2 and people.alice.manager_grade == "grade2"
    event = AuditEvent.objects.get(action="user.update")
    assert event.changes["unit"] == [org.a1.pk, org.a2.pk]
    assert event.changes["position"] == ["", "高级客户经理"]
    assert "full_name" not in event.changes

    bad = client.post(url, {"full_name": "", "unit": "ZZ", "language": "zh-hans"})
    assert bad.context["form"].errors["full_name"] and bad.context["form"].errors["unit"]


def test_edit_changes_only_the_edited_fields(client, people, org):
    # alice's station closed after she was placed there; her phone number can still be corrected.
    Unit.objects.filter(pk=org.a1.pk).update(is_active=False)
    signin(client, people.secadmin)
    url = reverse("person_edit", args=[people.alice.pk])
    response = client.post(url, {**client.get(url).context["form"].initial, "phone": "13900001111"})
    assert response.status_code == 302, response.context["form"].errors
    people.alice.refresh_from_db()
    assert people.alice.phone == "13900001111" and people.alice.unit == org.a1
    assert AuditEvent.objects.get(action="user.update").changes == {"phone": ["", "13900001111"]}
    moved = client.post(url, {**client.get(url).context["form"].initial, "unit": "B1"})
    assert moved.status_code == 302
    unchanged = client.post(url, client.get(url).context["form"].initial)
    assert unchanged.status_code == 302
    assert AuditEvent.objects.filter(action="user.update").count() == 2


def test_deactivate_ends_the_persons_session_and_is_audited(client, people, password):
    alice_client = Client()
    assert alice_client.post(reverse("login"), {"username": "alice", "password": password}).status_code == 302
    assert alice_client.get(reverse("person_detail", args=[people.alice.pk])).status_code == 200
    alice_session = alice_client.session.session_key
    assert Session.objects.filter(session_key=alice_session).exists()

    signin(client, people.secadmin)
    url = reverse("person_set_active", args=[people.alice.pk])
    refused = client.post(url, {"active": "0", "reason": ""})
    assert refused.status_code == 302
    people.alice.refresh_from_db()
    assert people.alice.is_active

    response = client.post(url, {"active": "0", "reason": "left the company"})
    assert response.status_code == 302
    people.alice.refresh_from_db()
    assert not people.alice.is_active
    event = AuditEvent.objects.get(action="user.deactivate")
    assert event.extra["reason"] == "left the company" and event.extra["sessions_ended"] == 1
    assert event.changes == {"is_active": [True, False]}
    assert not Session.objects.filter(session_key=alice_session).exists()

    after = alice_client.get(reverse("person_detail", args=[people.alice.pk]))
    assert after.status_code == 302 and after["Location"].startswith(reverse("login"))

    client.post(url, {"active": "1"})
    people.alice.refresh_from_db()
    assert people.alice.is_active
    assert AuditEvent.objects.filter(action="user.reactivate").count() == 1


def test_security_admin_cannot_deactivate_themselves(client, people):
    signin(client, people.secadmin)
    response = client.post(reverse("person_set_active", args=[people.secadmin.pk]),
                           {"active": "0", "reason": "x"}, follow=True)  # fmt: skip
    people.secadmin.refresh_from_db()
    assert people.secadmin.is_active
    assert any("your own account" in m for m in messages_of(response))


def test_unlock(client, people):
    User.objects.filter(pk=people.alice.pk).update(locked_until=timezone.now() + timedelta(minutes=30),
                                                   failed_login_count=3)  # fmt: skip
    signin(client, people.secadmin)
    response = client.post(reverse("person_unlock", args=[people.alice.pk]))
    assert response.status_code == 302
    people.alice.refresh_from_db()
    assert people.alice.locked_until is None and people.alice.failed_login_count == 0
    assert AuditEvent.objects.filter(action="user.unlock", object_id=str(people.alice.pk)).exists()


def test_password_reset_forces_a_change_and_keeps_the_password_out_of_the_trail(client, people):
    assert not people.alice.must_change_password
    signin(client, people.secadmin)
    response = client.post(reverse("person_password_reset", args=[people.alice.pk]), {"generate": "on"})
    assert response.status_code == 200
    password = [m for m in messages_of(response) if "alice" in m][0].rsplit(": ", 1)[1]
    people.alice.refresh_from_db()
    assert people.alice.must_change_password
    assert people.alice.check_password(password)
    event = AuditEvent.objects.get(action="user.password_reset")
    assert event.object_id == str(people.alice.pk)
    assert password not in json.dumps([event.changes, event.extra], ensure_ascii=False)

    typed = client.post(reverse("person_password_reset", args=[people.bob.pk]),
                        {"password": "Other#Pass2026"})  # fmt: skip
    assert typed.status_code == 302
    people.bob.refresh_from_db()
    assert people.bob.must_change_password and people.bob.check_password("Other#Pass2026")
    weak = client.post(reverse("person_password_reset", args=[people.bob.pk]), {"password": "bob"})
    assert weak.context["form"].errors["password"]


def test_grant_with_default_scope_and_revoke(client, people):
    signin(client, people.secadmin)
    grant = client.post(reverse("person_role_grant", args=[people.alice.pk]),
                        {"role": Role.MARKET_MANAGER, "scope": ""})  # fmt: skip
    assert grant.status_code == 302
    assignment = RoleAssignment.objects.get(user=people.alice, role=Role.MARKET_MANAGER)
    assert assignment.scope == DataScope.SUBTREE and assignment.granted_by == people.secadmin
    assert AuditEvent.objects.get(action="role.grant").changes == {"role": Role.MARKET_MANAGER,
                                                                   "scope": DataScope.SUBTREE}  # fmt: skip

    client.post(reverse("person_role_grant", args=[people.alice.pk]),
                {"role": Role.MARKET_MANAGER, "scope": DataScope.UNIT})  # fmt: skip
    assert RoleAssignment.objects.get(user=people.alice, role=Role.MARKET_MANAGER).scope == DataScope.UNIT

    revoke = client.post(reverse("person_role_revoke", args=[people.alice.pk]), {"role": Role.MARKET_MANAGER})
    assert revoke.status_code == 302
    assert not RoleAssignment.objects.filter(user=people.alice, role=Role.MARKET_MANAGER).exists()
    assert AuditEvent.objects.get(action="role.revoke").changes == {"role": Role.MARKET_MANAGER}


def test_grant_page_offers_each_roles_default_scope(client, people):
    signin(client, people.secadmin)
    response = client.get(reverse("person_role_grant", args=[people.alice.pk]))
    defaults = {d["role"]: d for d in response.context["role_defaults"]}
    assert defaults[Role.CUSTOMER_MANAGER]["default_scope"] == DataScope.OWN
    assert defaults[Role.AUDIT_ADMIN]["admin"] and defaults[Role.AUDIT_ADMIN]["default_scope"] == ""
    assert 'id="role-defaults"' in response.content.decode()


# ---------------------------------------------------------------- export


def test_export_is_audited_with_count_and_filters(client, people):
    signin(client, people.head_a)
    response = client.get(reverse("people_export"), {"unit": "A1", "status": "active"})
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    assert response.content.startswith("\ufeff".encode())
    rows = csv_rows(response)
    assert {r[0] for r in rows[1:]} == {"alice", "amy", "stan"}
    alice = next(r for r in rows if r[0] == "alice")
    assert alice[1] == "王丽" and alice[2] == "A1"
    event = AuditEvent.objects.get(action="user.export")
    assert event.actor_username == "head_a"
    assert event.extra["count"] == 3
    assert event.extra["filters"] == {"unit": "A1", "status": "active"}


@pytest.mark.parametrize("who", ["sysadmin", "auditor", "alice"])
def test_export_refused_without_people_capability(client, people, who):
    signin(client, getattr(people, who))
    assert client.get(reverse("people_export")).status_code == 403
    assert not AuditEvent.objects.filter(action="user.export").exists()


def test_export_defuses_spreadsheet_formulas(client, people):
    User.objects.filter(pk=people.alice.pk).update(position='=HYPERLINK("http://x")', phone="+8613800000000")
    signin(client, people.head_a)
    alice = next(r for r in csv_rows(client.get(reverse("people_export"))) if r[0] == "alice")
    assert alice[4].startswith("'=")
    assert alice[6] == "+8613800000000"


# ---------------------------------------------------------------- generated passwords


def test_generated_passwords_satisfy_the_rules():
    seen = set()
    for _ in range(300):
        password = generate_password(User(username="ab"))
        assert len(password) == 12
        assert character_classes(password) >= 3
        assert "ab" not in password.lower()
        password_validation.validate_password(password, User(username="ab"))
        seen.add(password)
    assert len(seen) == 300
