from django.urls import include, path

from kehu.web.views import auth, home, jobs, org

urlpatterns = [
    path("", home.home_view, name="home"),
    path("login/", auth.login_view, name="login"),
    path("logout/", auth.logout_view, name="logout"),
    path("password/", auth.password_change_view, name="password_change"),
    path("language/", auth.set_language_view, name="set_language"),
    # Organisation tree
    path("org/", org.org_tree_view, name="org_tree"),
    path("org/tree/<int:pk>/", org.org_tree_children_view, name="org_tree_children"),
    path("org/export/", org.units_export_view, name="units_export"),
    path("org/import/", org.units_import_view, name="units_import"),
    path("org/units/add/", org.unit_create_view, name="unit_create_root"),
    path("org/units/<int:pk>/", org.unit_detail_view, name="unit_detail"),
    path("org/units/<int:pk>/add/", org.unit_create_view, name="unit_create"),
    path("org/units/<int:pk>/edit/", org.unit_edit_view, name="unit_edit"),
    path("org/units/<int:pk>/move/", org.unit_move_view, name="unit_move"),
    path("org/units/<int:pk>/active/", org.unit_set_active_view, name="unit_set_active"),
    path("org/units/<int:pk>/delete/", org.unit_delete_view, name="unit_delete"),
    # People administration and the audit trail have their own URL modules.
    path("jobs/", jobs.job_list_view, name="job_list"),
    path("jobs/<int:pk>/", jobs.job_detail_view, name="job_detail"),
    path("people/", include("kehu.web.people_urls")),
    path("customers/io/", include("kehu.web.customer_io_urls")),
    path("customers/", include("kehu.web.customer_urls")),
    path("audit/", include("kehu.web.audit_urls")),
    path("", include("kehu.web.policy_urls")),
]
