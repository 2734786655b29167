"""Exporting contacts and agreements (format, scope, masking, filters, audit, round trip, the command), export
jobs (the file, progress, who may download it) and the clean-up of job files."""

from __future__ import annotations

import csv
import io
import os
from datetime import date, timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone, translation

from kehu.audit.models import AuditEvent
from kehu.core.errors import NotAllowed, ServiceError
from kehu.customers import exports as exports_module
from kehu.customers.exports import (
    agreements_export,
    contacts_export,
    export_csv_stream,
    export_job_file,
    export_job_submit,
    export_row_count,
    filters_from_params,
    filters_to_params,
)
from kehu.customers.imports import AGREEMENT_COLUMNS, CONTACT_COLUMNS, agreements_import, contacts_import
from kehu.customers.models import Agreement, Contact
from kehu.customers.personal import phone_add
from kehu.customers.selectors import CustomerFilters
from kehu.customers.services import agreement_create, contact_create, customer_create
from kehu.jobs.models import Job, JobStatus
from kehu.jobs.services import RESULT_FILE_RETENTION, job_files_cleanup, job_progress

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    """Job files go to a directory of this test's own."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def archive(people, org):
    """City A: 顺达 (A1, alice's) with two contacts and three agreements, its branch (A2), 王建国 (A2) with one
    contact; city B: 海鸥 (bob's) with one contact and one agreement."""
    shunda = customer_create(acting_user=people.head_a, lead_manager=people.alice, name="济南顺达物流有限公司",
                             kind="institution", owning_unit=org.a1, division_code="370102")  # fmt: skip
    branch = customer_create(acting_user=people.head_a, name="顺达物流市中分公司", kind="institution",
                             owning_unit=org.a2, division_code="370103", parent=shunda, lead_manager=people.alice,
                             duplicate_reason="分公司")  # fmt: skip
    person = customer_create(acting_user=people.head_a, name="王建国", kind="individual", owning_unit=org.a2,
                             division_code="370103")  # fmt: skip
    qingdao = customer_create(acting_user=people.bob, name="青岛海鸥渔业合作社", kind="institution",
                              owning_unit=org.b1, division_code="370202")  # fmt: skip
    li = contact_create(acting_user=people.head_a, customer=shunda, name="李明", title="总经理",
                        decision_role="decision_maker", birthday=date(1975, 3, 8), preferences="喝茶，不抽烟",
                        relations="与王建国是同学", notes="=1+1 第一行\n第二行")  # fmt: skip
    phone_add(acting_user=people.head_a, customer=shunda, number="13912345678", contact=li)
    phone_add(acting_user=people.head_a, customer=shunda, number="0531-86661234", contact=li)
    zhang = contact_create(acting_user=people.head_a, customer=shunda, name="张会计", decision_role="payer")
    phone_add(
        acting_user=people.head_a, customer=shunda, number="13800000009"
    )  # the customer's, no contact's
    wang = contact_create(acting_user=people.head_a, customer=person, name="王太太", title="家属")
    hai = contact_create(acting_user=people.bob, customer=qingdao, name="海老板")
    supply = agreement_create(acting_user=people.head_a, customer=shunda, number="GX-2026-001", signing_level="city",
                              start_date=date(2026, 1, 1), end_date=date(2026, 12, 31), signing_unit=org.city_a,
                              parties="顺达；济南分公司")  # fmt: skip
    frame = agreement_create(acting_user=people.head_a, customer=shunda, number="KJ-2026-007",
                             signing_level="province", start_date=date(2025, 3, 1), agreement_type="framework",
                             signing_unit=org.province)  # fmt: skip
    # Signed by city B's unit: a unit head of city A may not read that unit's code.
    odd = agreement_create(acting_user=people.head_p, customer=shunda, number="QD-1", signing_level="city",
                           start_date=date(2026, 2, 1), status="draft", signing_unit=org.city_b)  # fmt: skip
    theirs = agreement_create(acting_user=people.bob, customer=qingdao, number="HO-1", signing_level="station",
                              start_date=date(2026, 1, 1))  # fmt: skip
    return {"shunda": shunda, "branch": branch, "person": person, "qingdao": qingdao, "li": li, "zhang": zhang,
            "wang": wang, "hai": hai, "supply": supply, "frame": frame, "odd": odd, "theirs": theirs}  # fmt: skip


def export(service, user, fmt="csv", **filters) -> list[dict]:
    out = io.BytesIO()
    count = service(acting_user=user, fmt=fmt, out=out, **filters)
    if fmt == "xlsx":
        from openpyxl import load_workbook

        rows = list(load_workbook(out).active.iter_rows(values_only=True))
        found = [dict(zip(rows[0], ["" if v is None else v for v in r], strict=True)) for r in rows[1:]]
    else:
        found = list(csv.DictReader(io.StringIO(out.getvalue().decode("utf-8-sig"), newline="")))
    assert len(found) == count
    return found


# ---------------------------------------------------------------------------------------------------
# Contacts and agreements


def test_the_columns_are_the_import_formats(people, archive):
    for service, columns in ((contacts_export, CONTACT_COLUMNS), (agreements_export, AGREEMENT_COLUMNS)):
        out = io.BytesIO()
        service(acting_user=people.head_a, fmt="csv", out=out)
        raw = out.getvalue()
        assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
        assert raw.decode("utf-8-sig").splitlines()[0] == ",".join(columns)


def test_contacts_are_scoped_masked_and_in_list_order(people, archive):
    a = archive
    rows = export(contacts_export, people.head_a)
    # The list's order (by code: 顺达, its branch, 王建国), by name within one customer; never city B.
    assert [(r["customer_code"], r["name"]) for r in rows] == sorted(
        [(a["shunda"].code, "李明"), (a["shunda"].code, "张会计"), (a["person"].code, "王太太")]
    )
    li = next(r for r in rows if r["name"] == "李明")
    assert li["phone"] == "139****5678;053*****1234"  # masked, the contact's own numbers only
    assert (
        li["title"] == "总经理" and li["decision_role"] == "decision_maker" and li["birthday"] == "1975-03-08"
    )
    assert li["preferences"] == "喝茶，不抽烟" and li["relations"] == "与王建国是同学"
    assert li["notes"] == "'=1+1 第一行\n第二行"  # a formula-looking cell keeps its apostrophe
    assert next(r for r in rows if r["name"] == "张会计")["phone"] == ""  # not the customer's number
    assert "13912345678" not in str(rows)
    assert [r["name"] for r in export(contacts_export, people.bob)] == ["海老板"]
    assert {r["name"] for r in export(contacts_export, people.alice)} == {"李明", "张会计"}  # her customers
    assert len(export(contacts_export, people.head_p)) == 4


def test_agreements_are_scoped_and_name_only_visible_signing_units(people, org, archive):
    a = archive
    rows = {r["number"]: r for r in export(agreements_export, people.head_a)}
    assert list(rows) == ["KJ-2026-007", "GX-2026-001", "QD-1"]  # by start date within the customer
    supply = rows["GX-2026-001"]
    assert supply == {
        "customer_code": a["shunda"].code, "number": "GX-2026-001", "signing_level": "city",
        "start_date": "2026-01-01", "end_date": "2026-12-31", "agreement_type": "supply", "status": "active",
        "signing_unit_code": "CA", "parties": "顺达；济南分公司",
    }  # fmt: skip
    assert rows["KJ-2026-007"]["end_date"] == "" and rows["KJ-2026-007"]["agreement_type"] == "framework"
    assert rows["KJ-2026-007"]["signing_unit_code"] == "P"  # the chain above one's unit is visible
    assert rows["QD-1"]["signing_unit_code"] == "" and rows["QD-1"]["status"] == "draft"  # CB: out of sight
    by_province = {r["number"]: r for r in export(agreements_export, people.head_p)}
    assert by_province["QD-1"]["signing_unit_code"] == "CB" and "HO-1" in by_province
    assert [r["number"] for r in export(agreements_export, people.bob)] == ["HO-1"]


def test_the_customer_list_filters_choose_the_customers(people, org, archive):
    a = archive
    assert [r["name"] for r in export(contacts_export, people.head_a, within=org.a2)] == ["王太太"]
    assert [r["name"] for r in export(contacts_export, people.head_a, kind="individual")] == ["王太太"]
    assert {r["name"] for r in export(contacts_export, people.head_a, q="顺达")} == {"李明", "张会计"}
    assert {r["number"] for r in export(agreements_export, people.head_a, manager=people.alice)} == {
        "GX-2026-001", "KJ-2026-007", "QD-1",
    }  # fmt: skip
    assert export(agreements_export, people.head_a, within=org.a2) == []
    codes = [r["customer_code"] for r in export(contacts_export, people.head_a, order="-code")]
    assert codes == [a["person"].code, a["shunda"].code, a["shunda"].code]  # the list's order


def test_exports_are_audited_with_count_and_filter(people, org, archive):
    export(contacts_export, people.head_a, within=org.a1)
    export(agreements_export, people.head_a, fmt="xlsx", kind="institution")
    event = AuditEvent.objects.get(action="contact.export")
    assert event.actor_username == "head_a" and event.object_type == "customers.contact"
    assert (
        event.extra["count"] == 2
        and event.extra["format"] == "csv"
        and event.extra["filter"]["within"] == "A1"
    )
    event = AuditEvent.objects.get(action="agreement.export")
    assert event.extra["count"] == 3 and event.extra["format"] == "xlsx"
    assert event.extra["filter"]["kind"] == "institution" and event.extra["complete"] is True


def test_administrators_may_not_export_contacts_or_agreements(people, archive):
    for user in (people.sysadmin, people.secadmin, people.auditor):
        for service in (contacts_export, agreements_export):
            with pytest.raises(NotAllowed):
                service(acting_user=user, fmt="csv", out=io.BytesIO())
    with pytest.raises(ServiceError, match="csv or xlsx"):
        contacts_export(acting_user=people.head_a, fmt="ods", out=io.BytesIO())
    assert not AuditEvent.objects.filter(action__in=("contact.export", "agreement.export")).exists()


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_round_trip(people, archive, fmt):
    for service, importer, n in (
        (contacts_export, contacts_import, 3),
        (agreements_export, agreements_import, 3),
    ):
        out = io.BytesIO()
        assert service(acting_user=people.head_a, fmt=fmt, out=out) == n
        before = AuditEvent.objects.count()
        result = importer(acting_user=people.head_a, filename=f"export.{fmt}", content=out.getvalue())
        assert result.ok, (service.__name__, result.errors)
        assert (result.created, result.updated, result.unchanged) == (0, 0, n)
        assert AuditEvent.objects.count() == before  # nothing changed, nothing audited
    assert Contact.objects.get(pk=archive["li"].pk).notes == "=1+1 第一行\n第二行"
    assert Agreement.objects.get(pk=archive["odd"].pk).signing_unit_id == archive["odd"].signing_unit_id


def test_an_edited_export_imports_its_change(people, archive):
    out = io.BytesIO()
    contacts_export(acting_user=people.head_a, fmt="csv", out=out)
    text = out.getvalue().decode("utf-8-sig").replace("总经理", "董事长")
    result = contacts_import(acting_user=people.head_a, filename="c.csv", content=text.encode("gbk"))
    assert result.ok and (result.updated, result.unchanged) == (1, 2)
    assert Contact.objects.get(pk=archive["li"].pk).title == "董事长"
    out = io.BytesIO()
    agreements_export(acting_user=people.head_a, fmt="csv", out=out)
    text = out.getvalue().decode("utf-8-sig").replace("2026-12-31", "2027-06-30")
    result = agreements_import(acting_user=people.head_a, filename="a.csv", content=text.encode())
    assert result.ok and (result.updated, result.unchanged) == (1, 2)
    assert Agreement.objects.get(pk=archive["supply"].pk).end_date == date(2027, 6, 30)


def test_xlsx_beyond_a_sheet_is_refused(people, archive, monkeypatch):
    monkeypatch.setattr(exports_module, "XLSX_MAX_ROWS", 2)
    with pytest.raises(ServiceError, match="contacts do not fit"):
        contacts_export(acting_user=people.head_a, fmt="xlsx", out=io.BytesIO())


def test_the_csv_stream_audits_what_was_sent(people, archive):
    stream = export_csv_stream(what="agreements", acting_user=people.head_a, filters=CustomerFilters(),
                               rows_per_chunk=1)  # fmt: skip
    chunks = list(stream)
    assert chunks[0].startswith(b"\xef\xbb\xbf" + ",".join(AGREEMENT_COLUMNS).encode())
    assert b"".join(chunks).decode("utf-8-sig").count("\r\n") == 4
    assert AuditEvent.objects.get(action="agreement.export").extra["count"] == 3
    stream = export_csv_stream(what="contacts", acting_user=people.head_a, filters=CustomerFilters(),
                               rows_per_chunk=1)  # fmt: skip
    next(stream), next(stream)
    stream.close()
    event = AuditEvent.objects.get(action="contact.export")
    assert event.extra["count"] == 1 and event.extra["complete"] is False
    with pytest.raises(ServiceError, match="customers, contacts or agreements"):
        export_csv_stream(what="photos", acting_user=people.head_a, filters=CustomerFilters())


def test_row_counts_are_capped(people, org, archive):
    assert export_row_count(viewer=people.head_a, what="customers", filters=CustomerFilters(), cap=10) == (
        3,
        False,
    )
    assert export_row_count(viewer=people.head_a, what="contacts", filters=CustomerFilters(), cap=10) == (
        3,
        False,
    )
    assert export_row_count(viewer=people.head_a, what="contacts", filters=CustomerFilters(), cap=2) == (
        2,
        True,
    )
    assert export_row_count(viewer=people.bob, what="agreements", filters=CustomerFilters(), cap=10) == (
        1,
        False,
    )
    # A list longer than the cap is too long whatever its contacts.
    assert export_row_count(viewer=people.head_a, what="agreements", filters=CustomerFilters(), cap=1) == (
        1,
        True,
    )
    within = CustomerFilters(within=org.a2)  # two customers, no agreement
    assert export_row_count(viewer=people.head_a, what="agreements", filters=within, cap=2) == (0, False)


# ---------------------------------------------------------------------------------------------------
# The command


def test_command_exports_contacts_and_agreements_with_filters(people, org, archive, tmp_path, capsys):
    path = tmp_path / "contacts.csv"
    call_command("export", "contacts", str(path), "--as", "head_a", "--within", "A2")
    assert "Exported 1 contact to" in capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(path.read_text("utf-8-sig"))))
    assert [(r["customer_code"], r["name"]) for r in rows] == [(archive["person"].code, "王太太")]
    xlsx = tmp_path / "agreements.xlsx"
    call_command("export", "agreements", str(xlsx), "--as", "alice", "--q", "顺达")
    assert xlsx.read_bytes().startswith(b"PK") and "Exported 3 agreements" in capsys.readouterr().out
    event = AuditEvent.objects.filter(action="agreement.export").latest("seq")
    assert event.channel == "cli" and event.extra["filter"]["q"] == "顺达" and event.extra["format"] == "xlsx"


