"""Customer pages: the list and its search, the 360° page and its tabs, forms, personal data, files, merging.

Scoping throughout: the owner (alice) sees her customer, a peer in another branch (bob) gets 404 exactly
as for a missing one, superior units (head_a, head_p) see the subtree; write pages answer 403 to roles
without MANAGE_CUSTOMERS; administrators hold no business data.
"""

from __future__ import annotations

import io
import re
from datetime import date

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import translation
from PIL import Image

from kehu.accounts.roles import Role
from kehu.audit.models import AuditEvent
from kehu.customers.models import Agreement, Contact, Customer, CustomerPhone, CustomerPhoto
from kehu.customers.personal import customer_set_id_number, phone_add
from kehu.customers.services import agreement_create, contact_create, customer_create, customer_update
from kehu.testing.factories import UserFactory, sign_in

pytestmark = pytest.mark.django_db

MOBILE = "13812345678"
ID_CARD = "11010519491231002X"
CREDIT = "91350100M000100Y43"
BOB_CREDIT = "91370200MA3C00001N"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def make(user, unit, name, division="370102", **kw):
    return customer_create(acting_user=user, name=name, kind=kw.pop("kind", "institution"), owning_unit=unit,
                           division_code=division, **kw)  # fmt: skip


@pytest.fixture
def sinopec(people, org):
    customer = make(people.alice, org.a1, "中国石化销售有限公司", short_name="中石化", tags=["重点"],
                    credit_code=CREDIT)  # fmt: skip
    phone_add(acting_user=people.alice, customer=customer, number=MOBILE, label="手机")
    customer_set_id_number(acting_user=people.alice, customer=customer, id_number=ID_CARD)
    return customer


@pytest.fixture
def qingdao(people, org):
    return make(people.bob, org.b1, "青岛港务物流有限公司", division="370202")


@pytest.fixture
def analyst(org):
    return UserFactory(username="ana", full_name="孙分析", unit=org.city_a, roles=[Role.ANALYST])


def client_for(client, user):
    client.logout()
    return sign_in(client, user)


def codes(response) -> list[str]:
    assert response.status_code == 200, response
    return re.findall(r'<tr data-code="(\d{14})"', response.content.decode())


