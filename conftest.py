"""Shared fixtures: a small organisation and a cast of people (healthchecks-style alice/bob/charlie).

    province P
    ├── city A ── station A1 (alice: customer manager), station A2
    └── city B ── station B1 (bob: customer manager)

head_a is the unit head of city A (sees its subtree); bob is the peer in another branch who must see
nothing of city A; the three administrators sit at the province.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kehu.accounts.roles import Role
from kehu.testing.factories import TEST_PASSWORD, UnitFactory, UnitTypeFactory, UserFactory


def pytest_configure(config):
    from django.conf import settings

    # Hashing strength is not under test; speed is.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Production uses the hashed-manifest storage filled by collectstatic; tests serve straight from the apps.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _default_language():
    """Every test starts in the default language: a request's activate() must not leak into the next test."""
    from django.conf import settings
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.deactivate()


@pytest.fixture
def org(db):
    province_t = UnitTypeFactory(code="province", name="省公司", rank=0)
    city_t = UnitTypeFactory(code="city", name="地市分公司", rank=1)
    station_t = UnitTypeFactory(code="station", name="加油站", rank=3)
    province = UnitFactory(code="P", name="山东销售公司", unit_type=province_t, division_code="370000")
    city_a = UnitFactory(
        code="CA", name="济南分公司", unit_type=city_t, parent=province, division_code="370100"
    )
    city_b = UnitFactory(
        code="CB", name="青岛分公司", unit_type=city_t, parent=province, division_code="370200"
    )
    a1 = UnitFactory(code="A1", name="历下加油站", unit_type=station_t, parent=city_a, division_code="370102")
    a2 = UnitFactory(code="A2", name="市中加油站", unit_type=station_t, parent=city_a, division_code="370103")
    b1 = UnitFactory(code="B1", name="市南加油站", unit_type=station_t, parent=city_b, division_code="370202")
    return SimpleNamespace(
        province=province, city_a=city_a, city_b=city_b, a1=a1, a2=a2, b1=b1,
        types=SimpleNamespace(province=province_t, city=city_t, station=station_t),
    )  # fmt: skip


@pytest.fixture
def people(org):
    return SimpleNamespace(
        alice=UserFactory(username="alice", full_name="王丽", unit=org.a1, roles=[Role.CUSTOMER_MANAGER]),
        alice_peer=UserFactory(username="amy", full_name="李敏", unit=org.a1, roles=[Role.CUSTOMER_MANAGER]),
        bob=UserFactory(username="bob", full_name="张博", unit=org.b1, roles=[Role.CUSTOMER_MANAGER]),
        station_mgr_a1=UserFactory(username="stan", full_name="赵站", unit=org.a1, roles=[Role.STATION_MANAGER]),
        head_a=UserFactory(username="head_a", full_name="刘主任", unit=org.city_a, roles=[Role.UNIT_HEAD]),
        head_p=UserFactory(username="head_p", full_name="省领导", unit=org.province, roles=[Role.UNIT_HEAD]),
        sysadmin=UserFactory(username="sysadmin", full_name="系统管理员", unit=org.province,
                             roles=[Role.SYSTEM_ADMIN]),
        secadmin=UserFactory(username="secadmin", full_name="安全管理员", unit=org.province,
                             roles=[Role.SECURITY_ADMIN]),
        auditor=UserFactory(username="auditor", full_name="审计管理员", unit=org.province,
                            roles=[Role.AUDIT_ADMIN]),
    )  # fmt: skip


@pytest.fixture
def password():
    return TEST_PASSWORD


@pytest.fixture
def login(client):
    """Log a person in through the real login page; returns the client."""

    def _login(user, pw: str = TEST_PASSWORD):
        response = client.post("/login/", {"username": user.username, "password": pw})
        assert response.status_code in (200, 302), response
        return client

    return _login
