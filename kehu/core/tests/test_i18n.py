"""The Simplified Chinese catalogue is complete, compiled, faithful to its placeholders, and actually used."""

from __future__ import annotations

import gettext
import re
from collections import Counter

import polib
import pytest
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from kehu.accounts.roles import Role
from kehu.core import i18n

CATALOGUES = i18n.po_files()
CATALOGUE_IDS = [str(p.relative_to(i18n.LOCALE_DIR)) for p in CATALOGUES]

# %(name)s / %(n)d / %s / %d (printf, as used with python-format) and {name} (str.format); "%%" is a literal.
NAMED_PRINTF = re.compile(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[sdifrxX]")
POSITIONAL_PRINTF = re.compile(r"%(?!\()[-#0 +]*\d*(?:\.\d+)?[sdifrxX]")
BRACES = re.compile(r"\{(\w*)\}")
TAG = re.compile(r"</?[a-zA-Z][^>]*>")


def test_the_chinese_catalogue_exists():
    assert i18n.LOCALE_DIR / "zh_Hans" / "LC_MESSAGES" / "django.po" in CATALOGUES


@pytest.mark.parametrize("po_path", CATALOGUES, ids=CATALOGUE_IDS)
def test_every_entry_is_translated_and_none_is_fuzzy(po_path):
    assert i18n.problems(po_path) == []


@pytest.mark.parametrize("po_path", CATALOGUES, ids=CATALOGUE_IDS)
def test_the_compiled_catalogue_matches_the_po_file(po_path, tmp_path):
    """The committed .mo carries exactly the .po's translations (header aside)."""
    mo_path = po_path.with_suffix(".mo")
    assert mo_path.exists(), f"{mo_path.name} is missing: run python -m kehu.core.i18n compile"
    fresh = tmp_path / "fresh.mo"
    polib.pofile(str(po_path)).save_as_mofile(str(fresh))

    def catalogue(path):
        with open(path, "rb") as fh:
            messages = dict(gettext.GNUTranslations(fh)._catalog)
        messages.pop("", None)  # the header: revision dates may differ between tools
        return messages

    assert catalogue(mo_path) == catalogue(fresh), (
        f"{mo_path.name} is out of date with {po_path.name}: run python -m kehu.core.i18n compile"
    )


def _tokens(text: str) -> Counter:
    found = Counter(m.group(0) for m in NAMED_PRINTF.finditer(text))
    found.update(POSITIONAL_PRINTF.findall(text))
    found.update(f"{{{name}}}" for name in BRACES.findall(text))
    found.update(tag.split()[0].rstrip(">") + ">" for tag in TAG.findall(text))
    return found


def _same(got: Counter, expected: Counter) -> bool:
    """Named placeholders and tags may repeat or move; positional ones (%s) must keep their number."""
    positional = [t for t in {*got, *expected} if not t.startswith(("%(", "{", "<"))]
    return set(got) == set(expected) and all(got[t] == expected[t] for t in positional)


@pytest.mark.parametrize("po_path", CATALOGUES, ids=CATALOGUE_IDS)
def test_every_translation_keeps_the_placeholders_and_tags_of_its_source(po_path):
    """A dropped or renamed placeholder is a KeyError (or a lost value) at run time; a lost tag breaks the page."""
    wrong = []
    for entry in polib.pofile(str(po_path)):
        if entry.obsolete or "fuzzy" in entry.flags:
            continue
        if entry.msgid_plural:
            # Chinese has one form; it stands for the plural, which names every placeholder.
            expected = _tokens(entry.msgid_plural)
            for name in _tokens(entry.msgid):
                expected.setdefault(name, 1)
            for index, text in entry.msgstr_plural.items():
                if not _same(_tokens(text), expected):
                    wrong.append(f"{entry.msgid!r}[{index}]: {sorted(_tokens(text))} != {sorted(expected)}")
        elif entry.msgstr and not _same(_tokens(entry.msgstr), _tokens(entry.msgid)):
            wrong.append(
                f"{entry.msgid!r}: {sorted(_tokens(entry.msgstr))} != {sorted(_tokens(entry.msgid))}"
            )
    assert wrong == []


def test_the_plural_forms_header_has_one_form_for_chinese():
    po = polib.pofile(str(i18n.LOCALE_DIR / "zh_Hans" / "LC_MESSAGES" / "django.po"))
    assert po.metadata["Plural-Forms"].replace(" ", "") == "nplurals=1;plural=0;"


def test_chinese_is_served_for_zh_hans():
    with translation.override("zh-hans"):
        assert _("Sign out") == "退出登录"
        assert _("Sign in") == "登录"
        assert _("Audit trail") == "审计日志"
        assert _("Trainee (见习)") == "见习"
        assert str(Role.CUSTOMER_MANAGER.label) == "客户经理"
        assert str(Role.SECURITY_ADMIN.label) == "安全管理员"
        assert ngettext("%(n)s person", "%(n)s people", 3) % {"n": 3} == "3 人"
    with translation.override("en"):
        assert _("Sign out") == "Sign out"
        assert str(Role.CUSTOMER_MANAGER.label) == "Customer manager"


def test_the_login_page_is_chinese_by_default(client, db, settings):
    settings.LANGUAGE_CODE = "zh-hans"  # the product's default (kehu/settings.py), stated here on purpose
    response = client.get("/login/")
    body = response.content.decode()
    assert response["Content-Language"] == "zh-hans"
    assert "登录" in body
    assert "Forgotten your password" not in body


def test_the_login_page_is_english_with_the_language_cookie(client, db):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    response = client.get("/login/")
    body = response.content.decode()
    assert response["Content-Language"] == "en"
    assert "Sign in" in body
    assert "Forgotten your password" in body
    assert "忘记密码" not in body
