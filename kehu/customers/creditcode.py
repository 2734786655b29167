"""Unified social credit codes (统一社会信用代码, GB 32100-2015).

18 characters from a 31-character alphabet (digits and capitals without I, O, S, V, Z):
registration authority (1), organisation type (1), administrative division (6), organisation code
(9, GB 11714), check character (1). The check character makes the weighted sum of all 18 values a
multiple of 31.
"""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
VALUES = {c: i for i, c in enumerate(ALPHABET)}
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def check_character(first17: str) -> str:
    """The check character for the first 17 characters (which must be in the alphabet)."""
    total = sum(VALUES[c] * w for c, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def normalise(code: str) -> str:
    """Upper case, no spaces; full-width characters (as typed with a Chinese IME) made half-width."""
    code = "".join(chr(ord(c) - 0xFEE0) if "！" <= c <= "～" else c for c in (code or ""))
    return "".join(code.split()).upper()


def credit_code_error(code: str) -> str | None:
    """Why ``code`` is not a valid unified social credit code, or None. Translatable messages."""
    from django.utils.translation import gettext as _

    if len(code) != 18:
        return _("a unified social credit code has 18 characters, this one has %(n)d") % {"n": len(code)}
    bad = [c for c in code if c not in VALUES]
    if bad:
        return _(
            "“%(c)s” cannot appear in a unified social credit code (I, O, S, V and Z are never used)"
        ) % {"c": bad[0]}
    if not code[2:8].isdigit():
        return _("characters 3 to 8 are the administrative division code and must be digits")
    expected = check_character(code[:17])
    if code[17] != expected:
        return _("the check character is wrong: with these first 17 characters it must be %(c)s") % {
            "c": expected
        }
    return None
