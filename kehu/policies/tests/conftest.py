"""The policy tests read explanations and messages in English: the close writes them in the language
active when it runs (Chinese by default), and the Chinese wording has tests of its own."""

from __future__ import annotations

import pytest
from django.utils import translation


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def _facts_dir(settings, tmp_path):
    settings.KEHU_FACTS_DIR = str(tmp_path / "facts")
