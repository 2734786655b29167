"""Translation catalogue tooling: compile .po to .mo without GNU gettext, and check completeness.

    python -m kehu.core.i18n compile   # writes kehu/locale/*/LC_MESSAGES/django.mo
    python -m kehu.core.i18n check     # lists untranslated or fuzzy entries, exit 1 if any

Extracting new strings (``kehu makemessages -l zh_Hans``) needs GNU gettext on the developer's
machine; compiling and checking need only polib, so CI and a fresh clone need no system packages.
"""

from __future__ import annotations

import sys
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"


def po_files() -> list[Path]:
    return sorted(LOCALE_DIR.glob("*/LC_MESSAGES/*.po"))


def problems(po_path: Path) -> list[str]:
    import polib

    catalogue = polib.pofile(str(po_path))
    found = []
    for entry in catalogue:
        if entry.obsolete:
            continue
        if "fuzzy" in entry.flags:
            found.append(f"{po_path.name}:{entry.linenum}: fuzzy: {entry.msgid!r}")
        elif entry.msgid_plural:
            if not all(entry.msgstr_plural.values()):
                found.append(f"{po_path.name}:{entry.linenum}: untranslated plural: {entry.msgid!r}")
        elif not entry.msgstr:
            found.append(f"{po_path.name}:{entry.linenum}: untranslated: {entry.msgid!r}")
    return found


def compile_all() -> list[Path]:
    import polib

    written = []
    for po_path in po_files():
        mo_path = po_path.with_suffix(".mo")
        polib.pofile(str(po_path)).save_as_mofile(str(mo_path))
        written.append(mo_path)
    return written


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "compile":
        for path in compile_all():
            print(f"compiled {path.relative_to(LOCALE_DIR.parent.parent)}")
        return 0
    if command == "check":
        issues = [p for po in po_files() for p in problems(po)]
        for issue in issues:
            print(issue)
        print(f"{len(issues)} problem(s) in {len(po_files())} catalogue(s)")
        return 1 if issues else 0
    print(__doc__)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv))
