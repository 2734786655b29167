"""The rest of the customer archive's API: phones (the customer's and its contacts'), the ID number, exact
lookup, photos, agreement attachments, deleting contacts and agreements, and merging. For each: it works,
a peer in another branch gets 404 exactly like a missing record and changes nothing, personal data leaves
masked, and the change is in the audit trail with channel ``api``."""

from __future__ import annotations

import io
import json
from datetime import date
from urllib.parse import urlencode

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from kehu.accounts.roles import Role
from kehu.audit.models import AuditEvent
from kehu.customers.models import Agreement, Contact, Customer, CustomerPhone, CustomerPhoto
from kehu.customers.personal import customer_set_id_number, phone_add
from kehu.customers.services import agreement_create, contact_create, customer_create
from kehu.testing.factories import UserFactory

pytestmark = pytest.mark.django_db

MOBILE = "13812345678"
CONTACT_MOBILE = "13987654321"
ID_CARD = "11010519491231002X"
OTHER_ID_CARD = "110105194912310038"
MISSING = "37010299999000"
NOT_FOUND = {"detail": "Not found."}
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


# ---------------------------------------------------------------- helpers and fixtures


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def call(client, token_for):
    """Any method as a user with a bearer token; JSON bodies, or multipart with ``files``."""

    def _call(method: str, user, path: str, body=None, *, files=None, **params):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token_for(user)}"}
        url = f"/api/v1{path}"
        if method == "get":
            return client.get(url, params, **headers)
        if params:
            url += "?" + urlencode(params)
        if files is not None:
            return client.post(url, {**(body or {}), **files}, **headers)
        data = json.dumps(body if body is not None else {})
        return getattr(client, method)(url, data, content_type="application/json", **headers)

    return _call


def make(user, unit, name, division="370102", **kw):
    return customer_create(acting_user=user, name=name, kind=kw.pop("kind", "institution"), owning_unit=unit,
                           division_code=division, **kw)  # fmt: skip


@pytest.fixture
def alices(people, org):
    customer = make(people.alice, org.a1, "济南顺达物流有限公司", tags=["物流"])
    phone_add(acting_user=people.alice, customer=customer, number=MOBILE, label="办公室")
    customer_set_id_number(acting_user=people.alice, customer=customer, id_number=ID_CARD)
    contact = contact_create(acting_user=people.alice, customer=customer, name="张经理", title="总经理")
    phone_add(acting_user=people.alice, customer=customer, number=CONTACT_MOBILE, contact=contact)
    agreement_create(acting_user=people.alice, customer=customer, number="GY-2026-001", signing_level="station",
                     start_date=date(2026, 1, 1), signing_unit=org.a1)  # fmt: skip
    return customer


@pytest.fixture
def bobs(people, org):
    return make(people.bob, org.b1, "青岛海运集团", division="370202")


@pytest.fixture
def analyst(org):
    """Sees city A's customers but may neither edit them nor see personal data in full."""
    return UserFactory(username="ana", full_name="分析员", unit=org.city_a, roles=[Role.ANALYST])


def error(response, status: int = 400) -> dict:
    assert response.status_code == status, response.content
    return response.json()


def no_plaintext(*texts) -> None:
    """None of the texts (answers, audit rows) holds a phone or ID number in full, or its hidden middle."""
    for text in texts:
        text = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False, default=str)
        for secret in (MOBILE, CONTACT_MOBILE, ID_CARD, OTHER_ID_CARD, ID_CARD[6:14], "88886666"):
            assert secret not in text, (secret, text)


def audited(action: str, user, **lookup) -> AuditEvent:
    event = AuditEvent.objects.filter(action=action, **lookup).latest("pk")
    assert event.channel == "api" and event.actor_username == user.username, event
    return event


