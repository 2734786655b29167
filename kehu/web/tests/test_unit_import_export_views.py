"""Unit import (upload) and export (download) pages."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from kehu.audit.models import AuditEvent
from kehu.jobs.models import Job, JobStatus
from kehu.org.models import Unit

pytestmark = pytest.mark.django_db

HEADER = "code,name,type,parent_code,division_code\n"


def upload(client, text: str, capture, **flags):
    """Post the file; the import runs as a background job once the request's transaction commits."""
    data = {"file": SimpleUploadedFile("units.csv", text.encode("utf-8"), content_type="text/csv"), **flags}
    with capture(execute=True):
        response = client.post("/org/import/", data)
    return response


def job_of(response) -> Job:
    assert response.status_code == 302 and response["Location"].startswith("/jobs/")
    return Job.objects.get(pk=int(response["Location"].strip("/").split("/")[-1]))


def test_system_admin_imports_a_file(login, people, org, django_capture_on_commit_callbacks):
    client = login(people.sysadmin)
    response = upload(client, HEADER + "A3,新站,station,CA,370102\n", django_capture_on_commit_callbacks)
    job = job_of(response)
    assert job.status == JobStatus.SUCCEEDED and job.result["created"] == 1
    unit = Unit.objects.get(code="A3")
    assert unit.parent == org.city_a and unit.path.startswith(org.city_a.path)
    assert AuditEvent.objects.filter(action="unit.create", object_id=str(unit.pk), channel="task").exists()
    page = client.get(response["Location"])
    assert page.status_code == 200 and 'data-status="succeeded"' in page.content.decode()


def test_a_bad_row_changes_nothing_and_is_listed_with_row_and_column(
    login, people, org, django_capture_on_commit_callbacks
):
    client = login(people.sysadmin)
    before = Unit.objects.count()
    text = HEADER + "A3,新站,station,CA,370102\nA4,坏站,station,NOPE,999999\n"
    job = job_of(upload(client, text, django_capture_on_commit_callbacks))
    assert Unit.objects.count() == before
    assert job.status == JobStatus.FAILED and "nothing was changed" in job.error
    rows = {(e["row"], e["field"]) for e in job.result["errors"]}
    assert (3, "parent_code") in rows and (3, "division_code") in rows
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'data-testid="import-errors"' in page and "NOPE" in page


def test_dry_run_reports_without_writing(login, people, org, django_capture_on_commit_callbacks):
    client = login(people.sysadmin)
    job = job_of(upload(client, HEADER + "A3,新站,station,CA,370102\n", django_capture_on_commit_callbacks,
                        dry_run="on"))  # fmt: skip
    assert job.status == JobStatus.SUCCEEDED and job.result["dry_run"] and job.result["created"] == 1
    assert not Unit.objects.filter(code="A3").exists()


def test_an_unsupported_file_is_refused_at_the_field(login, people):
    client = login(people.sysadmin)
    data = {"file": SimpleUploadedFile("units.xls", b"junk")}
    response = client.post("/org/import/", data)
    assert response.status_code == 200
    assert response.context["form"].errors["file"]
    assert not Job.objects.exists()


def test_a_job_is_its_starters_alone(login, people, org, django_capture_on_commit_callbacks):
    client = login(people.sysadmin)
    job = job_of(upload(client, HEADER + "A3,新站,station,CA,370102\n", django_capture_on_commit_callbacks))
    from django.test import Client

    from kehu.testing.factories import sign_in

    other = sign_in(Client(), people.head_p)
    assert other.get(f"/jobs/{job.pk}/").status_code == 404
    assert f'href="/jobs/{job.pk}/"' not in other.get("/jobs/").content.decode()
    assert f'href="/jobs/{job.pk}/"' in client.get("/jobs/").content.decode()


@pytest.mark.parametrize("who", ["alice", "head_a", "secadmin", "auditor"])
def test_only_the_system_admin_may_import(login, people, who):
    client = login(getattr(people, who))
    assert client.get("/org/import/").status_code == 403
    data = {"file": SimpleUploadedFile("units.csv", (HEADER + "X1,站,station,CA,370102\n").encode())}
    assert client.post("/org/import/", data).status_code == 403
    assert not Unit.objects.filter(code="X1").exists()


def test_export_is_scoped_and_audited(login, people, org):
    client = login(people.head_a)
    response = client.get("/org/export/?format=csv")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    codes = {row[0] for row in rows[1:]}
    assert codes == {"P", "CA", "A1", "A2"}  # own chain and subtree, never city B
    assert AuditEvent.objects.filter(action="unit.export", actor_username="head_a").exists()


def test_export_within_an_unseen_unit_is_404(login, people, org):
    client = login(people.head_a)
    assert client.get(f"/org/export/?format=csv&within={org.city_b.pk}").status_code == 404
    assert client.get("/org/export/?format=csv&within=abc").status_code == 404


def test_customer_manager_may_not_export(login, people):
    client = login(people.alice)
    assert client.get("/org/export/?format=xlsx").status_code == 403


def test_xlsx_export_opens(login, people, org):
    from openpyxl import load_workbook

    client = login(people.sysadmin)
    response = client.get("/org/export/?format=xlsx")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content)).active
    assert [c.value for c in next(sheet.iter_rows(max_row=1))][:5] == [
        "code", "name", "type", "parent_code", "division_code",
    ]  # fmt: skip
    assert sheet.max_row == Unit.objects.count() + 1
