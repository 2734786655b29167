"""The customer list's export menu: contacts and agreements besides customers, and large XLSX exports
prepared by a background job whose file only its starter downloads from the job page."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest
from django.http import StreamingHttpResponse
from django.test import Client
from django.utils import timezone

from kehu.audit.models import AuditEvent
from kehu.customers.services import agreement_create, contact_create, customer_create
from kehu.jobs.models import Job, JobStatus
from kehu.jobs.services import RESULT_FILE_RETENTION
from kehu.testing.factories import sign_in
from kehu.web.views import customer_io

pytestmark = pytest.mark.django_db
EXPORT = "/customers/io/export/"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def archive(people, org):
    mine = customer_create(acting_user=people.alice, name="济南顺达物流有限公司", kind="institution",
                           owning_unit=org.a1, division_code="370102")  # fmt: skip
    other = customer_create(acting_user=people.head_a, name="王建国", kind="individual", owning_unit=org.a2,
                            division_code="370103")  # fmt: skip
    theirs = customer_create(acting_user=people.bob, name="青岛海鸥渔业合作社", kind="institution",
                             owning_unit=org.b1, division_code="370202")  # fmt: skip
    for name in ("李明", "张会计"):
        contact_create(acting_user=people.alice, customer=mine, name=name)
    contact_create(acting_user=people.head_a, customer=other, name="王太太")
    contact_create(acting_user=people.bob, customer=theirs, name="海老板")
    agreement_create(acting_user=people.alice, customer=mine, number="GX-1", signing_level="station",
                     start_date=date(2026, 1, 1))  # fmt: skip
    agreement_create(acting_user=people.bob, customer=theirs, number="HO-1", signing_level="station",
                     start_date=date(2026, 1, 1))  # fmt: skip
    return mine, other, theirs


@pytest.fixture
def small_threshold(monkeypatch):
    """Lists of more than 2 rows count as large."""
    monkeypatch.setattr(customer_io, "BACKGROUND_XLSX_ROWS", 2)


def csv_rows(response) -> list[dict]:
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def xlsx_rows(content: bytes) -> list[tuple]:
    from openpyxl import load_workbook

    return list(load_workbook(io.BytesIO(content)).active.iter_rows(values_only=True))


def test_the_list_offers_contacts_and_agreements_with_its_filters(login, people, archive):
    body = login(people.head_a).get("/customers/?q=shunda&kind=institution&page=1").content.decode()
    assert 'data-testid="export-more-form"' in body and f'action="{EXPORT}"' in body
    assert '<option value="contacts">' in body and '<option value="agreements">' in body
    form = body[body.index('data-testid="export-more-form"') :].split("</form>")[0]
    assert '<input type="hidden" name="q" value="shunda">' in form
    assert '<input type="hidden" name="kind" value="institution">' in form
    assert 'name="page"' not in form  # the whole list, not one page
    assert 'data-testid="customer-export"' in body  # the customers' own buttons stay


def test_contacts_and_agreements_csv_stream_scoped(login, people, org, archive):
    mine, other, _theirs = archive
    client = login(people.head_a)
    response = client.get(f"{EXPORT}?what=contacts&format=csv")
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert response["Content-Disposition"].startswith('attachment; filename="contacts-')
    rows = csv_rows(response)
    assert {(r["customer_code"], r["name"]) for r in rows} == {
        (mine.code, "李明"), (mine.code, "张会计"), (other.code, "王太太"),
    }  # fmt: skip
    assert [r["name"] for r in csv_rows(client.get(f"{EXPORT}?what=contacts&format=csv&unit=A2"))] == [
        "王太太"
    ]
    rows = csv_rows(client.get(f"{EXPORT}?what=agreements&format=csv&within={org.a1.pk}"))
    assert [r["number"] for r in rows] == ["GX-1"]
    event = AuditEvent.objects.get(action="agreement.export")
    assert event.channel == "web" and event.extra["filter"]["within"] == "A1" and event.extra["count"] == 1
    assert [r["number"] for r in csv_rows(login(people.bob).get(f"{EXPORT}?what=agreements&format=csv"))] == [
        "HO-1"
    ]


def test_a_small_xlsx_is_sent_at_once(login, people, archive):
    response = login(people.alice).get(f"{EXPORT}?what=agreements&format=xlsx")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/vnd.openxml")
    assert response["Content-Disposition"].startswith('attachment; filename="agreements-')
    rows = xlsx_rows(b"".join(response.streaming_content))
    assert rows[0][:2] == ("customer_code", "number") and [r[1] for r in rows[1:]] == ["GX-1"]
    assert not Job.objects.exists()


def test_bad_requests(login, people, org, archive):
    client = login(people.head_a)
    assert client.get(f"{EXPORT}?what=photos&format=csv").status_code == 400
    assert client.get(f"{EXPORT}?what=contacts&format=csv&unit=B1").status_code == 400
    assert client.get(f"{EXPORT}?what=contacts&format=csv&within={org.city_b.pk}").status_code == 404
    assert client.post(f"{EXPORT}?what=contacts&format=xlsx&unit=B1").status_code == 400
    assert not Job.objects.exists()
    assert not AuditEvent.objects.filter(action__in=("contact.export", "agreement.export")).exists()


@pytest.mark.parametrize("who", ["sysadmin", "secadmin", "auditor"])
def test_administrators_get_no_export(login, people, archive, who):
    client = login(getattr(people, who))
    assert client.get(f"{EXPORT}?what=contacts&format=csv").status_code == 403
    assert client.post(f"{EXPORT}?what=contacts&format=xlsx").status_code == 403
    assert not Job.objects.exists()


def test_a_large_xlsx_export_becomes_a_job(
    login, people, archive, small_threshold, django_capture_on_commit_callbacks
):
    mine, other, _theirs = archive
    client = login(people.head_a)
    # More contacts than the threshold (though only two customers): nothing is written in the request.
    page = client.get(f"{EXPORT}?what=contacts&kind=&format=xlsx")
    assert page.status_code == 200 and 'data-testid="export-background"' in page.content.decode()
    assert page.context["action"] == f"{EXPORT}?what=contacts&kind=&format=xlsx"
    assert page.context["csv_url"].endswith("format=csv")
    assert not Job.objects.exists() and not AuditEvent.objects.filter(action="contact.export").exists()
    # The CSV still streams, however long.
    assert len(csv_rows(client.get(page.context["csv_url"]))) == 3
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(page.context["action"])
    assert response.status_code == 302 and response["Location"].startswith("/jobs/")
    job = Job.objects.get(kind="contacts_export")
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.params["what"] == "contacts" and job.params["format"] == "xlsx"
    body = client.get(response["Location"]).content.decode()
    assert 'data-testid="export-counts"' in body and 'data-testid="export-download"' in body
    assert f"/customers/io/export/{job.pk}/file/" in body
    download = client.get(f"/customers/io/export/{job.pk}/file/")
    assert download.status_code == 200 and download["Cache-Control"] == "no-store"
    assert download["Content-Disposition"] == f'attachment; filename="{job.result["file_name"]}"'
    rows = xlsx_rows(b"".join(download.streaming_content))
    assert {(r[0], r[1]) for r in rows[1:]} == {
        (mine.code, "李明"),
        (mine.code, "张会计"),
        (other.code, "王太太"),
    }
    event = AuditEvent.objects.filter(action="contact.export").latest("seq")  # the first: the CSV
    assert event.channel == "task" and event.actor_username == "head_a" and event.extra["count"] == 3
    assert AuditEvent.objects.get(action="job.download").channel == "web"


def test_the_file_is_its_starters_alone_and_expires(
    login, people, archive, small_threshold, django_capture_on_commit_callbacks
):
    client = login(people.head_a)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"{EXPORT}?what=customers&format=xlsx")
    job = Job.objects.get(kind="customers_export")
    assert job.status == JobStatus.SUCCEEDED and job.result["count"] == 2
    url = f"/customers/io/export/{job.pk}/file/"
    for someone in (people.head_p, people.alice, people.auditor):  # seeing more, less or nothing
        other = sign_in(Client(), someone)
        assert other.get(url).status_code == 404
        assert other.get(f"/jobs/{job.pk}/").status_code == 404
    assert client.get("/customers/io/export/999999/file/").status_code == 404
    Job.objects.filter(pk=job.pk).update(
        finished_at=timezone.now() - RESULT_FILE_RETENTION - timedelta(seconds=1)
    )
    assert client.get(url).status_code == 404
    body = client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'data-testid="export-expired"' in body and 'data-testid="export-download"' not in body
    assert not AuditEvent.objects.filter(action="job.download").exists()


def test_an_import_job_has_no_export_file(login, people, archive):
    job = Job.objects.create(kind="contacts_import", created_by=people.head_a, status=JobStatus.SUCCEEDED,
                             finished_at=timezone.now(), result={"file": "jobs/results/x.xlsx"})  # fmt: skip
    assert login(people.head_a).get(f"/customers/io/export/{job.pk}/file/").status_code == 404


def test_a_double_click_starts_one_job(
    login, people, archive, small_threshold, django_capture_on_commit_callbacks
):
    client = login(people.head_a)
    with django_capture_on_commit_callbacks(execute=False):
        first = client.post(f"{EXPORT}?what=contacts&format=xlsx")
        second = client.post(f"{EXPORT}?what=contacts&format=xlsx")
    assert first["Location"] == second["Location"] and Job.objects.count() == 1


def test_starting_a_job_needs_the_csrf_token(people, archive, small_threshold):
    client = sign_in(Client(enforce_csrf_checks=True), people.head_a)
    assert client.post(f"{EXPORT}?what=contacts&format=xlsx").status_code == 403
    assert not Job.objects.exists()
