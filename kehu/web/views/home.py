"""The home page: one panel for each role the signed-in person holds."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from kehu.web.selectors import home_dashboard


@login_required
def home_view(request):
    return render(request, "web/home/home.html", {"board": home_dashboard(viewer=request.user)})
