"""`bulkprov report` on the ledger of a run across many tenants: a table per tenant (the
worst first, folded past 20), a tenant column and filter in the attention table, --tenant
PROFILE limiting the report, and --live reading each tenant's jobs in its own tenant."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .reportkit import Page
from .tenantkit import ENDED, LEDGER, PROFILES, bulkprov, many_tenants, tenant_ids

K, S = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # AWS's example keys


def card(html: str, label: str) -> str:
    found = re.search(rf'<div class="n">([^<]*)</div><div class="l">{re.escape(label)}', html)
    assert found, label
    return found.group(1)


def tenant_table(html: str) -> list[tuple[str, str, list[str]]]:
    """The rows of the table per tenant, folded ones too: (tenant, tenant id, figures)."""
    rows = []
    for table in re.findall(r"<table class='breakdown tenants'>.*?</table>", html, re.S):
        for tr in re.findall(r"<tr><td>.*?</tr>", table, re.S):
            cells = re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)
            rows.append((cells[0], cells[1], cells[2:-1]))
    return rows


def report(capsys: pytest.CaptureFixture[str], out: Path, *args: str) -> str:
    code, _out, err = bulkprov(capsys, "report", *args, "--out", str(out))
    assert code == 0, err
    return out.read_text(encoding="utf-8")


def test_a_table_per_tenant_the_worst_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    html = report(capsys, tmp_path / "r.html", str(LEDGER))
    assert "tenants <code>3 tenants (profiles contoso, fabrikam, tailspin)</code>" in html
    assert "tenant <code>?</code>" not in html
    assert card(html, "instances") == "9"
    ids = tenant_ids()
    rows = tenant_table(html)
    assert [r[0] for r in rows] == ["fabrikam", "tailspin", "contoso"]  # done last
    assert {r[0]: r[1] for r in rows} == ids
    # instances, done, quarantined, failed, not yet done, median time, makespan
    by_name = {r[0]: r[2] for r in rows}
    assert by_name["fabrikam"][:5] == ["3", "2", "0", "1", "0"]
    assert by_name["tailspin"][:5] == ["3", "2", "1", "0", "0"]
    assert by_name["contoso"][:5] == ["3", "3", "0", "0", "0"]
    assert all(r[2][6].endswith(" s") for r in rows), rows  # a makespan each
    assert "3 tenants: 1 with every instance done, 2 with instances failed or quarantined" in html
    assert html.index("<h3>per tenant</h3>") < html.index("<h3>per template</h3>")


def test_the_attention_table_has_a_tenant_column_and_filter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    html = report(capsys, tmp_path / "r.html", str(LEDGER))
    page = Page(html)
    assert "tenant" in page.headers
    ids = tenant_ids()
    assert page.row("f-bad")["tenant"] == f"fabrikam {ids['fabrikam']}"
    assert page.row("t-sso")["tenant"] == f"tailspin {ids['tailspin']}"
    rows = {a.get("data-tenant") for tag, a in page.tags if tag == "tr" and a.get("data-kind")}
    assert rows == {"fabrikam", "tailspin"}
    options = [a.get("value") for tag, a in page.tags if tag == "option"]
    assert options == ["", "fabrikam", "tailspin"]
    assert 'id="filter-tenant"' in html and "params.tenant" in "".join(page.scripts)


def test_tenant_limits_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    html = report(capsys, tmp_path / "r.html", str(LEDGER), "--tenant", "fabrikam")
    assert "tenants <code>1 tenant (profile fabrikam) of 3</code>" in html
    assert card(html, "instances") == "3"
    assert card(html, "failed") == "1" and card(html, "quarantined") == "0"
    page = Page(html)
    assert [cells[1].split(" ")[0] for _kind, cells in page.rows] == ["f-bad"]
    assert "tenant" not in page.headers and 'id="filter-tenant"' not in html
    assert tenant_table(html) == []  # one tenant: no table of them
    assert not any(f">{key}<" in html for key in ENDED["contoso"] | ENDED["tailspin"])
    # the manifest's lines of the other tenants are not added either
    assert "m.csv:2" not in html and "m.csv:7" in html


def test_two_tenants_of_three(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    html = report(
        capsys, tmp_path / "r.html", str(LEDGER), "--tenant", "contoso", "--tenant", "tailspin"
    )
    assert card(html, "instances") == "6"
    assert [r[0] for r in tenant_table(html)] == ["tailspin", "contoso"]


def test_an_unknown_profile_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.html"
    code, _out, err = bulkprov(capsys, "report", str(LEDGER), "--out", str(out), "--tenant", "x")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "has no tenant of profile 'x'; its profiles: contoso, fabrikam, tailspin" in err
    assert not out.exists()
    one = LEDGER.parent.parent / "ledger-0.2.0" / "ledger.jsonl"
    code, _out, err = bulkprov(capsys, "report", str(one), "--out", str(out), "--tenant", "x")
    assert code == 2 and "a run of one tenant: leave --tenant out" in err
    assert err.count("\n") == 1 and not out.exists()


def test_twenty_four_tenants_fold_past_twenty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """24 tenants: the 20 worst in the table (the unfinished one, then the 16 with a failed
    or quarantined instance), the others folded below it, all done."""
    ledger = many_tenants(tmp_path / "many.jsonl", 8)
    html = report(capsys, tmp_path / "r.html", str(ledger))
    rows = tenant_table(html)
    assert len(rows) == 24
    assert rows[0][0] == "fabrikam-05" and rows[0][2][4] == "3"  # 3 not yet done
    names = [r[0] for r in rows]
    # then one failed each (by name), one quarantined each, and the ones all done
    assert names[1:8] == [f"fabrikam-{n:02d}" for n in range(8) if n != 5]
    assert names[8:16] == [f"tailspin-{n:02d}" for n in range(8)]
    assert names[16:] == [f"contoso-{n:02d}" for n in range(8)]
    folded = html[html.index("<details>") :]
    assert "<summary>4 more tenants (4 with every instance done)</summary>" in folded
    assert (
        "24 tenants: 8 with every instance done, 15 with instances failed or quarantined, " in html
    )
    assert card(html, "instances") == "72"


@pytest.mark.parametrize("only", [(), ("tailspin",)])
def test_live_reads_each_tenants_jobs_in_its_tenant(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    only: tuple[str, ...],
) -> None:
    """A real `run --mock` across three tenants, then `report --live --mock`: each profile's
    jobs are read in its own tenant of the kept mock, and --tenant reads that tenant's alone."""
    monkeypatch.setenv("K", K)
    monkeypatch.setenv("S", S)
    monkeypatch.setenv("BULKPROV_FINGERPRINT_KEY_FILE", str(tmp_path / "fingerprint.key"))
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "key,displayName,template,profile,cred.ClientSecret,cred.SecretToken\n"
        + "".join(
            f"{p[0]}-{n},{p} {n},AWS Single-Account Access,{p},env:K,env:S\n"
            for p in PROFILES
            for n in range(2)
        )
    )
    ledger = tmp_path / "l.jsonl"
    code, _out, err = bulkprov(
        capsys, "run", str(manifest), "--mock", "--ledger", str(ledger), "--time-scale", "0.005"
    )
    assert code == 0, err
    args = [a for p in only for a in ("--tenant", p)]
    html = report(capsys, tmp_path / "r.html", str(ledger), "--live", "--mock", *args)
    n = 2 * (len(only) or len(PROFILES))
    assert f"Jobs now: {n} Active" in html, html  # (a job may log a failure: said after)
    assert S not in html and K not in html
    if only:
        return
    # a ledger that records another tenant for a profile than the mock serves it: refused
    ids = tenant_ids(ledger)
    raw = ledger.read_bytes().replace(
        ids["contoso"].encode(), b"0" * 8 + ids["contoso"][8:].encode()
    )
    ledger.write_bytes(raw)
    out = tmp_path / "moved.html"
    code, _out, err = bulkprov(capsys, "report", str(ledger), "--out", str(out), "--live", "--mock")
    assert code == 2 and err.count("\n") == 1, err
    assert "records profile 'contoso' as tenant '00000000" in err and not out.exists()


def test_live_takes_a_ledger_of_many_tenants_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.jsonl"
    other.write_bytes(LEDGER.read_bytes())
    out = tmp_path / "r.html"
    code, _out, err = bulkprov(
        capsys, "report", str(LEDGER), str(other), "--out", str(out), "--live", "--mock"
    )
    assert code == 2 and err.count("\n") == 1, err
    assert "give that ledger alone" in err and not out.exists()
