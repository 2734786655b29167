"""Audit trail pages (audit administrator only), included under ``audit/`` by kehu.web.urls."""

from django.urls import path

from kehu.web import audit_views as views

urlpatterns = [
    path("", views.audit_list, name="audit_list"),
    path("verify/", views.audit_verify, name="audit_verify"),
    path("<int:seq>/", views.audit_detail, name="audit_detail"),
]
