"""Merging two records of one customer: what moves, what is refused, the audit trail, scoping."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import translation

from kehu.accounts.roles import Role
from kehu.audit.models import AuditEvent
from kehu.audit.selectors import audit_chain_verify
from kehu.core.errors import NotAllowed, ServiceError
from kehu.customers import merge
from kehu.customers.merge import customer_merge, register_merge_relation
from kehu.customers.models import Agreement, Contact, Customer, CustomerPhone, CustomerPhoto, DivisionSequence
from kehu.customers.personal import customer_set_id_number, customers_by_phone, phone_add
from kehu.customers.selectors import customer_search
from kehu.customers.services import agreement_create, contact_create, customer_create
from kehu.testing.factories import UserFactory

pytestmark = pytest.mark.django_db
CREDIT = "91350100M000100Y43"
ID_CARD = "11010519491231002X"


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


def make(user, unit, name, division="370102", **kw):
    return customer_create(acting_user=user, name=name, kind=kw.pop("kind", "institution"), owning_unit=unit,
                           division_code=division, duplicate_reason=kw.pop("reason", "test"), **kw)  # fmt: skip


def agreement(user, customer, number):
    return agreement_create(acting_user=user, customer=customer, number=number, signing_level="city",
                            start_date=date(2026, 1, 1))  # fmt: skip


@pytest.fixture
def pair(people, org):
    """Two records of one firm, both alice's: the older one is kept."""
    keep = make(people.alice, org.a1, "济南顺达物流有限公司", tags=["重点"], phones=["13800138000"])
    remove = make(
        people.alice, org.a1, "济南顺达物流（有限公司）", short_name="顺达", credit_code=CREDIT,
        address="历下区经十路1号", business_scope="普通货运", floor_area=Decimal("320.50"),
        latitude=Decimal("36.651200"), longitude=Decimal("117.120000"), payment_profile="fuel_card",
        tags=["重点", "冷链"], notes="老客户", phones=["0531-88886666"],
    )  # fmt: skip
    customer_set_id_number(acting_user=people.alice, customer=remove, id_number=ID_CARD)
    return keep, remove


def test_everything_moves_to_the_kept_record(pair, people, org):
    keep, remove = pair
    boss = contact_create(
        acting_user=people.alice, customer=remove, name="李总", decision_role="decision_maker"
    )
    phone_add(acting_user=people.alice, customer=remove, number="13900139000", contact=boss)
    agreement(people.alice, keep, "GX-2026-001")
    deal = agreement(people.alice, remove, "GX-2026-002")
    photo = CustomerPhoto.objects.create(customer=remove, image="customers/photos/2026/01/door.jpg",
                                         uploaded_by=people.alice)  # fmt: skip
    branch = make(people.alice, org.a1, "顺达物流历城网点", parent=remove)
    branch_code = branch.code

    kept = customer_merge(acting_user=people.alice, keep=keep, remove=remove, reason="同一家公司登记了两次")

    assert kept.code == keep.code and not Customer.objects.filter(pk=remove.pk).exists()
    assert list(Contact.objects.filter(customer=kept)) == [boss]
    assert set(Agreement.objects.filter(customer=kept).values_list("number", flat=True)) == {
        "GX-2026-001", "GX-2026-002",
    }  # fmt: skip
    assert Agreement.objects.get(pk=deal.pk).customer_id == kept.pk
    assert sorted(
        CustomerPhone.objects.filter(customer=kept).values_list("number_index", flat=True)
    ) == sorted(
        CustomerPhone.objects.values_list("number_index", flat=True)
    )  # all three numbers, the contact's one still the contact's
    assert CustomerPhone.objects.filter(customer=kept).count() == 3
    assert CustomerPhone.objects.get(contact=boss).customer_id == kept.pk
    assert list(customers_by_phone(viewer=people.alice, number="0531 8888 6666")) == [kept]
    assert CustomerPhoto.objects.get(pk=photo.pk).customer_id == kept.pk
    branch.refresh_from_db()
    assert branch.parent_id == kept.pk and branch.code == branch_code  # re-parented, code unchanged

    kept.refresh_from_db()
    # The kept record's empty fields are filled; what it had stays.
    assert kept.name == "济南顺达物流有限公司"
    assert (kept.short_name, kept.credit_code, kept.address) == ("顺达", CREDIT, "历下区经十路1号")
    assert (kept.business_scope, kept.floor_area, kept.payment_profile) == (
        "普通货运",
        Decimal("320.50"),
        "fuel_card",
    )
    assert (kept.latitude, kept.longitude) == (Decimal("36.651200"), Decimal("117.120000"))
    assert kept.id_number == ID_CARD and kept.id_number_index
    assert kept.notes == "老客户" and kept.tags == ["重点", "冷链"]
    assert kept.lead_manager == people.alice
    # the search index follows: the short name and the tag find the kept record, nothing finds the other
    assert list(customer_search(viewer=people.alice, q="顺达")) == [kept, branch]
    assert list(customer_search(viewer=people.alice, tag="冷链")) == [kept]