def test_command_refusals_and_standard_output(people, org, archive, tmp_path, capsysbinary):
    path = str(tmp_path / "out.csv")
    with pytest.raises(CommandError, match="--as USERNAME"):
        call_command("export", "contacts", path)
    with pytest.raises(CommandError, match="no customers to export"):
        call_command("export", "agreements", path, "--as", "auditor")
    with pytest.raises(CommandError, match="No unit with the code"):
        call_command("export", "contacts", path, "--as", "alice", "--within", "B1")
    assert not os.path.exists(path)
    call_command("export", "agreements", "-", "--as", "bob", "--format", "csv")
    captured = capsysbinary.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out.decode("utf-8-sig"))))
    assert [r["number"] for r in rows] == [
        "HO-1"
    ] and b"Exported 1 agreement to standard output" in captured.err


# ---------------------------------------------------------------------------------------------------
# Export jobs


def test_filters_travel_by_id_and_are_looked_up_again_in_scope(people, org, archive):
    filters = CustomerFilters(
        q=" 顺达", within=org.a1, kind="institution", manager=people.alice, order="-name"
    )
    params = filters_to_params(filters)
    assert params["within"] == org.a1.pk and params["manager"] == people.alice.pk
    assert filters_from_params(viewer=people.head_a, data=params) == filters
    assert filters_from_params(viewer=people.head_a, data={}) == CustomerFilters()
    # bob may not see unit A1: the filter is refused, not dropped (that would export more).
    with pytest.raises(ServiceError, match="no longer in your scope"):
        filters_from_params(viewer=people.bob, data={"within": org.a1.pk})
    with pytest.raises(ServiceError, match="manager"):
        filters_from_params(viewer=people.bob, data={"manager": people.alice.pk})
    with pytest.raises(ServiceError, match="sub-type"):
        filters_from_params(viewer=people.bob, data={"sub_type": 999999})


