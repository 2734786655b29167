from django.urls import include, path

from kehu.api.urls import api

urlpatterns = [
    path("api/v1/", api.urls),
    path("", include("kehu.web.urls")),
]
