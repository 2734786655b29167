"""``kehu export KIND FILE``: write what the acting account may see as CSV or XLSX (from FILE's extension,
or ``--format``; FILE ``-`` writes to standard output).

Each kind is one entry of ``EXPORT_KINDS``: a service taking ``acting_user, fmt`` plus the kind's own
options, returning ``(filename, content, count)``; the service checks the capability and the scope.
A kind with ``streams=True`` instead writes into a binary file it is given (``out=``) and returns the
count, so that a million rows never sit in memory (customers, contacts, agreements).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext_lazy

from kehu.accounts.roles import Capability
from kehu.core.context import request_context
from kehu.core.errors import ServiceError
from kehu.core.management.commands._common import acting_user


def _unit_by_code(user, code: str):
    from kehu.org.models import Unit

    unit = Unit.objects.visible_to(user).filter(code=code).first()
    if unit is None:
        raise CommandError(_("No unit with the code “%(code)s”.") % {"code": code})
    return unit


def _sub_type_by_code(user, code: str):
    from kehu.customers.models import CustomerSubType

    sub_type = CustomerSubType.objects.filter(code=code).first()
    if sub_type is None:
        raise CommandError(_("No customer sub-type with the code “%(code)s”.") % {"code": code})
    return sub_type


def _user_by_username(user, username: str):
    from kehu.accounts.models import User

    found = User.objects.visible_to(user).filter(username=username).first()
    if found is None:
        raise CommandError(_("No account “%(username)s” in your scope.") % {"username": username})
    return found


def _customer_filter_options():
    from kehu.customers.models import CustomerKind, CustomerStatus
    from kehu.customers.selectors import ORDERINGS

    return (
        Option(("--q",), "q", {"metavar": "TEXT", "help": "the search box: name, pinyin, initials, code, phone, credit code"}),
        Option(("--within",), "within", {"metavar": "UNIT_CODE", "help": "customers of this unit and the units below it"},
               convert=_unit_by_code),
        Option(("--kind",), "kind", {"choices": CustomerKind.values}),
        Option(("--sub-type",), "sub_type", {"metavar": "CODE"}, convert=_sub_type_by_code),
        Option(("--status",), "status", {"choices": CustomerStatus.values}),
        Option(("--manager",), "manager", {"metavar": "USERNAME", "help": "lead or backup manager"},
               convert=_user_by_username),
        Option(("--tag",), "tag", {"metavar": "TAG"}),
        Option(("--order",), "order", {"choices": list(ORDERINGS), "default": "code"}),
    )  # fmt: skip


@dataclass(frozen=True)
class Option:
    """A command-line option of one kind; ``convert(user, value)`` makes the service's keyword value."""

    flags: tuple[str, ...]
    dest: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    convert: Any = None


@dataclass(frozen=True)
class ExportKind:
    service: str  # dotted path, imported when used
    capability: Capability  # what the default account must hold; the service checks for itself
    help: str  # argparse help, in English
    what: str  # translated noun for messages: “… may not export units”
    counted: Any  # ngettext_lazy(…, "n"): how many were exported, “5 units”
    options: tuple[Option, ...] | Callable[[], tuple[Option, ...]] = ()
    streams: bool = False  # the service writes into ``out`` and returns the count
    needs_as: bool = False  # no default account: administrators see none of these records


EXPORT_KINDS: dict[str, ExportKind] = {
    "units": ExportKind(
        service="kehu.org.exports.units_export",
        capability=Capability.EXPORT_UNITS,
        help="the organisation tree, in the format `kehu import units` reads",
        what=gettext_lazy("units"),
        counted=ngettext_lazy("%(n)d unit", "%(n)d units", "n"),
        options=(
            Option(
                ("--within",),
                "within",
                {"metavar": "CODE", "help": "only this unit and those below it"},
                convert=_unit_by_code,
            ),
        ),  # fmt: skip
    ),
    "customers": ExportKind(
        service="kehu.customers.exports.customers_export",
        capability=Capability.MANAGE_CUSTOMERS,
        help="the customers the account may see (masked), in the format `kehu import customers` reads",
        what=gettext_lazy("customers"),
        counted=ngettext_lazy("%(n)d customer", "%(n)d customers", "n"),
        options=_customer_filter_options,  # a function: the choices come from the customer models
        streams=True,
        needs_as=True,
    ),
    "contacts": ExportKind(
        service="kehu.customers.exports.contacts_export",
        capability=Capability.MANAGE_CUSTOMERS,
        help="the contacts of the customers the account may see (phones masked), in the format "
        "`kehu import contacts` reads; the customer filters choose the customers",
        what=gettext_lazy("contacts"),
        counted=ngettext_lazy("%(n)d contact", "%(n)d contacts", "n"),
        options=_customer_filter_options,
        streams=True,
        needs_as=True,
    ),
    "agreements": ExportKind(
        service="kehu.customers.exports.agreements_export",
        capability=Capability.MANAGE_CUSTOMERS,
        help="the agreements of the customers the account may see, in the format `kehu import agreements` "
        "reads; the customer filters choose the customers",
        what=gettext_lazy("agreements"),
        counted=ngettext_lazy("%(n)d agreement", "%(n)d agreements", "n"),
        options=_customer_filter_options,
        streams=True,
        needs_as=True,
    ),
    "close-results": ExportKind(
        service="kehu.policies.exports.close_results_export",
        capability=Capability.RUN_CLOSE,
        help="a closed month's results: customer_code, one column per policy output, explanation",
        what=gettext_lazy("close results"),
        counted=ngettext_lazy("%(n)d customer", "%(n)d customers", "n"),
        options=(
            Option(
                ("--month",),
                "month",
                {"metavar": "YYYY-MM", "required": True, "help": "the closed month"},
                convert=lambda user, value: _month(value),
            ),
        ),  # fmt: skip
        streams=True,
    ),
}
FORMATS = {".csv": "csv", ".xlsx": "xlsx"}


