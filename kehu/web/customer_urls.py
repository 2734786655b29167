"""Customer pages, included under ``customers/`` by kehu.web.urls. A customer is addressed by its code."""

from django.urls import path, register_converter

from kehu.web.views import customers as views


class CustomerCodeConverter:
    """14 digits (the Shantou Post rule); anything else is no customer and answers 404."""

    regex = "[0-9]{14}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(CustomerCodeConverter, "customer_code")

urlpatterns = [
    path("", views.customer_list, name="customer_list"),
    path("add/", views.customer_create_view, name="customer_create"),
    path("<customer_code:code>/", views.customer_detail, name="customer_detail"),
    path("<customer_code:code>/edit/", views.customer_edit_view, name="customer_edit"),
    path("<customer_code:code>/reveal/", views.customer_reveal, name="customer_reveal"),
    path("<customer_code:code>/merge/", views.customer_merge_view, name="customer_merge"),
    path("<customer_code:code>/phones/add/", views.customer_phone_add, name="customer_phone_add"),
    path(
        "<customer_code:code>/phones/<int:pk>/remove/",
        views.customer_phone_remove,
        name="customer_phone_remove",
    ),
    path("<customer_code:code>/id-number/", views.customer_id_number, name="customer_id_number"),
    path("<customer_code:code>/contacts/add/", views.contact_add, name="contact_add"),
    path("<customer_code:code>/contacts/<int:pk>/edit/", views.contact_edit, name="contact_edit"),
    path(
        "<customer_code:code>/contacts/<int:pk>/phones/add/",
        views.contact_phone_add,
        name="contact_phone_add",
    ),
    path("<customer_code:code>/contacts/<int:pk>/delete/", views.contact_delete_view, name="contact_delete"),
    path("<customer_code:code>/agreements/add/", views.agreement_add_view, name="agreement_add"),
    path("<customer_code:code>/agreements/<int:pk>/edit/", views.agreement_edit_view, name="agreement_edit"),
    path(
        "<customer_code:code>/agreements/<int:pk>/delete/",
        views.agreement_delete_view,
        name="agreement_delete",
    ),
    path(
        "<customer_code:code>/agreements/<int:pk>/attachment/",
        views.agreement_attachment,
        name="agreement_attachment",
    ),  # fmt: skip
    path("<customer_code:code>/photos/add/", views.photo_add_view, name="photo_add"),
    path("<customer_code:code>/photos/<int:pk>/", views.photo_file, name="photo_file"),
    path("<customer_code:code>/photos/<int:pk>/delete/", views.photo_delete_view, name="photo_delete"),
    # Last: the tabs (profile, contacts, agreements, photos, history, sales, visits, complaints).
    path("<customer_code:code>/<slug:tab>/", views.customer_tab, name="customer_tab"),
]
