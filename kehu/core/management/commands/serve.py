"""``kehu serve``: the production web server (gunicorn) with static files served by WhiteNoise."""

from __future__ import annotations

import os
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils.translation import gettext as _
from django.utils.translation import ngettext


class Command(BaseCommand):
    help = "Serve Kehu with gunicorn (collects static files first)."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=os.environ.get("KEHU_BIND", "127.0.0.1:8000"),
                            help="host:port to listen on (env KEHU_BIND; default 127.0.0.1:8000)")  # fmt: skip
        parser.add_argument("--workers", type=int, default=int(os.environ.get("KEHU_WEB_WORKERS", "0") or 0),
                            help="worker processes (env KEHU_WEB_WORKERS; default 2 × CPU cores + 1)")  # fmt: skip
        parser.add_argument("--timeout", type=int, default=120, help="worker timeout in seconds")
        parser.add_argument("--no-collectstatic", action="store_true", help="skip collectstatic")

    def handle(self, *args, bind, workers, timeout, no_collectstatic, **options):
        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            raise CommandError(_("The database has unapplied migrations: run `kehu migrate` first."))
        vendor = settings.BASE_DIR / "web" / "static" / "vendor" / "htmx.min.js"
        if not vendor.exists():
            raise CommandError(
                _(
                    "Front-end libraries are missing (kehu/web/static/vendor): run `make frontend` "
                    "(npm ci in frontend/) before serving."
                )
            )
        if not no_collectstatic:
            call_command("collectstatic", interactive=False, verbosity=0)
        workers = workers or (2 * (os.cpu_count() or 1) + 1)
        argv = [
            sys.executable, "-m", "gunicorn", "kehu.wsgi:application",
            "--bind", bind, "--workers", str(workers), "--timeout", str(timeout),
            "--access-logfile", "-", "--error-logfile", "-", "--forwarded-allow-ips",
            os.environ.get("KEHU_FORWARDED_ALLOW_IPS", "127.0.0.1"),
        ]  # fmt: skip
        self.stdout.write(
            ngettext(
                "Kehu is serving on http://%(bind)s/ (%(n)d worker). Ctrl-C stops it.",
                "Kehu is serving on http://%(bind)s/ (%(n)d workers). Ctrl-C stops it.",
                workers,
            )
            % {"bind": bind, "n": workers}
        )
        self.stdout.flush()
        os.execv(sys.executable, argv)
