from django.http import HttpResponse
from django.urls import path

urlpatterns = [
    path("", lambda r: HttpResponse("home"), name="home"),
    path("login/", lambda r: HttpResponse("login"), name="login"),
    path("logout/", lambda r: HttpResponse("logout"), name="logout"),
    path("password/", lambda r: HttpResponse("pw"), name="password_change"),
    path("language/", lambda r: HttpResponse("lang"), name="set_language"),
]
