from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class JobsConfig(AppConfig):
    name = "kehu.jobs"
    label = "jobs"
    verbose_name = _("Background jobs")

    def ready(self) -> None:
        # The Celery app must be configured before any task is sent (eager without a broker).
        import kehu.celery  # noqa: F401
        from kehu.metrics import jobs as _metrics_jobs  # noqa: F401

        # Job kinds register themselves where their domain lives.
        from kehu.org import jobs as _org_jobs  # noqa: F401
        from kehu.policies import jobs as _policies_jobs  # noqa: F401
