"""The customer search box: Chinese name substrings, full pinyin, pinyin initials, code, phone, credit code.

Each customer carries ``search_tokens``, a space-separated list built from its names and tags:

* every Chinese character and every pair of adjacent characters (the CJK bigram scheme of search
  engines), so a substring of any length is found through the tokens and then checked against the name;
* for every character position, the full pinyin and the initials from there to the end, so
  ``zhongguo``, ``shihua``, ``zgsh`` and ``gsh`` are all token *prefixes* of 中国石化;
* runs of Latin letters and digits in the name (``3m``, ``88``);
* one hashed token per tag (``zz`` + hex, which no pinyin can start with).

The database indexes the tokens with its own full-text machinery: an FTS5 table kept by triggers on
SQLite; on PostgreSQL a stored generated column ``search_vector`` (``search_tokens::tsvector``: the text
cast as a list of lexemes, with no parser or dictionary in between) with a GIN index. The column exists
only on PostgreSQL, created by ``ensure_search_index``; its statistics let the planner weigh a term. Codes and credit codes are prefix ranges on their
own B-tree indexes; phones are exact matches on the blind index.

A token that matches very many customers (一 character, or ``z``) is not worth fetching from the full-
text index: when the candidates overflow ``CANDIDATE_CAP`` the term becomes a filter that the
database checks while it walks the list in order, which stops as soon as a page is full.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from django.db import connection
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL

CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
ALNUM_RUN = re.compile(r"[0-9a-z]+")
WORD_SPLIT = re.compile(r"[\s,，;；、]+")
MAX_PINYIN_TOKEN = 24
MAX_INITIALS_TOKEN = 12
CANDIDATE_CAP = 50_000
TAG_TOKEN_PREFIX = "zz"
FTS_TABLE = "customers_customer_fts"
PG_INDEX = "customer_search_vector_gin"
PG_OLD_INDEX = "customer_search_tokens_gin"
PG_VECTOR = '"customers_customer"."search_vector"'


def fold(text: str) -> str:
    """Full-width to half-width (NFKC), lower case: what users type and what names hold become comparable."""
    return unicodedata.normalize("NFKC", text or "").lower()


@lru_cache(maxsize=65536)
def pinyin_syllables(run: str) -> tuple[str, ...]:
    """One syllable per character of a run of Chinese characters, the likeliest reading in context."""
    from pypinyin import Style, lazy_pinyin

    syllables = lazy_pinyin(run, style=Style.NORMAL, errors=lambda chars: ["" for _ in chars])
    # pypinyin writes ü as "v" in NORMAL style (lv, nv), as pinyin keyboards do.
    return tuple(s.lower() for s in syllables)


def tag_token(tag: str) -> str:
    return TAG_TOKEN_PREFIX + hashlib.sha1(fold(tag).strip().encode()).hexdigest()[:10]


def name_tokens(name: str, syllables: tuple[str, ...] | None = None) -> set[str]:
    """The tokens of one name. ``syllables`` (one per Chinese character) may be given by bulk generators."""
    text = fold(name)
    tokens: set[str] = set()
    runs = CJK_RUN.findall(text)
    if syllables is None:
        syllables = tuple(s for run in runs for s in pinyin_syllables(run))
    for run in runs:
        tokens.update(run)
        tokens.update(run[i : i + 2] for i in range(len(run) - 1))
    syllables = tuple(s for s in syllables if s)
    initials = "".join(s[0] for s in syllables)
    for i in range(len(syllables)):
        tokens.add("".join(syllables[i:])[:MAX_PINYIN_TOKEN])
        tokens.add(initials[i:][:MAX_INITIALS_TOKEN])
    tokens.update(ALNUM_RUN.findall(CJK_RUN.sub(" ", text)))
    return tokens


def customer_search_tokens(*, name: str, short_name: str = "", tags=(), syllables=None) -> str:
    tokens = name_tokens(name, syllables)
    if short_name:
        tokens |= name_tokens(short_name)
    tokens.update(tag_token(t) for t in tags or () if str(t).strip())
    # Leading and trailing spaces let the fallback filter find a token start with LIKE '% tok%'.
    return " " + " ".join(sorted(tokens)) + " "


# ---------------------------------------------------------------- queries


@dataclass(frozen=True)
class Term:
    """One word of the search box. ``tokens``: full-text tokens that must all be present;
    ``prefix``: whether the (single) token is a prefix; ``text``: the Chinese substring to confirm."""

    tokens: tuple[str, ...]
    prefix: bool = False
    text: str = ""
    digits: str = ""
    credit: str = ""


def parse_query(q: str) -> list[Term]:
    from kehu.customers.personal import normalise_phone, phone_error

    number = normalise_phone(q.strip())
    if number and phone_error(number) is None:
        # 138 0013 8000, 0531-8888 6666: one phone number, however it was spaced.
        return [Term(tokens=(number,), prefix=True, digits=number)]
    terms: list[Term] = []
    for word in WORD_SPLIT.split(fold(q).strip()):
        if not word:
            continue
        for run in CJK_RUN.findall(word):
            if len(run) == 1:
                terms.append(Term(tokens=(run,), text=run))
            else:
                bigrams = tuple(dict.fromkeys(run[i : i + 2] for i in range(len(run) - 1)))
                terms.append(Term(tokens=bigrams, text=run))
        rest = CJK_RUN.sub(" ", word)
        for run in re.findall(r"[0-9a-z]+", rest):
            if run.isdigit():
                terms.append(Term(tokens=(run,), prefix=True, digits=run))
            elif len(run) >= 4 and run[0].isdigit():
                # Unified social credit codes start with a digit and mix in letters.
                terms.append(Term(tokens=(run[:MAX_PINYIN_TOKEN],), prefix=True, credit=run.upper()))
            else:
                terms.append(Term(tokens=(run[:MAX_PINYIN_TOKEN],), prefix=True))
    return terms


def _match_expression(term: Term) -> str:
    if connection.vendor == "postgresql":
        return " & ".join(f"'{t}'" + (":*" if term.prefix else "") for t in term.tokens)
    return " AND ".join(f'"{t}"' + (" *" if term.prefix else "") for t in term.tokens)


def _is_dense(term: Term) -> bool:
    """More than CANDIDATE_CAP customers hold the term: cheaper to check row by row in list order."""
    expression = _match_expression(term)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT count(*) FROM (SELECT 1 FROM customers_customer"
                " WHERE search_vector @@ %s::tsquery LIMIT %s) AS m",
                [expression, CANDIDATE_CAP + 1],
            )
        else:
            cursor.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s LIMIT %s)",
                [expression, CANDIDATE_CAP + 1],
            )
        return cursor.fetchone()[0] > CANDIDATE_CAP


def _fts_candidates(term: Term) -> list[int] | None:
    """Ids of customers holding the term's tokens, or None when there are more than CANDIDATE_CAP."""
    expression = _match_expression(term)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT id FROM customers_customer WHERE search_vector @@ %s::tsquery LIMIT %s",
                [expression, CANDIDATE_CAP + 1],
            )
        else:
            cursor.execute(
                f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s LIMIT %s",
                [expression, CANDIDATE_CAP + 1],
            )
        ids = [row[0] for row in cursor.fetchall()]
    return None if len(ids) > CANDIDATE_CAP else ids


