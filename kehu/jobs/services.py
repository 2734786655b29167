"""Submitting and running background jobs.

``job_submit`` records the job and its input in the caller's transaction and enqueues the task only
after commit. Without a broker (KEHU_BROKER_URL unset) Celery runs the task in-process right then.
Progress goes to the cache, not the database: the work runs in one transaction of its own (imports
are all-or-nothing), and rows written inside it are invisible to the page that polls until it ends.
"""

from __future__ import annotations

import logging

from django.core.cache import cache
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from kehu.audit.models import Outcome
from kehu.audit.services import audit_record
from kehu.core.context import request_context
from kehu.core.errors import ServiceError
from kehu.jobs.models import Job, JobStatus
from kehu.jobs.registry import JOB_KINDS

log = logging.getLogger(__name__)
PROGRESS_TTL = 24 * 3600


def _progress_key(job_id: int) -> str:
    return f"kehu:job:{job_id}:progress"


def job_progress(job: Job) -> tuple[int, int]:
    """(done, total) as last reported; (0, 0) before the first report."""
    done, total = cache.get(_progress_key(job.pk), (0, 0))
    return done, total


def job_submit(*, acting_user, kind: str, params: dict | None = None, filename: str = "",
               content: bytes | None = None) -> Job:  # fmt: skip
    """Record a job (with its input file) and run it after the transaction commits."""
    if kind not in JOB_KINDS:
        raise ServiceError(_("Unknown job kind “%(k)s”.") % {"k": kind}, field="kind")
    with transaction.atomic():
        job = Job.objects.create(
            kind=kind, created_by=acting_user, params=params or {}, input_name=filename[:255]
        )
        if content is not None:
            job.input_file.save(f"{job.pk}-{kind}", ContentFile(content), save=True)
        audit_record(actor=acting_user, action="job.submit", obj=job,
                     extra={"kind": kind, "params": params or {}, "file": filename})  # fmt: skip
        from kehu.jobs.tasks import run_job

        transaction.on_commit(lambda: run_job.delay(job.pk))
    return job


def job_run(job_id: int) -> Job:
    """Run one queued job to its end (called by the Celery task). Never raises for the job's own errors."""
    with transaction.atomic():
        job = Job.objects.select_for_update().select_related("created_by").get(pk=job_id)
        if job.status != JobStatus.QUEUED:
            return job  # delivered twice: the first delivery runs it
        job.status = JobStatus.RUNNING
        job.started_at = timezone.now()
        job.save(update_fields=["status", "started_at"])

    def progress(done: int, total: int) -> None:
        cache.set(_progress_key(job.pk), (done, total), PROGRESS_TTL)

    kind = JOB_KINDS[job.kind]
    with request_context(channel="task"):
        try:
            result = kind.handler(job, progress)
            # A handler may refuse the work without crashing (an import with bad rows): {"ok": False, ...}.
            refused = isinstance(result, dict) and result.get("ok") is False
            status = JobStatus.FAILED if refused else JobStatus.SUCCEEDED
            error = str(result.get("message", "")) if refused else ""
        except ServiceError as exc:
            result, status, error = {}, JobStatus.FAILED, exc.message
        except Exception as exc:  # the job fails; the worker goes on with the next one
            log.exception("job %s (%s) crashed", job.pk, job.kind)
            result, status, error = (
                {},
                JobStatus.FAILED,
                _("Internal error: %(e)s") % {"e": type(exc).__name__},
            )
        with transaction.atomic():
            job.status, job.result, job.error = status, result or {}, error
            job.finished_at = timezone.now()
            job.save(update_fields=["status", "result", "error", "finished_at"])
            audit_record(actor=job.created_by, action="job.finish", obj=job,
                         outcome=Outcome.SUCCESS if status == JobStatus.SUCCEEDED else Outcome.FAILURE,
                         extra={"kind": job.kind, "error": error})  # fmt: skip
    return job
