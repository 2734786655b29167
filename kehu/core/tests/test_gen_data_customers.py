"""``kehu gen-data --customers``: bulk customers that the services, the search and the counters agree with."""

from __future__ import annotations

import io
from collections import Counter

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import translation

from kehu.accounts.models import User
from kehu.audit.models import AuditEvent
from kehu.core.divisions import is_known_division
from kehu.core.errors import ServiceError
from kehu.core.gendata import generate_customers, generate_org
from kehu.customers.codes import parse_code
from kehu.customers.creditcode import credit_code_error
from kehu.customers.duplicates import name_key
from kehu.customers.models import Agreement, Contact, Customer, CustomerPhone, DivisionSequence
from kehu.customers.personal import customers_by_phone
from kehu.customers.search import FTS_TABLE, PG_INDEX, customer_search_tokens, pinyin_syllables
from kehu.customers.selectors import customer_search
from kehu.customers.services import customer_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def generated():
    generate_org(units=200, people_per_leaf=1.5, seed=3, prefix="T")
    result = generate_customers(customers=500, prefix="T", seed=3, batch_size=120, phone_share=0.3,
                                contact_share=0.5, agreement_share=0.5, branch_share=0.05)  # fmt: skip
    return result


def province_head():
    return User.objects.get(username="t-0-000000.1")


def test_counts_codes_and_counters(generated):
    r = generated
    customers = Customer.objects.all()
    assert customers.count() == r.customers == 500 == r.institutions + r.individuals
    assert r.branches == customers.filter(parent__isnull=False).count() > 0
    assert Contact.objects.count() == r.contacts > 0
    assert Agreement.objects.count() == r.agreements > 0
    assert CustomerPhone.objects.count() == r.phones > 0
    assert (
        sum(r.by_status.values()) == 500
        and Counter(customers.values_list("status", flat=True)) == r.by_status
    )

    highest: dict[str, int] = {}
    for c in customers.select_related("parent", "owning_unit"):
        code = parse_code(c.code)
        if c.parent_id is None:
            assert code.branch == 0 and code.division == c.division_code == c.owning_unit.division_code
            highest[code.division] = max(highest.get(code.division, 0), code.sequence)
        else:
            assert c.code[:11] == c.parent.code[:11] and 1 <= code.branch <= c.parent.last_branch
        assert is_known_division(c.division_code)
        assert c.unit_path == c.owning_unit.path and c.owning_unit.code.startswith("T-")
        assert c.name_key == name_key(c.name)
        if c.credit_code:
            assert credit_code_error(c.credit_code) is None
        assert c.updated_at >= c.created_at
    counters = dict(DivisionSequence.objects.values_list("division_code", "last_sequence"))
    assert {d: counters[d] for d in highest} == highest
    assert r.divisions == len(highest)
    assert len({c for c in customers.values_list("code", flat=True)}) == 500
    heads = customers.filter(branches__isnull=False).distinct()
    assert all(h.last_branch == h.branches.count() for h in heads)
    keys = Counter(customers.values_list("name_key", flat=True))
    assert max(keys.values()) == 1

    # Managers: a customer manager of the unit or below; every customer within the run's units.
    for c in customers.filter(lead_manager__isnull=False).select_related("lead_manager__unit", "owning_unit")[
        :100
    ]:
        assert c.lead_manager.unit.path.startswith(c.owning_unit.path)
    event = AuditEvent.objects.get(action="gen_data.customers")
    assert event.extra["customers"] == 500 and event.extra["prefix"] == "T"


def test_search_fields_equal_what_the_services_write(generated):
    """Equal, except where reading the name part by part picks another pinyin than reading it whole
    (a few in a hundred: 于思娟 yu si juan, not yu sai juan); the characters, bigrams and tags agree."""
    differ = 0
    for c in Customer.objects.all():
        service = customer_search_tokens(name=c.name, short_name=c.short_name, tags=c.tags)
        if c.search_tokens != service:
            differ += 1
            mine, theirs = set(c.search_tokens.split()), set(service.split())
            assert {t for t in mine if not t.isascii()} == {t for t in theirs if not t.isascii()}, c.name
            assert {t for t in mine if t.startswith("zz")} == {t for t in theirs if t.startswith("zz")}
    assert differ < 15
    assert Customer.objects.exclude(short_name="").exists() and Customer.objects.exclude(tags=[]).exists()


