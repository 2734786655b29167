"""The OpenAPI schema and the self-hosted docs page (intranets have no internet: no CDN)."""

from __future__ import annotations

import json
import re

import pytest

from kehu.testing.factories import sign_in

pytestmark = pytest.mark.django_db

EXPECTED_PATHS = {
    "/api/v1/auth/token", "/api/v1/me", "/api/v1/units", "/api/v1/units/{unit_id}",
    "/api/v1/users", "/api/v1/users/{user_id}",
}  # fmt: skip


def test_openapi_is_valid_json_with_the_paths(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert EXPECTED_PATHS <= set(schema["paths"])
    for path, item in schema["paths"].items():
        for method, op in item.items():
            assert op.get("summary") and op.get("description") and op.get("tags"), (path, method)
            if path != "/api/v1/auth/token":
                assert op.get("security"), (path, method)
    assert "security" not in schema["paths"]["/api/v1/auth/token"]["post"]
    schemes = schema["components"]["securitySchemes"]
    assert any(s.get("scheme") == "bearer" for s in schemes.values())
    # secrets are not even in the schema
    user_props = schema["components"]["schemas"]["UserOut"]["properties"]
    assert not {"password", "failed_login_count", "locked_until"} & set(user_props)


def test_docs_page_uses_only_local_assets(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui-bundle.js" in html
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert assets, html
    for url in assets:
        assert url.startswith("/static/"), url
    assert not re.search(r"https?://", html), "the docs page must not reference any external URL"
    # Swagger UI's online validator badge would call validator.swagger.io: it must be switched off.
    settings_json = re.search(
        r'<script type="application/json" id="swagger-settings">(.*?)</script>', html, re.S
    )
    assert json.loads(settings_json.group(1))["validatorUrl"] is None


def test_docs_static_files_are_served_locally(client):
    for name in ("ninja/swagger-ui-bundle.js", "ninja/swagger-ui.css", "ninja/swagger-ui-init.js"):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200, name


def test_docs_page_for_a_signed_in_user_carries_the_csrf_token(client, people):
    # The docs "try it out" calls use the web session, so the page must hand Swagger UI the CSRF token.
    sign_in(client, people.alice)
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r'data-csrf-token="[^"]+"', html)
    assert not re.search(r"https?://", html)
