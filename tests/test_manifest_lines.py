"""A manifest's summary keeps the first lines that use each template, not all of them: an
unknown template on many lines is reported on its first 20 lines plus a count, and nothing
reaches Graph."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bulkprov import cli
from bulkprov.errors import ManifestError
from bulkprov.manifest import Lines, validate
from bulkprov.mockgraph import MockGraph

from .enginekit import AWS, run_engine, tenant_stats, write_secrets


def _manifest(path: Path, templates: list[str]) -> Path:
    write_secrets(path.parent / "secrets")
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["key", "displayName", "template", "cred.ClientSecret", "cred.SecretToken"])
        for i, template in enumerate(templates):
            w.writerow(
                [f"k{i}", f"App {i}", template, "file:secrets/key-id", "file:secrets/secret"]
            )
    return path


def test_lines_keep_the_first_and_count_all() -> None:
    lines = Lines()
    for line in range(2, 1002):
        lines.add(line)
    assert lines.count == 1000
    assert lines.first == list(range(2, 2 + Lines.KEEP))


def test_summary_counts_every_line_of_a_template(tmp_path: Path) -> None:
    path = _manifest(tmp_path / "m.csv", [AWS] * 50 + ["Nowhere"] * 3)
    summary = validate(path)
    assert not summary.problems
    assert summary.templates[AWS].count == 50 and len(summary.templates[AWS].first) == 20
    assert summary.templates["Nowhere"].first == [52, 53, 54]


@pytest.mark.anyio
async def test_unknown_template_on_many_lines(mock: MockGraph, tmp_path: Path) -> None:
    path = _manifest(tmp_path / "m.csv", [AWS] * 5 + ["No Such Gallery App"] * 30)
    with pytest.raises(ManifestError) as exc:
        await run_engine(mock, path, tmp_path / "l.jsonl")
    problems = exc.value.problems
    named = [p for p in problems if p.line is not None]
    assert [p.line for p in named] == list(range(7, 27))  # header is line 1, AWS 2-6
    assert all(p.field == "template" and "No Such Gallery App" in p.message for p in named)
    rest = [p for p in problems if p.line is None]
    assert len(rest) == 1 and "10 more lines use 'No Such Gallery App'" in rest[0].message
    stats = tenant_stats(mock)
    assert stats["applications"] == 0 and stats["servicePrincipals"] == 0


def test_shared_display_names_are_casefolded(tmp_path: Path) -> None:
    """Display names used by several instances, compared as Graph's `eq` does (ignoring case),
    are the summary's shared names; names used once are not kept."""
    m = tmp_path / "m.csv"
    names = ["AWS Prod", "aws PROD", "AWS Test", "AWS Dev", "AWS Dev"]
    rows = ["key,displayName,template,start,validate"]
    rows += [f"k{i},{name},{AWS},false,false" for i, name in enumerate(names)]
    m.write_text("\n".join(rows) + "\n")
    summary = validate(m)
    assert not summary.problems
    assert summary.shared_names == {"aws prod", "aws dev"}


def test_shared_display_names_keep_their_lines_for_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The summary keeps the lines of the shared display names, and `plan` notes them in one
    line: how many names, and the first ones with their lines."""
    m = tmp_path / "m.csv"
    names = ["AWS Prod", "aws PROD", "AWS Test", "AWS Dev", "AWS Dev", "AWS PROD"]
    rows = ["key,displayName,template,start,validate"]
    rows += [f"k{i},{name},{AWS},false,false" for i, name in enumerate(names)]
    m.write_text("\n".join(rows) + "\n")
    summary = validate(m)
    assert {k: (s.name, s.lines.first) for k, s in summary.shared_lines.items()} == {
        "aws prod": ("aws PROD", [2, 3, 7]),
        "aws dev": ("AWS Dev", [5, 6]),
    }
    note = (
        "2 display names are shared by several instances: 'aws PROD' (lines 2, 3, 7), "
        "'AWS Dev' (lines 5, 6)"
    )
    assert summary.shared_note() == note
    assert summary.shared_note(shown=1) == note.split(", 'AWS Dev'")[0] + ", and 1 more"
    assert cli.main(["plan", str(m), "--offline"]) == 0
    assert f"note: {note}\n" in capsys.readouterr().err


def test_no_note_when_every_display_name_is_used_once(tmp_path: Path) -> None:
    """A manifest whose display names all differ has no shared-name note."""
    m = tmp_path / "m.csv"
    m.write_text(
        f"key,displayName,template,start,validate\nk1,A,{AWS},false,false\nk2,B,{AWS},false,false\n"
    )
    assert validate(m).shared_note() is None


def test_duplicate_key_is_reported_with_the_rows_other_problems(tmp_path: Path) -> None:
    """A row with a duplicate key and another problem reports both; a key first used on a row
    with problems still makes its later use a duplicate."""
    m = tmp_path / "m.csv"
    m.write_text(
        "key,displayName,template,start,validate\n"
        f"app-1,One,{AWS},false,false\n"
        "app-1,One again,,false,false\n"
        f"app-2,Two,{AWS},maybe,false\n"
        f"app-2,Two again,{AWS},false,false\n"
        f"bad key!,Three,{AWS},false,false\n"
        f"bad key!,Four,{AWS},false,false\n"
    )
    got = [(p.line, p.field, p.message) for p in validate(m).problems]
    assert [(line, field) for line, field, _ in got] == [
        (3, "template"),
        (3, "key"),
        (4, "start"),
        (5, "key"),
        (6, "key"),
        (7, "key"),
    ]
    assert "first used on line 2" in got[1][2] and "first used on line 4" in got[3][2]
    assert all("duplicate" not in message for *_, message in got[4:])


def test_large_json_manifest_problems_are_on_their_lines(tmp_path: Path) -> None:
    """In a large JSON manifest (CRLF line ends, escaped newlines and U+2028 in strings,
    objects over several lines) each problem is on the line its object starts on."""
    recs = []
    for i in range(3000):
        rec = {
            "key": f"k{i}",
            "displayName": f"App\u2028{i}",
            "start": False,
            "validate": False,
            "jobSettings": [{"name": "a\nb", "value": "{\n}"}],
        }
        if i % 500 != 7:
            rec["template"] = AWS
        recs.append(rec)
    text = json.dumps({"description": "x\ny", "instances": recs}, indent=2, ensure_ascii=False)
    m = tmp_path / "m.json"
    m.write_bytes(text.replace("\n", "\r\n").encode())
    starts = [n for n, line in enumerate(text.split("\n"), start=1) if line == "    {"]
    assert len(starts) == 3000
    summary = validate(m)
    assert [(p.line, p.field, p.key) for p in summary.problems] == [
        (starts[i], "template", f"k{i}") for i in range(7, 3000, 500)
    ]
    assert summary.templates[AWS].first == [n for i, n in enumerate(starts) if i % 500 != 7][:20]


def test_shared_display_name_on_one_json_line(tmp_path: Path) -> None:
    """Two JSON objects on one line with the same display name are a shared name too."""
    m = tmp_path / "m.json"
    m.write_text(
        json.dumps(
            [
                {
                    "key": f"k{i}",
                    "displayName": "Same",
                    "template": AWS,
                    "start": False,
                    "validate": False,
                }
                for i in range(2)
            ]
        )
    )
    summary = validate(m)
    assert summary.shared_names == {"same"}
    assert summary.shared_lines["same"].lines.first == [1, 1]
