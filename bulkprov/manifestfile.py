"""Reading a manifest file: its format (by its suffix), its encoding (UTF-8, UTF-16 and UTF-32
refused), and its raw records, each with the line it starts on.

CSV (``.csv``, ``.tsv``) and JSONL (``.jsonl``, ``.ndjson``) are read a line at a time; a JSON
document (``.json``: a list of instances, or ``{"instances": [...]}``) is parsed whole and each
instance's line found by walking the text. A CSV row is a record of its non-empty columns, its
``cred.<Key>`` columns gathered in ``credentials``. What the fields mean, and whether a CSV
header's columns are known, is :mod:`bulkprov.manifest`'s business."""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import ManifestError, Problem

Record = dict[str, Any] | Problem  # a raw record, or why a part of the file cannot be one
HeaderCheck = Callable[[str, list[str]], list[Problem]]  # (file name, columns) -> problems


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "json"
    raise ManifestError(
        [Problem(str(path), None, None, "unknown manifest format: use .csv, .json or .jsonl")]
    )


_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def _decode(path: Path, data: bytes) -> str:
    """The manifest's text: UTF-8, with or without a BOM. UTF-16 and UTF-32 (what spreadsheet
    programs call "Unicode") are recognised and refused with a clear error rather than guessed:
    their NUL bytes would otherwise pass as characters."""
    _refuse_wide(path, data)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ManifestError(
            [
                Problem(
                    str(path),
                    line,
                    None,
                    f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                    "save the manifest as UTF-8",
                )
            ]
        ) from None


def _refuse_wide(path: Path, data: bytes) -> None:
    """Refuse UTF-16/UTF-32 text, judged from its first bytes (BOM, NUL bytes)."""
    wide = next((enc for bom, enc in _WIDE_BOMS if data.startswith(bom)), None)
    nul = data.find(b"\x00", 0, 1 << 16)
    if wide is not None or nul >= 0:
        how = f"a {wide} byte-order mark" if wide else f"NUL bytes (the first at offset {nul})"
        line = 1 if wide else data.count(b"\n", 0, nul) + 1
        raise ManifestError(
            [
                Problem(
                    str(path),
                    line,
                    None,
                    f"the manifest is not UTF-8: it has {how}, as UTF-16 or UTF-32 text "
                    '("Unicode" in spreadsheet programs) has; save it as UTF-8 (CSV UTF-8)',
                )
            ]
        )