def test_the_audit_trail_tells_the_story(pair, people, org):
    keep, remove = pair
    contact_create(acting_user=people.alice, customer=remove, name="李总")
    agreement(people.alice, remove, "GX-2026-002")
    branch = make(people.alice, org.a1, "顺达物流历城网点", parent=remove)
    remove_pk, remove_code = remove.pk, remove.code

    customer_merge(acting_user=people.alice, keep=keep, remove=remove, reason="同一家公司登记了两次")

    event = AuditEvent.objects.get(action="customer.merge")
    assert (event.object_id, event.actor_username) == (str(keep.pk), "alice")
    assert event.extra["merged_from"] == remove_code and event.extra["merged_from_id"] == remove_pk
    assert event.extra["reason"] == "同一家公司登记了两次"
    assert event.extra["moved"] == {
        "customers.contact": 1, "customers.agreement": 1, "customers.customerphone": 1,
        "customers.customerphoto": 0, "branches": 1, "metrics.salesfact": 0, "policies.closeresult": 0,
        "policies.closechange": 0, "policies.override": 0,
    }  # fmt: skip
    assert event.extra["filled"] == [
        "short_name", "credit_code", "id_number", "address", "payment_profile", "business_scope", "floor_area",
        "notes", "latitude", "longitude",
    ]  # fmt: skip
    assert event.extra["tags_added"] == ["冷链"]
    removed = event.extra["removed"]
    assert (removed["code"], removed["name"], removed["credit_code"]) == (remove_code, remove.name, CREDIT)
    assert ID_CARD not in str(event.extra) and ID_CARD not in str(event.changes)  # never plaintext
    assert event.changes["credit_code"] == ["", CREDIT] and event.changes["tags"] == [
        ["重点"],
        ["重点", "冷链"],
    ]
    # The removed record's own history stays and says where it went.
    gone = AuditEvent.objects.get(action="customer.merged_into")
    assert gone.object_id == str(remove_pk) and gone.extra["merged_into"] == keep.code
    assert AuditEvent.objects.filter(action="customer.create", object_id=str(remove_pk)).exists()
    moved_branch = AuditEvent.objects.get(action="customer.update", object_id=str(branch.pk))
    assert moved_branch.changes == {"parent": [remove_pk, keep.pk]}
    assert audit_chain_verify().ok


def test_the_removed_code_is_never_handed_out_again(pair, people, org):
    keep, remove = pair
    customer_merge(acting_user=people.alice, keep=keep, remove=remove, reason="重复")
    assert DivisionSequence.objects.get(pk="370102").last_sequence == 2
    assert make(people.alice, org.a1, "新客户").code == "37010200003000"


