"""``kehu demo``: load the demo province (idempotent) and print the demo logins."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from kehu.core.context import request_context
from kehu.core.errors import ServiceError


class Command(BaseCommand):
    help = (
        "Load the demo data (a fuel-retail province company in Shandong with staff in every role and about "
        "3,000 customers) and print the demo logins. Running it again changes nothing."
    )

    def add_arguments(self, parser):
        from kehu.policies.packs import DEFAULT_PACK, PACKS

        parser.add_argument("--quiet", action="store_true", help="print nothing")
        parser.add_argument("--pack", choices=PACKS, default=DEFAULT_PACK,
                            help=f"the industry pack: its products, policy and 24 months of sales (default {DEFAULT_PACK})")  # fmt: skip

    def handle(self, *args, quiet, pack, **options):
        from django.utils import timezone

        from kehu.accounts.models import User
        from kehu.core.demo import demo_load, format_logins
        from kehu.metrics.demo_sales import demo_sales_load
        from kehu.policies.packs import pack_install

        quiet = quiet or options.get("verbosity", 1) == 0
        try:
            with request_context(channel="cli"):
                result = demo_load(stdout=None if quiet else self.stdout)
                operator = User.objects.get(username="sysadmin")
                pack_install(acting_user=operator, name=pack)
                sales = demo_sales_load(acting_user=operator, pack=pack, today=timezone.localdate(),
                                        stdout=None if quiet else self.stdout)  # fmt: skip
        except ServiceError as exc:
            raise CommandError(str(exc)) from None
        if quiet:
            return
        values = {
            "units": result.units_total, "stations": result.stations, "people": result.users_total,
            "customers": result.customers_total, "seconds": result.seconds,
        }  # fmt: skip
        if result.changed:
            message = _(
                "Demo loaded: %(units)d units (%(stations)d stations), %(people)d people, %(customers)d customers, "
                "in %(seconds).1f s."
            )
        else:
            message = _(
                "Demo already loaded, nothing changed: %(units)d units (%(stations)d stations), "
                "%(people)d people, %(customers)d customers, in %(seconds).1f s."
            )
        self.stdout.write(message % values + "\n")
        self.stdout.write(
            _(
                "Pack %(pack)s: %(facts)d monthly sales facts over %(months)d months; %(closed)d months closed."
            )
            % {"pack": pack, **sales}
            + "\n"
        )
        self.stdout.write(format_logins(result))
