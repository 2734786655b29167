"""Classification pages (policies, the monthly close, simulation, overrides) and the sales import,
included at the site's root by kehu.web.urls."""

from django.urls import path, register_converter

from kehu.web.views import policies as views
from kehu.web.views import sales


class MonthConverter:
    """``YYYY-MM``; anything else is no month and answers 404."""

    regex = "[0-9]{4}-[0-9]{2}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value) -> str:
        return value if isinstance(value, str) else f"{value:%Y-%m}"


register_converter(MonthConverter, "month")

urlpatterns = [
    path("sales/import/", sales.sales_import_view, name="sales_import"),
    path("sales/import/<int:pk>/run/", sales.sales_import_run_view, name="sales_import_run"),
    path("sales/import/<int:pk>/errors.csv", sales.sales_import_errors_view, name="sales_import_errors"),
    path("policies/", views.policy_list_view, name="policy_list"),
    path("policies/load/", views.policy_load_view, name="policy_load"),
    path("policies/simulate/", views.policy_simulate_view, name="policy_simulate"),
    path("policies/<slug:name>/<int:version>/", views.policy_detail_view, name="policy_detail"),
    path("policies/<slug:name>/<int:version>/activate/", views.policy_activate_view, name="policy_activate"),
    path("close/", views.close_home_view, name="close_home"),
    path("close/<month:month>/", views.close_results_view, name="close_results"),
    path("close/<month:month>/export/", views.close_export_view, name="close_export"),
    path("close/<month:month>/changes/", views.close_changes_view, name="close_changes"),
    path("overrides/", views.override_list_view, name="override_list"),
    path("overrides/<int:pk>/<slug:action>/", views.override_action_view, name="override_action"),
    path("overrides/request/<str:code>/", views.override_request_view, name="override_request"),
]
