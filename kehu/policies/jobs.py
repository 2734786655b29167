"""Background job kind of the monthly close (started from the web page or the API)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from kehu.jobs.registry import register


@register("monthly_close", _("Monthly close"))
def monthly_close_job(job, progress) -> dict:
    """Close the month acting as the person who started it (their reach, their audit trail)."""
    from kehu.org.models import Unit
    from kehu.policies.close import close_run
    from kehu.policies.services import parse_month

    unit = Unit.objects.filter(pk=job.params["unit_id"]).first() if job.params.get("unit_id") else None
    run = close_run(acting_user=job.created_by, month=parse_month(job.params["month"]), unit=unit,
                    progress=progress, job=job)  # fmt: skip
    return {"run": run.pk, "month": job.params["month"], "customers": run.customers, "changes": run.changes,
            "summary": run.summary}  # fmt: skip


def close_submit(*, acting_user, month, unit=None):
    """Queue a close of ``month`` (checked now, so that a refusal is immediate, and again when it runs)."""
    from kehu.accounts.roles import Capability
    from kehu.core.errors import require
    from kehu.jobs.services import job_submit
    from kehu.policies.selectors import policy_in_force

    require(acting_user, Capability.RUN_CLOSE, _("You may not run the monthly close."))
    if policy_in_force(month=month) is None:
        from kehu.core.errors import ServiceError

        raise ServiceError(_("No policy applies to %(m)s: activate one from that month or earlier.")
                           % {"m": f"{month:%Y-%m}"}, field="month")  # fmt: skip
    params = {"month": f"{month:%Y-%m}", "unit_id": unit.pk if unit else None}
    return job_submit(acting_user=acting_user, kind="monthly_close", params=params)
