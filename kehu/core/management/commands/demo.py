"""``kehu demo``: load the demo province (idempotent) and print the demo logins."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from kehu.core.context import request_context
from kehu.core.errors import ServiceError


class Command(BaseCommand):
    help = (
        "Load the demo data (a fuel-retail province company in Shandong with staff in every role) and print "
        "the demo logins. Running it again changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--quiet", action="store_true", help="print nothing")

    def handle(self, *args, quiet, **options):
        from kehu.core.demo import demo_load, format_logins

        quiet = quiet or options.get("verbosity", 1) == 0
        try:
            with request_context(channel="cli"):
                result = demo_load(stdout=None if quiet else self.stdout)
        except ServiceError as exc:
            raise CommandError(str(exc)) from None
        if quiet:
            return
        state = "loaded" if result.changed else "already loaded, nothing changed"
        self.stdout.write(
            f"Demo {state}: {result.units_total} units ({result.stations} stations), "
            f"{result.users_total} people, in {result.seconds:.1f} s.\n"
        )
        self.stdout.write(format_logins(result))
