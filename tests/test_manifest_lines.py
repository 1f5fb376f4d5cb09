"""A manifest's summary keeps the first lines that use each template, not all of them: an
unknown template on many lines is reported on its first 20 lines plus a count, and nothing
reaches Graph."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

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
            w.writerow([f"k{i}", f"App {i}", template, "file:secrets/key-id",
                        "file:secrets/secret"])
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
