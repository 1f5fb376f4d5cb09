"""The engine against Graph answers that are not what the documentation promises: a proxy's
HTML page (502 or 200), an empty body, truncated JSON, unknown extra fields, a 200/201 without
the ids. Reads are asked again, writes are reconciled, and what cannot be recovered fails its
instance with the step, the request and what came instead; the pool never crashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkprov.client import not_json
from bulkprov.mockgraph import FaultSettings, MockGraph, MockSettings, ReplicationSettings
from bulkprov.mockgraph.settings import MALFORMED_KINDS

from .enginekit import aws_manifest, run_engine
from .invariant import check_run

pytestmark = pytest.mark.anyio

# every route the pipeline uses, a few answers each
ROUTES = (
    "templates",
    "instantiate",
    "directory_read",
    "sync_templates",
    "sync_read",
    "job_create",
    "validate",
    "secrets",
    "job_control",
    "audit_logs",
)


def settings(**faults: object) -> MockSettings:
    return MockSettings.quiet(
        time_scale=0.005,
        replication=ReplicationSettings(min_delay=1.0, max_delay=4.0, flap=2.0),
        faults=FaultSettings(**faults),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
async def test_each_malformed_kind_on_every_route_is_survived(kind: str, tmp_path: Path) -> None:
    """Two malformed answers of one kind on every route (fewer than a read's three tries, so
    no instance can be unlucky enough to get them all): every instance still ends done, with
    one application each and the ledger matching the mock."""
    bursts = dict.fromkeys(ROUTES, 2)
    s = settings(seed=21, malformed_kinds=(kind,), malformed_burst=bursts)
    async with MockGraph(s) as mock:
        manifest = aws_manifest(tmp_path / "m.csv", 8)
        result = await run_engine(mock, manifest, tmp_path / "l.jsonl")
        verdict = check_run(mock, manifest, tmp_path / "l.jsonl")
        faults = mock.stats()["faults"]
    assert not verdict.problems, str(verdict)
    assert result.statuses == {"done": 8}, result.failures
    assert faults[f"faults_malformed_{kind}"] >= 8  # every route that has such an answer


async def test_unrecoverable_html_answer_fails_one_instance_clearly(tmp_path: Path) -> None:
    """A portal page answering every try of one instance's read fails that instance at its
    step, naming the request, the page's title and the attempts; the others complete."""
    s = settings(malformed_kinds=("html_200",), malformed_burst={"sync_templates": 18})
    async with MockGraph(s) as mock:
        manifest = aws_manifest(tmp_path / "m.csv", 4)
        result = await run_engine(mock, manifest, tmp_path / "l.jsonl", concurrency=1)
        verdict = check_run(mock, manifest, tmp_path / "l.jsonl")
    assert not verdict.problems, str(verdict)
    assert result.statuses == {"done": 3, "failed": 1}
    (failure,) = result.failures
    assert failure["key"] == "acct-00000" and failure["step"] == "sync_template"
    assert failure["code"] == "InvalidResponse"
    message = failure["message"]
    assert "GET /servicePrincipals/" in message and "/synchronization/templates" in message
    assert "an HTML page titled 'Sign in to continue' (text/html" in message
    assert "after 6 attempts" in message


async def test_job_created_but_answer_without_id_is_adopted(tmp_path: Path) -> None:
    """Creating a job answered 201 without the job's id: the job exists, so the step lists
    the jobs and adopts it instead of failing or creating a second one."""
    s = settings(malformed_kinds=("missing_ids",), malformed_burst={"job_create": 4})
    async with MockGraph(s) as mock:
        manifest = aws_manifest(tmp_path / "m.csv", 4, start=False)
        result = await run_engine(mock, manifest, tmp_path / "l.jsonl", monitor=False)
        verdict = check_run(mock, manifest, tmp_path / "l.jsonl")
        assert mock.stats()["faults"]["faults_malformed_missing_ids"] == 4
    assert not verdict.problems, str(verdict)  # one job per service principal
    assert result.statuses == {"done": 4}, result.failures
    text = (tmp_path / "l.jsonl").read_text()
    assert text.count('"adopted":true') == 4


async def test_instantiate_answer_without_ids_is_reconciled(tmp_path: Path) -> None:
    """instantiate answering without application.id / servicePrincipal.id (or with a proxy's
    502 page) created the objects: they are found and adopted, never created twice."""
    s = settings(malformed_kinds=("missing_ids", "html_502"), malformed_burst={"instantiate": 6})
    async with MockGraph(s) as mock:
        manifest = aws_manifest(tmp_path / "m.csv", 6, start=False)
        result = await run_engine(mock, manifest, tmp_path / "l.jsonl", monitor=False)
        verdict = check_run(mock, manifest, tmp_path / "l.jsonl")
        created = mock.stats()["tenants"][mock.info.tenant_id]["created"]  # type: ignore[union-attr]
    assert not verdict.problems, str(verdict)
    assert result.statuses == {"done": 6}
    assert created["applications"] == 6
    assert (tmp_path / "l.jsonl").read_text().count('"recovered":true') == 6


@pytest.mark.parametrize(
    ("raw", "ctype", "expected"),
    [
        (
            b"<html><head><title>502 Bad\n Gateway</title></head></html>",
            "text/html",
            "an HTML page titled '502 Bad Gateway' (text/html, 57 bytes) instead of Graph's JSON",
        ),
        (
            b"<html><body>oops</body></html>",
            "text/html; charset=utf-8",
            "an HTML page (text/html, 30 bytes) instead of Graph's JSON",
        ),
        (
            b'{"value": [{"id": "a',
            "application/json",
            "JSON that does not parse, cut short or garbled (application/json, 20 bytes)",
        ),
        (b"<p>x</p>", "", "an HTML page (no content type, 8 bytes) instead of Graph's JSON"),
    ],
)
def test_not_json_says_what_came_instead(raw: bytes, ctype: str, expected: str) -> None:
    """An answer that is not JSON is described by its kind, content type and size, and an
    HTML page by its title only (never its body)."""
    assert not_json(raw, {"Content-Type": ctype} if ctype else {}) == expected
