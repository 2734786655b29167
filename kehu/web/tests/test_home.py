"""The home page: a panel per role, real numbers only, in the viewer's scope."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from kehu.accounts.roles import Role
from kehu.testing.factories import TEST_PASSWORD, UserFactory
from kehu.web.selectors import home_dashboard


def panels(response) -> set[str]:
    return set(re.findall(r'data-panel="([a-z_]+)"', response.content.decode()))


def stat(response, name: str) -> int:
    match = re.search(rf'data-stat="{name}">(\d+)<', response.content.decode())
    assert match, f"no stat {name}"
    return int(match.group(1))


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("alice", {"customer_manager"}),
        ("station_mgr_a1", {"station_manager"}),
        ("head_a", {"unit_head"}),
        ("head_p", {"unit_head"}),
        ("sysadmin", {"system_admin"}),
        ("secadmin", {"security_admin"}),
        ("auditor", {"audit_admin"}),
    ],
)
def test_home_shows_the_panels_of_the_users_roles(login, people, who, expected):
    client = login(getattr(people, who))
    response = client.get("/")
    assert response.status_code == 200
    assert panels(response) - {"me"} == expected


def test_every_role_panel_renders(login, org, client):
    every = [r for r in Role.values if r not in (Role.SYSTEM_ADMIN, Role.SECURITY_ADMIN, Role.AUDIT_ADMIN)]
    user = UserFactory(username="many", unit=org.city_a, roles=every)
    login(user)
    response = client.get("/")
    assert response.status_code == 200
    assert panels(response) - {"me"} == set(every)
    body = response.content.decode()
    # Features that do not exist yet say so, with no numbers.
    assert "arrives with the customer archive" in body or "arrive with the customer archive" in body
    for admin_role in (Role.SYSTEM_ADMIN, Role.SECURITY_ADMIN, Role.AUDIT_ADMIN):
        admin = UserFactory(username=f"x_{admin_role}", unit=org.province, roles=[admin_role])
        client.post("/logout/")
        login(admin)
        assert client.get("/").status_code == 200


def test_user_without_roles_gets_a_home_page(login, org, client):
    user = UserFactory(username="plain", unit=org.a1, roles=[])
    login(user)
    response = client.get("/")
    assert response.status_code == 200
    assert panels(response) == {"me"}


def test_scope_numbers_are_the_viewers(people, org):
    head_a = home_dashboard(viewer=people.head_a)
    assert head_a.scope.unit == org.city_a
    assert [u.code for u in head_a.scope.breadcrumbs] == ["P", "CA"]
    assert head_a.scope.units_below == 2  # A1 and A2, never city B's
    # alice, amy and stan in A1, head_a in city A; nobody from city B or the province.
    assert head_a.scope.people_visible == 4
    assert head_a.scope.customer_managers_visible == 2

    bob = home_dashboard(viewer=people.bob)
    assert bob.scope.units_below == 0
    assert bob.scope.people_visible == 1  # himself only: customer managers see their own records
    assert bob.accounts is None and bob.units_by_type is None and bob.login_failures_24h is None


def test_unit_head_page_shows_scope_numbers(login, people):
    client = login(people.head_a)
    response = client.get("/")
    assert stat(response, "units_below") == 2
    assert stat(response, "people_visible") == 4
    assert stat(response, "customer_managers_visible") == 2
    assert "青岛分公司" not in response.content.decode()  # city B


def test_security_admin_sees_account_counts(login, people, org, client):
    UserFactory(username="locked1", unit=org.a1, locked_until=timezone.now() + timedelta(minutes=10))
    UserFactory(username="temp1", unit=org.a1, must_change_password=True)
    UserFactory(username="gone1", unit=org.a1, is_active=False)
    login(people.secadmin)
    response = client.get("/")
    assert stat(response, "locked") == 1
    assert stat(response, "must_change") == 1
    assert stat(response, "inactive") == 1
    assert stat(response, "active") == 9 + 2  # the fixture's nine people, locked1 and temp1


def test_system_admin_sees_units_by_type(login, people):
    board = home_dashboard(viewer=people.sysadmin)
    assert [(t.name, t.total, t.active) for t in board.units_by_type] == [
        ("省公司", 1, 1),
        ("地市分公司", 2, 2),
        ("加油站", 3, 3),
    ]
    assert board.units_total == 6
    client = login(people.sysadmin)
    body = client.get("/").content.decode()
    assert "加油站" in body and 'href="/org/units/add/"' in body


def test_audit_admin_sees_recent_login_failures(client, people):
    client.post("/login/", {"username": "alice", "password": "wrong"})
    client.post("/login/", {"username": "nobody", "password": "wrong"})
    response = client.post("/login/", {"username": "auditor", "password": TEST_PASSWORD})
    assert response.status_code == 302
    response = client.get("/")
    assert stat(response, "login_failures_24h") == 2
    assert stat(response, "lockouts_24h") == 0
    assert 'href="/audit/"' in response.content.decode()


def test_not_found_and_forbidden_pages_fit_the_layout(login, people, client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert 'class="card error-page"' in response.content.decode()
    login(people.alice)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert 'class="mainnav"' in response.content.decode()
    response = client.get("/org/units/add/")
    assert response.status_code == 403
    assert 'data-testid="forbidden"' in response.content.decode()


def test_every_page_title_names_the_page_and_the_product(login, people):
    import re

    client = login(people.head_a)
    for path in ("/", "/org/", "/people/", "/jobs/", "/password/"):
        title = re.search(r"<title>(.*?)</title>", client.get(path).content.decode(), flags=re.S).group(1)
        page, _, product = title.partition(" · ")
        assert page.strip() and product.strip(), (path, title)