def png_bytes(size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def own_phone(customer) -> CustomerPhone:
    return CustomerPhone.objects.get(customer=customer, contact=None)


# ---------------------------------------------------------------- scoping, all at once


def _endpoints(customer):
    contact = customer.contacts.get()
    agreement = customer.agreements.get()
    phone = own_phone(customer)
    return (
        ("get", "/phones", None),
        ("post", "/phones", {"number": "13700001111"}),
        ("delete", f"/phones/{phone.pk}", None),
        ("put", "/id-number", {"id_number": OTHER_ID_CARD}),
        ("delete", f"/contacts/{contact.pk}", None),
        ("get", f"/contacts/{contact.pk}/phones", None),
        ("post", f"/contacts/{contact.pk}/phones", {"number": "13700002222"}),
        ("delete", f"/agreements/{agreement.pk}", None),
        ("get", f"/agreements/{agreement.pk}/attachment", None),
        ("delete", f"/agreements/{agreement.pk}/attachment", None),
        ("get", "/photos", None),
        ("post", "/merge", {"remove": MISSING, "reason": "重复"}),
    )


def test_every_new_endpoint_answers_404_out_of_scope_exactly_like_missing(call, people, alices):
    before = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    for method, suffix, body in _endpoints(alices):
        out_of_scope = call(method, people.bob, f"/customers/{alices.code}{suffix}", body)
        not_there = call(method, people.bob, f"/customers/{MISSING}{suffix}", body)
        assert out_of_scope.status_code == not_there.status_code == 404, (
            method,
            suffix,
            out_of_scope.content,
        )
        assert out_of_scope.json() == not_there.json() == NOT_FOUND
    for suffix, files in (
        ("/photos", {"image": SimpleUploadedFile("a.png", png_bytes())}),
        (f"/agreements/{alices.agreements.get().pk}/attachment", {"attachment": SimpleUploadedFile("a.pdf", PDF)}),
    ):  # fmt: skip
        assert call("post", people.bob, f"/customers/{alices.code}{suffix}", files=files).json() == NOT_FOUND
        assert call("post", people.bob, f"/customers/{MISSING}{suffix}", files=files).json() == NOT_FOUND
    # nothing changed, nothing written but bob's token sign-ins
    assert CustomerPhone.objects.filter(customer=alices).count() == 2
    assert Contact.objects.filter(customer=alices).count() == 1
    assert Agreement.objects.filter(customer=alices).count() == 1
    assert not CustomerPhoto.objects.exists()
    assert Customer.objects.get(pk=alices.pk).id_number == ID_CARD
    assert not AuditEvent.objects.filter(
        pk__gt=before, action__regex=r"^(customer|contact|agreement|photo)\."
    ).exists()


def test_the_peer_in_the_same_station_sees_nothing_of_alices_records(call, people, alices):
    # amy works at A1 too, but customer managers see only the customers they lead or back up
    assert call("get", people.alice_peer, f"/customers/{alices.code}/phones").status_code == 404
    assert call("get", people.alice_peer, f"/customers/{alices.code}/photos").status_code == 404


def test_a_child_is_only_reached_through_its_own_customer(call, people, org, alices):
    other = make(people.alice, org.a1, "另一客户")
    contact, agreement, phone = alices.contacts.get(), alices.agreements.get(), own_phone(alices)
    base = f"/customers/{other.code}"
    assert call("delete", people.alice, f"{base}/phones/{phone.pk}").status_code == 404
    assert call("delete", people.alice, f"{base}/contacts/{contact.pk}").status_code == 404
    assert call("get", people.alice, f"{base}/contacts/{contact.pk}/phones").status_code == 404
    assert (
        call(
            "post", people.alice, f"{base}/contacts/{contact.pk}/phones", {"number": "13700001111"}
        ).status_code
        == 404
    )
    assert call("delete", people.alice, f"{base}/agreements/{agreement.pk}").status_code == 404
    assert call("get", people.alice, f"{base}/agreements/{agreement.pk}/attachment").status_code == 404
    assert CustomerPhone.objects.filter(customer=alices).count() == 2
    assert (
        Contact.objects.filter(pk=contact.pk).exists() and Agreement.objects.filter(pk=agreement.pk).exists()
    )


# ---------------------------------------------------------------- phones


def test_phones_are_listed_masked_with_whose_they_are(call, people, alices):
    contact = alices.contacts.get()
    for viewer in (people.alice, people.head_a, people.head_p):
        response = call("get", viewer, f"/customers/{alices.code}/phones")
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["count"] == 2
        assert [(p["label"], p["number"], p["contact"]) for p in body["items"]] == [
            ("办公室", "138****5678", None),
            ("", "139****4321", contact.pk),
        ]
        no_plaintext(response.content.decode())
    only_contact = call("get", people.alice, f"/customers/{alices.code}/contacts/{contact.pk}/phones").json()
    assert [p["number"] for p in only_contact["items"]] == ["139****4321"]


def test_add_a_phone_answers_it_masked_and_audits_it_masked(call, people, alices):
    response = call("post", people.alice, f"/customers/{alices.code}/phones",
                    {"number": "0531-8888 6666", "label": "前台"})  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["number"], body["label"], body["contact"]) == ("053*****6666", "前台", None)
    stored = CustomerPhone.objects.get(pk=body["id"])
    assert stored.customer_id == alices.pk and stored.number == "053188886666"
    event = audited("customer.phone_add", people.alice, object_id=str(alices.pk))
    assert event.extra["phone"] == "053*****6666"
    no_plaintext(response.content.decode(), event.extra, event.changes)
    # shown masked on the customer as well
    detail = call("get", people.alice, f"/customers/{alices.code}").json()
    assert "053*****6666" in [p["number"] for p in detail["phones"]]


