"""``kehu gen-data``: a seeded synthetic organisation for benchmarks and load tests."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from kehu.core.context import request_context
from kehu.core.errors import ServiceError


class Command(BaseCommand):
    help = (
        "Generate a synthetic organisation (units, people, roles) for benchmarks. The same --seed gives the "
        "same data; --prefix keeps several runs apart."
    )

    def add_arguments(self, parser):
        parser.add_argument("--units", type=int, default=20000, help="number of units (default 20000)")
        parser.add_argument("--depth", type=int, default=5,
                            help="levels: province → city → county → area → station (default 5)")  # fmt: skip
        parser.add_argument("--people-per-unit", type=float, default=1.0, dest="people_per_unit",
                            help="customer managers per leaf unit, on average (default 1.0); every other "
                                 "unit gets one unit head")  # fmt: skip
        parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
        parser.add_argument("--prefix", default="G", help="unit code prefix (default G): G-0-000000 …")
        parser.add_argument("--password", default=None,
                            help="password of every generated account (default Kehu@2026)")  # fmt: skip

    def handle(self, *args, units, depth, people_per_unit, seed, prefix, password, **options):
        from kehu.core.gendata import DEFAULT_PASSWORD, generate_org

        verbose = options.get("verbosity", 1) >= 1
        try:
            with request_context(channel="cli"):
                result = generate_org(
                    units=units, people_per_leaf=people_per_unit, seed=seed, depth=depth, prefix=prefix,
                    password=password or DEFAULT_PASSWORD, stdout=self.stdout if verbose else None,
                )  # fmt: skip
        except ServiceError as exc:
            raise CommandError(str(exc)) from None
        if verbose:
            roles = pgettext("list of counts", ", ").join(
                f"{role} {n}" for role, n in sorted(result.by_role.items())
            )
            self.stdout.write(
                _(
                    "Generated %(units)d units (%(sizes)s per level), %(people)d people (%(roles)s), "
                    "%(assignments)d role assignments with prefix %(prefix)s and seed %(seed)d in %(seconds).1f s."
                )
                % {
                    "units": result.units,
                    "sizes": " / ".join(map(str, result.level_sizes)),
                    "people": result.users,
                    "roles": roles,
                    "assignments": result.role_assignments,
                    "prefix": repr(result.prefix),
                    "seed": result.seed,
                    "seconds": result.seconds,
                }
            )