def run_export_job(capture, user, what="contacts", fmt="xlsx", filters=None) -> Job:
    with capture(execute=True):
        job = export_job_submit(acting_user=user, what=what, fmt=fmt, filters=filters or CustomerFilters())
    job.refresh_from_db()
    return job


def test_an_export_job_writes_a_file_for_its_starter(
    people, org, archive, django_capture_on_commit_callbacks
):
    from openpyxl import load_workbook

    job = run_export_job(django_capture_on_commit_callbacks, people.head_a,
                         filters=CustomerFilters(within=org.city_a))  # fmt: skip
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.kind == "contacts_export" and job.input_name.startswith("contacts-")
    result = job.result
    assert result["count"] == 3 and result["what"] == "contacts" and result["filter"]["within"] == "CA"
    assert result["file"].startswith("jobs/results/") and result["file_name"] == job.input_name
    assert job_progress(job) == (3, 3)
    # Scope, masking and audit as when exported by hand, on the task channel.
    event = AuditEvent.objects.get(action="contact.export")
    assert event.actor_username == "head_a" and event.channel == "task" and event.extra["count"] == 3
    with export_job_file(acting_user=people.head_a, job=job) as handle:
        rows = list(load_workbook(io.BytesIO(handle.read())).active.iter_rows(values_only=True))
    assert rows[0] == tuple(CONTACT_COLUMNS) and len(rows) == 4
    assert any("139****5678;053*****1234" in row for row in rows)
    download = AuditEvent.objects.get(action="job.download")
    assert download.actor_username == "head_a" and download.extra["count"] == 3
    # Another person, even one who sees more, gets nothing; an import job has no export file.
    with pytest.raises(ServiceError, match="Only the person"):
        export_job_file(acting_user=people.head_p, job=job)


