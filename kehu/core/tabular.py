"""Reading and writing the spreadsheets that imports take and exports give (CSV and XLSX).

Shared by every ``kehu import`` / ``kehu export`` kind (units, customers, contacts, agreements):

* ``read_table`` turns a ``.csv`` (UTF-8 with or without BOM, or GBK/GB18030 as Excel saves it on a
  Chinese Windows) or ``.xlsx`` file into numbered rows of text cells, row numbers as a spreadsheet
  shows them;
* ``map_header`` finds the columns by their English or Chinese names;
* ``RowError`` is one problem: row, column, value found, why;
* ``csv_cell`` / ``unescape`` protect cells that a spreadsheet would run as formulas on the way out and
  take the protection off again on the way in, so that an export imports back unchanged;
* ``check_size`` refuses files larger than ``KEHU_MAX_UPLOAD_MB`` with a clear message.

The formats are described in ``docs/import-formats.md``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import PurePath

from django.utils.translation import gettext as _

from kehu.core.errors import ServiceError

# Cells that a spreadsheet would run as a formula are written with a leading apostrophe (see csv_cell).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
SUPPORTED_SUFFIXES = (".csv", ".xlsx")


@dataclass(frozen=True)
class RowError:
    """One problem: the file's row (header = 1), the column, the value found and why it is refused."""

    row: int
    field: str
    value: str
    message: str

    def __str__(self) -> str:
        if self.field:
            return _("row %(row)d, field %(field)s: %(message)s") % {
                "row": self.row, "field": self.field, "message": self.message,
            }  # fmt: skip
        return _("row %(row)d: %(message)s") % {"row": self.row, "message": self.message}

    def as_dict(self) -> dict[str, object]:
        return {"row": self.row, "field": self.field, "value": self.value, "message": self.message}


# ---------------------------------------------------------------------------------------------------
# Size


def max_import_bytes() -> int:
    from django.conf import settings

    return max(1, int(getattr(settings, "KEHU_MAX_UPLOAD_MB", 50))) * 1024 * 1024


def check_size(size: int, *, limit: int | None = None) -> None:
    """Refuse a file of ``size`` bytes when it is larger than the configured limit."""
    limit = max_import_bytes() if limit is None else limit
    if size > limit:
        raise ServiceError(
            _("The file has %(size).1f MB; an import takes at most %(limit)d MB (KEHU_MAX_UPLOAD_MB). "
              "Split it into smaller files.") % {"size": size / 1024 / 1024, "limit": limit // (1024 * 1024)},
            field="file", code="too_large",
        )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Cells


def cell_text(value) -> str:
    """A cell as text: numbers typed into Excel (division codes!) lose their ``.0``; dates are ISO."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        if (value.hour, value.minute, value.second, value.microsecond) == (0, 0, 0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def unescape(text: str) -> str:
    """An exported CSV protects cells that look like formulas with a leading apostrophe; take it off."""
    if len(text) > 1 and text[0] == "'" and text[1] in FORMULA_START:
        return text[1:]
    return text


def csv_cell(text: str) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas; a leading apostrophe keeps them text."""
    return "'" + text if text.startswith(FORMULA_START) else text


# ---------------------------------------------------------------------------------------------------
# Reading


def decode_text(content: bytes) -> str:
    """UTF-8 (with or without BOM) or, failing that, GB18030 (a superset of GBK and GB2312)."""
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return content.decode("gb18030")
    except UnicodeDecodeError:
        raise ServiceError(
            _("The file is neither UTF-8 nor GBK/GB18030 text; save it as CSV UTF-8."), field="file"
        ) from None


def read_table(filename: str, content: bytes) -> list[tuple[int, list[str]]]:
    """The non-empty rows of a CSV or XLSX file as (row number, cells); the header is the first row.

    Row numbers are those a spreadsheet shows (CSV: the record's number, header = 1).
    """
    suffix = PurePath(filename or "").suffix.lower()
    if suffix == ".csv":
        text = decode_text(content)
        if "\x00" in text:
            # csv would stop at the NUL with a cryptic message; this is a binary file with a .csv name.
            raise ServiceError(
                _("The file is not text (it contains NUL bytes); save it as CSV."), field="file"
            )
        try:
            rows = [(n, [unescape(c.strip()) for c in cells])
                    for n, cells in enumerate(csv.reader(io.StringIO(text, newline="")), start=1)]  # fmt: skip
        except csv.Error as exc:
            raise ServiceError(_("The CSV file cannot be read: %(e)s") % {"e": exc}, field="file") from None
    elif suffix == ".xlsx":
        rows = _read_xlsx(content)
    elif suffix in (".xls", ".et", ".ods", ".numbers"):
        raise ServiceError(
            _("“%(f)s” is not supported; save it as .xlsx or .csv.") % {"f": PurePath(filename).name},
            field="file",
        )
    else:
        raise ServiceError(
            _("Unsupported file type “%(s)s”: use .csv or .xlsx.") % {"s": suffix or filename}, field="file"
        )
    rows = [(n, cells) for n, cells in rows if any(cells)]
    if not rows:
        raise ServiceError(_("The file is empty."), field="file")
    return rows


def _read_xlsx(content: bytes) -> list[tuple[int, list[str]]]:
    import zipfile

    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ServiceError(
            _("The file is not a readable .xlsx workbook (%(e)s).") % {"e": exc.__class__.__name__},
            field="file",
        ) from None
    try:
        sheet = workbook.worksheets[0]
        sheet.reset_dimensions()  # some writers record a wrong sheet size; read what is there
        rows = []
        for cells in sheet.iter_rows():
            number = next((c.row for c in cells if getattr(c, "row", None)), None)
            values = [cell_text(c.value) for c in cells]
            if number is not None:
                rows.append((number, values))
        return rows
    finally:
        workbook.close()


def map_header(
    header: list[str],
    columns: dict[str, tuple[str, ...]],
    *,
    row: int = 1,
    required: Iterable[str] | None = None,
) -> tuple[dict[str, int], list[RowError]]:
    """Which cell holds each column. Unknown headers are ignored; missing or repeated ones are errors.

    ``required`` names the columns that must be present (default: all of ``columns``); the others
    are optional and simply absent from the index when the file lacks them.
    """
    aliases = {alias.casefold(): name for name, names in columns.items() for alias in names}
    needed = set(columns if required is None else required)
    index: dict[str, int] = {}
    errors: list[RowError] = []
    for i, raw in enumerate(header):
        name = aliases.get(raw.replace("\ufeff", "").strip().casefold())
        if name is None:
            continue
        if name in index:
            errors.append(RowError(row, name, raw, _("The column “%(c)s” appears twice.") % {"c": name}))
        else:
            index[name] = i
    for name, names in columns.items():
        if name in needed and name not in index:
            errors.append(RowError(row, name, "", _("The required column “%(c)s” (%(alias)s) is missing.")
                                   % {"c": name, "alias": " / ".join(names)}))  # fmt: skip
    return index, errors


def row_cells(cells: list[str], index: dict[str, int]) -> dict[str, str]:
    """One row's cells by column name; columns the file lacks are left out, short rows give ""."""
    return {name: (cells[i].strip() if i < len(cells) else "") for name, i in index.items()}