def test_refused_cases_change_nothing(pair, people, org):
    keep, remove = pair
    with pytest.raises(ServiceError, match="Say why") as no_reason:
        customer_merge(acting_user=people.alice, keep=keep, remove=remove, reason="  ")
    assert no_reason.value.field == "reason"
    with pytest.raises(ServiceError, match="with itself"):
        customer_merge(acting_user=people.alice, keep=keep, remove=keep, reason="重复")
    branch = make(people.alice, org.a1, "顺达物流历城网点", parent=keep)
    with pytest.raises(ServiceError, match="cannot be merged into its own branch"):
        customer_merge(acting_user=people.alice, keep=branch, remove=keep, reason="重复")
    remove_branch = make(people.alice, org.a1, "顺达物流章丘网点", parent=remove)
    with pytest.raises(ServiceError, match="is itself a branch"):
        customer_merge(acting_user=people.alice, keep=branch, remove=remove, reason="重复")
    agreement(people.alice, keep, "GX-7")
    agreement(people.alice, remove, "GX-7")
    agreement(people.alice, remove, "GX-8")
    with pytest.raises(ServiceError, match="agreement numbered GX-7;") as clash:
        customer_merge(acting_user=people.alice, keep=keep, remove=remove, reason="重复")
    assert clash.value.code == "agreement_clash"
    assert Customer.objects.filter(pk=remove.pk).exists()
    assert Agreement.objects.filter(customer=remove).count() == 2
    assert Customer.objects.get(pk=remove_branch.pk).parent_id == remove.pk
    assert not AuditEvent.objects.filter(action__startswith="customer.merge").exists()


def test_a_branch_merges_into_its_head_office(people, org):
    head = make(people.alice, org.a1, "顺达物流")
    branch = make(people.alice, org.a1, "顺达物流历城网点", parent=head)
    contact_create(acting_user=people.alice, customer=branch, name="网点负责人")
    kept = customer_merge(acting_user=people.alice, keep=head, remove=branch, reason="网点已撤并")
    assert kept.contacts.get().name == "网点负责人"
    assert not Customer.objects.filter(pk=branch.pk).exists()


def test_managers_are_filled_only_where_empty_and_never_twice(people, org):
    keep = make(people.head_a, org.a1, "顺达物流", lead_manager=people.alice)
    remove = make(
        people.head_a, org.a1, "顺达物流公司", lead_manager=people.alice_peer, backup_manager=people.alice
    )
    kept = customer_merge(acting_user=people.head_a, keep=keep, remove=remove, reason="重复")
    # alice leads already and cannot be her own backup; amy led the other record but the lead is taken
    assert (kept.lead_manager, kept.backup_manager) == (people.alice, None)
    other = make(people.head_a, org.a1, "顺达物流分拨", reason="重复")
    kept = customer_merge(acting_user=people.head_a, keep=other, remove=kept, reason="重复")
    assert kept.lead_manager == people.alice


def test_only_people_who_manage_customers_merge(pair, people):
    keep, remove = pair
    for outsider in (people.auditor, people.sysadmin):
        with pytest.raises(NotAllowed, match="do not allow merging"):
            customer_merge(acting_user=outsider, keep=keep, remove=remove, reason="重复")


def test_both_records_must_be_in_scope(pair, people, org):
    keep, remove = pair
    bobs = make(people.bob, org.b1, "青岛顺达物流", division="370202")
    # bob sees neither of alice's; the answer names nothing and is the same as for a missing record
    with pytest.raises(NotAllowed) as hidden:
        customer_merge(acting_user=people.bob, keep=bobs, remove=remove, reason="重复")
    assert "scope" in hidden.value.message and remove.code not in hidden.value.message
    assert remove.name not in hidden.value.message
    with pytest.raises(NotAllowed) as hidden_keep:
        customer_merge(acting_user=people.bob, keep=keep, remove=bobs, reason="重复")
    assert hidden_keep.value.message == hidden.value.message
    missing = Customer(pk=10**9, code="37010299999000")
    with pytest.raises(NotAllowed) as gone:
        customer_merge(acting_user=people.bob, keep=bobs, remove=missing, reason="重复")
    assert gone.value.message == hidden.value.message
    # amy (own records) does not see alice's either; alice does not see amy's
    amys = make(people.alice_peer, org.a1, "顺达物流（历下）")
    with pytest.raises(NotAllowed):
        customer_merge(acting_user=people.alice, keep=keep, remove=amys, reason="重复")
    assert Customer.objects.filter(pk__in=[remove.pk, amys.pk, bobs.pk]).count() == 3
    # the head of city A sees both A1 managers' records and may merge them; city B's stays out of reach
    kept = customer_merge(acting_user=people.head_a, keep=keep, remove=amys, reason="重复")
    assert not Customer.objects.filter(pk=amys.pk).exists() and kept.pk == keep.pk
    with pytest.raises(NotAllowed):
        customer_merge(acting_user=people.head_a, keep=keep, remove=bobs, reason="重复")
    # the province head sees everything
    customer_merge(acting_user=people.head_p, keep=keep, remove=bobs, reason="跨地市重复登记")
    assert not Customer.objects.filter(pk=bobs.pk).exists()


