"""The `kehu` command and the environment-driven settings, exercised as a user would: in a subprocess."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import translation

from kehu.accounts.models import User
from kehu.accounts.roles import Role
from kehu.audit.models import AuditEvent

PROD_KEY = "p" * 60


def run_kehu(*args, env_overrides=None, drop=(), tmp_path=None):
    skip = {*drop, "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in skip}
    env.update(env_overrides or {})
    return subprocess.run(
        [sys.executable, "-m", "kehu.cli", *args],
        cwd=tmp_path or "/",  # any directory works
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("missing", ["KEHU_SECRET_KEY", "KEHU_ALLOWED_HOSTS"])
def test_production_start_without_required_setting_names_it(missing, tmp_path):
    env = {
        "KEHU_SECRET_KEY": PROD_KEY,
        "KEHU_ALLOWED_HOSTS": "crm.example.cn",
        "KEHU_DATA_DIR": str(tmp_path),
    }
    env.pop(missing)
    result = run_kehu("check", env_overrides=env, drop=("KEHU_DEBUG", missing), tmp_path=tmp_path)
    assert result.returncode == 2
    assert missing in result.stderr


def test_bad_boolean_setting_is_refused_with_the_fix(tmp_path):
    env = {"KEHU_DEBUG": "maybe", "KEHU_DATA_DIR": str(tmp_path)}
    result = run_kehu("check", env_overrides=env, tmp_path=tmp_path)
    assert result.returncode == 2
    assert "KEHU_DEBUG" in result.stderr and "1/0" in result.stderr


def test_deploy_check_is_clean_with_production_settings(tmp_path):
    env = {
        "KEHU_SECRET_KEY": PROD_KEY + "-Zq8#",
        "KEHU_ALLOWED_HOSTS": "crm.example.cn",
        "KEHU_HTTPS": "1",
        "KEHU_DATA_DIR": str(tmp_path),
        "KEHU_DATA_KEYS": "k1=" + base64.b64encode(b"k" * 32).decode(),
        "KEHU_INDEX_KEY": "i" * 50,
    }
    result = run_kehu("check", "--deploy", "--fail-level", "WARNING", env_overrides=env,
                      drop=("KEHU_DEBUG", "DATABASE_URL"), tmp_path=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_help_lists_kehu_commands_from_any_directory(tmp_path):
    result = run_kehu(
        "help", env_overrides={"KEHU_DEBUG": "1", "KEHU_DATA_DIR": str(tmp_path)}, tmp_path=tmp_path
    )
    assert result.returncode == 0, result.stderr
    for command in ("demo", "serve", "worker", "gen_data", "import", "export", "audit", "createsuperuser"):
        assert command in result.stdout


def test_createsuperuser_makes_the_first_security_admin_only(db, monkeypatch):
    monkeypatch.setenv("KEHU_ADMIN_PASSWORD", "First#Admin2026")
    call_command("createsuperuser", "--noinput", "--username", "root_sec")
    user = User.objects.get(username="root_sec")
    assert user.role_names() == {Role.SECURITY_ADMIN}
    assert user.must_change_password
    assert AuditEvent.objects.filter(action="role.grant", object_id=str(user.pk), channel="cli").exists()
    with translation.override("en"), pytest.raises(CommandError, match="already exists"):
        call_command("createsuperuser", "--noinput", "--username", "second_sec")


def test_createsuperuser_enforces_password_rules(db, monkeypatch):
    monkeypatch.setenv("KEHU_ADMIN_PASSWORD", "short")
    with translation.override("en"), pytest.raises(CommandError, match="at least 8"):
        call_command("createsuperuser", "--noinput", "--username", "root_sec")
    assert not User.objects.exists()


def test_worker_without_broker_explains_the_setting(settings):
    settings.CELERY_BROKER_URL = ""
    with pytest.raises(CommandError, match="KEHU_BROKER_URL"):
        call_command("worker")


def test_serve_refuses_unapplied_migrations(db, monkeypatch):
    from django.db.migrations.executor import MigrationExecutor

    monkeypatch.setattr(MigrationExecutor, "migration_plan", lambda self, targets: [("x", False)])
    with pytest.raises(CommandError, match="kehu migrate"):
        call_command("serve")


def test_deploy_check_warns_about_derived_personal_data_keys(tmp_path):
    env = {"KEHU_SECRET_KEY": PROD_KEY + "-Zq8#", "KEHU_ALLOWED_HOSTS": "crm.example.cn", "KEHU_HTTPS": "1",
           "KEHU_DATA_DIR": str(tmp_path)}  # fmt: skip
    result = run_kehu("check", "--deploy", env_overrides=env, drop=("KEHU_DEBUG", "DATABASE_URL", "KEHU_DATA_KEYS",
                      "KEHU_INDEX_KEY"), tmp_path=tmp_path)  # fmt: skip
    assert "kehu.W001" in result.stdout + result.stderr and "kehu.W002" in result.stdout + result.stderr


def test_makemigrations_check_needs_no_production_secret(tmp_path):
    result = run_kehu("makemigrations", "--check", "--dry-run", env_overrides={"KEHU_DATA_DIR": str(tmp_path)},
                      drop=("KEHU_DEBUG", "KEHU_SECRET_KEY", "KEHU_ALLOWED_HOSTS"), tmp_path=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    # …while a command that serves still refuses without it
    served = run_kehu("migrate", env_overrides={"KEHU_DATA_DIR": str(tmp_path)},
                      drop=("KEHU_DEBUG", "KEHU_SECRET_KEY"), tmp_path=tmp_path)  # fmt: skip
    assert served.returncode == 2 and "KEHU_SECRET_KEY" in served.stderr
