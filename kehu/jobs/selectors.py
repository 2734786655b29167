"""Reads of jobs: a job is visible to the person who started it."""

from __future__ import annotations

from django.db.models import QuerySet

from kehu.jobs.models import Job


def job_list(*, viewer, limit: int = 50) -> QuerySet[Job]:
    return Job.objects.visible_to(viewer).order_by("-created_at")[:limit]
