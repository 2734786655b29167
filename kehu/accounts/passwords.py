"""Password rules (MLPS level 3): length, character classes, no username inside."""

from __future__ import annotations

import secrets
import string

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext


def character_classes(password: str) -> int:
    classes = [
        any(c in string.ascii_lowercase for c in password),
        any(c in string.ascii_uppercase for c in password),
        any(c.isdigit() for c in password),
        any(not c.isalnum() for c in password),
    ]
    return sum(classes)


class ComplexityValidator:
    def __init__(self, min_length: int = 8, min_classes: int = 3):
        self.min_length = min_length
        self.min_classes = min_classes

    def validate(self, password: str, user=None) -> None:
        errors = []
        if len(password) < self.min_length:
            errors.append(
                ValidationError(
                    ngettext(
                        "The password must be at least %(min)d character long.",
                        "The password must be at least %(min)d characters long.",
                        self.min_length,
                    )
                    % {"min": self.min_length},
                    code="password_too_short",
                )
            )
        if character_classes(password) < self.min_classes:
            errors.append(
                ValidationError(
                    _(
                        "The password must mix at least %(n)d of: lower-case letters, upper-case letters, "
                        "digits, symbols."
                    )
                    % {"n": self.min_classes},
                    code="password_too_simple",
                )
            )
        if errors:
            raise ValidationError(errors)

    def get_help_text(self) -> str:
        return _(
            "At least %(min)d characters, mixing at least %(n)d of: lower-case letters, upper-case letters, "
            "digits, symbols."
        ) % {"min": self.min_length, "n": self.min_classes}


class NotContainingUsernameValidator:
    def validate(self, password: str, user=None) -> None:
        username = getattr(user, "username", "") or ""
        if username and username.lower() in password.lower():
            raise ValidationError(
                _("The password must not contain the username."), code="password_has_username"
            )

    def get_help_text(self) -> str:
        return _("The password must not contain your username.")


GENERATED_PASSWORD_LENGTH = 12
# No look-alikes (0/O, 1/l/I) and only symbols that are easy to type and read out over the phone.
_LOWER = "abcdefghijkmnopqrstuvwxyz"
_UPPER = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_DIGITS = "23456789"
_SYMBOLS = "#$%&*+-=?@"


def generate_password(user=None, length: int = GENERATED_PASSWORD_LENGTH) -> str:
    """A random temporary password with all four character classes that passes the configured
    password validators for ``user`` (e.g. it never contains the username)."""
    classes = (_LOWER, _UPPER, _DIGITS, _SYMBOLS)
    alphabet = "".join(classes)
    rng = secrets.SystemRandom()
    while True:
        chars = [secrets.choice(c) for c in classes]
        chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
        rng.shuffle(chars)
        password = "".join(chars)
        try:
            password_validation.validate_password(password, user)
        except ValidationError:
            continue
        return password
