from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MetricsConfig(AppConfig):
    name = "kehu.metrics"
    label = "metrics"
    verbose_name = _("Sales facts")

    def ready(self) -> None:
        from kehu.customers.merge import register_merge_relation
        from kehu.metrics.merge import sales_facts_move
        from kehu.metrics.models import SalesFact

        register_merge_relation(SalesFact, move=sales_facts_move)
