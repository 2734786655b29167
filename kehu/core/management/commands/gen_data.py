"""``kehu gen-data``: a seeded synthetic organisation, and customers over it, for benchmarks and load tests."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from kehu.core.context import request_context
from kehu.core.errors import ServiceError


class Command(BaseCommand):
    help = (
        "Generate a synthetic organisation (units, people, roles) and customers for benchmarks. The same --seed "
        "gives the same data; --prefix keeps several runs apart. --units 0 adds customers to the units of an "
        "earlier run with the same --prefix."
    )

    def add_arguments(self, parser):
        parser.add_argument("--units", type=int, default=20000,
                            help="number of units (default 20000); 0: no new units, customers go to the units "
                                 "of an earlier run with the same --prefix")  # fmt: skip
        parser.add_argument("--depth", type=int, default=5,
                            help="levels: province → city → county → area → station (default 5)")  # fmt: skip
        parser.add_argument("--people-per-unit", type=float, default=1.0, dest="people_per_unit",
                            help="customer managers per leaf unit, on average (default 1.0); every other "
                                 "unit gets one unit head")  # fmt: skip
        parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
        parser.add_argument("--prefix", default="G", help="unit code prefix (default G): G-0-000000 …")
        parser.add_argument("--password", default=None,
                            help="password of every generated account (default Kehu@2026)")  # fmt: skip
        parser.add_argument("--customers", type=int, default=0,
                            help="customers to generate over the units, branches included (default 0)")  # fmt: skip
        parser.add_argument("--phone-share", type=float, default=0.15, dest="phone_share",
                            help="share of customers with a phone (encrypted, blind-indexed; default 0.15)")  # fmt: skip
        parser.add_argument("--contact-share", type=float, default=0.2, dest="contact_share",
                            help="share of customers with 1–3 contacts (default 0.2)")  # fmt: skip
        parser.add_argument("--agreement-share", type=float, default=0.1, dest="agreement_share",
                            help="share of institutions with an agreement (default 0.1)")  # fmt: skip
        parser.add_argument("--branch-share", type=float, default=0.01, dest="branch_share",
                            help="share of institutions with 1–3 branches (default 0.01)")  # fmt: skip
        parser.add_argument("--batch-size", type=int, default=5000, dest="batch_size",
                            help="customers per insert batch (default 5000)")  # fmt: skip
        parser.add_argument("--index-during-load", action="store_true", dest="index_during_load",
                            help="keep the full-text index up to date row by row instead of building it once "
                                 "after the load (slower; for comparison)")  # fmt: skip
        parser.add_argument("--month", default=None, metavar="YYYY-MM",
                            help="the month of --transactions; --history-months are the months before it")  # fmt: skip
        parser.add_argument("--transactions", type=int, default=0,
                            help="write this many seeded transactions of --month over the generated customers "
                                 "to --transactions-file (CSV for kehu import transactions)")  # fmt: skip
        parser.add_argument("--transactions-file", dest="transactions_file", default=None, metavar="PATH",
                            help="where --transactions writes its CSV")  # fmt: skip
        parser.add_argument("--history-months", type=int, default=0, dest="history_months",
                            help="load monthly sales facts (source history) for this many months before --month")  # fmt: skip

    def handle(self, *args, units, depth, people_per_unit, seed, prefix, password, customers, **options):
        from kehu.core.gendata import DEFAULT_PASSWORD, generate_customers, generate_org

        verbose = options.get("verbosity", 1) >= 1
        stdout = self.stdout if verbose else None
        sales = options["transactions"] > 0 or options["history_months"] > 0
        if units == 0 and customers <= 0 and not sales:
            raise CommandError(
                _("Nothing to do: --units 0 needs --customers, --transactions or --history-months.")
            )
        month = None
        if sales:
            month = self._month(options["month"])
            if options["transactions"] < 0 or options["history_months"] < 0:
                raise CommandError(_("--transactions and --history-months must not be negative."))
        if customers < 0:
            raise CommandError(_("--customers must not be negative."))
        try:
            with request_context(channel="cli"):
                if units != 0:
                    result = generate_org(
                        units=units, people_per_leaf=people_per_unit, seed=seed, depth=depth, prefix=prefix,
                        password=password or DEFAULT_PASSWORD, stdout=stdout,
                    )  # fmt: skip
                    if verbose:
                        self._report_org(result)
                if customers > 0:
                    found = generate_customers(
                        customers=customers, prefix=prefix, seed=seed, batch_size=options["batch_size"],
                        phone_share=options["phone_share"], contact_share=options["contact_share"],
                        agreement_share=options["agreement_share"], branch_share=options["branch_share"],
                        pause_index=not options["index_during_load"], stdout=stdout,
                    )  # fmt: skip
                    if verbose:
                        self._report_customers(found)
                if sales:
                    from kehu.core.gendata import generate_sales

                    made = generate_sales(
                        prefix=prefix, seed=seed, month=month, transactions=options["transactions"],
                        transactions_file=options["transactions_file"], history_months=options["history_months"],
                        stdout=stdout,
                    )  # fmt: skip
                    if verbose:
                        self.stdout.write(
                            _("Sales for %(customers)d customers: %(txns)d transactions of %(month)s written in "
                              "%(csv).1f s; %(facts)d history facts over %(months)d months loaded in %(hist).1f s.")
                            % {"customers": made.customers, "txns": made.transactions, "month": f"{month:%Y-%m}",
                               "csv": made.csv_seconds, "facts": made.history_facts, "months": made.history_months,
                               "hist": made.history_seconds}
                        )  # fmt: skip
        except ServiceError as exc:
            raise CommandError(str(exc)) from None

    @staticmethod
    def _month(text: str | None):
        from datetime import date

        try:
            year, month = (int(part) for part in (text or "").split("-"))
            return date(year, month, 1)
        except ValueError:
            raise CommandError(_("--month is required with sales options, as YYYY-MM (2026-10).")) from None

    def _report_org(self, result) -> None:
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

    def _report_customers(self, result) -> None:
        self.stdout.write(
            _(
                "Generated %(customers)d customers (%(institutions)d institutions, %(individuals)d individuals, "
                "%(branches)d of them branches) in %(divisions)d divisions, %(contacts)d contacts, "
                "%(agreements)d agreements, %(phones)d phones in %(seconds).1f s (rows %(load).1f s, search "
                "index %(index).1f s, ANALYZE %(analyze).1f s)."
            )
            % {
                "customers": result.customers,
                "institutions": result.institutions,
                "individuals": result.individuals,
                "branches": result.branches,
                "divisions": result.divisions,
                "contacts": result.contacts,
                "agreements": result.agreements,
                "phones": result.phones,
                "seconds": result.seconds,
                "load": result.load_seconds,
                "index": result.index_seconds,
                "analyze": result.analyze_seconds,
            }
        )
        if result.credit_codes_dropped or result.phones_dropped:
            self.stdout.write(
                _(
                    "%(codes)d generated credit codes and %(phones)d phones were in the archive already and "
                    "were left out."
                )
                % {"codes": result.credit_codes_dropped, "phones": result.phones_dropped}
            )
