"""Duplicate detection in the customer archive: when two records are probably one customer.

``name_key`` reduces a name to what identifies the organisation: full-width and half-width forms,
case, spaces, brackets and punctuation and the legal-form suffixes (有限公司, 有限责任公司,
股份有限公司, 分公司…) no longer tell two names apart. Customers with the same key are duplicates
for sure; very similar keys are candidates a person looks at.

Two keys are **very similar** (``similarity``) when

* they are equal;
* the shorter one, at least ``MIN_CONTAINED`` (4) characters long, lies inside the other
  (济南顺达物流 and 济南顺达物流园区);
* they differ in one character — one replaced, added or left out — and the longer has at least
  ``MIN_ONE_EDIT`` (6) characters (济南顺达物流 and 济南顺发物流);
* or their rapidfuzz ``ratio`` (2 × common characters in order / both lengths, in %) reaches
  ``SIMILARITY_THRESHOLD`` = 90.

Why 90 and not 85: every character of a Chinese name carries meaning, and names share long runs of
place and trade words (山东省济南市历下区 … 物流). At 85, two substitutions in a 14-character key pass
(济南市历下区顺达物流 / 济南市历城区通达物流: other district, other firm); at 90 two substitutions
need 20 characters, and one substitution needs 10 — below that the one-character rule above takes
over from 6 characters, where a single different character is what a typo or a variant looks like.

**Finding candidates fast** (1,000,000 customers, no table scan): identical keys and keys that are
substrings of the new key are equality lookups on the ``name_key`` index; everything else goes
through the full-text index of ``search.py``, where every pair of adjacent Chinese characters is a
token. Within the edit budget the rules allow, some group of the new key's bigrams is bound to be
intact in a similar name (``_bigram_groups``): with one edit, all bigrams but two neighbouring ones;
with ``k`` edits in a long key, at least one of ``k + 1`` segments. The index returns the customers
holding every bigram of some group (one query per group, at most ``GROUP_CAP`` rows each); rapidfuzz
then scores them in Python. A group held by more customers than that (济南 + 物流) is too general to
single out a name: only its first ``GROUP_CAP`` customers are scored. On PostgreSQL a GIN lookup costs
what its rarest token's posting list costs, so a group made only of tokens that ``ANALYZE`` found in
at least ``COMMON_SHARE`` of all customers (经营 + 营部: 5 % each) is not asked at all
(``_common_tokens``); the other groups of the name still are. So no name costs more than a few
milliseconds per group, at the price of missing a similar name whose only intact part is such words.
Latin-only names have no bigrams: for them the index finds the names holding all their words
(Apple finds Apple Inc.).
"""

from __future__ import annotations

import re
import time
import unicodedata
from dataclasses import dataclass
from itertools import pairwise

from django.db import connection
from django.utils.translation import gettext as _
from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein

from kehu.core.errors import ServiceError
from kehu.customers.search import fold

# Legal forms, not names. Latin forms that end ordinary words are left out ("co": Tesco, "inc":
# zinc); "Apple Inc" and "Apple" still meet as contained keys.
LEGAL_SUFFIXES = (
    "股份有限公司", "有限责任公司", "股份公司", "有限公司", "有限合伙", "普通合伙", "分公司", "总公司",
    "公司", "集团", "company limited", "co ltd", "limited", "ltd", "corporation", "corp",
)  # fmt: skip
# Compared with spaces removed (keys have none), longest first: 股份有限公司 goes whole, not leaving 股份.
_BARE_SUFFIXES = tuple(sorted({s.replace(" ", "") for s in LEGAL_SUFFIXES}, key=len, reverse=True))
_NOISE = re.compile(r"[\W_]+", re.UNICODE)
MAX_KEY = 200

SIMILARITY_THRESHOLD = 90
MIN_CONTAINED = 4
MIN_ONE_EDIT = 6
GROUP_CAP = 200  # customers fetched per group of bigrams
COMMON_SHARE = 0.01  # a token held by this share of all customers is common (PostgreSQL statistics)
COMMON_TTL = 600  # seconds the common tokens are remembered
COMMON_MIN_CUSTOMERS = 20_000  # below this every lookup is cheap: statistics are not used
MATCH_CAP = 200  # similar customers considered (and counted) at most
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[0-9a-z]{2,}")
_SUBSTRING_BATCH = 500
MAX_CONTAINED_LOOKUPS = 2000


