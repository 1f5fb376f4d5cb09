"""``bulkprov report``: a mock run with failures and quarantines as one self-contained page."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import anyio
import orjson
import pytest

from bulkprov import cli
from bulkprov import ledger as ledger_mod
from bulkprov.mockgraph import JobSettings, MockGraph, MockSettings
from bulkprov.mockgraph.server import write_info
from bulkprov.redact import Redactor
from bulkprov.report.model import read
from bulkprov.report.render import render
from bulkprov.report.svg import Race

from .enginekit import aws_manifest, run_engine
from .graphclient import PlainGraph
from .opskit import break_target, wait_for_job
from .opskit import cli as cli_process
from .reportkit import HOSTILE, FinishedRun, Page, finished_run

AWS_INVALID = "AWSInvalidCredentials"
SCIM_INVALID = "SystemForCrossDomainIdentityManagementInvalidCredentials"
URL_ATTRS = (
    "src",
    "href",
    "action",
    "formaction",
    "xlink:href",
    "poster",
    "data",
    "srcset",
    "background",
    "ping",
    "cite",
    "manifest",
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    return finished_run(tmp_path_factory.mktemp("report"))


def report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``bulkprov report ARGS`` in this process: its exit code and what it printed."""
    code = cli.main(["report", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture(scope="module")
def html(run: FinishedRun, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("page") / "report.html"
    assert cli.main(["report", str(run.ledger), "--out", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    return out.read_text(encoding="utf-8")


def card(html: str, label: str) -> str:
    found = re.search(rf'<div class="n">([^<]*)</div><div class="l">{re.escape(label)}', html)
    assert found, label
    return found.group(1)


class TestPage:
    def test_headline_counts_what_the_run_did(self, run: FinishedRun, html: str) -> None:
        """The headline's done, quarantined and failed counts are the run's."""
        s = run.result.statuses
        assert s["failed"] == len(run.failed) and s["quarantined"] == len(run.quarantined)
        assert card(html, "instances") == str(run.result.total)
        assert card(html, "done") == str(s["done"])
        assert card(html, "quarantined") == str(s["quarantined"])
        assert card(html, "failed") == str(s["failed"])
        assert card(html, "not yet done") == "0"
        assert card(html, "wall time, 1 run(s)").endswith("s")

    def test_attention_table_lists_failures_and_quarantines(
        self, run: FinishedRun, html: str
    ) -> None:
        """Every failed instance is listed with its step, code, Graph request id and manifest
        line, every quarantined one with its reason, code and next attempt; nothing else."""
        page = Page(html)
        listed = {
            (kind, cells[page.headers.index("instance")].split(" ")[0]) for kind, cells in page.rows
        }
        assert listed == {("failed", k) for k in run.failed} | {
            ("quarantined", k) for k in run.quarantined
        }
        replay = ledger_mod.read(run.ledger)
        lines = {
            json.loads(text)["key"]: n
            for n, text in enumerate(run.manifest.read_text().splitlines(), start=1)
        }
        for key in run.failed:
            row = page.row(key)
            error = (replay.instances[key].final or {})["error"]
            assert (row["step"], row["code"]) == ("validate", AWS_INVALID)
            assert row["request"] == error["requestId"] and row["request"]
            assert "rejected the credentials" in row["reason"]
            assert row["manifest"] == f"m.jsonl:{lines[key]}"
        for key in run.quarantined:
            row = page.row(key)
            assert row["code"] == SCIM_INVALID and row["step"] == ""
            assert row["reason"].startswith("EncounteredQuarantineException")
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", row["next"])
            assert row["manifest"] == f"m.jsonl:{lines[key]}"
        assert "drift" not in page.headers and "tenant" not in page.headers  # nothing to show

    def test_the_page_loads_nothing_from_anywhere(self, html: str) -> None:
        """No src or href reaches another host (only data: and #), the style sheet and the
        script are inline, and the page's Content-Security-Policy allows nothing else."""
        page = Page(html)
        for tag, attrs in page.tags:
            for name in URL_ATTRS:
                value = attrs.get(name)
                assert value is None or value.startswith(("data:", "#")), (tag, name, value)
            assert not any(
                str(v or "").lower().startswith(("http:", "https:", "//")) for v in attrs.values()
            ), (tag, attrs)
        assert [t for t, _ in page.tags].count("script") == 1
        assert [t for t, _ in page.tags].count("style") == 1
        style, script = "".join(page.styles), "".join(page.scripts)
        assert "url(" not in style and "@import" not in style and "@font-face" not in style
        csp = next(
            a["content"]
            for t, a in page.tags
            if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
        )
        assert csp is not None and "default-src 'none'" in csp

        def sha(text: str) -> str:
            return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

        assert f"style-src 'sha256-{sha(style)}'" in csp
        assert f"script-src 'sha256-{sha(script)}'" in csp

    def test_names_from_users_are_text(self, html: str) -> None:
        """A display name that is HTML is shown as text: escaped in the page, read back
        whole, and it adds no element."""
        assert HOSTILE not in html and "<b>bold</b>" not in html
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
        page = Page(html)
        assert [t for t, _ in page.tags].count("b") == 0
        assert HOSTILE in page.row("sso-0")["instance"]

    def test_no_canary_secret_in_the_page(self, run: FinishedRun, html: str) -> None:
        """The secrets the run sent are nowhere in the page, in no encoded form."""
        for secret in run.canaries:
            for form in (
                secret,
                quote(secret, safe=""),
                secret.replace("/", "\\/"),
                base64.b64encode(secret.encode()).decode().rstrip("="),
                secret[:12],
            ):
                assert form not in html, form

    def test_time_per_step_and_race_plot(self, run: FinishedRun, html: str) -> None:
        """Each step the run took has a row in the chart and the table (validate with its
        errors), one step is marked slowest, and the race plot has the quota's line."""
        for step in (
            "instantiate",
            "replicate",
            "sync_template",
            "job",
            "validate",
            "secrets",
            "start",
            "monitor",
        ):
            assert f"<tr><td>{step}</td>" in html
        validate = re.search(
            r"<tr><td>validate</td><td class='num'>(\d+)</td>"
            r"<td class='num'>(\d+)</td>",
            html,
        )
        assert validate and int(validate.group(2)) == len(run.failed)
        assert html.count("(slowest)</text>") == 1
        assert '<polyline class="line bound"' in html and 'class="line c-fail-s"' in html
        assert "writes per instance as this run sent them" in html

    def test_breakdown_per_template(self, run: FinishedRun, html: str) -> None:
        """The per-template table counts each template's instances by outcome."""
        rows = re.findall(r"<tr><td>(AWS [^<]*)</td>((?:<td class='num'>[^<]*</td>){6})", html)
        counts = {name: re.findall(r">([^<]*)<", cells)[::2] for name, cells in rows}
        n_aws = run.result.total - 4
        assert counts["AWS Single-Account Access"][:4] == [
            str(n_aws),
            str(n_aws - len(run.failed)),
            "0",
            str(len(run.failed)),
        ]
        assert counts["AWS Single Sign-on"][:4] == ["4", "2", "2", "0"]
        assert "per tenant" not in html


def test_the_write_quota_bound() -> None:
    """The bound: the bucket's burst at once, then its refill, never more than the run's
    instances; when it lets the last one finish."""
    race = Race(
        label="r",
        finished=[1.0] * 900,
        failed=[2.0] * 100,
        set_up=[0.5] * 900,
        burst=3000,
        rate=20,
        per_instance=5,
    )
    assert race.bound(0) == 600 and race.bound(10) == 640 and race.bound(1e6) == 1000
    assert race.bound_reaches_all() == 100
    small = dataclasses.replace(race, finished=[1.0] * 10, failed=[], set_up=[0.5] * 10)
    assert small.bound(0) == 10 and small.bound_reaches_all() == 0


def test_writes_per_instance_are_read_from_the_ledger(run: FinishedRun) -> None:
    """The quota line is drawn at the writes the run's steps sent per instance: about five
    (instantiate, job, validate, secrets, start), three for the failed ones."""
    rep = read([run.ledger])
    (ledger,) = rep.ledgers
    (r,) = ledger.runs
    assert len(r.finished) == run.result.total
    assert 4.0 <= r.writes / len(r.finished) <= 6.5


def _doctored(
    run: FinishedRun,
    tmp_path: Path,
    *records: dict[str, object],
    header: dict[str, object] | None = None,
) -> Path:
    lines = run.ledger.read_bytes().splitlines()
    if header is not None:
        lines[0] = orjson.dumps({**orjson.loads(lines[0]), **header})
    path = tmp_path / "runs" / f"doctored-{len(list(tmp_path.glob('runs/*')))}.jsonl"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"\n".join([*lines, *(orjson.dumps(r) for r in records)]) + b"\n")
    return path


def test_a_secret_in_a_message_is_masked(run: FinishedRun, tmp_path: Path) -> None:
    """Messages pass through the redactor: a ledger message holding a registered secret (as
    an older bulkprov could have written it) shows masked."""
    secret = run.canaries[0]
    path = _doctored(
        run,
        tmp_path,
        {"type": "step", "t": 1.0, "key": "leaky", "step": "secrets", "event": "start"},
        {
            "type": "step",
            "t": 2.0,
            "key": "leaky",
            "step": "secrets",
            "event": "error",
            "ms": 5,
            "code": "X",
            "message": f"the target said key={quote(secret, safe='')}",
        },
    )
    red = Redactor()
    red.add(secret)
    page = render(read([path]), redactor=red)
    assert secret not in page and quote(secret, safe="") not in page
    assert "key=*****" in Page(page).row("leaky")["reason"]


def test_drift_column_only_with_drift_records(run: FinishedRun, tmp_path: Path) -> None:
    """A ledger with drift results shows a drift column and lists the drifted instances."""
    path = _doctored(
        run,
        tmp_path,
        {
            "type": "drift",
            "t": 3.0,
            "key": "acct-000",
            "drifted": True,
            "fields": ["scopingFilter"],
        },
    )
    page = Page(render(read([path])))
    assert "drift" in page.headers
    row = page.row("acct-000")
    assert row["data-kind"] == "drifted" and row["drift"] == "drifted: scopingFilter"


def test_several_tenants(
    run: FinishedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The ledgers of two tenants make one report with a tenant column and a breakdown per
    tenant."""
    other = _doctored(run, tmp_path, header={"tenant": "00000000-0000-0000-0000-00000000beef"})
    out = tmp_path / "two.html"
    code, said = report(capsys, str(run.ledger), str(other), "--out", str(out))
    assert code == 0, said
    html = out.read_text()
    assert card(html, "instances") == str(2 * run.result.total)
    assert "<h3>per tenant</h3>" in html and "00000000beef" in html
    assert "tenant" in Page(html).headers


def test_requests_and_429s_from_the_run_summary(
    run: FinishedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The run's --summary-json gives the headline its requests and 429s."""
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"client": {"requests": 1234, "throttled": 56, "retries": 7}}))
    out = tmp_path / "r.html"
    code, said = report(capsys, str(run.ledger), "--out", str(out), "--summary-json", str(summary))
    assert code == 0, said
    html = out.read_text()
    assert card(html, "requests") == "1,234" and card(html, "429s") == "56"


@pytest.mark.parametrize(
    ("case", "phrase"),
    [
        ("missing", "no ledger at"),
        ("not a ledger", "is not a bulkprov ledger"),
        ("out is a directory", "is a directory"),
        ("bad summary", "is not a run summary"),
        ("out is the ledger", "is an input of the report"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], run: FinishedRun, case: str, phrase: str
) -> None:
    """A missing or foreign ledger, an --out that is a directory or the ledger itself, a file
    that is no run summary: one line naming it, exit 2, no page written, the ledger as it
    was."""
    (tmp_path / "notes.jsonl").write_text('{"hello": 1}\n')
    (tmp_path / "dir").mkdir()
    args = {
        "missing": [str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "r.html")],
        "not a ledger": [str(tmp_path / "notes.jsonl"), "--out", str(tmp_path / "r.html")],
        "out is a directory": [str(run.ledger), "--out", str(tmp_path / "dir")],
        "bad summary": [
            str(run.ledger),
            "--out",
            str(tmp_path / "r.html"),
            "--summary-json",
            str(tmp_path / "notes.jsonl"),
        ],
        "out is the ledger": [str(run.ledger), "--out", str(run.ledger)],
    }[case]
    before = run.ledger.read_bytes()
    code, said = report(capsys, *args)
    assert code == 2 and phrase in said, said
    assert said.startswith("bulkprov: error:") and said.count("\n") == 1
    assert not (tmp_path / "r.html").exists()
    assert run.ledger.read_bytes() == before


def test_the_cli_imports_the_report_only_to_run_it() -> None:
    """Importing the CLI imports nothing of the report; building every command's parser
    imports the report's arguments only (no model, no rendering)."""
    code = (
        "import sys, bulkprov.cli as c; before = 'bulkprov.report' in sys.modules; "
        "c.build_parser(complete=True); print(before, sorted(m for m in sys.modules "
        "if m.startswith('bulkprov.report')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False ['bulkprov.report']"


class TestLive:
    @pytest.fixture
    def mock_settings(self) -> MockSettings:
        # incremental cycles every 30 Graph seconds, so a broken target shows within a second
        return MockSettings.quiet(time_scale=0.01, jobs=JobSettings(max_interval=30.0))

    @pytest.mark.anyio
    async def test_live_shows_each_jobs_state_now(
        self, mock: MockGraph, graph: PlainGraph, tmp_path: Path
    ) -> None:
        """--live reads each job as monitor does: a job that fell into quarantine after the
        run is listed with its state now; the connection's secret is not in the page."""
        ledger = tmp_path / "l.jsonl"
        result = await run_engine(mock, aws_manifest(tmp_path / "m.csv", 3), ledger)
        assert result.statuses["done"] == 3, result.failures[:3]
        ids = ledger_mod.read(ledger).instances["acct-00001"].ids
        await break_target(graph, ids["servicePrincipalId"])
        await wait_for_job(
            graph, ids["servicePrincipalId"], ids["jobId"], lambda s: s.get("code") == "Quarantine"
        )
        out = tmp_path / "live.html"
        code, _stdout, err = await cli_process(
            mock, tmp_path, "report", str(ledger), "--out", str(out), "--live"
        )
        assert code == 0, err
        html = out.read_text()
        page = Page(html)
        assert "live" in page.headers and "manifest" in page.headers
        row = page.row("acct-00001")
        assert row["data-kind"] == "job"
        assert row["live"].startswith("Quarantine") and row["code"] == AWS_INVALID
        assert row["reason"] == "EncounteredQuarantineException" and row["next"]
        assert row["manifest"] == "m.csv:3"
        assert [k for k, _ in page.rows] == ["job"]  # the healthy ones need no attention
        assert "Jobs now: 2 Active, 1 Quarantine" in html
        assert mock.info is not None and mock.info.client_secret not in html

    @pytest.mark.anyio
    async def test_live_without_a_graph_is_one_line_and_exit_2(
        self, mock: MockGraph, tmp_path: Path
    ) -> None:
        """A Graph (its token endpoint) that cannot be reached stops --live at once with one
        line and exit 2, and no page is written."""
        ledger = tmp_path / "l.jsonl"
        result = await run_engine(mock, aws_manifest(tmp_path / "m.csv", 1), ledger, monitor=False)
        assert result.statuses["done"] == 1
        assert mock.info is not None
        live = tmp_path / "live.json"
        write_info(live, mock.info)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        mine = mock.info.graph_url.rsplit(":", 1)[1].split("/")[0]
        dead = tmp_path / "dead.json"
        dead.write_text(live.read_text().replace(f":{mine}", f":{port}"))
        dead.chmod(0o600)
        out = tmp_path / "r.html"
        proc = await anyio.run_process(
            [
                sys.executable,
                "-m",
                "bulkprov.cli",
                "report",
                str(ledger),
                "--out",
                str(out),
                "--live",
                "--mock-info",
                str(dead),
            ],
            check=False,
        )
        err = proc.stderr.decode()
        assert proc.returncode == 2, err
        assert err.startswith("bulkprov: error: cannot reach the token endpoint")
        assert err.count("\n") == 1 and "Traceback" not in err
        assert not out.exists()


def test_a_torn_last_line_is_left_out(
    run: FinishedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ledger whose last line was torn by a kill is reported without it, and says so."""
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(run.ledger.read_bytes() + b'{"type":"instance","key":"acct-0')
    out = tmp_path / "r.html"
    code, said = report(capsys, str(torn), "--out", str(out))
    assert code == 0, said
    html = out.read_text()
    assert card(html, "instances") == str(run.result.total)
    assert "its last line is torn" in html


def test_live_reads_one_tenant(
    run: FinishedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--live with the ledgers of two tenants is refused before any connection."""
    other = _doctored(run, tmp_path, header={"tenant": "00000000-0000-0000-0000-00000000beef"})
    code, said = report(
        capsys, str(run.ledger), str(other), "--out", str(tmp_path / "r.html"), "--live"
    )
    assert code == 2 and "--live reads one tenant's jobs" in said, said
