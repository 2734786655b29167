from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PoliciesConfig(AppConfig):
    name = "kehu.policies"
    label = "policies"
    verbose_name = _("Policies and the monthly close")

    def ready(self) -> None:
        from kehu.customers.merge import register_merge_relation
        from kehu.policies import merge
        from kehu.policies.models import CloseChange, CloseResult, Override

        register_merge_relation(CloseResult, move=merge.close_results_move)
        register_merge_relation(CloseChange, move=merge.close_changes_move)
        register_merge_relation(Override, move=merge.overrides_move)
