"""Background jobs: submitted in a transaction, run after commit, progress, failures, scope, audit."""

from __future__ import annotations

import pytest

from kehu.audit.models import AuditEvent
from kehu.core.errors import ServiceError
from kehu.jobs.models import Job, JobStatus
from kehu.jobs.registry import JOB_KINDS, register
from kehu.jobs.services import job_progress, job_run, job_submit

pytestmark = pytest.mark.django_db

UNITS = b"code,name,type,parent_code,division_code\nA3,new,station,CA,370102\n"


@pytest.fixture
def temporary_kind():
    added = []

    def add(name, handler):
        register(name, name)(handler)
        added.append(name)

    yield add
    for name in added:
        JOB_KINDS.pop(name, None)


def test_a_job_runs_only_after_its_transaction_commits(people, org, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = job_submit(acting_user=people.sysadmin, kind="units_import", filename="u.csv", content=UNITS)
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED  # nothing ran inside the transaction
    assert len(callbacks) == 1
    callbacks[0]()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.result["created"] == 1
    assert job.started_at <= job.finished_at
    assert job_progress(job) == (1, 1)
    actions = list(
        AuditEvent.objects.filter(object_type="jobs.job", object_id=str(job.pk)).values_list(
            "action", flat=True
        )
    )
    assert actions == ["job.finish", "job.submit"]  # newest first
    assert AuditEvent.objects.filter(action="unit.create", actor_username="sysadmin", channel="task").exists()


def test_unknown_kind_is_refused(people):
    with pytest.raises(ServiceError):
        job_submit(acting_user=people.sysadmin, kind="no_such_kind")
    assert not Job.objects.exists()


def test_a_second_delivery_does_not_run_the_job_again(
    people, temporary_kind, django_capture_on_commit_callbacks
):
    calls = []
    temporary_kind("count_me", lambda job, progress: calls.append(job.pk) or {"n": len(calls)})
    with django_capture_on_commit_callbacks(execute=True):
        job = job_submit(acting_user=people.alice, kind="count_me")
    job_run(job.pk)  # the broker delivers it again
    assert calls == [job.pk]


def test_a_crashing_job_fails_cleanly(people, temporary_kind, django_capture_on_commit_callbacks):
    def crash(job, progress):
        raise ZeroDivisionError

    temporary_kind("crash", crash)
    with django_capture_on_commit_callbacks(execute=True):
        job = job_submit(acting_user=people.alice, kind="crash")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "ZeroDivisionError" in job.error
    assert AuditEvent.objects.get(action="job.finish", object_id=str(job.pk)).outcome == "failure"


def test_a_service_error_is_the_jobs_message(people, temporary_kind, django_capture_on_commit_callbacks):
    def refuse(job, progress):
        raise ServiceError("the file is empty", field="file")

    temporary_kind("refuse", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        job = job_submit(acting_user=people.alice, kind="refuse")
    job.refresh_from_db()
    assert (job.status, job.error) == (JobStatus.FAILED, "the file is empty")


def test_a_job_is_visible_to_its_starter_only(people, temporary_kind, django_capture_on_commit_callbacks):
    temporary_kind("noop", lambda job, progress: {})
    with django_capture_on_commit_callbacks(execute=True):
        job = job_submit(acting_user=people.alice, kind="noop")
    assert list(Job.objects.visible_to(people.alice)) == [job]
    for other in (people.alice_peer, people.head_a, people.head_p, people.secadmin, people.bob):
        assert not Job.objects.visible_to(other).exists()
