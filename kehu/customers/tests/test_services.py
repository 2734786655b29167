"""Customer services: id allocation, validation, duplicates, scoping, unit moves and audit."""

from __future__ import annotations

from datetime import date

import pytest
from django.db import IntegrityError, connection, transaction
from django.http import Http404
from django.utils import translation

from kehu.accounts.roles import Role
from kehu.audit.models import AuditEvent
from kehu.core.errors import NotAllowed, ServiceError
from kehu.core.scoping import get_visible_or_404
from kehu.customers.models import Agreement, Contact, Customer, DivisionSequence
from kehu.customers.services import agreement_create, contact_create, customer_create, customer_update
from kehu.org.services import unit_move
from kehu.testing.factories import UserFactory

pytestmark = pytest.mark.django_db

CREDIT = "91350100M000100Y43"


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


def make(user, unit, name="济南顺达物流有限公司", division="370102", **kw):
    return customer_create(acting_user=user, name=name, kind=kw.pop("kind", "institution"), owning_unit=unit,
                           division_code=division, **kw)  # fmt: skip


def test_codes_count_up_per_division(people, org):
    first, second = make(people.alice, org.a1), make(people.alice, org.a1, name="二号")
    other = make(people.alice, org.a1, name="外区", division="370103")
    assert (first.code, second.code, other.code) == ("37010200001000", "37010200002000", "37010300001000")


def test_branches_take_the_head_offices_number(people, org):
    head = make(people.alice, org.a1)
    b1 = make(people.alice, org.a1, name="一分公司", parent=head)
    b2 = make(people.alice, org.a1, name="二分公司", parent=head, division="370103")
    assert (b1.code, b2.code) == ("37010200001001", "37010200001002")
    with pytest.raises(ServiceError, match="cannot have branches"):
        make(people.alice, org.a1, name="孙公司", parent=b1)


def test_codes_are_never_reused_after_deletion(people, org):
    make(people.alice, org.a1)
    second = make(people.alice, org.a1, name="二号")
    second.delete()
    assert make(people.alice, org.a1, name="三号").code == "37010200003000"


def test_a_given_code_is_checked_and_reserved(people, org):
    given = make(people.alice, org.a1, code="37010200050000")
    assert given.code == "37010200050000"
    assert DivisionSequence.objects.get(pk="370102").last_sequence == 50
    assert make(people.alice, org.a1, name="下一个").code == "37010200051000"
    with pytest.raises(ServiceError, match="taken"):
        make(people.alice, org.a1, name="重复", code="37010200050000")
    for bad, why in [("3701020005000", "exactly 14 digits"), ("99999900001000", "GB/T 2260"),
                     ("37010200060001", "belongs to a branch")]:  # fmt: skip
        with pytest.raises(ServiceError, match=why):
            make(people.alice, org.a1, name="坏", code=bad)


