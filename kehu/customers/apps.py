from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CustomersConfig(AppConfig):
    name = "kehu.customers"
    label = "customers"
    verbose_name = _("Customer archive")

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        post_migrate.connect(_ensure_search_index, sender=self)

        # Job kinds (the imports) register themselves with kehu.jobs when their module is imported.
        from kehu.customers import jobs as _jobs  # noqa: F401


def _ensure_search_index(sender, using="default", **kwargs) -> None:
    from django.db import connections

    from kehu.customers.search import ensure_search_index

    ensure_search_index(connections[using])
