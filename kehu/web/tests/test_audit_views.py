"""Audit trail pages: only the audit administrator reads the trail, every read is itself recorded, and
the verify button finds rows altered behind the application's back."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kehu.accounts.middleware import SESSION_LAST_SEEN, SESSION_LOGIN_AT
from kehu.accounts.roles import Role
from kehu.accounts.services import RoleGrant, user_create, user_unlock
from kehu.audit.access import audit_trail_viewed
from kehu.audit.models import AuditEvent, Outcome
from kehu.audit.services import audit_record
from kehu.core.context import request_context

SHANGHAI = ZoneInfo("Asia/Shanghai")


def signin(client: Client, user) -> Client:
    client.force_login(user)
    session = client.session
    session[SESSION_LOGIN_AT] = session[SESSION_LAST_SEEN] = time.time()
    session.save()
    return client


def seqs(response) -> list[int]:
    assert response.status_code == 200, response
    return [row["event"].seq for row in response.context["rows"]]


@pytest.fixture
def trail(people, org):
    """A few real events: the security administrator creates an account from the web, unlocks another."""
    with request_context(ip="10.1.2.3", user_agent="pytest", channel="web"):
        carol = user_create(
            acting_user=people.secadmin, username="carol", full_name="孙佳", password="Temp#Pass2026x",
            unit=org.a2, roles=[RoleGrant(Role.CUSTOMER_MANAGER)],
        )  # fmt: skip
        user_unlock(acting_user=people.secadmin, user=people.bob)
    audit_record(actor=people.alice, action="auth.login_failed", obj=people.alice, outcome=Outcome.FAILURE,
                 extra={"reason": "wrong password"})  # fmt: skip
    return carol


# ---------------------------------------------------------------- who may read


@pytest.mark.parametrize("who", ["secadmin", "sysadmin", "head_p", "alice"])
def test_only_the_audit_admin_reads_the_trail(client, people, trail, who):
    signin(client, getattr(people, who))
    first = AuditEvent.objects.order_by("seq").first()
    assert client.get(reverse("audit_list")).status_code == 403
    assert client.get(reverse("audit_list"), {"action": "user."}).status_code == 403
    assert client.get(reverse("audit_detail", args=[first.seq])).status_code == 403
    assert client.post(reverse("audit_verify")).status_code == 403
    # Refused attempts are on the record too.
    denied = AuditEvent.objects.filter(actor_username=who, outcome=Outcome.DENIED)
    assert set(denied.values_list("action", flat=True)) == {"audit.search", "audit.view", "audit.verify"}
    assert not AuditEvent.objects.filter(actor_username=who, action__startswith="audit.",
                                         outcome=Outcome.SUCCESS).exists()  # fmt: skip


def test_security_and_system_admins_have_no_audit_menu_entry(client, people):
    for who in ("secadmin", "sysadmin"):
        signin(client, getattr(people, who))
        html = client.get(reverse("people_list") if who == "secadmin" else reverse("home")).content.decode()
        assert reverse("audit_list") not in html


def test_anonymous_is_sent_to_login(client, trail):
    response = client.get(reverse("audit_list"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert not AuditEvent.objects.filter(action="audit.search").exists()


def test_audit_admin_sees_the_trail_newest_first(client, people, trail):
    signin(client, people.auditor)
    expected = list(AuditEvent.objects.order_by("-seq").values_list("seq", flat=True))
    response = client.get(reverse("audit_list"))
    assert seqs(response) == expected
    assert response["Cache-Control"] and "no-cache" in response["Cache-Control"]


# ---------------------------------------------------------------- what a row shows


def test_row_shows_time_in_shanghai_user_ip_channel_object_and_changes(client, people, trail):
    signin(client, people.auditor)
    event = AuditEvent.objects.get(action="user.create")
    response = client.get(reverse("audit_list"), {"action": "user.create"})
    html = response.content.decode()
    row = html.split(f'data-seq="{event.seq}"')[1].split("</tr>")[0]
    shanghai = timezone.localtime(event.at, SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
    utc = event.at.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%d %H:%M:%S")
    assert shanghai in row and utc not in row
    assert "secadmin" in row and "10.1.2.3" in row and "web" in row and "user.create" in row
    assert "accounts.user" in row and "carol" in row
    assert "<details>" in row
    # Pretty JSON: one key per line, indented, Chinese as is.
    assert "\n  &quot;full_name&quot;: &quot;孙佳&quot;" in row
    assert "Temp#Pass2026x" not in html


def test_event_detail_shows_before_and_after_and_is_recorded(client, people, trail):
    signin(client, people.auditor)
    grant = AuditEvent.objects.get(action="role.grant")
    response = client.get(reverse("audit_detail", args=[grant.seq]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "&quot;role&quot;: &quot;customer_manager&quot;" in html and grant.hash in html
    viewed = AuditEvent.objects.get(action="audit.view")
    assert viewed.actor_username == "auditor" and viewed.extra["filters"] == {"seq": grant.seq}
    assert client.get(reverse("audit_detail", args=[999_999])).status_code == 404


# ---------------------------------------------------------------- filters


def test_filters(client, people, trail):
    signin(client, people.auditor)
    url = reverse("audit_list")

    def actions(**params):
        return {row["event"].action for row in client.get(url, params).context["rows"]}

    assert actions(action="user.") == {"user.create", "user.unlock"}
    assert actions(action="role.") == {"role.grant"}
    assert actions(username="alice") == {"auth.login_failed"}
    assert actions(outcome="failure") == {"auth.login_failed"}
    assert actions(q="carol") >= {"user.create", "role.grant"}
    assert "auth.login_failed" not in actions(q="carol")
    assert actions(object_type="accounts.user", action="user.unlock") == {"user.unlock"}
    today = timezone.localdate()
    assert "user.create" in actions(since=today.isoformat(), until=today.isoformat())
    assert actions(since=(today + timedelta(days=1)).isoformat(), action="user.") == set()
    assert actions(until=(today - timedelta(days=1)).isoformat(), action="user.") == set()


def test_until_is_inclusive_in_shanghai_time(client, people, trail):
    # 23:30 in Shanghai is 15:30 UTC of the same day; "until that day" must include it.
    event = AuditEvent.objects.get(action="user.unlock")
    late = timezone.now().astimezone(SHANGHAI).replace(hour=23, minute=30, second=0, microsecond=0)
    AuditEvent.objects.filter(pk=event.pk).update(at=late)
    signin(client, people.auditor)
    day = late.date().isoformat()
    response = client.get(reverse("audit_list"), {"action": "user.unlock", "since": day, "until": day})
    assert seqs(response) == [event.seq]
    next_day = (late.date() + timedelta(days=1)).isoformat()
    assert seqs(client.get(reverse("audit_list"), {"action": "user.unlock", "since": next_day})) == []


def test_bad_dates_are_reported_not_fatal(client, people, trail):
    signin(client, people.auditor)
    response = client.get(reverse("audit_list"), {"since": "2026-05-02", "until": "2026-05-01"})
    assert response.status_code == 200 and response.context["form"].errors["until"]
    response = client.get(reverse("audit_list"), {"since": "not a date"})
    assert response.status_code == 200 and response.context["form"].errors["since"]


def test_paginated_by_50(client, people, trail):
    for i in range(60):
        audit_record(actor=people.secadmin, action="test.bulk", object_type="test", object_id=i)
    signin(client, people.auditor)
    first = client.get(reverse("audit_list"), {"action": "test."})
    assert len(first.context["rows"]) == 50 and first.context["page"].paginator.count == 60
    second = client.get(reverse("audit_list"), {"action": "test.", "page": 2})
    assert len(second.context["rows"]) == 10
    assert max(seqs(second)) < min(seqs(first))


# ---------------------------------------------------------------- reading is audited


def test_search_is_itself_audited(client, people, trail):
    signin(client, people.auditor)
    client.get(reverse("audit_list"), {"action": "user.", "username": "secadmin", "since": "2026-01-01"},
               REMOTE_ADDR="10.9.8.7")  # fmt: skip
    event = AuditEvent.objects.get(action="audit.search")
    assert event.actor_username == "auditor" and event.outcome == Outcome.SUCCESS
    assert event.ip == "10.9.8.7" and event.channel == "web"
    assert event.extra["filters"]["action"] == "user."
    assert event.extra["filters"]["username"] == "secadmin"
    assert event.extra["filters"]["since"].startswith("2026-01-01T00:00:00")
    assert "q" not in event.extra["filters"]  # empty filters are left out


def test_audit_trail_viewed_writes_one_event(people, db):
    event = audit_trail_viewed(viewer=people.auditor, action="audit.search", filters={"q": "x", "action": ""})
    assert event.action == "audit.search" and event.extra == {"filters": {"q": "x"}}
    assert AuditEvent.objects.count() == 1


# ---------------------------------------------------------------- verify


def test_verify_reports_an_intact_chain_then_an_altered_row(client, people, trail):
    signin(client, people.auditor)
    count = AuditEvent.objects.count()
    response = client.post(reverse("audit_verify"))
    assert response.status_code == 200
    result = response.context["result"]
    assert result.ok and result.checked == count
    assert 'data-ok="1"' in response.content.decode()
    recorded = AuditEvent.objects.get(action="audit.verify")
    assert recorded.extra["result"]["ok"] is True and recorded.extra["result"]["checked"] == count

    target = AuditEvent.objects.get(action="user.unlock")
    AuditEvent.objects.filter(pk=target.pk).update(object_repr="someone else")
    response = client.post(reverse("audit_verify"))
    html = response.content.decode()
    assert not response.context["result"].ok
    assert 'data-ok="0"' in html
    assert f"event #{target.seq} (user.unlock) was altered" in html
    last = AuditEvent.objects.filter(action="audit.verify").order_by("-seq").first()
    assert last.extra["result"]["ok"] is False
    assert any(f"#{target.seq}" in p for p in last.extra["result"]["problems"])


def test_verify_is_post_only(client, people):
    signin(client, people.auditor)
    assert client.get(reverse("audit_verify")).status_code == 405


def test_paging_never_shows_an_event_twice(client, people, settings):
    from kehu.web import audit_views

    for i in range(7):
        audit_record(actor=people.alice, action="test.paging", object_repr=f"row {i}")
    signin(client, people.auditor)
    original = audit_views.PAGE_SIZE
    audit_views.PAGE_SIZE = 3
    try:
        first = client.get(reverse("audit_list"), {"action": "test.paging"})
        next_link = (
            re.search(r'href="([^"]+)" rel="next"', first.content.decode()).group(1).replace("&amp;", "&")
        )
        assert "upto=" in next_link
        audit_record(actor=people.alice, action="test.paging", object_repr="written meanwhile")
        second = client.get(reverse("audit_list") + next_link)
    finally:
        audit_views.PAGE_SIZE = original
    assert not set(seqs(first)) & set(seqs(second))
    assert max(seqs(second)) < min(seqs(first))
