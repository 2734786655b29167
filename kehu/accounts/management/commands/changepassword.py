"""``kehu changepassword USERNAME``: set a temporary password from the server's command line.

For administrators' accounts (the web interface refuses to let the security administrator reset
them) and for the lone security administrator who forgot theirs. The account must change the
password at its next sign-in; the reset is audited.
"""

from __future__ import annotations

import getpass
import os

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from kehu.core.context import request_context
from kehu.core.errors import ServiceError


class Command(BaseCommand):
    help = "Set a temporary password for an account (it must be changed at the next sign-in)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--noinput", "--no-input", action="store_true",
                            help="read the password from KEHU_ADMIN_PASSWORD instead of prompting")  # fmt: skip

    def handle(self, *args, username, noinput, **options):
        from kehu.accounts.services import operator_password_reset

        if noinput:
            password = os.environ.get("KEHU_ADMIN_PASSWORD", "")
            if not password:
                raise CommandError(_("Set KEHU_ADMIN_PASSWORD when using --noinput."))
        else:
            password = getpass.getpass(_("New temporary password: "))
            if password != getpass.getpass(_("Again: ")):
                raise CommandError(_("The two passwords differ."))
        try:
            with request_context(channel="cli"):
                user = operator_password_reset(username=username, new_password=password)
        except ServiceError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            _("Temporary password set for %(username)s; it must be changed at the next sign-in.")
            % {"username": repr(user.username)}
        )
