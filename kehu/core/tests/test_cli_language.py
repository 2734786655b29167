"""The console commands speak the deployment's language: their own messages as well as the services'."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import translation

from kehu.org.models import Unit

CJK = re.compile(r"[\u4e00-\u9fff]")


def bad_units_csv(tmp_path):
    """One good row and one bad row (row 3: unknown parent code, invalid division code)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["code", "name", "type", "parent_code", "division_code"])
    writer.writerow(["X1", "新站", "station", "A1", "370102"])
    writer.writerow(["X2", "坏站", "station", "NO", "1"])
    path = tmp_path / "bad.csv"
    path.write_bytes(out.getvalue().encode("utf-8"))
    return path


def import_units(path, language):
    err = io.StringIO()
    with translation.override(language), pytest.raises(CommandError) as exc:
        call_command("import", "units", str(path), stdout=io.StringIO(), stderr=err)
    assert exc.value.returncode == 1
    return err.getvalue(), str(exc.value)


def test_import_errors_and_summary_follow_the_language(people, org, tmp_path):
    path = bad_units_csv(tmp_path)

    err, summary = import_units(path, "zh-hans")
    assert "第 3 行，parent_code 列：" in err and "第 3 行，division_code 列：" in err
    assert "row " not in err and "field " not in err
    assert CJK.search(summary) and "bad.csv" in summary
    assert not re.search(r"\b(error|errors|nothing|imported)\b", summary)

    err, summary = import_units(path, "en")
    assert "row 3, field parent_code: " in err and "row 3, field division_code: " in err
    assert not CJK.search(err)
    assert summary == "2 errors in bad.csv; nothing was imported."
    assert not Unit.objects.filter(code="X1").exists()
