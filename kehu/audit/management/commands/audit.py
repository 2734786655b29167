"""``kehu audit SUBCOMMAND``: tools for the audit trail.

``kehu audit verify`` recomputes every event's keyed hash and link and checks the chain head. It prints
``OK: N events verified`` and exits 0, or prints each problem found and exits 1.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from kehu.audit.selectors import audit_chain_verify


class Command(BaseCommand):
    help = "Audit trail tools. `kehu audit verify` checks that no event was edited, deleted or forged."

    def add_arguments(self, parser):
        subcommands = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        verify = subcommands.add_parser(
            "verify",
            help="Recompute the hash chain; exit status 1 if any event was edited, deleted or forged.",
        )
        verify.add_argument(
            "--batch-size",
            type=int,
            default=5000,
            help="Events read from the database at a time (default 5000).",
        )

    def handle(self, *args, subcommand: str, **options):
        handler = getattr(self, f"handle_{subcommand}")
        return handler(**options)

    def handle_verify(self, *, batch_size: int = 5000, **options) -> None:
        if batch_size < 1:
            raise CommandError(_("--batch-size must be at least 1."), returncode=2)
        result = audit_chain_verify(batch_size=batch_size)
        if result.ok:
            self.stdout.write(
                ngettext("OK: %(n)d event verified", "OK: %(n)d events verified", result.checked)
                % {"n": result.checked}
            )
            return
        for problem in result.problems:
            self.stderr.write(problem)
        raise CommandError(
            ngettext(
                "The audit trail failed verification: %(p)d problem in %(n)d events.",
                "The audit trail failed verification: %(p)d problems in %(n)d events.",
                len(result.problems),
            )
            % {"p": len(result.problems), "n": result.checked},
            returncode=1,
        )
