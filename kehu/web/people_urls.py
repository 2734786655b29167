"""People pages, included under ``people/`` by kehu.web.urls."""

from django.urls import path

from kehu.web import people_views as views

urlpatterns = [
    path("", views.people_list, name="people_list"),
    path("export.csv", views.people_export, name="people_export"),
    path("new/", views.person_create, name="person_create"),
    path("<int:pk>/", views.person_detail, name="person_detail"),
    path("<int:pk>/edit/", views.person_edit, name="person_edit"),
    path("<int:pk>/active/", views.person_set_active, name="person_set_active"),
    path("<int:pk>/unlock/", views.person_unlock, name="person_unlock"),
    path("<int:pk>/password/", views.person_password_reset, name="person_password_reset"),
    path("<int:pk>/roles/grant/", views.person_role_grant, name="person_role_grant"),
    path("<int:pk>/roles/revoke/", views.person_role_revoke, name="person_role_revoke"),
]