def png_bytes(size=(40, 30), fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def text(response) -> str:
    return response.content.decode()


# ---------------------------------------------------------------- the list


def test_list_is_scoped_owner_peer_and_superiors(client, people, sinopec, qingdao):
    assert codes(client_for(client, people.alice).get("/customers/")) == [sinopec.code]
    assert codes(client_for(client, people.bob).get("/customers/")) == [qingdao.code]
    assert "中国石化销售有限公司" not in text(client.get("/customers/", {"q": "中国石化"}))
    assert codes(client_for(client, people.head_a).get("/customers/")) == [sinopec.code]
    assert codes(client_for(client, people.head_p).get("/customers/")) == [sinopec.code, qingdao.code]
    assert codes(client_for(client, people.alice_peer).get("/customers/")) == []  # own records only


def test_search_by_pinyin_initials_name_code_and_phone(client, people, sinopec, qingdao):
    client_for(client, people.head_p)
    for q in ("zgsh", "zhongguo", "石化", sinopec.code[:8], "138 1234 5678", CREDIT[:6]):
        assert codes(client.get("/customers/", {"q": q})) == [sinopec.code], q
    assert codes(client.get("/customers/", {"q": "qd"})) == [qingdao.code]
    assert "No customer matches." in text(client.get("/customers/", {"q": "不存在的名字"}))


def test_live_search_answers_htmx_with_the_results_only(client, people, sinopec):
    client_for(client, people.alice)
    response = client.get("/customers/", {"q": "zgsh"}, HTTP_HX_REQUEST="true")
    body = text(response)
    assert "<html" not in body and 'data-testid="customer-table"' in body
    assert codes(response) == [sinopec.code]
    assert "HX-Request" in response["Vary"]
    # The export link carries the same filters.
    assert (
        'href="/customers/io/export/?q=zgsh"' in body
        and 'href="/customers/io/export/?q=zgsh&amp;format=csv"' in body
    )
    # A history restore needs the whole page.
    full = client.get(
        "/customers/", {"q": "zgsh"}, HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    assert "<html" in text(full)


def test_filters_sorting_and_bad_filter_values(client, people, org, sinopec, qingdao):
    client_for(client, people.head_p)
    assert codes(client.get("/customers/", {"unit": "CB"})) == [qingdao.code]
    assert codes(client.get("/customers/", {"manager": "alice"})) == [sinopec.code]
    assert codes(client.get("/customers/", {"tag": "重点"})) == [sinopec.code]
    assert codes(client.get("/customers/", {"status": "active"})) == []
    assert codes(client.get("/customers/", {"kind": "institution", "order": "-code"})) == [
        qingdao.code,
        sinopec.code,
    ]
    # An unknown unit is shown beside its field; the list still answers, unfiltered by it.
    response = client.get("/customers/", {"unit": "NOPE"})
    assert "There is no unit with the code “NOPE”." in text(response)
    assert len(codes(response)) == 2
    # bob may not filter by a unit he cannot see: it is unknown to him, not an empty subtree.
    client_for(client, people.bob)
    assert "There is no unit with the code “CA”." in text(client.get("/customers/", {"unit": "CA"}))


def test_pages_and_capped_count(client, people, org, monkeypatch):
    from kehu.web.views import customers as views

    for i in range(5):
        make(people.alice, org.a1, f"测试客户{i}号", duplicate_reason="测试")
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    client_for(client, people.alice)
    first = client.get("/customers/")
    assert len(codes(first)) == 2 and "Page 1 of 3" in text(first) and 'rel="next"' in text(first)
    last = client.get("/customers/", {"page": 3})
    assert len(codes(last)) == 1 and 'rel="next"' not in text(last)
    monkeypatch.setattr(views, "customer_page", lambda **kw: ([], 10_000, True))
    assert "10,000+ customers" in text(client.get("/customers/", {"q": "x"}))


def test_buttons_and_nav_follow_the_roles(client, people, analyst, sinopec):
    body = text(client_for(client, people.alice).get("/customers/"))
    assert 'data-testid="customer-create"' in body and 'data-testid="customer-import"' in body
    assert 'data-nav="customers"' in body
    body = text(client_for(client, analyst).get("/customers/"))
    assert 'data-testid="customer-create"' not in body and 'data-testid="customer-export"' in body
    assert 'data-nav="customers"' in body
    for admin in (people.sysadmin, people.secadmin, people.auditor):
        client_for(client, admin)
        assert client.get("/customers/").status_code == 403
        assert 'data-nav="customers"' not in text(client.get("/"))


# ---------------------------------------------------------------- the 360° page


TABS = ("profile", "contacts", "agreements", "photos", "history", "sales", "visits", "complaints")


def test_every_tab_renders_for_the_owner_and_the_province(client, people, sinopec):
    contact_create(acting_user=people.alice, customer=sinopec, name="李总", decision_role="decision_maker")
    agreement_create(acting_user=people.alice, customer=sinopec, number="GY-2024-001", signing_level="city",
                     start_date=date(2024, 1, 1))  # fmt: skip
    for user in (people.alice, people.head_p):
        client_for(client, user)
        page = client.get(f"/customers/{sinopec.code}/")
        body = text(page)
        assert (
            page.status_code == 200 and "中国石化销售有限公司" in body and 'data-testid="tab-profile"' in body
        )
        assert "王丽" in body  # the lead manager (A)
        for tab in TABS:
            full = client.get(f"/customers/{sinopec.code}/{tab}/")
            assert full.status_code == 200 and f'data-testid="tab-{tab}"' in text(full), (user, tab)
            partial = client.get(f"/customers/{sinopec.code}/{tab}/", HTTP_HX_REQUEST="true")
            assert "<html" not in text(partial) and f'data-testid="tab-{tab}"' in text(partial)
    body = text(client.get(f"/customers/{sinopec.code}/contacts/"))
    assert "李总" in body and "Decision maker" in body
    assert "GY-2024-001" in text(client.get(f"/customers/{sinopec.code}/agreements/"))
    for tab in ("sales", "visits", "complaints"):
        assert "Not yet recorded." in text(client.get(f"/customers/{sinopec.code}/{tab}/"))
    assert client.get(f"/customers/{sinopec.code}/nonsense/").status_code == 404


def test_a_peer_in_another_branch_gets_404_everywhere(client, people, sinopec, media):
    contact = contact_create(acting_user=people.alice, customer=sinopec, name="李总")
    agreement = agreement_create(acting_user=people.alice, customer=sinopec, number="A1", signing_level="city",
                                 start_date=date(2024, 1, 1))  # fmt: skip
    phone = CustomerPhone.objects.get(customer=sinopec)
    client_for(client, people.bob)
    base = f"/customers/{sinopec.code}"
    gets = [f"{base}/", *(f"{base}/{t}/" for t in TABS), f"{base}/edit/", f"{base}/merge/",
            f"{base}/contacts/add/", f"{base}/contacts/{contact.pk}/edit/", f"{base}/agreements/add/",
            f"{base}/agreements/{agreement.pk}/edit/", f"{base}/agreements/{agreement.pk}/attachment/"]  # fmt: skip
    for url in gets:
        assert client.get(url).status_code == 404, url
    posts = [f"{base}/reveal/", f"{base}/phones/add/", f"{base}/phones/{phone.pk}/remove/", f"{base}/id-number/",
             f"{base}/contacts/{contact.pk}/delete/", f"{base}/agreements/{agreement.pk}/delete/",
             f"{base}/photos/add/"]  # fmt: skip
    for url in posts:
        assert client.post(url, {"number": "13900000000"}).status_code == 404, url
    assert (
        CustomerPhone.objects.filter(pk=phone.pk).exists() and Contact.objects.filter(pk=contact.pk).exists()
    )
    assert not AuditEvent.objects.filter(action="personal_data.reveal").exists()
    # A malformed code is no customer either.
    assert client.get("/customers/1234/").status_code == 404


def test_write_pages_are_403_without_manage_customers(client, people, analyst, sinopec):
    client_for(client, analyst)
    base = f"/customers/{sinopec.code}"
    assert client.get(f"{base}/").status_code == 200  # reading is allowed in scope
    for url in ("/customers/add/", f"{base}/edit/", f"{base}/contacts/add/", f"{base}/agreements/add/",
                f"{base}/merge/"):  # fmt: skip
        assert client.get(url).status_code == 403, url
    assert client.post(f"{base}/phones/add/", {"number": "13900000000"}).status_code == 403
    assert client.post(f"{base}/reveal/").status_code == 403  # no view_personal_data either
    body = text(client.get(f"{base}/"))
    assert 'data-testid="customer-edit"' not in body and 'data-testid="reveal-form"' not in body


def test_branches_and_head_office_link_each_other(client, people, org, sinopec):
    branch = make(people.alice, org.a1, "中国石化济南分公司", parent=sinopec)
    client_for(client, people.alice)
    assert f'href="/customers/{branch.code}/"' in text(client.get(f"/customers/{sinopec.code}/"))
    assert 'data-testid="head-office"' in text(client.get(f"/customers/{branch.code}/"))


# ---------------------------------------------------------------- personal data


def test_personal_data_is_masked_and_each_reveal_is_audited(client, people, sinopec):
    client_for(client, people.head_a)
    body = text(client.get(f"/customers/{sinopec.code}/"))
    assert "138****5678" in body and MOBILE not in body
    assert "110***********002X" in body and ID_CARD not in body
    response = client.post(f"/customers/{sinopec.code}/reveal/", {"tab": "profile", "reason": "回访"},
                           HTTP_HX_REQUEST="true")  # fmt: skip
    body = text(response)
    assert response.status_code == 200 and "<html" not in body
    assert f'href="tel:{MOBILE}"' in body and ID_CARD in body
    assert "no-store" in response["Cache-Control"]
    event = AuditEvent.objects.get(action="personal_data.reveal")
    assert event.actor_username == "head_a" and event.extra["reason"] == "回访"
    assert event.object_id == str(sinopec.pk)
    # Without htmx the whole page comes back, revealed, and the next visit is masked again.
    whole = text(client.post(f"/customers/{sinopec.code}/reveal/", {"tab": "profile"}))
    assert "<html" in whole and ID_CARD in whole
    assert AuditEvent.objects.filter(action="personal_data.reveal").count() == 2
    assert MOBILE not in text(client.get(f"/customers/{sinopec.code}/"))
    # Reveals are reads: not in the record's history.
    assert "personal_data.reveal" not in text(client.get(f"/customers/{sinopec.code}/history/"))


def test_phones_and_id_number_on_the_profile_tab(client, people, qingdao, sinopec):
    client_for(client, people.alice)
    base = f"/customers/{sinopec.code}"
    response = client.post(f"{base}/phones/add/", {"number": "0531-8888 6666", "label": "办公室"})
    assert response.status_code == 302
    assert CustomerPhone.objects.filter(customer=sinopec).count() == 2
    bad = client.post(f"{base}/phones/add/", {"number": "12345"})
    assert bad.status_code == 400 and "write a mobile number" in text(bad)
    phone_add(acting_user=people.bob, customer=qingdao, number="13999999999")
    taken = client.post(f"{base}/phones/add/", {"number": "13999999999"})
    assert "already registered by another unit" in text(taken) and qingdao.code not in text(taken)
    phone = CustomerPhone.objects.get(customer=sinopec, label="办公室")
    assert client.post(f"{base}/phones/{phone.pk}/remove/").status_code == 302
    assert not CustomerPhone.objects.filter(pk=phone.pk).exists()
    wrong = client.post(f"{base}/id-number/", {"id_number": "110105194912310021"})
    assert wrong.status_code == 400 and "check character is wrong" in text(wrong)
    assert client.post(f"{base}/id-number/", {"id_number": ""}).status_code == 302
    assert Customer.objects.get(pk=sinopec.pk).id_number == ""


# ---------------------------------------------------------------- creating and editing


def create_post(client, **data):
    form = {"name": "", "kind": "institution", "status": "prospect", "owning_unit": "A1"}
    form.update(data)
    return client.post("/customers/add/", form)


def test_create_assigns_a_code_and_takes_phones(client, people):
    client_for(client, people.alice)
    assert client.get("/customers/add/").status_code == 200
    response = create_post(client, name="济南顺达物流有限公司", phones="13812345678, 0531-88886666",
                           tags="物流 重点")  # fmt: skip
    customer = Customer.objects.get(name="济南顺达物流有限公司")
    assert response.status_code == 302 and response["Location"] == f"/customers/{customer.code}/"
    assert customer.code == "37010200001000"  # the owning unit's division, first sequence
    assert customer.lead_manager == people.alice and customer.tags == ["物流", "重点"]
    assert CustomerPhone.objects.filter(customer=customer).count() == 2


def test_create_shows_errors_beside_their_fields(client, people, sinopec, qingdao):
    client_for(client, people.alice)
    response = create_post(client, name="")
    assert response.status_code == 200 and "This field is required." in text(response)
    response = create_post(client, name="另一家", credit_code=CREDIT)
    assert sinopec.code in " ".join(response.context["form"].errors["credit_code"])
    customer_update(acting_user=people.bob, customer=qingdao, credit_code=BOB_CREDIT)  # invisible to alice
    response = create_post(client, name="又一家", credit_code=BOB_CREDIT)
    [error] = response.context["form"].errors["credit_code"]
    assert "already registered by another unit" in error and qingdao.code not in text(response)
    response = create_post(client, name="又一家", credit_code="91350100M000100Y44")
    assert "check character is wrong" in response.context["form"].errors["credit_code"][0]
    response = create_post(client, name="新客户", phones="13812345678")
    [error] = response.context["form"].errors["phones"]
    assert "This number belongs to" in error and sinopec.code in error
    response = create_post(client, name="新客户", owning_unit="B1")
    assert "There is no unit with the code “B1”." in text(response)
    assert not Customer.objects.filter(name__in=["另一家", "又一家", "新客户"]).exists()


def test_create_with_a_similar_name_needs_a_reason(client, people, sinopec, qingdao):
    client_for(client, people.alice)
    response = create_post(client, name="中国石化销售（有限公司）")
    body = text(response)
    assert response.status_code == 200 and 'data-testid="similar-names"' in body
    assert f'href="/customers/{sinopec.code}/"' in body
    assert 'name="duplicate_reason"' in body
    assert not Customer.objects.filter(name="中国石化销售（有限公司）").exists()
    # A similar name known only in another unit: counted, never named.
    response = create_post(client, name="青岛港务物流")
    body = text(response)
    assert 'data-testid="similar-hidden"' in body and "1 more with a similar name" in body
    assert qingdao.code not in body and "青岛港务物流有限公司" not in body
    # With a reason it goes through, and the reason is audited.
    response = create_post(client, name="中国石化销售（有限公司）", duplicate_reason="另一法人，同名不同址")
    assert response.status_code == 302
    created = Customer.objects.get(name="中国石化销售（有限公司）")
    event = AuditEvent.objects.get(action="customer.create", object_id=str(created.pk))
    assert (
        event.extra["duplicate_reason"] == "另一法人，同名不同址"
        and sinopec.code in event.extra["similar_to"]
    )


def test_managers_and_units_are_limited_to_the_scope(client, people, org):
    client_for(client, people.alice)
    body = text(client.get("/customers/add/"))
    assert "(alice)" in body and "(amy)" not in body and "(bob)" not in body
    response = create_post(client, name="某客户", lead_manager=str(people.bob.pk))
    assert "Select a valid choice" in text(response)
    client_for(client, people.head_a)
    body = text(client.get("/customers/add/"))
    assert "(alice)" in body and "(amy)" in body and "(bob)" not in body
    response = create_post(client, name="某客户", lead_manager=str(people.alice.pk),
                           backup_manager=str(people.alice_peer.pk))  # fmt: skip
    customer = Customer.objects.get(name="某客户")
    assert (customer.lead_manager, customer.backup_manager) == (people.alice, people.alice_peer)


def test_edit_changes_only_what_was_edited_and_the_history_shows_it(client, people, sinopec):
    client_for(client, people.alice)
    url = f"/customers/{sinopec.code}/edit/"
    form = client.get(url).context["form"]
    data = {name: ("" if value is None else value) for name, value in form.initial.items()}
    data.update(name="中国石化销售股份有限公司", status="active")
    response = client.post(url, data)
    assert response.status_code == 302
    sinopec.refresh_from_db()
    assert sinopec.name == "中国石化销售股份有限公司" and sinopec.status == "active"
    event = AuditEvent.objects.filter(action="customer.update").latest("seq")
    assert set(event.changes) == {"name", "status"}
    history = text(client.get(f"/customers/{sinopec.code}/history/"))
    assert (
        "Profile changed" in history
        and "中国石化销售有限公司" in history
        and "中国石化销售股份有限公司" in history
    )
    assert "Registered" not in history and "Active" in history  # choices shown by their labels
    assert "ID card number changed" in history and ID_CARD not in history
    assert "Phone added" in history and "138****5678" in history and MOBILE not in history
    assert "Customer created" in history


def test_edit_refuses_moving_out_of_scope_with_a_message(client, people, org, sinopec):
    client_for(client, people.head_a)
    url = f"/customers/{sinopec.code}/edit/"
    data = {k: ("" if v is None else v) for k, v in client.get(url).context["form"].initial.items()}
    data["owning_unit"] = "B1"
    assert "There is no unit with the code “B1”." in text(client.post(url, data))
    assert Customer.objects.get(pk=sinopec.pk).owning_unit == org.a1


# ---------------------------------------------------------------- contacts


def test_contacts_add_edit_delete(client, people, sinopec):
    client_for(client, people.alice)
    base = f"/customers/{sinopec.code}/contacts"
    response = client.post(f"{base}/add/", {
        "name": "李建国", "title": "总经理", "decision_role": "decision_maker", "birthday": "1970-05-01",
        "important_dates": "2024-06-18 公司成立日", "phone": "139 0000 1111",
    })  # fmt: skip
    assert response.status_code == 302
    contact = Contact.objects.get(name="李建国")
    assert contact.important_dates == [{"date": "2024-06-18", "label": "公司成立日"}]
    assert contact.phones.get().number == "13900001111"
    body = text(client.get(f"/customers/{sinopec.code}/contacts/"))
    assert "李建国" in body and "139****1111" in body and "13900001111" not in body
    bad = client.post(f"{base}/add/", {"name": "王五", "important_dates": "明年 生日"})
    assert "Line 1: start with a date written as YYYY-MM-DD" in text(bad)
    taken = client.post(f"{base}/add/", {"name": "赵六", "phone": MOBILE})
    assert "This customer has that number already." in text(taken)
    assert not Contact.objects.filter(
        name="赵六"
    ).exists()  # the contact and its phone stand or fall together

    edit = f"{base}/{contact.pk}/edit/"
    data = {k: ("" if v is None else v) for k, v in client.get(edit).context["form"].initial.items()}
    data["title"] = "董事长"
    assert client.post(edit, data).status_code == 302
    contact.refresh_from_db()
    assert contact.title == "董事长"
    assert set(AuditEvent.objects.get(action="contact.update").changes) == {"title"}
    assert client.post(f"{base}/{contact.pk}/phones/add/", {"phone-number": "13900002222"}).status_code == 302
    assert contact.phones.count() == 2

    assert client.post(f"{base}/{contact.pk}/delete/").status_code == 302
    assert not Contact.objects.filter(pk=contact.pk).exists()
    assert not CustomerPhone.objects.filter(contact_id=contact.pk).exists()
    event = AuditEvent.objects.get(action="contact.delete")
    assert event.object_id == str(contact.pk) and event.extra["phones"] == ["139****1111", "139****2222"]
    history = text(client.get(f"/customers/{sinopec.code}/history/"))
    assert "Contact added" in history and "Contact changed" in history and "Contact removed" in history


# ---------------------------------------------------------------- agreements and attachments


def test_agreement_with_attachment_downloads_only_through_the_scoped_view(
    client, people, sinopec, media, django_capture_on_commit_callbacks
):
    client_for(client, people.alice)
    base = f"/customers/{sinopec.code}/agreements"
    response = client.post(f"{base}/add/", {
        "number": "GY-2024-001", "agreement_type": "supply", "signing_level": "city", "signing_unit": "CA",
        "start_date": "2024-01-01", "status": "active",
        "attachment": SimpleUploadedFile("合同.pdf", PDF, content_type="application/pdf"),
    })  # fmt: skip
    assert response.status_code == 302, text(response)
    agreement = Agreement.objects.get(number="GY-2024-001")
    assert agreement.attachment.name.startswith("agreements/") and "合同" not in agreement.attachment.name
    url = f"{base}/{agreement.pk}/attachment/"
    for user in (people.alice, people.head_a, people.head_p):
        client_for(client, user)
        download = client.get(url)
        assert download.status_code == 200 and b"".join(download.streaming_content) == PDF
        assert (
            download["Content-Type"] == "application/pdf" and "attachment" in download["Content-Disposition"]
        )
        assert "no-store" in download["Cache-Control"]
    client_for(client, people.bob)
    assert client.get(url).status_code == 404
    # Media files are not served at any public URL.
    assert client.get(f"/media/{agreement.attachment.name}").status_code == 404

    client_for(client, people.alice)
    fake = SimpleUploadedFile("contract.pdf", b"<html><script>alert(1)</script></html>")
    response = client.post(f"{base}/{agreement.pk}/edit/", {
        "number": "GY-2024-001", "signing_level": "city", "start_date": "2024-01-01", "status": "ended",
        "attachment": fake,
    })  # fmt: skip
    assert "not a .pdf file" in text(response)
    assert Agreement.objects.get(pk=agreement.pk).status == "active"  # nothing changed
    exe = SimpleUploadedFile("setup.exe", b"MZ....")
    assert ".exe is not accepted" in text(client.post(f"{base}/add/", {
        "number": "X", "signing_level": "city", "start_date": "2024-01-01", "status": "active", "attachment": exe,
    }))  # fmt: skip
    # The status changes; the old file goes when it is removed.
    old_file = media / agreement.attachment.name
    assert old_file.exists()
    response = client.post(f"{base}/{agreement.pk}/edit/", {
        "number": "GY-2024-001", "signing_level": "city", "start_date": "2024-01-01", "status": "ended",
        "remove_attachment": "on", "end_date": "2023-01-01",
    })  # fmt: skip
    assert "cannot end before it starts" in text(response)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{base}/{agreement.pk}/edit/", {
            "number": "GY-2024-001", "signing_level": "city", "start_date": "2024-01-01", "status": "ended",
            "remove_attachment": "on", "signing_unit": "CA",
        })  # fmt: skip
    assert response.status_code == 302 and not old_file.exists()
    agreement.refresh_from_db()
    assert agreement.status == "ended" and not agreement.attachment
    assert set(AuditEvent.objects.get(action="agreement.update").changes) == {"attachment", "status"}
    assert client.get(url).status_code == 404
    assert client.post(f"{base}/{agreement.pk}/delete/").status_code == 302
    assert not Agreement.objects.filter(pk=agreement.pk).exists()


