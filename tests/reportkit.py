"""A finished mock run for the report tests: done, failed and quarantined instances, names
that are HTML, and canary secrets."""

from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import anyio
import pytest

from bulkprov.log import configure
from bulkprov.mockgraph import FaultSettings, MockGraph, MockSettings
from bulkprov.run import RunResult

from .enginekit import AWS, KEY_ID, run_engine

SSO = "AWS Single Sign-on"
GOOD_SCIM = "https://scim.us-east-1.amazonaws.com/abc/scim/v2"
HOSTILE = "<script>alert('x')</script> \"quoted\" & <b>bold</b>"


@dataclass(frozen=True, slots=True)
class FinishedRun:
    manifest: Path
    ledger: Path
    result: RunResult
    canaries: tuple[str, ...]  # secret values the run sent: none may be in a report
    failed: frozenset[str]  # keys expected to fail (validate rejects their key)
    quarantined: frozenset[str]  # keys expected to end quarantined (a bad tenant URL)


def write_manifest(directory: Path, n_aws: int, bad_every: int = 7) -> tuple[Path, FinishedRun]:
    """A JSONL manifest: ``n_aws`` AWS accounts (every ``bad_every``-th with a key the target
    rejects) and four SSO apps, two of them with a tenant URL that puts the job in quarantine;
    one SSO app has an HTML display name."""
    (directory / "secrets").mkdir(parents=True, exist_ok=True)
    secret = "Cn4ry/" + secrets.token_hex(17)  # a secret access key the AWS target accepts
    token = "scim-canary-" + secrets.token_hex(12)
    (directory / "secrets" / "key-id").write_text(KEY_ID + "\n")
    (directory / "secrets" / "secret").write_text(secret + "\n")
    (directory / "secrets" / "bad").write_text("not-an-aws-key\n")
    (directory / "secrets" / "tok").write_text(token + "\n")
    rows, failed, quarantined = [], set(), set()
    for i in range(n_aws):
        bad = i % bad_every == 3
        key = f"acct-{i:03d}"
        if bad:
            failed.add(key)
        rows.append(
            {
                "key": key,
                "displayName": f"AWS acct {i:03d}",
                "template": AWS,
                "credentials": {
                    "ClientSecret": "file:secrets/bad" if bad else "file:secrets/key-id",
                    "SecretToken": "file:secrets/secret",
                },
            }
        )
    for i in range(4):
        broken = i % 2 == 0
        key = f"sso-{i}"
        if broken:
            quarantined.add(key)
        rows.append(
            {
                "key": key,
                "displayName": HOSTILE if i == 0 else f"SSO {i}",
                "template": SSO,
                "validate": not broken,
                "credentials": {
                    "BaseAddress": "https://example.com" if broken else GOOD_SCIM,
                    "SecretToken": "file:secrets/tok",
                },
            }
        )
    manifest = directory / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = FinishedRun(
        manifest,
        directory / "runs" / "l.jsonl",
        RunResult(),
        (secret, token),
        frozenset(failed),
        frozenset(quarantined),
    )
    return manifest, plan


def finished_run(directory: Path, n_aws: int = 24) -> FinishedRun:
    """Run the manifest of :func:`write_manifest` to its end against a mock with faults
    (5xx and dropped connections on every route), the ledger in ``runs/`` beside it."""
    configure(console_level="warning")  # a module fixture: logging as an earlier test left it
    manifest, plan = write_manifest(directory, n_aws)
    settings = MockSettings.quiet(
        time_scale=0.01,
        faults=FaultSettings(seed=11, error_rate={"*": 0.02}, drop_rate={"*": 0.005}),
    )

    async def main() -> RunResult:
        async with MockGraph(settings) as mock:
            return await run_engine(mock, manifest, plan.ledger)

    with pytest.MonkeyPatch.context() as mp:  # a module fixture: the key goes to the test's dir
        mp.setenv("BULKPROV_FINGERPRINT_KEY_FILE", str(directory / "fingerprint.key"))
        result = anyio.run(main)
    return dataclasses.replace(plan, result=result)


class Page(HTMLParser):
    """A report page parsed: every tag with its attributes, the text of each element kind,
    and the attention table's rows (kind and cell texts)."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.rows: list[tuple[str, list[str]]] = []  # attention table: (data-kind, cells)
        self.headers: list[str] = []  # attention table's data-col names
        self._in: list[str] = []
        self._table = False
        self._cell: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        self._in.append(tag)
        if tag == "table" and a.get("id") == "attention":
            self._table = True
        elif self._table and tag == "tr" and a.get("data-kind"):
            self.rows.append((str(a["data-kind"]), []))
        elif self._table and tag == "th" and a.get("data-col"):
            self.headers.append(str(a["data-col"]))
        elif self._table and tag == "td" and self.rows:
            self._cell = []
        elif self._cell is not None and tag in ("span", "br", "strong"):
            self._cell.append(" ")  # a line of its own in the cell

    def handle_endtag(self, tag: str) -> None:
        if self._in and self._in[-1] == tag:
            self._in.pop()
        if tag == "table":
            self._table = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1][1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        where = self._in[-1] if self._in else ""
        if where == "script":
            self.scripts.append(data)
        elif where == "style":
            self.styles.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def row(self, key: str) -> dict[str, str]:
        """The attention row of instance ``key``, by column name."""
        for kind, cells in self.rows:
            if cells[self.headers.index("instance")].split(" ")[0] == key:
                return {**dict(zip(self.headers, cells, strict=True)), "data-kind": kind}
        raise KeyError(key)
