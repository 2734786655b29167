"""``kehu close YYYY-MM [--unit CODE] [--as USERNAME]``: the monthly close, in this process, with progress.

Without ``--as`` the close runs as the deployment's system administrator over every customer (an
operation from the server console, like ``migrate``); with ``--as`` over what that account may see.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from kehu.accounts.roles import Capability
from kehu.core.context import request_context
from kehu.core.errors import ServiceError
from kehu.core.management.commands._common import acting_user


class Command(BaseCommand):
    help = "Close a month: classify, level and grade every customer by the policy in force."

    def add_arguments(self, parser):
        parser.add_argument("month", metavar="YYYY-MM")
        parser.add_argument("--unit", metavar="CODE", help="only the customers of this unit's subtree")
        parser.add_argument("--as", dest="as_user", metavar="USERNAME")

    def handle(self, *args, **options):
        from kehu.org.models import Unit
        from kehu.policies.close import close_run
        from kehu.policies.services import parse_month

        user = acting_user(options["as_user"], Capability.RUN_CLOSE, doing=_("run the monthly close"))
        unit = None
        if options["unit"]:
            unit = Unit.objects.filter(code=options["unit"]).first()
            if unit is None:
                raise CommandError(_("No unit with the code “%(code)s”.") % {"code": options["unit"]})
        last = [-1]
        verbosity = options.get("verbosity", 1)

        def progress(done: int, total: int) -> None:
            percent = done * 100 // max(total, 1)
            if percent != last[0] and verbosity:
                last[0] = percent
                self.stderr.write(f"  {percent}%", ending="\r" if percent < 100 else "\n")

        with request_context(channel="cli"):
            try:
                run = close_run(
                    acting_user=user, month=parse_month(options["month"]), unit=unit, progress=progress
                )
            except ServiceError as exc:
                raise CommandError(str(exc)) from None
        seconds = run.summary.get("seconds", {})
        self.stdout.write(
            _("Closed %(m)s with %(p)s: %(n)s customers, %(c)s changes (%(s).1f s).")
            % {
                "m": options["month"],
                "p": run.policy,
                "n": run.customers,
                "c": run.changes,
                "s": (run.finished_at - run.started_at).total_seconds(),
            }  # fmt: skip
        )
        for output, counts in run.summary.get("distribution", {}).items():
            shown = ", ".join(f"{value or '—'} {n}" for value, n in counts.items())
            self.stdout.write(f"  {output}: {shown}")
        for output, kinds in run.summary.get("changes", {}).items():
            shown = ", ".join(f"{kind} {n}" for kind, n in kinds.items())
            self.stdout.write(f"  {output} {_('changes')}: {shown}")
        if verbosity > 1:
            self.stdout.write(f"  {seconds}")