# ---------------------------------------------------------------- photos


def test_photos_are_real_images_served_through_the_scoped_view(
    client, people, sinopec, media, monkeypatch, django_capture_on_commit_callbacks
):
    client_for(client, people.alice)
    base = f"/customers/{sinopec.code}/photos"
    image = png_bytes()
    response = client.post(
        f"{base}/add/", {"image": SimpleUploadedFile("门头.png", image), "caption": "门头"}
    )
    assert response.status_code == 302
    photo = CustomerPhoto.objects.get(customer=sinopec)
    assert photo.image.name.endswith(".png") and photo.caption == "门头"
    assert AuditEvent.objects.get(action="photo.add").extra["format"] == "PNG"
    body = text(client.get(f"/customers/{sinopec.code}/photos/"))
    assert (
        f'src="{base}/{photo.pk}/"' in body and 'capture="environment"' in body and 'accept="image/*"' in body
    )
    for user in (people.alice, people.head_a):
        client_for(client, user)
        served = client.get(f"{base}/{photo.pk}/")
        assert served.status_code == 200 and served["Content-Type"] == "image/png"
        assert b"".join(served.streaming_content) == image  # stored as uploaded
    client_for(client, people.bob)
    assert client.get(f"{base}/{photo.pk}/").status_code == 404

    client_for(client, people.alice)
    bad = client.post(f"{base}/add/", {"image": SimpleUploadedFile("x.jpg", b"GIF89a not really")})
    assert bad.status_code == 400 and "not a readable JPEG, PNG or WebP image" in text(bad)
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, format="GIF")
    bad = client.post(f"{base}/add/", {"image": SimpleUploadedFile("x.gif", gif.getvalue())})
    assert "not GIF" in text(bad)
    truncated = png_bytes((200, 200), "JPEG")[:300]
    assert "not a readable" in text(
        client.post(f"{base}/add/", {"image": SimpleUploadedFile("t.jpg", truncated)})
    )
    from kehu.customers import services

    monkeypatch.setattr(services, "PHOTO_MAX_BYTES", 100)
    big = client.post(f"{base}/add/", {"image": SimpleUploadedFile("big.png", png_bytes((300, 300)))})
    assert "the limit is" in text(big)
    assert CustomerPhoto.objects.count() == 1

    stored = media / photo.image.name
    with django_capture_on_commit_callbacks(execute=True):  # the file goes once the removal is committed
        assert client.post(f"{base}/{photo.pk}/delete/").status_code == 302
    assert not CustomerPhoto.objects.exists() and not stored.exists()
    assert "Photo removed" in text(client.get(f"/customers/{sinopec.code}/history/"))


