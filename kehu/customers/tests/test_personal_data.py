"""Personal data: encrypted at rest, blind-index search, masking, audited reveal, key rotation, SM4."""

from __future__ import annotations

import base64
import os

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import translation

from kehu.accounts.roles import Role
from kehu.audit.models import AuditEvent
from kehu.core.crypto import decrypt, encrypt, key_id_of
from kehu.core.errors import NotAllowed, ServiceError
from kehu.customers.models import Customer, CustomerPhone
from kehu.customers.personal import (
    customer_personal_data,
    customer_set_id_number,
    customers_by_id_number,
    customers_by_phone,
    id_card_error,
    normalise_phone,
    personal_data_reveal,
    phone_add,
)
from kehu.customers.services import customer_create
from kehu.testing.factories import UserFactory

pytestmark = pytest.mark.django_db
MOBILE = "13812345678"
ID_CARD = "11010519491231002X"


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


@pytest.fixture
def customer(people, org):
    return customer_create(acting_user=people.alice, name="王小明", kind="individual", owning_unit=org.a1,
                           division_code="370102")  # fmt: skip


def raw(table: str, column: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table}")
        return [row[0] for row in cursor.fetchall()]


def test_a_dump_shows_no_plaintext(people, customer):
    phone_add(acting_user=people.alice, customer=customer, number="+86 138-1234-5678", label="手机")
    customer_set_id_number(acting_user=people.alice, customer=customer, id_number=ID_CARD.lower())
    [stored_phone] = raw("customers_customerphone", "number")
    [stored_id] = raw("customers_customer", "id_number")
    for stored, secret in ((stored_phone, MOBILE), (stored_id, ID_CARD)):
        assert stored.startswith("v1.") and secret not in stored and secret[-4:] not in stored
    assert CustomerPhone.objects.get().number == MOBILE  # Python sees plaintext
    assert Customer.objects.get(pk=customer.pk).id_number == ID_CARD


def test_pages_see_masked_values(people, customer):
    phone_add(acting_user=people.alice, customer=customer, number=MOBILE)
    customer_set_id_number(acting_user=people.alice, customer=customer, id_number=ID_CARD)
    shown = customer_personal_data(viewer=people.head_a, customer=customer)
    assert shown["phones"][0]["number"] == "138****5678"
    assert shown["id_number"] == "110***********002X"


def test_reveal_needs_the_permission_and_is_audited(people, customer):
    phone_add(acting_user=people.alice, customer=customer, number=MOBILE)
    assert (
        personal_data_reveal(acting_user=people.alice, customer=customer, reason="回访")["phones"][0][
            "number"
        ]
        == MOBILE
    )
    event = AuditEvent.objects.get(action="personal_data.reveal")
    assert event.actor_username == "alice" and event.extra["reason"] == "回访"
    analyst = UserFactory(username="ana", unit=people.head_a.unit, roles=[Role.ANALYST])
    with pytest.raises(NotAllowed):
        personal_data_reveal(acting_user=analyst, customer=customer)
    with pytest.raises(NotAllowed):  # a peer in another branch may not even know it exists
        personal_data_reveal(acting_user=people.bob, customer=customer)


def test_the_trail_never_holds_the_plaintext(people, customer):
    phone_add(acting_user=people.alice, customer=customer, number=MOBILE)
    customer_set_id_number(acting_user=people.alice, customer=customer, id_number=ID_CARD)
    personal_data_reveal(acting_user=people.alice, customer=customer)
    everything = " ".join(str(e.changes) + str(e.extra) + e.object_repr for e in AuditEvent.objects.all())
    assert MOBILE not in everything and ID_CARD not in everything
    assert "138****5678" in everything


def test_exact_search_through_the_blind_index_respects_scope(people, org, customer):
    phone_add(acting_user=people.alice, customer=customer, number=MOBILE)
    customer_set_id_number(acting_user=people.alice, customer=customer, id_number=ID_CARD)
    assert list(customers_by_phone(viewer=people.head_a, number="138 1234 5678")) == [customer]
    assert list(customers_by_id_number(viewer=people.head_a, id_number=ID_CARD.lower())) == [customer]
    assert not customers_by_phone(viewer=people.bob, number=MOBILE).exists()