def _fts_q(term: Term) -> Q:
    expression = _match_expression(term)
    if connection.vendor == "postgresql":
        # A condition on the row itself: the planner combines the GIN index with the other filters.
        match = RawSQL(f"{PG_VECTOR} @@ %s::tsquery", [expression],
                       output_field=BooleanField())  # fmt: skip
        return Q(match)
    return Q(pk__in=RawSQL(f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s", [expression]))


def _token_filter(term: Term) -> Q:
    """The same condition as the full-text match, checked row by row (for dense terms)."""
    if term.text:
        return Q(name__contains=term.text) | Q(short_name__contains=term.text)
    q = Q()
    for token in term.tokens:
        q &= Q(search_tokens__contains=f" {token}" if term.prefix else f" {token} ")
    return q


def _term_q(term: Term) -> Q:
    from kehu.customers.models import CustomerPhone

    # A single letter starts a token of most customers: not worth asking the index. PostgreSQL weighs the
    # other terms itself, from the statistics of the search vector; SQLite is asked how many hold it.
    one_letter = term.prefix and not term.digits and len(term.tokens[0]) < 2
    dense = one_letter or (connection.vendor != "postgresql" and _is_dense(term))
    if dense:
        q = _token_filter(term)
    else:
        q = _fts_q(term)
        if term.text and len(term.text) > 2:
            # Bigrams present somewhere are not yet the substring: confirm it on the names.
            q &= _token_filter(term)
    if term.digits:
        digits = term.digits
        if len(digits) <= 14:
            q |= Q(code__gte=digits, code__lt=digits + ":")
        if len(digits) >= 4:
            q |= Q(credit_code__gte=digits.upper(), credit_code__lt=digits.upper() + "~") & ~Q(credit_code="")
        from kehu.core.crypto import blind_index
        from kehu.customers.personal import PHONE_PURPOSE, normalise_phone, phone_error

        number = normalise_phone(digits)
        if phone_error(number) is None:
            # Resolved first: a list of ids lets the database OR it with the other terms through indexes.
            holders = list(
                CustomerPhone.objects.filter(
                    number_index=blind_index(number, purpose=PHONE_PURPOSE)
                ).values_list("customer_id", flat=True)
            )
            if holders:
                q |= Q(pk__in=holders)
    if term.credit:
        q |= Q(credit_code__gte=term.credit, credit_code__lt=term.credit + "~") & ~Q(credit_code="")
    return q


def search_q(q: str) -> Q:
    """The filter for what was typed in the search box (every word must match)."""
    result = Q()
    for term in parse_query(q):
        result &= _term_q(term)
    return result


def tag_q(tag: str) -> Q:
    term = Term(tokens=(tag_token(tag),))
    if connection.vendor == "postgresql":
        return _fts_q(term)
    return _token_filter(term) if _is_dense(term) else _fts_q(term)


# ---------------------------------------------------------------- the index itself


SQLITE_DDL = [
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5(search_tokens, content='customers_customer',"
    " content_rowid='id', tokenize='unicode61 remove_diacritics 0', detail='none', prefix='3')",
    f"""CREATE TRIGGER IF NOT EXISTS customers_customer_fts_insert AFTER INSERT ON customers_customer BEGIN
        INSERT INTO {FTS_TABLE}(rowid, search_tokens) VALUES (new.id, new.search_tokens); END""",
    f"""CREATE TRIGGER IF NOT EXISTS customers_customer_fts_delete AFTER DELETE ON customers_customer BEGIN
        INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, search_tokens) VALUES ('delete', old.id, old.search_tokens);
        END""",
    f"""CREATE TRIGGER IF NOT EXISTS customers_customer_fts_update AFTER UPDATE OF search_tokens
        ON customers_customer BEGIN
        INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, search_tokens) VALUES ('delete', old.id, old.search_tokens);
        INSERT INTO {FTS_TABLE}(rowid, search_tokens) VALUES (new.id, new.search_tokens); END""",
]


def ensure_search_index(conn=None) -> bool:
    """Create the database's search index if missing; returns True when it had to be (re)built.

    Called by the migration and after every ``migrate``: SQLite drops a table's triggers whenever
    Django rebuilds the table, and a missing trigger would silently leave new names unsearchable.
    """
    conn = conn or connection
    with conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            return _ensure_postgresql_vector(cursor)
        if conn.vendor != "sqlite":
            return False
        cursor.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s",
            ["customers_customer_fts_%"],
        )
        if cursor.fetchone()[0] == 3:
            return False
        for statement in SQLITE_DDL:
            cursor.execute(statement)
        cursor.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')")
        return True


def _ensure_postgresql_vector(cursor) -> bool:
    cursor.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_name = 'customers_customer'"
        " AND column_name = 'search_vector' AND table_schema = current_schema()"
    )
    built = False
    if cursor.fetchone() is None:
        cursor.execute(
            "ALTER TABLE customers_customer ADD COLUMN search_vector tsvector"
            " GENERATED ALWAYS AS (search_tokens::tsvector) STORED"
        )
        built = True
    cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", [PG_INDEX])
    if cursor.fetchone() is None:
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {PG_INDEX} ON customers_customer USING gin (search_vector)"
        )
        built = True
    cursor.execute(f"DROP INDEX IF EXISTS {PG_OLD_INDEX}")
    return built
