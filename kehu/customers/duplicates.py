"""Duplicate detection in the customer archive: when two records are probably one customer.

``name_key`` reduces a name to what identifies the organisation: full-width and half-width forms,
case, spaces, brackets and punctuation and the legal-form suffixes (有限公司, 有限责任公司,
股份有限公司, 分公司…) no longer tell two names apart. Customers with the same key are duplicates
for sure; similar keys are candidates a person looks at.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from django.utils.translation import gettext as _

from kehu.core.errors import ServiceError

# Longest first, so that 股份有限公司 is removed whole rather than leaving 股份.
LEGAL_SUFFIXES = sorted(
    (
        "股份有限公司", "有限责任公司", "有限公司", "分公司", "总公司", "公司", "集团",
        "coltd", "co ltd", "company limited", "limited", "ltd", "inc", "corp", "co",
    ),
    key=len,
    reverse=True,
)  # fmt: skip
_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)


def name_key(name: str) -> str:
    """The name reduced for comparison: 中国石化（北京）有限公司 and 中国石化北京 share a key."""
    text = unicodedata.normalize("NFKC", name or "").lower()
    text = _NOISE.sub("", text)
    stripped = True
    while stripped and text:
        stripped = False
        for suffix in LEGAL_SUFFIXES:
            bare = suffix.replace(" ", "")
            if text.endswith(bare) and len(text) > len(bare):
                text = text[: -len(bare)]
                stripped = True
                break
    return text[:200]


# ---------------------------------------------------------------- candidates


@dataclass(frozen=True)
class SimilarCustomers:
    """Customers whose names look like a new one. ``visible``: those the user may open;
    ``hidden``: how many more exist in units outside the user's scope (never named)."""

    visible: list
    hidden: int
    codes: list[str]  # every candidate's code, for the audit trail only

    def __bool__(self) -> bool:
        return bool(self.visible) or self.hidden > 0


class SimilarNamesFound(ServiceError):
    """A warning that blocks until the user gives a reason to go on (which is audited)."""

    def __init__(self, similar: SimilarCustomers):
        if similar.visible:
            names = "、".join(f"{c.name} ({c.code})" for c in similar.visible[:5])
            message = _(
                "Customers with a similar name exist: %(names)s. Give a reason to add this one anyway."
            ) % {"names": names}
        else:
            message = _(
                "%(n)d customer(s) with a similar name are registered by other units. "
                "Give a reason to add this one anyway."
            ) % {"n": similar.hidden}
        super().__init__(message, field="name", code="similar_name")
        self.similar = similar


def similar_customers(
    *, viewer, name: str, exclude_pk: int | None = None, limit: int = 10
) -> SimilarCustomers:
    """Customers whose name normalises to the same key as ``name``."""
    from kehu.customers.models import Customer

    key = name_key(name)
    if not key:
        return SimilarCustomers([], 0, [])
    found = list(Customer.objects.filter(name_key=key).exclude(pk=exclude_pk).order_by("code")[: limit * 5])
    visible_ids = set(
        Customer.objects.visible_to(viewer).filter(pk__in=[c.pk for c in found]).values_list("pk", flat=True)
    )
    visible = [c for c in found if c.pk in visible_ids][:limit]
    return SimilarCustomers(visible, len(found) - len([c for c in found if c.pk in visible_ids]),
                            [c.code for c in found])  # fmt: skip
