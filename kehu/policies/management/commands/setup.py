"""``kehu setup --pack NAME``: prepare an empty database for an industry — its product catalogue and
its policy, active from the start; no demo data. Safe to run again."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from kehu.accounts.roles import Capability
from kehu.core.context import request_context
from kehu.core.errors import ServiceError
from kehu.core.management.commands._common import acting_user
from kehu.policies.packs import DEFAULT_PACK, PACKS


class Command(BaseCommand):
    help = "Prepare the database for an industry pack: product catalogue and policy (no demo data)."

    def add_arguments(self, parser):
        parser.add_argument("--pack", choices=PACKS, default=DEFAULT_PACK)
        parser.add_argument("--as", dest="as_user", metavar="USERNAME")

    def handle(self, *args, **options):
        from kehu.policies.packs import pack_install

        # Without --as: the installation itself, which may run before any account exists.
        user = None
        if options["as_user"]:
            user = acting_user(
                options["as_user"], Capability.MANAGE_POLICIES, doing=_("set the deployment up")
            )
        with request_context(channel="cli"):
            try:
                result = pack_install(acting_user=user, name=options["pack"])
            except ServiceError as exc:
                raise CommandError(str(exc)) from None
        self.stdout.write(_("Pack %(pack)s: policy %(policy)s active from the start.") % result)
