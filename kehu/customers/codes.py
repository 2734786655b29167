"""Customer ids (Shantou Post rule): 6-digit division code + 5-digit sequence + 3-digit branch.

    440507 00012 000   the 12th customer in division 440507 (a head office or a customer without branches)
    440507 00012 003   its third branch

These functions only read and check codes; allocation (with its locks) is in ``services``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CODE_PATTERN = re.compile(r"^\d{14}$")
MAX_SEQUENCE = 99999
MAX_BRANCH = 999


@dataclass(frozen=True)
class CustomerCode:
    division: str
    sequence: int
    branch: int

    def __str__(self) -> str:
        return f"{self.division}{self.sequence:05d}{self.branch:03d}"

    @property
    def head(self) -> str:
        """The first 11 digits, shared by a head office and its branches."""
        return f"{self.division}{self.sequence:05d}"


def parse_code(code: str) -> CustomerCode:
    """Split a 14-digit code; ValueError with the reason (translatable) when malformed."""
    from django.utils.translation import gettext as _

    if not CODE_PATTERN.match(code or ""):
        raise ValueError(_("a customer code has exactly 14 digits, got “%(code)s”") % {"code": code})
    parsed = CustomerCode(division=code[:6], sequence=int(code[6:11]), branch=int(code[11:]))
    if parsed.sequence == 0:
        raise ValueError(_("digits 7 to 11 (the sequence in the division) start at 00001"))
    return parsed


def format_code(division: str, sequence: int, branch: int = 0) -> str:
    return str(CustomerCode(division=division, sequence=sequence, branch=branch))
