from __future__ import annotations

import pytest

from kehu.accounts.services import api_token_issue
from kehu.testing.factories import TEST_PASSWORD


@pytest.fixture
def token_for():
    """A fresh bearer token for a user, issued through the real service."""

    def _issue(user) -> str:
        raw, _token = api_token_issue(username=user.username, password=TEST_PASSWORD)
        return raw

    return _issue


@pytest.fixture
def api_get(client, token_for):
    """GET as a user with a bearer token; returns the response."""

    def _get(user, path: str, **params):
        return client.get(f"/api/v1{path}", params, HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")

    return _get