def test_add_a_phone_refusals_name_the_input(call, people, analyst, alices, bobs):
    phone_add(acting_user=people.bob, customer=bobs, number="13600001111")
    url = f"/customers/{alices.code}/phones"
    bad = error(call("post", people.alice, url, {"number": "12345"}))
    assert bad["field"] == "number" and "Phone" in bad["detail"]
    mine = error(call("post", people.alice, url, {"number": MOBILE}))
    assert (mine["field"], mine["code"]) == ("number", "duplicate")
    # the holder is named only to those who may see it
    theirs = error(call("post", people.alice, url, {"number": "136 0000 1111"}))
    assert (
        theirs["code"] == "duplicate"
        and bobs.name not in theirs["detail"]
        and bobs.code not in theirs["detail"]
    )
    assert error(call("post", analyst, url, {"number": "13700001111"}), 403)["code"] == "not_allowed"
    assert call("post", people.alice, url, {"number": "13700001111", "colour": "red"}).status_code == 422
    assert call("post", people.alice, url, {"number": "13700001111", "label": "x" * 33}).status_code == 422
    assert CustomerPhone.objects.filter(customer=alices).count() == 2
    assert not AuditEvent.objects.filter(action="customer.phone_add", actor_username__in=["alice", "ana"],
                                         channel="api").exists()  # fmt: skip


