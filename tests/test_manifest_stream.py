"""Manifests larger than the first read (64 KiB) are read a line at a time: same records, same
errors with the same line numbers as a small manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bulkprov.errors import ManifestError
from bulkprov.manifest import iter_instances, validate

ROWS = 3000  # about 250 KiB: well past the first read


def _csv(path: Path, rows: int, *, tail: bytes = b"") -> Path:
    lines = [b"key,displayName,template,start,validate"]
    lines += [f"k{i},AWS {i},AWS Single-Account Access,false,false".encode() for i in range(rows)]
    path.write_bytes(b"\n".join(lines) + b"\n" + tail)
    return path


def test_large_csv_streams_every_row(tmp_path: Path) -> None:
    path = _csv(tmp_path / "big.csv", ROWS)
    assert path.stat().st_size > 1 << 16
    assert validate(path).count == ROWS
    insts = list(iter_instances(path))
    assert [i.key for i in insts[:2]] == ["k0", "k1"] and insts[-1].key == f"k{ROWS - 1}"
    assert insts[-1].line == ROWS + 1


def test_large_jsonl_streams_every_line(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(ROWS):
            # U+2028 is legal inside a JSON string and must not end a line
            rec = {
                "key": f"k{i}",
                "displayName": f"AWS\u2028{i}",
                "template": "AWS Single-Account Access",
                "start": False,
                "validate": False,
            }
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    assert path.stat().st_size > 1 << 16
    insts = list(iter_instances(path))
    assert len(insts) == ROWS and insts[-1].line == ROWS


def test_bad_utf8_late_in_a_large_csv_names_its_line(tmp_path: Path) -> None:
    bad = b"kx,AWS \xff,AWS Single-Account Access,false,false\n"
    path = _csv(tmp_path / "late.csv", ROWS, tail=bad)
    with pytest.raises(ManifestError) as err:
        validate(path)
    (problem,) = err.value.problems
    assert problem.line == ROWS + 2 and "not valid UTF-8" in problem.message


def test_utf16_large_csv_is_refused_before_any_row(tmp_path: Path) -> None:
    small = _csv(tmp_path / "src.csv", ROWS)
    path = tmp_path / "wide.csv"
    path.write_bytes(small.read_text().encode("utf-16"))
    with pytest.raises(ManifestError) as err:
        list(iter_instances(path))
    assert "not UTF-8" in err.value.problems[0].message
