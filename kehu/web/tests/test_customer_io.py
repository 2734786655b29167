"""Customer import (upload → background job) and export (download of the filtered list) pages."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import StreamingHttpResponse
from django.test import Client

from kehu.audit.models import AuditEvent
from kehu.customers.models import Agreement, Contact, Customer
from kehu.customers.services import customer_create
from kehu.jobs.models import Job, JobStatus
from kehu.testing.factories import sign_in

pytestmark = pytest.mark.django_db

HEADER = "code,name,kind,unit_code,division_code,credit_code,phone,address\n"
ROW = ",济南顺达物流有限公司,机构,A1,370102,,13800000001,历下区1号\n"


def upload(client, text: str, capture, name="customers.csv", encoding="utf-8", **fields):
    data = {"kind": "customers", "file": SimpleUploadedFile(name, text.encode(encoding)), **fields}
    with capture(execute=True):
        return client.post("/customers/io/import/", data)


def job_of(response) -> Job:
    assert response.status_code == 302 and response["Location"].startswith("/jobs/"), response
    return Job.objects.get(pk=int(response["Location"].strip("/").split("/")[-1]))


def test_the_form_shows(login, people):
    page = login(people.alice).get("/customers/io/import/?kind=contacts")
    assert page.status_code == 200
    assert page.context["form"].initial["kind"] == "contacts"
    assert 'enctype="multipart/form-data"' in page.content.decode()


def test_a_file_is_imported_by_a_job_as_the_uploader(login, people, org, django_capture_on_commit_callbacks):
    client = login(people.alice)
    job = job_of(upload(client, HEADER + ROW, django_capture_on_commit_callbacks))
    assert job.status == JobStatus.SUCCEEDED, (job.error, job.result)
    assert job.result["created"] == 1 and job.result["ok"]
    customer = Customer.objects.get()
    assert customer.lead_manager == people.alice
    assert AuditEvent.objects.filter(
        action="customer.create", channel="task", actor_username="alice"
    ).exists()
    job.refresh_from_db()
    assert not job.input_file  # the uploaded file (phone numbers in clear) is not kept after the import
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'data-testid="import-counts"' in page and 'data-status="succeeded"' in page


def test_dry_run_first_then_import_the_same_file(login, people, org, django_capture_on_commit_callbacks):
    client = login(people.alice)
    job = job_of(upload(client, HEADER + ROW, django_capture_on_commit_callbacks, dry_run="on"))
    assert job.status == JobStatus.SUCCEEDED and job.result["dry_run"] and job.result["created"] == 1
    assert not Customer.objects.exists()
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'data-testid="import-run"' in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/customers/io/import/{job.pk}/run/")
    real = job_of(response)
    assert real.pk != job.pk and real.status == JobStatus.SUCCEEDED and not real.result["dry_run"]
    assert Customer.objects.count() == 1


def test_errors_are_listed_and_downloadable(login, people, org, django_capture_on_commit_callbacks):
    client = login(people.alice)
    text = HEADER + ROW + ",泰山建材股份有限公司,机器,B1,370102,,1380000000,\n"
    job = job_of(upload(client, text, django_capture_on_commit_callbacks, encoding="gbk"))
    assert job.status == JobStatus.FAILED and "nothing was changed" in job.error
    assert not Customer.objects.exists()
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'data-testid="import-errors"' in page and 'data-testid="import-run"' not in page
    response = client.get(f"/customers/io/import/{job.pk}/errors.csv")
    assert response.status_code == 200 and response["Content-Disposition"].startswith("attachment;")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["row", "column", "value", "problem", "kind"]
    assert {(r[0], r[1]) for r in rows[1:]} == {("3", "kind"), ("3", "unit_code"), ("3", "phone")}
    assert "1380000000" not in response.content.decode("utf-8-sig")  # masked in the error list


def test_similar_names_need_a_reason_given_on_the_job_page(
    login, people, org, django_capture_on_commit_callbacks
):
    customer_create(acting_user=people.alice, name="济南顺达物流有限公司", kind="institution", owning_unit=org.a1,
                    division_code="370102")  # fmt: skip
    client = login(people.alice)
    text = HEADER + ",济南顺达物流有限责任公司,机构,A1,370102,,,\n"
    job = job_of(upload(client, text, django_capture_on_commit_callbacks))
    assert job.status == JobStatus.FAILED and job.result["needs_reason"] and "reason" in job.error
    assert job.input_file  # kept: the page imports it once a reason is given
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'data-testid="import-warnings"' in page and 'name="reason"' in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/customers/io/import/{job.pk}/run/", {"reason": "另一家，地址不同"})
    real = job_of(response)
    assert real.status == JobStatus.SUCCEEDED, real.result
    assert Customer.objects.count() == 2
    event = AuditEvent.objects.filter(action="customer.create").latest("seq")
    assert event.extra["duplicate_reason"] == "另一家，地址不同"


def test_contacts_and_agreements_by_upload(login, people, org, django_capture_on_commit_callbacks):
    customer = customer_create(acting_user=people.alice, name="济南顺达物流有限公司", kind="institution",
                               owning_unit=org.a1, division_code="370102")  # fmt: skip
    client = login(people.alice)
    data = {
        "kind": "contacts",
        "file": SimpleUploadedFile("c.csv", f"客户编码,姓名,职务\n{customer.code},李总,经理\n".encode()),
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/customers/io/import/", data)
    assert job_of(response).status == JobStatus.SUCCEEDED
    text = f"customer_code,number,signing_level,start_date,end_date\n{customer.code},GX-1,city,2026-01-01,\n"
    data = {"kind": "agreements", "file": SimpleUploadedFile("a.csv", text.encode())}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/customers/io/import/", data)
    job = job_of(response)
    assert job.status == JobStatus.SUCCEEDED and job.kind == "agreements_import"
    assert Contact.objects.get().title == "经理" and Agreement.objects.get().end_date is None
    assert 'data-testid="import-counts"' in client.get(f"/jobs/{job.pk}/").content.decode()


def test_a_too_large_upload_is_cut_off(login, people, org, settings):
    settings.KEHU_MAX_UPLOAD_MB = 1
    client = login(people.alice)
    big = HEADER + ROW * (1024 * 1024 // len(ROW.encode()) + 10)
    response = client.post("/customers/io/import/", {"kind": "customers",
                                                      "file": SimpleUploadedFile("big.csv", big.encode())})  # fmt: skip
    assert response.status_code == 200
    assert "larger than 1 MB" in str(response.context["form"].errors["file"])
    assert not Job.objects.exists()


def test_the_upload_handler_stops_at_the_limit(rf):
    from django.core.files.uploadhandler import StopUpload

    from kehu.web.views.customer_io import CappedUploadHandler

    handler = CappedUploadHandler(rf.post("/"), limit=10)
    assert handler.receive_data_chunk(b"12345", 0) == b"12345"
    with pytest.raises(StopUpload):
        handler.receive_data_chunk(b"678901", 5)
    assert handler.too_large
    declared = CappedUploadHandler(rf.post("/"), limit=10)
    declared.handle_raw_input(None, {}, 5 * 1024 * 1024, b"x")
    with pytest.raises(StopUpload):
        declared.new_file("file", "big.csv", "text/csv", 0)


def test_an_unsupported_file_is_refused_at_the_field(login, people):
    client = login(people.alice)
    response = client.post(
        "/customers/io/import/", {"kind": "customers", "file": SimpleUploadedFile("c.xls", b"x")}
    )
    assert response.status_code == 200 and response.context["form"].errors["file"]
    assert not Job.objects.exists()


@pytest.mark.parametrize("who", ["sysadmin", "secadmin", "auditor"])
def test_roles_without_customer_rights_may_not_import(login, people, who):
    client = login(getattr(people, who))
    assert client.get("/customers/io/import/").status_code == 403
    data = {"kind": "customers", "file": SimpleUploadedFile("c.csv", (HEADER + ROW).encode())}
    assert client.post("/customers/io/import/", data).status_code == 403
    assert not Job.objects.exists()


def test_anonymous_is_sent_to_login(client):
    response = client.get("/customers/io/import/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_csrf_is_checked(people, org):
    client = sign_in(Client(enforce_csrf_checks=True), people.alice)
    data = {"kind": "customers", "file": SimpleUploadedFile("c.csv", (HEADER + ROW).encode())}
    assert client.post("/customers/io/import/", data).status_code == 403
    assert not Job.objects.exists()


def test_an_import_job_is_its_starters_alone(login, people, org, django_capture_on_commit_callbacks):
    job = job_of(upload(login(people.alice), HEADER + ROW, django_capture_on_commit_callbacks, dry_run="on"))
    other = sign_in(Client(), people.head_a)
    assert other.get(f"/customers/io/import/{job.pk}/errors.csv").status_code == 404
    assert other.post(f"/customers/io/import/{job.pk}/run/").status_code == 404
    assert other.get(f"/jobs/{job.pk}/").status_code == 404
    assert not Customer.objects.exists()


# ---------------------------------------------------------------------------------------------------
# Export


@pytest.fixture
def archive(people, org):
    mine = customer_create(acting_user=people.alice, name="济南顺达物流有限公司", kind="institution",
                           owning_unit=org.a1, division_code="370102", phones=["13800000001"])  # fmt: skip
    other = customer_create(acting_user=people.head_a, name="王建国", kind="individual", owning_unit=org.a2,
                            division_code="370103")  # fmt: skip
    theirs = customer_create(acting_user=people.bob, name="青岛海鸥渔业合作社", kind="institution",
                             owning_unit=org.b1, division_code="370202")  # fmt: skip
    return mine, other, theirs


def csv_rows(response) -> list[dict]:
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_export_streams_the_filtered_list_scoped_and_masked(login, people, org, archive):
    mine, other, theirs = archive
    client = login(people.head_a)
    response = client.get("/customers/io/export/?format=csv")
    assert response.status_code == 200 and response["Content-Disposition"].startswith(
        'attachment; filename="customers-'
    )
    assert response["Cache-Control"] == "no-store"
    rows = csv_rows(response)
    assert {r["code"] for r in rows} == {mine.code, other.code}  # never city B
    assert rows[0]["phone"] == "138****0001"
    # the list's own parameters: unit by code, kind…; and within= a unit's id
    assert [r["code"] for r in csv_rows(client.get("/customers/io/export/?format=csv&unit=A2"))] == [
        other.code
    ]
    assert [
        r["code"] for r in csv_rows(client.get(f"/customers/io/export/?format=csv&within={org.a1.pk}"))
    ] == [mine.code]
    assert [
        r["code"] for r in csv_rows(client.get("/customers/io/export/?format=csv&kind=individual&q=王"))
    ] == [other.code]
    event = AuditEvent.objects.filter(action="customer.export").latest("seq")
    assert (
        event.extra["count"] == 1 and event.extra["filter"]["kind"] == "individual" and event.channel == "web"
    )
    assert [r["code"] for r in csv_rows(login(people.bob).get("/customers/io/export/?format=csv"))] == [
        theirs.code
    ]


def test_export_xlsx(login, people, org, archive):
    from openpyxl import load_workbook

    response = login(people.alice).get("/customers/io/export/")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/vnd.openxml")
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "code" and [r[0] for r in rows[1:]] == [archive[0].code]
    assert AuditEvent.objects.get(action="customer.export").extra["format"] == "xlsx"


def test_export_refuses_bad_filters_rather_than_exporting_more(login, people, org, archive):
    client = login(people.head_a)
    assert client.get("/customers/io/export/?format=csv&unit=B1").status_code == 400  # a unit out of sight
    assert client.get(f"/customers/io/export/?format=csv&within={org.city_b.pk}").status_code == 404
    assert client.get("/customers/io/export/?format=csv&within=x").status_code == 404
    assert client.get("/customers/io/export/?format=pdf").status_code == 400
    assert not AuditEvent.objects.filter(action="customer.export").exists()


@pytest.mark.parametrize("who", ["sysadmin", "secadmin", "auditor"])
def test_administrators_get_no_export(login, people, archive, who):
    assert login(getattr(people, who)).get("/customers/io/export/?format=csv").status_code == 403


def test_the_export_reimports_unchanged_by_upload(
    login, people, org, archive, django_capture_on_commit_callbacks
):
    client = login(people.head_a)
    exported = b"".join(client.get("/customers/io/export/?format=csv").streaming_content)
    data = {"kind": "customers", "file": SimpleUploadedFile("export.csv", exported)}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/customers/io/import/", data)
    job = job_of(response)
    assert job.status == JobStatus.SUCCEEDED, job.result
    assert (job.result["created"], job.result["updated"], job.result["unchanged"]) == (0, 0, 2)