def test_generated_customers_are_found_by_pinyin_chinese_phone_and_code(generated):
    head = province_head()
    company = Customer.objects.filter(kind="institution", parent__isnull=True).exclude(short_name="").first()
    syllables = pinyin_syllables(company.short_name)
    assert company in customer_search(viewer=head, q="".join(syllables))  # full pinyin
    assert company in customer_search(viewer=head, q="".join(s[0] for s in syllables))  # initials
    assert company in customer_search(viewer=head, q=company.short_name)
    assert company in customer_search(viewer=head, q=company.code[:9])
    phone = CustomerPhone.objects.select_related("customer").first()
    assert list(customers_by_phone(viewer=head, number=phone.number)) == [phone.customer]
    assert phone.customer in customer_search(viewer=head, q=phone.number)
    # The index was rebuilt and its upkeep is back: a customer added afterwards is found too.
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s", ['"wu" *'])
            assert cursor.fetchone()[0] > 0
            cursor.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'customers_%'"
            )
            assert cursor.fetchone()[0] == 3
    else:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", [PG_INDEX])
            assert cursor.fetchone()
    cm = company.lead_manager
    added = customer_create(acting_user=cm, name="锦绣前程加油卡俱乐部", kind="institution", owning_unit=cm.unit,
                            division_code=cm.unit.division_code)  # fmt: skip
    assert added in customer_search(viewer=head, q="jinxiu")
    assert (
        parse_code(added.code).sequence
        == DivisionSequence.objects.get(pk=cm.unit.division_code).last_sequence
    )


def test_a_second_run_over_the_same_units_leaves_out_taken_codes_and_phones(generated):
    again = generate_customers(customers=200, prefix="T", seed=3, batch_size=80, phone_share=0.3)
    # Same seed: the same credit codes and phones come up again and are left out, not duplicated.
    assert again.credit_codes_dropped > 0 and again.phones_dropped > 0
    assert Customer.objects.count() == 700
    codes = [c for c in Customer.objects.exclude(credit_code="").values_list("credit_code", flat=True)]
    assert len(codes) == len(set(codes))
    assert AuditEvent.objects.filter(action="gen_data.customers").count() == 2


def test_index_kept_during_the_load_gives_the_same_search():
    generate_org(units=60, people_per_leaf=1.0, seed=5, prefix="K")
    generate_customers(customers=150, prefix="K", seed=5, pause_index=False)
    head = User.objects.get(username="k-0-000000.1")
    some = Customer.objects.filter(kind="institution").exclude(short_name="").first()
    assert some in customer_search(viewer=head, q="".join(pinyin_syllables(some.short_name)))


def test_same_seed_same_customers():
    generate_org(units=60, people_per_leaf=1.0, seed=9, prefix="A")
    generate_customers(customers=80, prefix="A", seed=9)
    first = list(Customer.objects.order_by("pk").values_list("name", "kind", "status", "division_code"))
    Customer.objects.filter(parent__isnull=False).delete()
    Customer.objects.all().delete()
    generate_customers(customers=80, prefix="A", seed=9)
    assert (
        list(Customer.objects.order_by("pk").values_list("name", "kind", "status", "division_code")) == first
    )


def test_command_adds_customers_to_existing_units_and_refuses_bad_options():
    call_command("gen_data", "--units", "80", "--prefix", "C", "--seed", "2", stdout=io.StringIO())
    out = io.StringIO()
    with translation.override("en"):
        call_command(
            "gen_data", "--units", "0", "--prefix", "C", "--customers", "60", "--seed", "2", stdout=out
        )
    assert "Generated 60 customers" in out.getvalue()
    assert Customer.objects.filter(owning_unit__code__startswith="C-").count() == 60
    with pytest.raises(CommandError, match="--customers"):
        call_command("gen_data", "--units", "0", "--prefix", "C", stdout=io.StringIO())
    with pytest.raises(CommandError, match="Z-"):
        call_command("gen_data", "--units", "0", "--prefix", "Z", "--customers", "5", stdout=io.StringIO())
    with pytest.raises(CommandError, match="phone-share"):
        call_command("gen_data", "--units", "0", "--prefix", "C", "--customers", "5", "--phone-share", "1.5",
                     stdout=io.StringIO())  # fmt: skip
    assert Customer.objects.count() == 60
    with pytest.raises(ServiceError):
        generate_customers(customers=0, prefix="C")
