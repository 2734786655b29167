"""Background jobs: the person who started one follows its progress and reads its result (and downloads
the file an export job wrote, through the kind's own view)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.template.loader import select_template
from django.utils import timezone
from django.views.decorators.http import require_GET

from kehu.core.scoping import get_visible_or_404
from kehu.jobs.models import Job, JobStatus
from kehu.jobs.registry import JOB_KINDS
from kehu.jobs.selectors import job_list
from kehu.jobs.services import job_progress, job_result_file_expires
from kehu.web.views.common import is_htmx


def _job_context(job: Job) -> dict:
    done, total = job_progress(job)
    kind = JOB_KINDS.get(job.kind)
    expires = job_result_file_expires(job) if job.status == JobStatus.SUCCEEDED else None
    return {
        "job": job,
        "kind_label": kind.label if kind else job.kind,
        "done": done,
        "total": total,
        "percent": int(done * 100 / total) if total else 0,
        # A file the job left (an export): offered to its starter until it expires.
        "file_expires": expires,
        "file_available": expires is not None and timezone.now() < expires,
        "result_template": select_template(
            [f"web/jobs/result_{job.kind}.html", "web/jobs/result_generic.html"]
        ),
    }


@require_GET
@login_required
def job_detail_view(request, pk: int):
    job = get_visible_or_404(Job.objects.select_related("created_by"), request.user, pk=pk)
    template = "web/jobs/_job.html" if is_htmx(request) else "web/jobs/detail.html"
    return render(request, template, _job_context(job))


@require_GET
@login_required
def job_list_view(request):
    jobs = [
        (job, JOB_KINDS[job.kind].label if job.kind in JOB_KINDS else job.kind)
        for job in job_list(viewer=request.user)
    ]
    return render(request, "web/jobs/list.html", {"jobs": jobs})