def test_the_file_expires(people, archive, django_capture_on_commit_callbacks):
    job = run_export_job(django_capture_on_commit_callbacks, people.alice, what="agreements")
    assert job.status == JobStatus.SUCCEEDED and job.result["count"] == 3
    Job.objects.filter(pk=job.pk).update(
        finished_at=timezone.now() - RESULT_FILE_RETENTION - timedelta(minutes=1)
    )
    job.refresh_from_db()
    with pytest.raises(ServiceError, match="no longer kept"):
        export_job_file(acting_user=people.alice, job=job)
    assert not AuditEvent.objects.filter(action="job.download").exists()


def test_a_second_click_is_the_same_job(people, archive, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        first = export_job_submit(
            acting_user=people.head_a, what="customers", fmt="xlsx", filters=CustomerFilters()
        )
        again = export_job_submit(
            acting_user=people.head_a, what="customers", fmt="xlsx", filters=CustomerFilters()
        )
        other = export_job_submit(acting_user=people.head_a, what="customers", fmt="xlsx",
                                  filters=CustomerFilters(kind="individual"))  # fmt: skip
    assert first.pk == again.pk != other.pk and Job.objects.count() == 2
    with pytest.raises(NotAllowed):
        export_job_submit(acting_user=people.auditor, what="customers", fmt="xlsx", filters=CustomerFilters())


def test_a_job_whose_filter_left_the_scope_fails(people, org, archive, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = export_job_submit(acting_user=people.head_a, what="contacts", fmt="xlsx",
                                filters=CustomerFilters(within=org.a2))  # fmt: skip
    people.head_a.unit = org.b1  # moved to city B's station before the job ran
    people.head_a.save()
    callbacks[0]()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "no longer in your scope" in job.error
    assert not job.result.get("file") and not AuditEvent.objects.filter(action="contact.export").exists()


def test_a_job_beyond_a_sheet_fails_before_writing(
    people, archive, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(exports_module, "XLSX_MAX_ROWS", 2)
    job = run_export_job(django_capture_on_commit_callbacks, people.head_a, what="agreements")
    assert job.status == JobStatus.FAILED and "agreements do not fit" in job.error
    assert not AuditEvent.objects.filter(action="agreement.export").exists()


# ---------------------------------------------------------------------------------------------------
# Clean-up


def test_cleanup_deletes_old_export_files_and_uploads(
    people, archive, media, settings, django_capture_on_commit_callbacks, capsys
):
    now = timezone.now()
    settings.KEHU_UPLOAD_RETENTION_DAYS = 3

    def finished(job, ago):
        Job.objects.filter(pk=job.pk).update(finished_at=now - ago)

    old_export = run_export_job(django_capture_on_commit_callbacks, people.head_a)
    new_export = run_export_job(django_capture_on_commit_callbacks, people.alice)
    finished(old_export, RESULT_FILE_RETENTION + timedelta(minutes=5))
    finished(new_export, RESULT_FILE_RETENTION - timedelta(minutes=5))
    uploads = {}
    for name, ago, status in (("old", timedelta(days=4), JobStatus.SUCCEEDED),
                              ("recent", timedelta(days=2), JobStatus.SUCCEEDED),
                              ("stuck", None, JobStatus.RUNNING)):  # fmt: skip
        job = Job.objects.create(kind="contacts_import", created_by=people.alice, status=status,
                                 input_name=f"{name}.csv")  # fmt: skip
        job.input_file.save(f"{job.pk}-contacts_import", ContentFile(b"customer_code,name\n"), save=True)
        if ago is not None:
            finished(job, ago)
        uploads[name] = job
    # A result file no job names (its job crashed after writing it), written two days ago.
    orphan = default_storage.save("jobs/results/999-orphan.xlsx", ContentFile(b"PK"))
    two_days_ago = (now - timedelta(days=2)).timestamp()
    os.utime(default_storage.path(orphan), (two_days_ago, two_days_ago))
    old_file, new_file = old_export.result["file"], new_export.result["file"]

    assert job_files_cleanup(now=now) == {"results": 2, "uploads": 1}
    assert not default_storage.exists(old_file) and not default_storage.exists(orphan)
    assert default_storage.exists(new_file)
    old_export.refresh_from_db()
    assert (
        old_export.result["file"] == ""
        and old_export.result["count"] == 3
        and old_export.result["file_deleted_at"]
    )
    for job in uploads.values():
        job.refresh_from_db()
    assert not uploads["old"].input_file and uploads["recent"].input_file and uploads["stuck"].input_file
    assert default_storage.exists(uploads["recent"].input_file.name)
    event = AuditEvent.objects.get(action="job.cleanup")
    assert (
        event.extra["results"] == 2
        and event.extra["uploads"] == 1
        and event.extra["upload_retention_days"] == 3
    )
    # Nothing left to do: nothing deleted, nothing audited.
    assert job_files_cleanup(now=now) == {"results": 0, "uploads": 0}
    assert AuditEvent.objects.filter(action="job.cleanup").count() == 1
    # The command, a week later: the rest goes.
    Job.objects.exclude(finished_at=None).update(finished_at=now - timedelta(days=7))
    call_command("cleanup_files")
    assert "Deleted 1 export files and 1 uploaded files." in capsys.readouterr().out
    assert not default_storage.exists(new_file)
    assert AuditEvent.objects.filter(action="job.cleanup").latest("seq").channel == "cli"
