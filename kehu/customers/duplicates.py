"""Duplicate detection in the customer archive: when two records are probably one customer.

``name_key`` reduces a name to what identifies the organisation: full-width and half-width forms,
case, spaces, brackets and punctuation and the legal-form suffixes (有限公司, 有限责任公司,
股份有限公司, 分公司…) no longer tell two names apart. Customers with the same key are duplicates
for sure; similar keys are candidates a person looks at.
"""

from __future__ import annotations

import re
import unicodedata

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