# ---------------------------------------------------------------- merging


def test_merge_asks_for_the_kept_record_shows_what_moves_and_needs_a_reason(client, people, org, sinopec):
    merge = pytest.importorskip("kehu.customers.merge")
    assert hasattr(merge, "customer_merge")
    duplicate = make(people.alice, org.a1, "中国石化销售公司济南", duplicate_reason="测试")
    contact_create(acting_user=people.alice, customer=duplicate, name="张经理")
    client_for(client, people.alice)
    url = f"/customers/{duplicate.code}/merge/"
    assert client.get(url).status_code == 200
    assert "a record cannot be merged into itself" in text(client.post(url, {"keep": duplicate.code}))
    assert "There is no customer with the code" in text(client.post(url, {"keep": "37020200001000"}))
    confirm = client.post(url, {"keep": sinopec.code})
    body = text(confirm)
    assert 'data-testid="merge-confirm"' in body and "1 contact" in body
    assert "This field is required." in text(client.post(url, {"keep": sinopec.code, "reason": ""}))
    done = client.post(url, {"keep": sinopec.code, "reason": "同一法人重复建档"})
    assert done.status_code == 302 and done["Location"] == f"/customers/{sinopec.code}/"
    assert not Customer.objects.filter(pk=duplicate.pk).exists()
    assert Contact.objects.get(name="张经理").customer == sinopec
    history = text(client.get(f"/customers/{sinopec.code}/history/"))
    assert "Another record merged into this one" in history and "同一法人重复建档" in history
    assert "张经理" in history  # the moved contact's history came along
    assert "Merged into another record" in history and duplicate.code in history  # and the removed record's


def test_merge_is_scoped(client, people, sinopec, qingdao):
    client_for(client, people.alice)
    assert "There is no customer with the code" in text(
        client.post(f"/customers/{sinopec.code}/merge/", {"keep": qingdao.code})
    )
    client_for(client, people.bob)
    assert client.get(f"/customers/{sinopec.code}/merge/").status_code == 404


def test_history_is_scoped_like_the_customer(client, people, sinopec):
    customer_update(acting_user=people.alice, customer=sinopec, notes="重要")
    client_for(client, people.head_a)
    assert "Profile changed" in text(client.get(f"/customers/{sinopec.code}/history/"))
    client_for(client, people.bob)
    assert client.get(f"/customers/{sinopec.code}/history/").status_code == 404
