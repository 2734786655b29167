"""``kehu createsuperuser``: creates the first security administrator.

Kehu has no all-powerful superuser (三员分立): the first account is a security administrator, who then
creates the system and audit administrators and everyone else. Once one exists, this command refuses.
"""

from __future__ import annotations

import getpass
import os

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from kehu.core.context import request_context
from kehu.core.errors import ServiceError


class Command(BaseCommand):
    help = "Create the first security administrator (who then creates every other account)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="secadmin")
        parser.add_argument("--full-name", default="安全管理员")
        parser.add_argument("--unit", help="code of the unit the administrator belongs to (optional)")
        parser.add_argument("--noinput", "--no-input", action="store_true",
                            help="read the password from KEHU_ADMIN_PASSWORD instead of prompting")  # fmt: skip

    def handle(self, *args, username, full_name, unit, noinput, **options):
        from kehu.accounts.services import bootstrap_security_admin
        from kehu.org.models import Unit

        unit_obj = None
        if unit:
            unit_obj = Unit.objects.filter(code=unit).first()
            if unit_obj is None:
                raise CommandError(_("No unit with code %(code)s.") % {"code": repr(unit)})
        if noinput:
            password = os.environ.get("KEHU_ADMIN_PASSWORD", "")
            if not password:
                raise CommandError(_("Set KEHU_ADMIN_PASSWORD when using --noinput."))
        else:
            password = getpass.getpass(_("Password: "))
            if password != getpass.getpass(_("Password (again): ")):
                raise CommandError(_("The two passwords differ."))
        try:
            with request_context(channel="cli"):
                user = bootstrap_security_admin(username=username, full_name=full_name, password=password,
                                                unit=unit_obj)  # fmt: skip
        except ServiceError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            _(
                "Security administrator %(username)s created. Sign in, change the password, then create the "
                "system and audit administrators under People."
            )
            % {"username": repr(user.username)}
        )
