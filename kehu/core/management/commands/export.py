"""``kehu export KIND FILE``: write what the acting account may see as CSV or XLSX (from FILE's extension).

Each kind is one entry of ``EXPORT_KINDS``: a service taking ``acting_user, fmt`` plus the kind's own
options, returning ``(filename, content, count)``; the service checks the capability and the scope.
"""

from __future__ import annotations

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
    options: tuple[Option, ...] = ()


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
}
FORMATS = {".csv": "csv", ".xlsx": "xlsx"}


class Command(BaseCommand):
    help = "Export to a CSV or XLSX file (format from the extension). Kinds: " + ", ".join(EXPORT_KINDS)

    def add_arguments(self, parser):
        kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND", title="kinds")
        for name, kind in EXPORT_KINDS.items():
            sub = kinds.add_parser(name, help=kind.help, description=f"Export {kind.help}.")
            sub.add_argument("file", metavar="FILE", help="where to write: a .csv or .xlsx file")
            sub.add_argument("--as", dest="as_user", metavar="USERNAME",
                             help="act as this account (default: the only system administrator)")  # fmt: skip
            for option in kind.options:
                sub.add_argument(*option.flags, dest=option.dest, **option.kwargs)

    def handle(self, *args, **options):
        kind = EXPORT_KINDS[options["kind"]]
        path = Path(options["file"])
        fmt = FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise CommandError(
                _("Cannot tell the format of %(file)s: name the file .csv or .xlsx.") % {"file": path.name}
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
        for option in kind.options:
            value = options[option.dest]
            extra[option.dest] = (
                option.convert(user, value) if option.convert and value is not None else value
            )
        with request_context(channel="cli"):
            try:
                _name, content, count = import_string(kind.service)(acting_user=user, fmt=fmt, **extra)
            except ServiceError as exc:
                raise CommandError(str(exc)) from None
        try:
            path.write_bytes(content)
        except OSError as exc:
            raise CommandError(
                _("Cannot write %(path)s: %(reason)s") % {"path": path, "reason": exc.strerror or exc}
            ) from None
        self.stdout.write(
            _("Exported %(count)s to %(path)s as %(username)s.")
            % {"count": kind.counted % {"n": count}, "path": path, "username": user.username}
        )
