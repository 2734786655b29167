"""Celery tasks. They take ids and call services; the work itself lives in the job kinds."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="kehu.jobs.run_job", acks_late=True)
def run_job(job_id: int) -> str:
    from kehu.jobs.services import job_run

    return job_run(job_id).status
