"""``kehu demo`` customers: a few thousand realistic customers written as the services would write them."""

from __future__ import annotations

import io
from collections import Counter

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Count
from django.utils import translation

from kehu.accounts.models import User
from kehu.audit.models import AuditEvent
from kehu.core.demo import DEMO_PASSWORD, NEAR_DUPLICATES, demo_customer_plan, demo_load
from kehu.core.divisions import is_known_division
from kehu.customers.codes import parse_code
from kehu.customers.creditcode import credit_code_error
from kehu.customers.duplicates import SimilarNamesFound, name_key
from kehu.customers.models import Agreement, Contact, Customer, CustomerPhone, DivisionSequence
from kehu.customers.personal import customers_by_phone
from kehu.customers.search import customer_search_tokens
from kehu.customers.selectors import customer_search
from kehu.customers.services import customer_create
from kehu.org.models import Unit

pytestmark = pytest.mark.django_db


def test_plan_is_deterministic_with_a_few_thousand_distinct_customers():
    plan = demo_customer_plan()
    assert [s.fake.name for s in plan] == [s.fake.name for s in demo_customer_plan()]
    assert 2500 <= len(plan) <= 3500
    names = [s.fake.name for s in plan]
    assert len(set(names)) == len(names)
    keys = Counter(name_key(n) for n in names)
    twins = [s for s in plan if s.similar_to is not None]
    assert len(twins) == NEAR_DUPLICATES
    for twin in twins:  # the deliberate near-duplicates, and only they, share a key
        assert name_key(twin.fake.name) == name_key(plan[twin.similar_to].fake.name)
        assert keys[name_key(twin.fake.name)] == 2
    assert sum(1 for n in keys.values() if n > 1) == NEAR_DUPLICATES
    kinds = Counter(s.fake.kind for s in plan)
    assert kinds["institution"] > 1000 and kinds["individual"] > 800


@pytest.fixture
def demo():
    return demo_load()


def test_demo_creates_customers_with_contacts_agreements_and_phones(demo):
    plan = demo_customer_plan()
    customers = Customer.objects.all()
    assert demo.customers_created == demo.customers_total == len(plan) == customers.count()
    assert (
        demo.contacts_created == Contact.objects.count()
        and demo.agreements_created == Agreement.objects.count()
    )
    demo_units = set(Unit.objects.values_list("pk", flat=True))

    # Codes: unique, well formed, each division's counter at its highest head-office number.
    highest: dict[str, int] = {}
    for c in customers.select_related("parent", "owning_unit"):
        code = parse_code(c.code)
        assert is_known_division(c.division_code)
        if c.parent is None:
            assert code.branch == 0 and code.division == c.division_code
            highest[code.division] = max(highest.get(code.division, 0), code.sequence)
        else:  # a branch: its head office's first 11 digits
            assert c.code[:11] == c.parent.code[:11] and code.branch >= 1
            assert c.parent.last_branch >= code.branch
        assert c.owning_unit_id in demo_units and c.unit_path == c.owning_unit.path
        assert c.name_key == name_key(c.name)
        assert c.search_tokens == customer_search_tokens(name=c.name, short_name=c.short_name, tags=c.tags)
        if c.credit_code:
            assert credit_code_error(c.credit_code) is None
        assert c.lead_manager is not None and c.lead_manager.has_role("customer_manager")
        assert c.backup_manager_id != c.lead_manager_id
    assert highest == dict(DivisionSequence.objects.values_list("division_code", "last_sequence"))
    assert customers.filter(parent__isnull=False).count() >= 25
    heads = customers.filter(branches__isnull=False).annotate(n=Count("branches"))
    assert all(h.last_branch == h.n for h in heads)

    # Every customer has one to three contacts; institutions' agreements at every level.
    per_customer = Counter(Contact.objects.values_list("customer_id", flat=True))
    assert set(per_customer.values()) <= {1, 2, 3} and len(per_customer) == len(plan)
    levels = Counter(Agreement.objects.values_list("signing_level", flat=True))
    assert set(levels) == {"province", "city", "county", "station"}
    province_deals = Agreement.objects.filter(signing_level="province")
    assert all(
        a.signing_unit.unit_type.code == "province"
        for a in province_deals.select_related("signing_unit__unit_type")
    )
    assert Agreement.objects.filter(signing_level="city", signing_unit__unit_type__code="city").exists()

    # Phones: encrypted at rest, found by their blind index.
    phone = CustomerPhone.objects.select_related("customer").first()
    assert phone.number.isdigit()
    with connection.cursor() as cursor:
        cursor.execute("SELECT number FROM customers_customerphone WHERE id = %s", [phone.pk])
        stored = cursor.fetchone()[0]
    assert phone.number not in stored and stored.startswith("v1.")
    head = User.objects.get(username="sd.head")
    assert phone.customer in customers_by_phone(viewer=head, number=phone.number)
    assert CustomerPhone.objects.values("number_index").distinct().count() == CustomerPhone.objects.count()
    assert Customer.objects.exclude(id_number="").exists()

    # The trail: one creation event per customer by its lead manager, one for the run.
    events = AuditEvent.objects.filter(action="customer.create")
    assert events.count() == len(plan)
    some = customers.first()
    event = events.get(object_id=str(some.pk))
    assert event.actor_id == some.created_by_id and event.extra["source"] == "kehu demo"
    assert AuditEvent.objects.filter(action="demo.customers").count() == 1