def _month(value: str):
    from kehu.policies.services import parse_month

    try:
        return parse_month(value)
    except ServiceError as exc:
        raise CommandError(str(exc)) from None


class Command(BaseCommand):
    help = "Export to a CSV or XLSX file (format from the extension or --format). Kinds: " + ", ".join(
        EXPORT_KINDS
    )

    @staticmethod
    def _options(kind: ExportKind) -> tuple[Option, ...]:
        return kind.options() if callable(kind.options) else kind.options

    def add_arguments(self, parser):
        kinds = parser.add_subparsers(dest="export_kind", required=True, metavar="KIND", title="kinds")
        for name, kind in EXPORT_KINDS.items():
            sub = kinds.add_parser(name, help=kind.help, description=f"Export {kind.help}.")
            sub.add_argument(
                "file",
                metavar="FILE",
                nargs="?",
                help="where to write: a .csv or .xlsx file (- : standard output)",
            )
            sub.add_argument("--output", "-o", dest="output", metavar="FILE", help="the same as FILE")
            sub.add_argument("--format", dest="format", choices=sorted(set(FORMATS.values())),
                             help="csv or xlsx (default: from FILE's extension)")  # fmt: skip
            sub.add_argument("--as", dest="as_user", metavar="USERNAME",
                             help="act as this account"
                             + (" (required)" if kind.needs_as else " (default: the only system administrator)"))  # fmt: skip
            for option in self._options(kind):
                sub.add_argument(*option.flags, dest=option.dest, **option.kwargs)

    def handle(self, *args, **options):
        kind = EXPORT_KINDS[options["export_kind"]]
        target = options["file"] or options["output"]
        if not target or (options["file"] and options["output"]):
            raise CommandError(_("Say where to write: FILE or --output FILE (one of them)."))
        to_stdout = target == "-"
        path = Path(target)
        fmt = options.get("format") or FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise CommandError(
                _("Cannot tell the format of %(file)s: name the file .csv or .xlsx, or give --format.")
                % {"file": path.name}
            )
        if kind.needs_as and not options["as_user"]:
            raise CommandError(
                _(
                    "Say whose %(what)s to export with --as USERNAME: an export holds what that account may see."
                )
                % {"what": kind.what}
            )
        if options["as_user"]:
            # Anyone whose role may export; the service checks again and applies their scope.
            from kehu.accounts.models import User

            user = User.objects.filter(username=options["as_user"], is_active=True).first()
            if user is None:
                raise CommandError(_("No active account “%(username)s”.") % {"username": options["as_user"]})
        else:
            user = acting_user(None, kind.capability, doing=_("export %(what)s") % {"what": kind.what})
        extra = {}
        for option in self._options(kind):
            value = options[option.dest]
            extra[option.dest] = (
                option.convert(user, value) if option.convert and value is not None else value
            )
        if kind.streams:
            count = self._stream(kind, user, fmt, path, to_stdout, extra)
        else:
            count = self._whole(kind, user, fmt, path, to_stdout, extra)
        where = _("standard output") if to_stdout else path
        message = _("Exported %(count)s to %(path)s as %(username)s.") % {
            "count": kind.counted % {"n": count}, "path": where, "username": user.username,
        }  # fmt: skip
        (self.stderr if to_stdout else self.stdout).write(message)

    def _stream(self, kind, user, fmt, path, to_stdout, extra) -> int:
        service = import_string(kind.service)
        with request_context(channel="cli"):
            try:
                if to_stdout:
                    self.stdout.flush()
                    count = service(acting_user=user, fmt=fmt, out=sys.stdout.buffer, **extra)
                    sys.stdout.buffer.flush()
                    return count
                with path.open("wb") as handle:
                    return service(acting_user=user, fmt=fmt, out=handle, **extra)
            except OSError as exc:
                raise CommandError(
                    _("Cannot write %(path)s: %(reason)s") % {"path": path, "reason": exc.strerror or exc}
                ) from None
            except ServiceError as exc:
                if not to_stdout:
                    path.unlink(missing_ok=True)  # no half-written file left behind
                raise CommandError(str(exc)) from None

    def _whole(self, kind, user, fmt, path, to_stdout, extra) -> int:
        with request_context(channel="cli"):
            try:
                _name, content, count = import_string(kind.service)(acting_user=user, fmt=fmt, **extra)
            except ServiceError as exc:
                raise CommandError(str(exc)) from None
        try:
            if to_stdout:
                sys.stdout.buffer.write(content)
                sys.stdout.buffer.flush()
            else:
                path.write_bytes(content)
        except OSError as exc:
            raise CommandError(
                _("Cannot write %(path)s: %(reason)s") % {"path": path, "reason": exc.strerror or exc}
            ) from None
        return count