def test_the_database_refuses_a_duplicate_code(people, org):
    first = make(people.alice, org.a1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.create(code=first.code, name="x", kind="individual", owning_unit=org.a1,
                                unit_path=org.a1.path, division_code="370102", created_by=people.alice,
                                updated_by=people.alice)  # fmt: skip


def test_credit_codes_are_validated_and_unique(people, org):
    with pytest.raises(ServiceError, match="check character"):
        make(people.alice, org.a1, credit_code="91350100M000100Y44")
    mine = make(people.alice, org.a1, credit_code=" 91350100m000100y43 ")
    assert mine.credit_code == CREDIT
    with pytest.raises(ServiceError, match=mine.code) as seen:
        make(people.alice, org.a1, name="同一家", credit_code=CREDIT)
    assert seen.value.code == "duplicate"
    # Someone who cannot see the record learns only that it is taken, not by whom.
    with pytest.raises(ServiceError) as hidden:
        make(people.bob, org.b1, name="同一家", credit_code=CREDIT)
    assert "another unit" in hidden.value.message and mine.code not in hidden.value.message


def test_a_customer_manager_becomes_the_lead_and_owns_it(people, org):
    customer = make(people.alice, org.a1)
    assert customer.lead_manager == people.alice and customer.unit_path == org.a1.path
    assert list(Customer.objects.visible_to(people.alice)) == [customer]
    assert not Customer.objects.visible_to(people.alice_peer).exists()  # own-records scope


def test_scoping_owner_peer_and_superior(people, org):
    a = make(people.alice, org.a1)
    b = make(people.bob, org.b1, name="青岛客户", division="370202")
    assert set(Customer.objects.visible_to(people.head_a)) == {a}
    assert set(Customer.objects.visible_to(people.head_p)) == {a, b}
    assert set(Customer.objects.visible_to(people.station_mgr_a1)) == {a}
    assert not Customer.objects.visible_to(people.bob).filter(pk=a.pk).exists()
    assert not Customer.objects.visible_to(people.secadmin).exists()  # administrators see no customers
    with pytest.raises(Http404):
        get_visible_or_404(Customer, people.bob, pk=a.pk)
    contact = contact_create(
        acting_user=people.alice, customer=a, name="李总", decision_role="decision_maker"
    )
    assert list(Contact.objects.visible_to(people.head_a)) == [contact]
    assert not Contact.objects.visible_to(people.bob).exists()


def test_nobody_writes_a_customer_outside_their_scope(people, org):
    with pytest.raises(ServiceError, match="within your scope"):
        make(people.bob, org.a1)  # a unit he cannot see
    # alice may see city A, but a customer of A2 led by someone else would not be hers to see
    amy_customer = make(people.alice_peer, org.a1)
    with pytest.raises(NotAllowed):
        customer_update(acting_user=people.alice, customer=amy_customer, name="改名")
    head_customer = make(people.head_a, org.a1, name="单位客户")
    with pytest.raises(ServiceError, match="within your scope"):  # a unit beyond the writer's reach
        customer_update(acting_user=people.head_a, customer=head_customer, owning_unit=org.city_b)
    assert Customer.objects.get(pk=head_customer.pk).owning_unit == org.a1
    with pytest.raises(NotAllowed):
        make(people.auditor, org.a1)


def test_moving_a_unit_carries_its_customers_along(people, org):
    customer = make(people.head_a, org.a2, name="市中客户")
    contact = contact_create(acting_user=people.head_a, customer=customer, name="王经理")
    assert contact in Contact.objects.visible_to(people.head_a)
    unit_move(acting_user=people.sysadmin, unit=org.a2, new_parent=org.city_b)
    assert contact not in Contact.objects.visible_to(people.head_a)  # follows its customer's path copy
    customer.refresh_from_db()
    org.a2.refresh_from_db()
    assert customer.unit_path == org.a2.path
    assert customer not in Customer.objects.visible_to(people.head_a)
    head_b = UserFactory(username="head_b", unit=org.city_b, roles=[Role.UNIT_HEAD])
    assert customer in Customer.objects.visible_to(head_b)
    assert contact in Contact.objects.visible_to(head_b)


def test_updates_are_audited_with_before_and_after(people, org):
    customer = make(people.alice, org.a1)
    customer_update(acting_user=people.alice, customer=customer, name="新名字", status="active")
    event = AuditEvent.objects.filter(action="customer.update").get()
    assert event.changes["name"] == ["济南顺达物流有限公司", "新名字"]
    assert event.changes["status"] == ["prospect", "active"]
    assert AuditEvent.objects.filter(action="customer.create", object_id=str(customer.pk)).exists()


def test_agreements(people, org):
    customer = make(people.alice, org.a1)
    agreement = agreement_create(acting_user=people.alice, customer=customer, number="GX-2026-001",
                                 signing_level="city", start_date=date(2026, 1, 1))  # fmt: skip
    assert agreement.end_date is None
    with pytest.raises(ServiceError, match="already has"):
        agreement_create(acting_user=people.alice, customer=customer, number="GX-2026-001",
                         signing_level="city", start_date=date(2026, 1, 1))  # fmt: skip
    with pytest.raises(ServiceError, match="before it starts"):
        agreement_create(acting_user=people.alice, customer=customer, number="GX-2", signing_level="city",
                         start_date=date(2026, 2, 1), end_date=date(2026, 1, 1))  # fmt: skip
    with pytest.raises(ServiceError, match="signing level"):
        agreement_create(acting_user=people.alice, customer=customer, number="GX-3", signing_level="nation",
                         start_date=date(2026, 1, 1))  # fmt: skip
    assert list(Agreement.objects.visible_to(people.head_a)) == [agreement]
    assert not Agreement.objects.visible_to(people.bob).exists()


def test_managers_must_be_active_customer_managers(people, org):
    with pytest.raises(ServiceError, match="not an active customer manager"):
        make(people.head_a, org.a1, lead_manager=people.head_p)
    with pytest.raises(ServiceError, match="two people"):
        make(people.head_a, org.a1, lead_manager=people.alice, backup_manager=people.alice)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="parallel writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_parallel_creation_in_one_division_never_shares_a_code(org):
    import threading

    from django.db import connections

    workers = [UserFactory(username=f"w{i}", unit=org.a1, roles=[Role.CUSTOMER_MANAGER]) for i in range(4)]
    barrier = threading.Barrier(len(workers))
    codes, errors = [], []

    def create(user, n):
        try:
            barrier.wait()
            for i in range(n):
                codes.append(make(user, org.a1, name=f"{user.username}-{i}").code)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create, args=(u, 10)) for u in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(codes) == len(set(codes)) == 40
    assert sorted(int(c[6:11]) for c in codes) == list(range(1, 41))
