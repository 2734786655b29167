"""Customer import and export pages, included under ``customers/io/`` by kehu.web.urls."""

from django.urls import path

from kehu.web.views import customer_io as views

urlpatterns = [
    path("import/", views.customers_import_view, name="customers_import"),
    path("import/<int:pk>/run/", views.customers_import_run_view, name="customers_import_run"),
    path("import/<int:pk>/errors.csv", views.customers_import_errors_view, name="customers_import_errors"),
    path("export/", views.customers_export_view, name="customers_export"),
    path("export/<int:pk>/file/", views.customers_export_file_view, name="customers_export_file"),
]
