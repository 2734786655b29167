"""``kehu import KIND FILE``: load a CSV or XLSX file through the import service for KIND.

Each kind is one entry of ``IMPORT_KINDS``: the service that checks and applies the file, the
capability the acting account needs, and any options of its own. A service takes
``acting_user, filename, content, dry_run, progress`` plus those options as keyword arguments and
returns a result with ``errors`` (each with ``row``, ``field``, ``message``) and ``summary()``.
Imports are all-or-nothing: with any error nothing is written and the command exits with status 1.
Formats: docs/import-formats.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string

from kehu.accounts.roles import Capability
from kehu.core.context import request_context
from kehu.core.errors import ServiceError
from kehu.core.management.commands._common import acting_user

MAX_ERRORS_SHOWN = 200


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
    help: str
    options: tuple[Option, ...] = ()


IMPORT_KINDS: dict[str, ImportKind] = {
    "units": ImportKind(
        service="kehu.org.imports.units_import",
        capability=Capability.MANAGE_UNITS,
        help="the organisation tree: code,name,type,parent_code,division_code",
        options=(
            Option(
                ("--create-types",),
                "create_types",
                {"action": "store_true", "help": "create unit types the file names but Kehu lacks"},
            ),
        ),  # fmt: skip
    ),
}


class Command(BaseCommand):
    help = "Import a CSV or XLSX file (all-or-nothing). Kinds: " + ", ".join(IMPORT_KINDS)

    def add_arguments(self, parser):
        kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND", title="kinds")
        for name, kind in IMPORT_KINDS.items():
            sub = kinds.add_parser(name, help=kind.help, description=f"Import {kind.help}.")
            sub.add_argument("file", metavar="FILE", help="a .csv (UTF-8 or GBK) or .xlsx file")
            sub.add_argument("--dry-run", action="store_true", help="check and count, write nothing")
            sub.add_argument("--as", dest="as_user", metavar="USERNAME",
                             help="act as this account (default: the only system administrator)")  # fmt: skip
            for option in kind.options:
                sub.add_argument(*option.flags, dest=option.dest, **option.kwargs)

    def handle(self, *args, **options):
        kind = IMPORT_KINDS[options["kind"]]
        path = Path(options["file"])
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from None
        user = acting_user(options["as_user"], kind.capability, doing=f"import {options['kind']}")
        service = import_string(kind.service)
        extra = {option.dest: options[option.dest] for option in kind.options}
        with request_context(channel="cli"):
            try:
                result = service(acting_user=user, filename=path.name, content=content,
                                 dry_run=options["dry_run"], progress=self._progress, **extra)  # fmt: skip
            except ServiceError as exc:
                raise CommandError(str(exc)) from None
            finally:
                self._end_progress()
        if result.errors:
            for error in result.errors[:MAX_ERRORS_SHOWN]:
                self.stderr.write(str(error))
            if len(result.errors) > MAX_ERRORS_SHOWN:
                self.stderr.write(f"… and {len(result.errors) - MAX_ERRORS_SHOWN} more errors.")
            raise CommandError(
                f"{len(result.errors)} error(s) in {path.name}; nothing was imported.", returncode=1
            )
        summary = ", ".join(f"{k} {', '.join(v) if isinstance(v, list) else v}"
                            for k, v in result.summary().items() if v or k != "types_created")  # fmt: skip
        prefix = "Dry run, nothing written — would import" if result.dry_run else "Imported"
        self.stdout.write(f"{prefix} {path.name} as {user.username}: {summary}.")

    _progress_shown = False

    def _progress(self, done: int, total: int) -> None:
        if self.stderr.isatty():
            self.stderr.write(f"\r{done}/{total} rows", ending="")
            self._progress_shown = True
        elif done and (done == total or done % 5000 == 0):
            self.stderr.write(f"{done}/{total} rows")

    def _end_progress(self) -> None:
        if self._progress_shown:
            self.stderr.write("")
            self._progress_shown = False