def test_branches_out_of_scope_stop_the_merge(pair, people, org):
    keep, remove = pair
    hidden_branch = make(
        people.head_a, org.a1, "顺达物流章丘网点", parent=remove, lead_manager=people.alice_peer
    )
    with pytest.raises(NotAllowed, match=r"1 branch\(es\) of 37010200002000 are outside your scope"):
        customer_merge(acting_user=people.alice, keep=keep, remove=remove, reason="重复")
    assert Customer.objects.get(pk=hidden_branch.pk).parent_id == remove.pk


def test_a_relation_nobody_registered_stops_the_merge(pair, people, monkeypatch):
    keep, remove = pair
    contact_create(acting_user=people.alice, customer=remove, name="李总")
    monkeypatch.delitem(merge._RELATIONS, ("customers.contact", "customer"))
    with pytest.raises(ServiceError, match="still has contacts, which a merge cannot move yet"):
        customer_merge(acting_user=people.alice, keep=keep, remove=remove, reason="重复")
    assert Contact.objects.get().customer_id == remove.pk


def test_registering_a_relation(monkeypatch):
    monkeypatch.setattr(merge, "_RELATIONS", dict(merge._RELATIONS))
    with pytest.raises(TypeError, match="not a foreign key to Customer"):
        register_merge_relation(Customer, "owning_unit")
    with pytest.raises(TypeError, match="not a foreign key to Customer"):
        register_merge_relation(Contact, "name")
    register_merge_relation(Customer, "parent")  # any foreign key to Customer will do
    assert any(r.key == "customers.customer.parent" for r in merge.merge_relations())


@pytest.mark.skipif(connection.vendor != "postgresql", reason="parallel writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_crossed_merges_of_one_pair_do_not_deadlock(org):
    import threading

    from django.db import connections

    user = UserFactory(username="head", unit=org.city_a, roles=[Role.UNIT_HEAD])
    a = make(user, org.a1, "顺达物流")
    b = make(user, org.a1, "顺达物流公司")
    barrier = threading.Barrier(2)
    outcomes = []

    def run(keep, remove):
        try:
            barrier.wait()
            customer_merge(acting_user=user, keep=keep, remove=remove, reason="重复")
            outcomes.append("merged")
        except NotAllowed:
            outcomes.append("gone")  # the other merge removed one of the two first
        except Exception as exc:  # noqa: BLE001 - reported below
            outcomes.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=args) for args in ((a, b), (b, a))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["gone", "merged"]
    assert Customer.objects.filter(pk__in=[a.pk, b.pk]).count() == 1
    assert AuditEvent.objects.filter(action="customer.merge").count() == 1


def test_a_merged_away_code_is_never_given_again(people, org):
    from kehu.customers.merge import customer_merge
    from kehu.customers.services import customer_create

    def add(name, **kw):
        return customer_create(acting_user=people.alice, name=name, kind="institution", owning_unit=org.a1,
                               division_code="370102", **kw)  # fmt: skip

    keep, gone = add("泰山能源"), add("黄河物流")
    customer_merge(acting_user=people.alice, keep=keep, remove=gone, reason="one firm")
    with translation.override("en"), pytest.raises(ServiceError, match="never reused"):
        add("新客户", code=gone.code)
    assert add("新客户二").code not in (keep.code, gone.code)