def test_add_a_phone_to_a_contact(call, people, alices):
    contact = alices.contacts.get()
    url = f"/customers/{alices.code}/contacts/{contact.pk}/phones"
    response = call("post", people.alice, url, {"number": "+86 137 0000 2222", "label": "手机"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["number"], body["contact"]) == ("137****2222", contact.pk)
    assert CustomerPhone.objects.get(pk=body["id"]).contact_id == contact.pk
    assert (
        audited("customer.phone_add", people.alice, object_id=str(alices.pk)).extra["contact"] == contact.pk
    )
    listed = call("get", people.alice, f"/customers/{alices.code}/contacts").json()["items"][0]
    assert [p["number"] for p in listed["phones"]] == ["139****4321", "137****2222"]
    assert "13700002222" not in response.content.decode()


def test_remove_a_phone(call, people, analyst, alices):
    phone = own_phone(alices)
    url = f"/customers/{alices.code}/phones/{phone.pk}"
    assert error(call("delete", analyst, url), 403)["code"] == "not_allowed"
    response = call("delete", people.alice, url)
    assert response.status_code == 204, response.content
    assert not CustomerPhone.objects.filter(pk=phone.pk).exists()
    event = audited("customer.phone_remove", people.alice, object_id=str(alices.pk))
    assert event.extra["phone"] == "138****5678"
    no_plaintext(event.extra, event.changes)
    assert call("delete", people.alice, url).status_code == 404  # gone
    # a contact's number is removed the same way
    contact_phone = CustomerPhone.objects.get(customer=alices)
    assert (
        call("delete", people.alice, f"/customers/{alices.code}/phones/{contact_phone.pk}").status_code == 204
    )
    assert not CustomerPhone.objects.filter(customer=alices).exists()


# ---------------------------------------------------------------- the ID number


def test_set_the_id_number_answers_masked_and_audits_masked(call, people, alices):
    url = f"/customers/{alices.code}/id-number"
    response = call("put", people.alice, url, {"id_number": f" {OTHER_ID_CARD} "})
    assert response.status_code == 200, response.content
    assert response.json() == {"id_number": "110***********0038"}
    assert Customer.objects.get(pk=alices.pk).id_number == OTHER_ID_CARD
    event = audited("customer.id_number_set", people.alice, object_id=str(alices.pk))
    assert event.extra["id_number"] == "110***********0038"
    no_plaintext(response.content.decode(), event.extra, event.changes)
    detail = call("get", people.alice, f"/customers/{alices.code}")
    assert detail.json()["id_number"] == "110***********0038"
    no_plaintext(detail.content.decode())
    # lower-case x is accepted; empty clears it
    assert call("put", people.alice, url, {"id_number": ID_CARD.lower()}).json() == {
        "id_number": "110***********002X"
    }
    assert call("put", people.alice, url, {"id_number": ""}).json() == {"id_number": ""}
    assert Customer.objects.get(pk=alices.pk).id_number == ""


def test_set_the_id_number_refusals(call, people, analyst, alices):
    url = f"/customers/{alices.code}/id-number"
    wrong_check = error(call("put", people.alice, url, {"id_number": ID_CARD[:-1] + "1"}))
    assert wrong_check["field"] == "id_number" and "check character" in wrong_check["detail"]
    assert error(call("put", people.alice, url, {"id_number": "1101051949"}))["field"] == "id_number"
    assert error(call("put", analyst, url, {"id_number": OTHER_ID_CARD}), 403)["code"] == "not_allowed"
    assert call("put", people.alice, url, {}).status_code == 422
    assert Customer.objects.get(pk=alices.pk).id_number == ID_CARD
    assert AuditEvent.objects.filter(action="customer.id_number_set", channel="api").count() == 0


# ---------------------------------------------------------------- exact lookup


def test_lookup_by_phone_and_id_number_is_scoped_and_shows_no_personal_data(
    call, people, analyst, alices, bobs
):
    def found(user, **body):
        response = call("post", user, "/customers/lookup", body)
        assert response.status_code == 200, response.content
        no_plaintext(response.content.decode())
        assert not {"phones", "id_number"} & {k for item in response.json()["items"] for k in item}
        return [c["code"] for c in response.json()["items"]]

    assert found(people.alice, phone="138 1234 5678") == [alices.code]
    assert found(people.alice, phone="+86 139-8765-4321") == [alices.code]  # a contact's number
    assert found(people.alice, id_number=ID_CARD.lower()) == [alices.code]
    assert found(people.head_p, phone=MOBILE) == [alices.code]
    assert found(analyst, id_number=ID_CARD) == [alices.code]  # reads in scope, still masked
    # outside the scope: nothing, exactly like an unknown number
    assert found(people.bob, phone=MOBILE) == [] == found(people.bob, phone="13700009999")
    assert found(people.bob, id_number=ID_CARD) == []
    # an ID number may be on several customers
    customer_set_id_number(acting_user=people.bob, customer=bobs, id_number=ID_CARD)
    assert found(people.head_p, id_number=ID_CARD) == sorted([alices.code, bobs.code])
    body = call("post", people.head_p, "/customers/lookup", {"id_number": ID_CARD}, limit=1).json()
    assert (len(body["items"]), body["count"]) == (1, 2)


def test_lookup_refusals(call, people, alices):
    assert error(call("post", people.alice, "/customers/lookup", {}))["field"] is None
    assert error(call("post", people.alice, "/customers/lookup", {"phone": MOBILE, "id_number": ID_CARD}))
    assert error(call("post", people.alice, "/customers/lookup", {"phone": "12345"}))["field"] == "phone"
    bad_id = error(call("post", people.alice, "/customers/lookup", {"id_number": ID_CARD[:-1] + "1"}))
    assert bad_id["field"] == "id_number"
    assert call("post", people.alice, "/customers/lookup", {"name": "x"}).status_code == 422
    # numbers never travel in the URL
    assert call("get", people.alice, "/customers/lookup", phone=MOBILE).status_code == 405


# ---------------------------------------------------------------- photos


def test_photos_upload_list_fetch_and_delete(call, people, alices, media, django_capture_on_commit_callbacks):
    base = f"/customers/{alices.code}/photos"
    content = png_bytes()
    response = call("post", people.alice, base, {"caption": "门头"},
                    files={"image": SimpleUploadedFile("门头照片.png", content, content_type="image/png")})  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    photo = CustomerPhoto.objects.get(pk=body["id"])
    assert photo.customer_id == alices.pk and "门头照片" not in photo.image.name
    assert body["caption"] == "门头" and body["uploaded_by"] == {"username": "alice", "full_name": "王丽"}
    assert body["url"] == f"/api/v1{base}/{photo.pk}/file"
    event = audited("photo.add", people.alice, object_id=str(photo.pk))
    assert event.extra["customer"] == alices.code and event.extra["format"] == "PNG"

    listed = call("get", people.head_a, base).json()
    assert listed["count"] == 1 and listed["items"][0] == body

    served = call("get", people.head_a, f"{base}/{photo.pk}/file")
    assert served.status_code == 200
    assert b"".join(served.streaming_content) == content
    assert served["Content-Type"] == "image/png" and "attachment" not in served["Content-Disposition"]
    assert served["Cache-Control"] == "private, no-store" and served["X-Content-Type-Options"] == "nosniff"
    # never reachable as a plain media URL, and not by the peer
    assert call("get", people.bob, f"{base}/{photo.pk}/file").json() == NOT_FOUND
    assert call("delete", people.bob, f"{base}/{photo.pk}").json() == NOT_FOUND

    stored = media / photo.image.name
    assert stored.exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert call("delete", people.alice, f"{base}/{photo.pk}").status_code == 204
    assert not CustomerPhoto.objects.filter(pk=photo.pk).exists() and not stored.exists()
    assert audited("photo.delete", people.alice, object_id=str(photo.pk)).extra["customer"] == alices.code
    assert call("get", people.alice, f"{base}/{photo.pk}/file").status_code == 404


def test_photo_refusals(call, people, analyst, alices):
    base = f"/customers/{alices.code}/photos"
    fake = SimpleUploadedFile("x.png", b"<svg onload=alert(1)>", content_type="image/png")
    assert error(call("post", people.alice, base, files={"image": fake}))["field"] == "image"
    image = SimpleUploadedFile("a.png", png_bytes())
    assert error(call("post", analyst, base, files={"image": image}), 403)["code"] == "not_allowed"
    assert call("post", people.alice, base, {"caption": "no file"}, files={}).status_code == 422
    assert not CustomerPhoto.objects.exists()
    assert not AuditEvent.objects.filter(action="photo.add").exists()
    # reading is for everyone in scope, even without the right to edit
    assert call("get", analyst, base).status_code == 200


# ---------------------------------------------------------------- agreements: attachment and delete


def test_agreement_attachment_upload_replace_download_and_remove(
    call, people, analyst, alices, media, django_capture_on_commit_callbacks
):
    agreement = alices.agreements.get()
    url = f"/customers/{alices.code}/agreements/{agreement.pk}/attachment"
    assert call("get", people.alice, url).status_code == 404  # nothing attached yet

    response = call("post", people.alice, url, files={"attachment": SimpleUploadedFile("合同.pdf", PDF)})
    assert response.status_code == 200, response.content
    assert response.json()["has_attachment"] is True and response.json()["number"] == "GY-2026-001"
    agreement.refresh_from_db()
    first = agreement.attachment.name
    assert first.startswith("agreements/") and first.endswith(".pdf") and "合同" not in first
    event = audited("agreement.update", people.alice, object_id=str(agreement.pk))
    assert event.extra["filename"] == "合同.pdf" and "attachment" in event.changes

    download = call("get", analyst, url)  # anyone who may see the customer
    assert download.status_code == 200 and b"".join(download.streaming_content) == PDF
    assert download["Content-Type"] == "application/pdf"
    assert "attachment" in download["Content-Disposition"] and f"{alices.code}-GY-2026-001.pdf" in download[
        "Content-Disposition"
    ]  # fmt: skip
    assert download["Cache-Control"] == "private, no-store"
    assert call("get", people.bob, url).json() == NOT_FOUND

    # refused: a file that is not what its name says, or the wrong role; the old file stays
    exe = SimpleUploadedFile("合同.pdf", b"MZ\x90\x00" + b"\x00" * 60)
    assert error(call("post", people.alice, url, files={"attachment": exe}))["field"] == "attachment"
    assert error(call("post", people.alice, url, files={"attachment": SimpleUploadedFile("a.exe", PDF)}))
    assert error(call("post", analyst, url, files={"attachment": SimpleUploadedFile("b.pdf", PDF)}), 403)
    agreement.refresh_from_db()
    assert agreement.attachment.name == first

    # replace: the earlier file goes once the change is committed
    with django_capture_on_commit_callbacks(execute=True):
        replaced = call("post", people.alice, url, files={"attachment": SimpleUploadedFile("v2.pdf", PDF)})
    assert replaced.status_code == 200, replaced.content
    agreement.refresh_from_db()
    assert agreement.attachment.name != first and not (media / first).exists()
    assert (media / agreement.attachment.name).exists()

    second = agreement.attachment.name
    with django_capture_on_commit_callbacks(execute=True):
        removed = call("delete", people.alice, url)
    assert removed.status_code == 200 and removed.json()["has_attachment"] is False
    assert not (media / second).exists()
    assert (
        AuditEvent.objects.filter(
            action="agreement.update", object_id=str(agreement.pk), channel="api"
        ).count()
        == 3
    )
    assert call("get", people.alice, url).status_code == 404


def test_delete_an_agreement(call, people, analyst, alices, media, django_capture_on_commit_callbacks):
    agreement = alices.agreements.get()
    url = f"/customers/{alices.code}/agreements/{agreement.pk}"
    call("post", people.alice, f"{url}/attachment", files={"attachment": SimpleUploadedFile("a.pdf", PDF)})
    agreement.refresh_from_db()
    stored = media / agreement.attachment.name
    assert error(call("delete", analyst, url), 403)["code"] == "not_allowed"
    with django_capture_on_commit_callbacks(execute=True):
        assert call("delete", people.alice, url).status_code == 204
    assert not Agreement.objects.filter(pk=agreement.pk).exists() and not stored.exists()
    event = audited("agreement.delete", people.alice, object_id=str(agreement.pk))
    assert event.changes["number"] == "GY-2026-001" and event.extra["customer"] == alices.code
    assert call("delete", people.alice, url).status_code == 404
    assert call("get", people.alice, f"/customers/{alices.code}").json()["agreements_count"] == 0


# ---------------------------------------------------------------- contacts: delete


def test_delete_a_contact_takes_its_phones_and_audits_them_masked(call, people, analyst, alices):
    contact = alices.contacts.get()
    url = f"/customers/{alices.code}/contacts/{contact.pk}"
    assert error(call("delete", analyst, url), 403)["code"] == "not_allowed"
    response = call("delete", people.alice, url)
    assert response.status_code == 204, response.content
    assert not Contact.objects.filter(pk=contact.pk).exists()
    assert list(CustomerPhone.objects.filter(customer=alices).values_list("contact", flat=True)) == [None]
    event = audited("contact.delete", people.alice, object_id=str(contact.pk))
    assert event.extra["phones"] == ["139****4321"] and event.changes["name"] == "张经理"
    no_plaintext(event.extra, event.changes)
    assert call("delete", people.alice, url).status_code == 404


# ---------------------------------------------------------------- merging


@pytest.fixture
def duplicate(people, org):
    """A second record of alices' customer, entered with a reason, with a contact, a phone and a tag."""
    record = make(people.alice, org.a1, "顺达物流", tags=["重点"], duplicate_reason="another record",
                  address="济南市历下区")  # fmt: skip
    contact = contact_create(acting_user=people.alice, customer=record, name="李会计")
    phone_add(acting_user=people.alice, customer=record, number="13700003333", contact=contact)
    return record


def test_merge_moves_everything_to_the_kept_record_and_audits_it(call, people, alices, duplicate):
    response = call("post", people.alice, f"/customers/{alices.code}/merge",
                    {"remove": duplicate.code, "reason": "同一客户重复录入"})  # fmt: skip
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["code"] == alices.code and body["address"] == "济南市历下区"  # an empty field filled
    assert body["tags"] == ["物流", "重点"]
    assert {c["name"] for c in body["contacts"]} == {"张经理", "李会计"}
    assert [p["number"] for p in body["phones"]] == ["138****5678", "139****4321", "137****3333"]
    assert body["id_number"] == "110***********002X"
    no_plaintext(response.content.decode())
    assert "13700003333" not in response.content.decode()
    assert not Customer.objects.filter(pk=duplicate.pk).exists()
    assert call("get", people.alice, f"/customers/{duplicate.code}").status_code == 404
    event = audited("customer.merge", people.alice, object_id=str(alices.pk))
    assert event.extra["merged_from"] == duplicate.code and event.extra["reason"] == "同一客户重复录入"
    assert audited("customer.merged_into", people.alice).extra["merged_into"] == alices.code


def test_merge_refusals_are_clear_and_change_nothing(call, people, analyst, org, alices, duplicate, bobs):
    url = f"/customers/{alices.code}/merge"
    no_reason = error(call("post", people.alice, url, {"remove": duplicate.code, "reason": "  "}))
    assert no_reason["field"] == "reason"
    assert call("post", people.alice, url, {"remove": duplicate.code}).status_code == 422
    for remove in (MISSING, bobs.code, ""):  # missing and out of scope read the same
        body = error(call("post", people.alice, url, {"remove": remove, "reason": "重复"}))
        assert body["field"] == "remove", remove
        assert bobs.name not in body["detail"]
    assert (
        error(call("post", people.alice, url, {"remove": alices.code, "reason": "重复"}))["field"] == "remove"
    )
    assert error(call("post", analyst, url, {"remove": duplicate.code, "reason": "重复"}), 403)["code"] == (
        "not_allowed"
    )  # fmt: skip
    # the kept record out of scope is 404 like any other customer
    assert call("post", people.bob, url, {"remove": bobs.code, "reason": "重复"}).json() == NOT_FOUND
    # both hold an agreement numbered alike: a conflict to resolve first
    agreement_create(acting_user=people.alice, customer=duplicate, number="GY-2026-001", signing_level="station",
                     start_date=date(2026, 2, 1))  # fmt: skip
    clash = error(call("post", people.alice, url, {"remove": duplicate.code, "reason": "重复"}), 409)
    assert (clash["code"], clash["field"]) == ("agreement_clash", "remove") and "GY-2026-001" in clash[
        "detail"
    ]
    assert Customer.objects.filter(pk__in=[alices.pk, duplicate.pk, bobs.pk]).count() == 3
    assert duplicate.contacts.count() == 1
    assert not AuditEvent.objects.filter(action__startswith="customer.merge").exists()


# ---------------------------------------------------------------- schema


def test_openapi_lists_the_new_endpoints(client):
    schema = json.loads(client.get("/api/v1/openapi.json").content)
    paths = schema["paths"]
    expected = {
        "/api/v1/customers/lookup": {"post"},
        "/api/v1/customers/{code}/phones": {"get", "post"},
        "/api/v1/customers/{code}/phones/{phone_id}": {"delete"},
        "/api/v1/customers/{code}/id-number": {"put"},
        "/api/v1/customers/{code}/contacts/{contact_id}": {"patch", "delete"},
        "/api/v1/customers/{code}/contacts/{contact_id}/phones": {"get", "post"},
        "/api/v1/customers/{code}/agreements/{agreement_id}": {"patch", "delete"},
        "/api/v1/customers/{code}/agreements/{agreement_id}/attachment": {"get", "post", "delete"},
        "/api/v1/customers/{code}/photos": {"get", "post"},
        "/api/v1/customers/{code}/photos/{photo_id}": {"delete"},
        "/api/v1/customers/{code}/photos/{photo_id}/file": {"get"},
        "/api/v1/customers/{code}/merge": {"post"},
    }
    for path, methods in expected.items():
        assert set(paths.get(path, {})) == methods, path
        for op in paths[path].values():
            assert op["summary"] and op["description"] and op["security"], path
    for path, field in (
        ("/api/v1/customers/{code}/photos", "image"),
        ("/api/v1/customers/{code}/agreements/{agreement_id}/attachment", "attachment"),
    ):
        form = paths[path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert field in form["required"], path
    assert "409" in paths["/api/v1/customers/{code}/merge"]["post"]["responses"]
    photo_file = paths["/api/v1/customers/{code}/photos/{photo_id}/file"]["get"]["responses"]["200"]
    assert photo_file["content"]["image/*"]["schema"]["format"] == "binary"
    assert "application/json" in paths["/api/v1/customers/lookup"]["post"]["requestBody"]["content"]
