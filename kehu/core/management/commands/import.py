"""``kehu import KIND FILE``: load a CSV or XLSX file through the import service for KIND.

Each kind is one entry of ``IMPORT_KINDS``: the service that checks and applies the file, the
capability the acting account needs, and any options of its own. A service takes
``acting_user, filename, content, dry_run, progress`` plus those options as keyword arguments (a kind
with ``takes_path`` — the sales imports, whose files run to gigabytes — gets ``path`` instead of
``content`` and reads the file itself) and returns a result with ``errors`` (each with ``row``,
``field``, ``message``) and ``summary()``.
Imports are all-or-nothing: with any error nothing is written and the command exits with status 1.
Formats: docs/import-formats.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext, pgettext_lazy

from kehu.accounts.roles import Capability
from kehu.core.context import request_context
from kehu.core.errors import ServiceError
from kehu.core.management.commands._common import acting_user
from kehu.core.tabular import check_size

MAX_ERRORS_SHOWN = 200

# How the command names the counts of a result's ``summary()``; a key not listed here is printed as it is.
SUMMARY_LABELS = {
    "rows": pgettext_lazy("import summary", "rows"),
    "created": pgettext_lazy("import summary", "created"),
    "updated": pgettext_lazy("import summary", "updated"),
    "moved": pgettext_lazy("import summary", "moved"),
    "unchanged": pgettext_lazy("import summary", "unchanged"),
    "types_created": pgettext_lazy("import summary", "types_created"),
    "rejected": pgettext_lazy("import summary", "rejected"),
    "warnings": pgettext_lazy("import summary", "warnings"),
    "new": pgettext_lazy("import summary", "new"),
    "duplicates": pgettext_lazy("import summary", "duplicates"),
    "facts_written": pgettext_lazy("import summary", "facts_written"),
    "facts_deleted": pgettext_lazy("import summary", "facts_deleted"),
    "months": pgettext_lazy("import summary", "months"),
}


@dataclass(frozen=True)
class Option:
    """A command-line option of one kind, passed to its service as the keyword ``dest``."""

    flags: tuple[str, ...]
    dest: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ImportKind:
    service: str  # dotted path, imported when used
    capability: Capability
    help: str  # argparse help, in English
    what: str  # translated noun for messages: “… may not import units”
    options: tuple[Option, ...] = ()
    # The service takes ``path`` (and reads the file itself, in pieces) instead of ``content``: a month of
    # transactions is over a gigabyte. No upload size limit applies to such a file given on the command line.
    takes_path: bool = False


IMPORT_KINDS: dict[str, ImportKind] = {
    "units": ImportKind(
        service="kehu.org.imports.units_import",
        capability=Capability.MANAGE_UNITS,
        help="the organisation tree: code,name,type,parent_code,division_code",
        what=gettext_lazy("units"),
        options=(
            Option(
                ("--create-types",),
                "create_types",
                {"action": "store_true", "help": "create unit types the file names but Kehu lacks"},
            ),
        ),  # fmt: skip
    ),
    "customers": ImportKind(
        service="kehu.customers.imports.customers_import",
        capability=Capability.MANAGE_CUSTOMERS,
        help="customers: code,name,kind,unit_code,division_code,credit_code,phone,address (+ optional columns)",
        what=gettext_lazy("customers"),
        options=(
            Option(
                ("--reason",),
                "reason",
                {
                    "metavar": "TEXT",
                    "default": "",
                    "help": "why rows whose names look like existing customers are other customers (audited)",
                },
            ),
        ),  # fmt: skip
    ),
    "contacts": ImportKind(
        service="kehu.customers.imports.contacts_import",
        capability=Capability.MANAGE_CUSTOMERS,
        help="contacts: customer_code,name (+ title,decision_role,phone,birthday,preferences,relations,notes)",
        what=gettext_lazy("contacts"),
    ),
    "agreements": ImportKind(
        service="kehu.customers.imports.agreements_import",
        capability=Capability.MANAGE_CUSTOMERS,
        help="agreements: customer_code,number,signing_level,start_date,end_date (+ agreement_type,status,...)",
        what=gettext_lazy("agreements"),
    ),
    "transactions": ImportKind(
        service="kehu.metrics.imports.transactions_import",
        capability=Capability.IMPORT_SALES,
        help="sales transactions: txn_id,customer_code,date,product,quantity,amount (+ unit_code); .csv/.parquet/.xlsx",
        what=gettext_lazy("transactions"),
        options=(
            Option(
                ("--source",),
                "source",
                {
                    "metavar": "NAME",
                    "default": "default",
                    "help": "the system the transactions come from (default: default)",
                },
            ),
        ),  # fmt: skip
        takes_path=True,
    ),
    "monthly-facts": ImportKind(
        service="kehu.metrics.imports.monthly_facts_import",
        capability=Capability.IMPORT_SALES,
        help="monthly sales facts: customer_code,month,product,quantity,amount,txn_count; .csv/.parquet/.xlsx",
        what=gettext_lazy("monthly sales facts"),
        options=(
            Option(
                ("--source",),
                "source",
                {
                    "metavar": "NAME",
                    "default": "monthly",
                    "help": "the system the facts come from (default: monthly)",
                },
            ),
        ),  # fmt: skip
        takes_path=True,
    ),
}


class Command(BaseCommand):
    help = "Import a CSV or XLSX file (all-or-nothing). Kinds: " + ", ".join(IMPORT_KINDS)

    def add_arguments(self, parser):
        kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND", title="kinds")
        for name, kind in IMPORT_KINDS.items():
            sub = kinds.add_parser(name, help=kind.help, description=f"Import {kind.help}.")
            sub.add_argument("file", metavar="FILE", help="a .csv (UTF-8 or GBK) or .xlsx file"
                             + (" or .parquet file" if kind.takes_path else ""))  # fmt: skip
            sub.add_argument("--dry-run", action="store_true", help="check and count, write nothing")
            sub.add_argument("--as", dest="as_user", metavar="USERNAME",
                             help="act as this account (default: the only system administrator)")  # fmt: skip
            for option in kind.options:
                sub.add_argument(*option.flags, dest=option.dest, **option.kwargs)

    def handle(self, *args, **options):
        kind = IMPORT_KINDS[options["kind"]]
        path = Path(options["file"])
        try:
            if kind.takes_path:
                path.stat()  # the service reads it; say at once when it is not there
                file_argument = {"path": path}
            else:
                check_size(path.stat().st_size)  # before reading it: a 100 MB file is refused at once
                file_argument = {"content": path.read_bytes()}
        except ServiceError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(
                _("Cannot read %(path)s: %(reason)s") % {"path": path, "reason": exc.strerror or exc}
            ) from None
        user = acting_user(
            options["as_user"], kind.capability, doing=_("import %(what)s") % {"what": kind.what}
        )
        service = import_string(kind.service)
        extra = {option.dest: options[option.dest] for option in kind.options}
        with request_context(channel="cli"):
            try:
                result = service(acting_user=user, filename=path.name, **file_argument,
                                 dry_run=options["dry_run"], progress=self._progress, **extra)  # fmt: skip
            except ServiceError as exc:
                raise CommandError(str(exc)) from None
            finally:
                self._end_progress()
        values = {"file": path.name, "username": user.username, "summary": self._summary(result.summary())}
        if result.dry_run and (result.errors or getattr(result, "warnings", None)):
            # What the rest of the file would do, before the problems that stop it.
            self.stdout.write(_("Dry run, nothing written — %(file)s as %(username)s: %(summary)s.") % values)
        if result.errors:
            for error in result.errors[:MAX_ERRORS_SHOWN]:
                self.stderr.write(str(error))
            more = len(result.errors) - MAX_ERRORS_SHOWN
            if more > 0:
                self.stderr.write(
                    ngettext("… and %(n)d more error.", "… and %(n)d more errors.", more) % {"n": more}
                )
            raise CommandError(
                ngettext(
                    "%(n)d error in %(file)s; nothing was imported.",
                    "%(n)d errors in %(file)s; nothing was imported.",
                    len(result.errors),
                )
                % {"n": len(result.errors), "file": path.name},
                returncode=1,
            )
        warnings = getattr(result, "warnings", None) or []
        for warning in warnings[:MAX_ERRORS_SHOWN]:
            self.stderr.write(_("warning: %(w)s") % {"w": warning})
        if warnings and not options.get("reason"):
            raise CommandError(
                ngettext(
                    "%(n)d row of %(file)s looks like a record already in Kehu; nothing was imported. "
                    "Check it, then run again with --reason TEXT saying why it is another one.",
                    "%(n)d rows of %(file)s look like records already in Kehu; nothing was imported. "
                    "Check them, then run again with --reason TEXT saying why they are other ones.",
                    len(warnings),
                )
                % {"n": len(warnings), "file": path.name},
                returncode=1,
            )
        if result.dry_run:
            self.stdout.write(
                _("Dry run, nothing written — would import %(file)s as %(username)s: %(summary)s.") % values
            )
        else:
            self.stdout.write(_("Imported %(file)s as %(username)s: %(summary)s.") % values)

    @staticmethod
    def _summary(summary: dict[str, object]) -> str:
        """``rows 5, created 5, updated 0, …``: each count after its label; empty lists left out."""
        names_sep = pgettext("list of names", ", ")
        return pgettext("list of counts", ", ").join(
            f"{SUMMARY_LABELS.get(key, key)} {names_sep.join(value) if isinstance(value, list) else value}"
            for key, value in summary.items()
            if value or key != "types_created"
        )

    _progress_shown = False

    def _progress(self, done: int, total: int) -> None:
        if self.stderr.isatty():
            self.stderr.write("\r" + _("%(done)d/%(total)d rows") % {"done": done, "total": total}, ending="")
            self._progress_shown = True
        elif done and (done == total or done % 5000 == 0):
            self.stderr.write(_("%(done)d/%(total)d rows") % {"done": done, "total": total})

    def _end_progress(self) -> None:
        if self._progress_shown:
            self.stderr.write("")
            self._progress_shown = False
