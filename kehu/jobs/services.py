"""Submitting and running background jobs.

``job_submit`` records the job and its input in the caller's transaction and enqueues the task only
after commit. Without a broker (KEHU_BROKER_URL unset) Celery runs the task in-process right then.
Progress goes to the cache, not the database: the work runs in one transaction of its own (imports
are all-or-nothing), and rows written inside it are invisible to the page that polls until it ends.

A job may leave a file for its starter (an export): ``job_result_file_store`` keeps it under
``jobs/results/`` and names it in the job's result; ``job_result_file_open`` opens it for the starter
only, for ``RESULT_FILE_RETENTION`` after the job ended. ``job_files_cleanup`` (``kehu cleanup-files``,
run daily) deletes those files after that time, and the uploaded input files of jobs that ended more
than ``KEHU_UPLOAD_RETENTION_DAYS`` days ago.
"""

from __future__ import annotations

import logging
import posixpath
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
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
RESULT_DIR = "jobs/results"
# How long after its job ended a result file (an export) may be downloaded; the clean-up deletes it then.
RESULT_FILE_RETENTION = timedelta(hours=24)


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


# ---------------------------------------------------------------------------------------------------
# Result files


def job_result_file_store(*, job: Job, filename: str, source) -> dict:
    """Keep ``source`` (a binary file) as the result file of ``job``, under a name nobody can guess.

    Returns what the job's result should say about it (the handler returns it within its result):
    ``file`` (the stored name), ``file_name`` (the name to download it as) and ``file_size``.
    """
    suffix = posixpath.splitext(filename)[1].lower()[:8]
    name = default_storage.save(f"{RESULT_DIR}/{job.pk}-{secrets.token_hex(12)}{suffix}", File(source))
    return {"file": name, "file_name": filename[:200], "file_size": default_storage.size(name)}


def job_result_file_expires(job: Job) -> datetime | None:
    """When the job's result file stops being offered; None when it has none (any more)."""
    if not (job.result or {}).get("file") or job.finished_at is None:
        return None
    return job.finished_at + RESULT_FILE_RETENTION


def job_result_file_open(*, acting_user, job: Job):
    """The job's result file open for reading, for the person who started the job; the download is
    audited (``job.download``). ServiceError when the job has no file, or no longer."""
    if job.created_by_id != getattr(acting_user, "pk", None):  # callers look jobs up through visible_to
        raise ServiceError(_("Only the person who started a job may download its file."))
    expires = job_result_file_expires(job)
    if job.status != JobStatus.SUCCEEDED or expires is None:
        raise ServiceError(_("This job has no file to download."))
    if timezone.now() >= expires:
        raise ServiceError(_("The file of this job is no longer kept; start it again."))
    try:
        handle = default_storage.open(job.result["file"], "rb")
    except FileNotFoundError:
        raise ServiceError(_("The file of this job is no longer kept; start it again.")) from None
    with transaction.atomic():
        audit_record(actor=acting_user, action="job.download", obj=job,
                     extra={"kind": job.kind, "file": job.result.get("file_name", ""),
                            "count": job.result.get("count")})  # fmt: skip
    return handle


# ---------------------------------------------------------------------------------------------------
# Clean-up


def upload_retention() -> timedelta:
    return timedelta(days=max(0, int(getattr(settings, "KEHU_UPLOAD_RETENTION_DAYS", 7))))


def _delete_stored(name: str) -> bool:
    try:
        default_storage.delete(name)
    except FileNotFoundError:
        return False
    except OSError:
        log.exception("could not delete %s", name)
        return False
    return True


def _stale_results(cutoff: datetime) -> list[str]:
    """Files under RESULT_DIR written before ``cutoff``: also those whose job never recorded them."""
    found: list[str] = []
    pending = [RESULT_DIR]
    while pending:
        folder = pending.pop()
        try:
            dirs, files = default_storage.listdir(folder)
        except (FileNotFoundError, NotImplementedError):
            continue
        pending += [f"{folder}/{d}" for d in dirs]
        for file in files:
            name = f"{folder}/{file}"
            try:
                if default_storage.get_modified_time(name) < cutoff:
                    found.append(name)
            except (FileNotFoundError, NotImplementedError):
                continue
    return found


def job_files_cleanup(*, now: datetime | None = None) -> dict[str, int]:
    """Delete the files jobs no longer need; audited as one ``job.cleanup`` event when it deleted any.

    - result files (exports) of jobs that ended more than RESULT_FILE_RETENTION ago, and any file under
      RESULT_DIR older than that (a job that crashed after writing it);
    - uploaded input files (imports) of jobs that ended more than KEHU_UPLOAD_RETENTION_DAYS days ago.
      After a dry run the upload is kept for the job page's "import this file now"; after this time
      the page offers it no longer. Jobs still waiting or running keep theirs.

    Returns the counts: ``results`` and ``uploads`` deleted.
    """
    now = now or timezone.now()
    result_cutoff, upload_cutoff = now - RESULT_FILE_RETENTION, now - upload_retention()
    results = uploads = 0
    with_results = (
        Job.objects.filter(finished_at__lt=result_cutoff, result__has_key="file")
        .exclude(result__file="")
        .only("pk", "result")
    )
    for job in with_results.iterator():
        name = job.result.get("file") or ""
        if name and _delete_stored(name):
            results += 1
        job.result = {**job.result, "file": "", "file_deleted_at": now.isoformat()}
        Job.objects.filter(pk=job.pk).update(result=job.result)
    for name in _stale_results(result_cutoff):
        if _delete_stored(name):
            results += 1
    with_uploads = (
        Job.objects.filter(finished_at__lt=upload_cutoff).exclude(input_file="").only("pk", "input_file")
    )
    for job in with_uploads.iterator():
        if _delete_stored(job.input_file.name):
            uploads += 1
        Job.objects.filter(pk=job.pk).update(input_file="")
    counts = {"results": results, "uploads": uploads}
    if results or uploads:
        with transaction.atomic():
            audit_record(actor=None, actor_username="(system)", action="job.cleanup", object_type="jobs.job",
                         extra={**counts, "upload_retention_days": upload_retention().days,
                                "result_retention_hours": int(RESULT_FILE_RETENTION.total_seconds() // 3600)})  # fmt: skip
    return counts