def test_the_same_number_on_two_customers_is_a_collision(people, org, customer):
    phone_add(acting_user=people.alice, customer=customer, number=MOBILE)
    with pytest.raises(ServiceError, match="has that number already"):
        phone_add(acting_user=people.alice, customer=customer, number="138-1234-5678")
    other = customer_create(acting_user=people.alice, name="李四", kind="individual", owning_unit=org.a1,
                            division_code="370102")  # fmt: skip
    with pytest.raises(ServiceError, match=customer.code):
        phone_add(acting_user=people.alice, customer=other, number=MOBILE)
    theirs = customer_create(acting_user=people.bob, name="青岛客户", kind="individual", owning_unit=org.b1,
                             division_code="370202")  # fmt: skip
    with pytest.raises(ServiceError) as hidden:
        phone_add(acting_user=people.bob, customer=theirs, number=MOBILE)
    assert "another unit" in hidden.value.message and customer.code not in hidden.value.message


@pytest.mark.parametrize(
    ("raw_number", "normal"),
    [("+86 138-1234-5678", MOBILE), ("0086 13812345678", MOBILE), ("（0531）8888-6666", "053188886666"),
     ("１３８１２３４５６７８", MOBILE)],
)  # fmt: skip
def test_phone_numbers_are_normalised(raw_number, normal):
    assert normalise_phone(raw_number) == normal


def test_bad_phones_and_id_numbers_say_why(people, customer):
    with pytest.raises(ServiceError, match="mobile number"):
        phone_add(acting_user=people.alice, customer=customer, number="12345")
    assert "check character" in id_card_error("110105194912310021")
    assert "date of birth" in id_card_error("110105194913310021")
    with pytest.raises(ServiceError, match="ID card number"):
        customer_set_id_number(acting_user=people.alice, customer=customer, id_number="123")


def test_tampered_or_moved_ciphertexts_do_not_decrypt():
    token = encrypt(MOBILE, purpose="a")
    assert decrypt(token, purpose="a") == MOBILE
    with pytest.raises(ValueError):
        decrypt(token, purpose="b")
    body = token.rsplit(".", 1)
    blob = bytearray(base64.b64decode(body[1]))
    blob[-1] ^= 1
    with pytest.raises(ValueError):
        decrypt(body[0] + "." + base64.b64encode(bytes(blob)).decode(), purpose="a")


def test_key_rotation_reencrypts_everything(people, customer, settings):
    old = base64.b64encode(os.urandom(32)).decode()
    new = base64.b64encode(os.urandom(32)).decode()
    settings.KEHU_DATA_KEYS = f"old={old}"
    phone_add(acting_user=people.alice, customer=customer, number=MOBILE)
    assert key_id_of(raw("customers_customerphone", "number")[0]) == "old"
    settings.KEHU_DATA_KEYS = f"new={new},old={old}"
    call_command("rotate_data_keys", stdout=open(os.devnull, "w"))
    assert key_id_of(raw("customers_customerphone", "number")[0]) == "new"
    settings.KEHU_DATA_KEYS = f"new={new}"  # the old key is gone, the data is not
    assert CustomerPhone.objects.get().number == MOBILE
    assert AuditEvent.objects.filter(action="personal_data.rotate").exists()


def test_sm4_gcm_is_available(people, customer, settings):
    settings.KEHU_DATA_CIPHER = "sm4-gcm"
    settings.KEHU_DATA_KEYS = "gm=" + base64.b64encode(os.urandom(16)).decode()
    phone_add(acting_user=people.alice, customer=customer, number=MOBILE)
    stored = raw("customers_customerphone", "number")[0]
    assert ".sm4-gcm." in stored and MOBILE not in stored
    assert CustomerPhone.objects.get().number == MOBILE


def test_the_database_holds_one_customer_per_number(people, org, customer):
    """Two people registering one number at the same moment: the unique blind index lets only one in."""
    from django.db import IntegrityError, transaction

    from kehu.core.crypto import blind_index

    phone_add(acting_user=people.alice, customer=customer, number=MOBILE)
    other = customer_create(acting_user=people.alice, name="李四", kind="individual", owning_unit=org.a1,
                            division_code="370102")  # fmt: skip
    with pytest.raises(IntegrityError), transaction.atomic():
        CustomerPhone.objects.create(
            customer=other, number=MOBILE, number_index=blind_index(MOBILE, purpose="phone")
        )
