"""Loaded with ``-p kehu.testing.pytest_env`` before Django reads its settings.

Tests run with production settings (DEBUG off); only what a test machine cannot provide is defaulted.
"""

import os
import tempfile

os.environ.setdefault("KEHU_SECRET_KEY", "test-only-secret-key-" + "x" * 40)
os.environ.setdefault("KEHU_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("KEHU_HTTPS", "0")
os.environ.setdefault("KEHU_DATA_DIR", tempfile.mkdtemp(prefix="kehu-test-"))
os.makedirs(os.path.join(os.environ["KEHU_DATA_DIR"], "static"), exist_ok=True)
# Playwright's sync API runs an event loop in the test thread; the ORM calls in the same tests are safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