def records(path: Path, check_header: HeaderCheck) -> Iterator[tuple[int, Record]]:
    """(line, raw record) for each instance of the file, or a Problem for unreadable parts;
    ``check_header`` gives the problems of a CSV header's (stripped) columns, raised at once.

    CSV and JSONL are read a line at a time (a manifest of 100k rows is never in memory
    whole); a JSON document is parsed whole."""
    name = str(path)
    fmt = detect_format(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(1 << 16)
            small = len(head) < 1 << 16
    except OSError as exc:
        raise ManifestError([Problem(name, None, None, f"cannot read: {exc.strerror}")]) from None
    if fmt == "json" or small:
        text = _decode(path, path.read_bytes() if not small else head)
        if not text.strip():
            raise ManifestError([Problem(name, None, None, "the manifest is empty")])
        if fmt == "json":
            yield from _json_records(name, text)
            return
        lines: Iterator[str] = iter(io.StringIO(text, newline="" if fmt == "csv" else "\n"))
        yield from _text_records(name, path, fmt, lines, check_header)
        return
    _refuse_wide(path, head)  # before anything is read as text
    try:
        with path.open(encoding="utf-8-sig", newline="" if fmt == "csv" else "\n") as text_fh:
            yield from _text_records(name, path, fmt, text_fh, check_header)
    except UnicodeDecodeError:
        _decode(path, path.read_bytes())  # raises, naming the line of the bad byte
        raise


def _text_records(
    name: str, path: Path, fmt: str, lines: Iterator[str], check_header: HeaderCheck
) -> Iterator[tuple[int, Record]]:
    if fmt == "csv":
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        yield from _csv_records(name, lines, delimiter, check_header)
        return
    # JSONL: lines end at "\n" only: str.splitlines() would also split on U+2028, U+0085 and
    # others that JSON allows unescaped inside a string (and line numbers count "\n" alone)
    for n, raw_line in enumerate(lines, start=1):
        if not raw_line.strip():
            continue
        try:
            obj = json.loads(raw_line)
        except json.JSONDecodeError as exc:
            yield n, Problem(name, n, None, f"not valid JSON: {exc.msg} (column {exc.colno})")
            continue
        except (ValueError, RecursionError) as exc:  # huge integers, deep nesting
            yield n, Problem(name, n, None, f"not usable JSON: {_json_limit(exc)}")
            continue
        if not isinstance(obj, dict):
            yield n, Problem(name, n, None, "each line must be a JSON object")
            continue
        yield n, obj


def _csv_records(
    name: str, lines: Iterator[str], delimiter: str, check_header: HeaderCheck
) -> Iterator[tuple[int, Record]]:
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise ManifestError([Problem(name, 1, None, f"bad CSV header: {exc}")]) from None
    header = [h.strip() for h in header]
    problems = check_header(name, header)
    if problems:
        raise ManifestError(problems)
    line = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            message = f"bad CSV quoting: {exc}"
            if "field larger than field limit" in str(exc):
                message = (
                    f"a field is longer than {csv.field_size_limit()} characters: a quote "
                    "that is never closed, or a value far too long"
                )
            yield line, Problem(name, line, None, message)
            return  # the csv module cannot resynchronise after a quoting error
        start, line = line, reader.line_num + 1
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            yield (
                start,
                Problem(name, start, None, f"has {len(row)} fields, the header has {len(header)}"),
            )
            continue
        record: dict[str, Any] = {}
        creds: dict[str, str] = {}
        for column, value in zip(header, row, strict=True):
            if column.startswith("cred."):
                if value.strip():
                    creds[column[5:]] = value.strip()
            elif value.strip() != "":
                record[column] = value.strip()
        if creds:
            record["credentials"] = creds
        yield start, record


def _json_records(name: str, text: str) -> Iterator[tuple[int, Record]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(
            [Problem(name, exc.lineno, None, f"not valid JSON: {exc.msg} (column {exc.colno})")]
        ) from None
    except (ValueError, RecursionError) as exc:  # huge integers, deep nesting
        raise ManifestError(
            [Problem(name, 1, None, f"not usable JSON: {_json_limit(exc)}")]
        ) from None
    if isinstance(doc, dict):
        unknown = set(doc) - {"instances", "version", "description"}
        if unknown:
            raise ManifestError(
                [Problem(name, 1, k, "unknown top-level field") for k in sorted(unknown)]
            )
        doc = doc.get("instances")
        offsets = _member_elements(text, "instances") if isinstance(doc, list) else []
    else:
        offsets = _array_elements(text, _skip_ws(text, 0))[0] if isinstance(doc, list) else []
    if not isinstance(doc, list):
        raise ManifestError(
            [
                Problem(
                    name, 1, "instances", 'expected a list of instances (or {"instances": [...]})'
                )
            ]
        )
    for item, line in zip(doc, _lines_at(text, offsets), strict=True):
        if not isinstance(item, dict):
            yield line, Problem(name, line, None, "each instance must be a JSON object")
        else:
            yield line, item


def _json_limit(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc).split(";")[0]


def _skip_ws(text: str, pos: int) -> int:
    while text[pos] in " \t\r\n":
        pos += 1
    return pos


def _member_elements(text: str, member: str) -> list[int]:
    """Offsets of the elements of the array that is the top-level object's ``member`` in valid
    JSON ``text`` (the last one if repeated, as ``json.loads`` keeps the last); found by walking
    the top-level members, so an escaped key or a nested object with the same key cannot
    mislead it."""
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0) + 1  # past "{"
    found: list[int] = []
    while True:
        pos = _skip_ws(text, pos)
        if text[pos] == "}":
            return found
        if text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
        key, pos = decoder.raw_decode(text, pos)
        pos = _skip_ws(text, _skip_ws(text, pos) + 1)  # past ":"
        if key == member and text[pos] == "[":
            found, pos = _array_elements(text, pos)
        else:
            _value, pos = decoder.raw_decode(text, pos)


def _array_elements(text: str, start: int) -> tuple[list[int], int]:
    """Offsets of the elements of the valid JSON array that begins at ``start``, and the offset
    just past its end."""
    decoder = json.JSONDecoder()
    offsets: list[int] = []
    pos = start + 1
    while True:
        while text[pos] in " \t\r\n,":
            pos += 1
        if text[pos] == "]":
            return offsets, pos + 1
        offsets.append(pos)
        _obj, pos = decoder.raw_decode(text, pos)


def _lines_at(text: str, offsets: list[int]) -> Iterator[int]:
    """The line number of each of the ascending ``offsets``, counting each newline once (a
    count from the start of the text for each would be quadratic in the manifest's size)."""
    line, counted = 1, 0
    for offset in offsets:
        line += text.count("\n", counted, offset)
        counted = offset
        yield line