def test_demo_customers_are_searchable_and_scoped(demo):
    head = User.objects.get(username="sd.head")
    city = User.objects.get(username="qd.head")
    cm = User.objects.get(username="jn-lx-001.cm1")
    station_manager = User.objects.get(username="jn-lx-001.station")
    every = Customer.objects.count()
    assert customer_search(viewer=head).count() == every
    qingdao = customer_search(viewer=city)
    assert 0 < qingdao.count() < every
    low, high = city.unit.subtree_path_range()
    assert not qingdao.exclude(unit_path__gte=low, unit_path__lt=high).exists()
    mine = customer_search(viewer=cm)
    assert mine.exists()
    assert not mine.exclude(lead_manager=cm).exclude(backup_manager=cm).exists()
    # Another station's manager sees none of this station's customers (and a peer city none of Jinan's).
    other_station = User.objects.get(username="jn-lx-002.station")
    here = set(customer_search(viewer=station_manager).values_list("pk", flat=True))
    assert here and not here & set(customer_search(viewer=other_station).values_list("pk", flat=True))
    assert not qingdao.filter(owning_unit=cm.unit).exists()

    # Chinese, pinyin and initials find what the demo made.
    company = Customer.objects.filter(kind="institution", name__startswith="济南市").first()
    assert company in customer_search(viewer=head, q=company.name[3:7])
    assert company in customer_search(viewer=head, q="jinanshi")
    assert customer_search(viewer=head, q="wuliu").filter(name__contains="物流").exists()


def test_near_duplicates_warn_like_the_services(demo, settings):
    twin_events = AuditEvent.objects.filter(action="customer.create", extra__has_key="duplicate_reason")
    assert twin_events.count() == NEAR_DUPLICATES
    twin = Customer.objects.get(pk=twin_events.first().object_id)
    original = Customer.objects.exclude(pk=twin.pk).get(name_key=twin.name_key)
    assert twin_events.first().extra["similar_to"] == [original.code]
    cm = twin.lead_manager
    with pytest.raises(SimilarNamesFound):
        customer_create(acting_user=cm, name=original.name, kind="institution", owning_unit=cm.unit,
                        division_code=cm.unit.division_code)  # fmt: skip


def test_running_twice_changes_nothing_and_logins_still_work():
    out = io.StringIO()
    with translation.override("en"):
        call_command("demo", stdout=out)
    assert "customers" in out.getvalue()
    before = (Customer.objects.count(), Contact.objects.count(), Agreement.objects.count(),
              CustomerPhone.objects.count(), AuditEvent.objects.count(),
              list(DivisionSequence.objects.order_by("pk").values_list("pk", "last_sequence")))  # fmt: skip
    out = io.StringIO()
    with translation.override("en"):
        call_command("demo", stdout=out)
    after = (Customer.objects.count(), Contact.objects.count(), Agreement.objects.count(),
             CustomerPhone.objects.count(), AuditEvent.objects.count(),
             list(DivisionSequence.objects.order_by("pk").values_list("pk", "last_sequence")))  # fmt: skip
    assert after == before
    assert "nothing changed" in out.getvalue() and f"{before[0]} customers" in out.getvalue()
    assert User.objects.get(username="jn-lx-001.cm1").check_password(DEMO_PASSWORD)


def test_a_deleted_demo_customer_comes_back_with_a_new_code():
    demo_load()
    victim = Customer.objects.filter(parent__isnull=True, branches__isnull=True, kind="individual").first()
    old_code = victim.code
    victim.delete()
    result = demo_load()
    assert result.customers_created == 1
    again = Customer.objects.get(name=victim.name)
    assert again.code != old_code  # codes are never handed out twice
    assert again.contacts.exists()