def _normalised(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = unicodedata.normalize("NFKC", text.casefold())
    return _NOISE.sub("", text)


def _strip_suffixes(text: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for bare in _BARE_SUFFIXES:
            # Never the whole name: 公司 alone stays 公司.
            if len(text) > len(bare) and text.endswith(bare):
                text = text[: -len(bare)]
                stripped = True
                break
    return text


def name_key(name: str) -> str:
    """The name reduced for comparison: 中国石化（北京）有限公司 and 中国石化北京 share a key.

    NFKC (full-width to half-width) and case folding, then every space, bracket and punctuation mark
    goes, then legal-form suffixes, repeatedly (齐鲁能源集团有限公司 → 齐鲁能源). The steps run until
    nothing changes, so a key is its own key (Unicode normalisation and deletion interact in corner
    cases: two Hangul jamo join once the hyphen between them is gone).
    """
    text = name or ""
    for _round in range(8):
        key = _strip_suffixes(_strip_suffixes(_normalised(text))[:MAX_KEY])
        if key == text:
            break
        text = key
    return key


def similarity(a: str, b: str) -> tuple[float, str] | None:
    """(score 0–100, why) when keys ``a`` and ``b`` are very similar (see the module doc), else None.
    ``why`` is "same", "contained", "one_character" or "ratio"."""
    if not a or not b:
        return None
    if a == b:
        return 100.0, "same"
    score = fuzz.ratio(a, b)
    shorter, longer = (a, b) if len(a) <= len(b) else (b, a)
    if len(shorter) >= MIN_CONTAINED and shorter in longer:
        return score, "contained"
    if len(longer) >= MIN_ONE_EDIT and Levenshtein.distance(a, b, score_cutoff=1) <= 1:
        return score, "one_character"
    if score >= SIMILARITY_THRESHOLD:
        return score, "ratio"
    return None


# ---------------------------------------------------------------- candidates


@dataclass(frozen=True)
class SimilarCustomers:
    """Customers whose names look like a new one. ``visible``: those the user may open, most similar
    first, each with ``.similarity`` (0–100) and ``.similarity_reason``; ``hidden``: how many more exist
    in units outside the user's scope (never named)."""

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


def _bigram_groups(key: str) -> list[tuple[str, ...]]:
    """Groups of the key's Chinese bigrams such that every key within the similarity rules' edit
    budget holds all bigrams of at least one group (a bigram is indexed as a search token)."""
    size = len(key)
    if size < MIN_CONTAINED:
        return []
    starts = [i for i in range(size - 1) if _CJK.match(key[i]) and _CJK.match(key[i + 1])]

    def group(keep) -> tuple[str, ...]:
        return tuple(dict.fromkeys(key[i : i + 2] for i in starts if keep(i)))

    if size >= 9:
        # Ratio >= 90 allows at most 2·size/9 insertions and deletions; each breaks at most one of
        # edits + 1 segments, so one segment is intact.
        edits = 2 * size // 9
        bounds = [round(j * size / (edits + 1)) for j in range(edits + 2)]
        groups = [group(lambda i, lo=lo, hi=hi: lo <= i and i + 1 < hi) for lo, hi in pairwise(bounds)]
    else:
        # Up to 8 characters the rules allow one edit (or, for 4 characters, only containment): it
        # breaks at most two neighbouring bigrams (one, for an insertion into a 5-character key).
        window = {4: 0, 5: 1}.get(size, 2)
        if window == 0:
            groups = [group(lambda i: True)]
        else:
            groups = [group(lambda i, w=w: not (w <= i < w + window)) for w in range(size - window)]
    return [g for g in dict.fromkeys(groups) if g]


def _fts_rows(group: tuple[str, ...], cap: int) -> list[tuple[int, str, str]]:
    """(id, code, name_key) of at most ``cap`` customers whose search tokens hold all of ``group``."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            query = " & ".join(f"'{t}'" for t in group)
            cursor.execute(
                "SELECT id, code, name_key FROM customers_customer"
                " WHERE search_vector @@ %s::tsquery LIMIT %s",
                [query, cap],
            )
        else:
            from kehu.customers.search import FTS_TABLE

            query = " AND ".join(f'"{t}"' for t in group)
            cursor.execute(
                f"SELECT c.id, c.code, c.name_key FROM {FTS_TABLE} f JOIN customers_customer c ON c.id = f.rowid"
                f" WHERE {FTS_TABLE} MATCH %s LIMIT %s",
                [query, cap],
            )
        return cursor.fetchall()


_common: dict[str, tuple[float, frozenset[str]]] = {}


def _common_tokens() -> frozenset[str]:
    """Search tokens held by at least COMMON_SHARE of all customers, as PostgreSQL's statistics of the
    search index have them (``most_common_elems``, kept by ANALYZE and autovacuum). None on SQLite,
    whose full-text index reads long lists fast enough, before the first ANALYZE, and while the
    statistics describe fewer than COMMON_MIN_CUSTOMERS customers (in a small archive every token
    looks common, and every lookup is cheap)."""
    if connection.vendor != "postgresql":
        return frozenset()
    cached = _common.get(connection.alias)
    if cached is not None and time.monotonic() - cached[0] < COMMON_TTL:
        return cached[1]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.most_common_elems::text::text[], s.most_common_elem_freqs, c.reltuples"
            " FROM pg_stats s JOIN pg_class c ON c.relname = s.tablename"
            " WHERE s.tablename = %s AND s.attname = 'search_vector'",
            ["customers_customer"],
        )
        row = cursor.fetchone()
    common = frozenset()
    if row is not None and row[0] and row[2] >= COMMON_MIN_CUSTOMERS:
        # The frequencies end with three summary numbers beyond the elements: zip stops before them.
        common = frozenset(
            token for token, share in zip(row[0], row[1], strict=False) if share >= COMMON_SHARE
        )
    _common[connection.alias] = (time.monotonic(), common)
    return common


def _candidates(key: str, name: str) -> dict[int, tuple[str, str]]:
    """{id: (code, name_key)} of customers that may be similar to ``key`` (scored by the caller)."""
    from kehu.customers.models import Customer

    found: dict[int, tuple[str, str]] = {}

    def add(rows) -> None:
        for pk, code, other in rows:
            found[pk] = (code, other)

    add(Customer.objects.filter(name_key=key).values_list("pk", "code", "name_key")[:MATCH_CAP])
    # Keys inside this one: its substrings of 4 characters or more, looked up on the index (a key of
    # 60 characters has 1,653; past MAX_CONTAINED_LOOKUPS, which only absurdly long names reach, the
    # longest substrings are left out).
    subs = list(
        dict.fromkeys(key[i : i + n] for n in range(MIN_CONTAINED, len(key)) for i in range(len(key) - n + 1))
    )[:MAX_CONTAINED_LOOKUPS]
    for start in range(0, len(subs), _SUBSTRING_BATCH):
        batch = subs[start : start + _SUBSTRING_BATCH]
        add(Customer.objects.filter(name_key__in=batch).values_list("pk", "code", "name_key")[:MATCH_CAP])
    # Latin-only names have no bigrams; their words are search tokens too.
    groups = _bigram_groups(key) or [tuple(dict.fromkeys(_LATIN_WORD.findall(fold(name))))]
    common = _common_tokens()
    for group in groups:
        if group and not set(group) <= common:
            add(_fts_rows(group, GROUP_CAP))
    return found


def similar_customers(
    *, viewer, name: str, exclude_pk: int | None = None, limit: int = 10
) -> SimilarCustomers:
    """Customers whose name is the same as ``name`` once normalised (``name_key``) or very similar to it
    (``similarity``): those ``viewer`` may see, most similar first, and how many others exist."""
    from kehu.customers.models import Customer

    key = name_key(name)
    if not key:
        return SimilarCustomers([], 0, [])
    scored = []
    for pk, (code, other) in _candidates(key, name).items():
        if pk == exclude_pk:
            continue
        match = similarity(key, other)
        if match is not None:
            scored.append((match[1] != "same", -match[0], code, pk, match))
    scored.sort()
    scored = scored[:MATCH_CAP]
    ids = [pk for *_ignored, pk, _match in scored]
    visible_ids = set(Customer.objects.visible_to(viewer).filter(pk__in=ids).values_list("pk", flat=True))
    shown = [(pk, match) for *_ignored, pk, match in scored if pk in visible_ids][:limit]
    objects = Customer.objects.in_bulk([pk for pk, _match in shown])
    visible = []
    for pk, (score, why) in shown:
        customer = objects[pk]
        customer.similarity, customer.similarity_reason = round(score), why
        visible.append(customer)
    return SimilarCustomers(visible, len(ids) - len(visible_ids), [row[2] for row in scored])
