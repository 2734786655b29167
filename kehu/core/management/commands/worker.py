"""``kehu worker``: the Celery worker for background jobs (imports, monthly close, reports)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _


class Command(BaseCommand):
    help = "Run the Celery worker that executes Kehu's background jobs."

    def add_arguments(self, parser):
        parser.add_argument(
            "--concurrency", type=int, default=0, help="worker processes (default: CPU cores)"
        )
        parser.add_argument("--loglevel", default="INFO")

    def handle(self, *args, concurrency, loglevel, **options):
        if not settings.CELERY_BROKER_URL:
            raise CommandError(
                _(
                    "KEHU_BROKER_URL is not set, so background jobs run inside the web process and no worker "
                    "is needed. Set KEHU_BROKER_URL=redis://127.0.0.1:6379/0 to run them in a worker."
                )
            )
        from kehu.celery import app

        argv = ["worker", f"--loglevel={loglevel}"]
        if concurrency:
            argv.append(f"--concurrency={concurrency}")
        app.worker_main(argv)
