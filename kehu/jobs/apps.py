from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class JobsConfig(AppConfig):
    name = "kehu.jobs"
    label = "jobs"
    verbose_name = _("Background jobs")

    def ready(self) -> None:
        # The Celery app must be configured before any task is sent (eager without a broker).
        import kehu.celery  # noqa: F401

        # Job kinds register themselves where their domain lives.
        from kehu.org import jobs as _org_jobs  # noqa: F401
