"""``kehu cleanup-files``: delete the files background jobs no longer need (run it daily, from cron or a
systemd timer).

Export files are deleted a day after their job ended; uploaded import files once their job ended more
than ``KEHU_UPLOAD_RETENTION_DAYS`` days ago (7 by default). See ``kehu.jobs.services.job_files_cleanup``.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from kehu.core.context import request_context


class Command(BaseCommand):
    help = (
        "Delete the result files of background jobs (exports) a day after they ended, and uploaded import "
        "files of jobs that ended more than KEHU_UPLOAD_RETENTION_DAYS days ago."
    )

    def handle(self, *args, **options):
        from kehu.jobs.services import job_files_cleanup

        with request_context(channel="cli"):
            counts = job_files_cleanup()
        self.stdout.write(_("Deleted %(results)d export files and %(uploads)d uploaded files.") % counts)
