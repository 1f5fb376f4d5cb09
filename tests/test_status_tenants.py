"""`bulkprov status` on the ledger of a run across many tenants: the tenants named, counted
and listed per instance, --tenant PROFILE limiting every figure, and the JSON of both."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from .tenantkit import ENDED, FIXTURE, LEDGER, PROFILES, bulkprov, many_tenants, tenant_ids


def test_the_header_names_the_tenants_and_a_table_counts_each(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = bulkprov(capsys, "status", str(LEDGER))
    assert code == 0, err
    first = " ".join(" ".join(out.split("\n", 2)[:2]).split())  # it may wrap at the width
    assert "3 tenants (profiles contoso, fabrikam, tailspin)" in first, out
    assert "tenant None" not in out
    assert "instances by tenant" in out
    ids = tenant_ids()
    for profile in PROFILES:
        row = next(line for line in out.splitlines() if f"│ {profile} " in line)
        assert ids[profile][:8] in row, row
    # the instances not done, each with its profile
    bad = next(line for line in out.splitlines() if "f-bad" in line)
    quar = next(line for line in out.splitlines() if "t-sso" in line)
    assert "fabrikam" in bad and "failed" in bad
    assert "tailspin" in quar and "quarantined" in quar


def test_all_lists_every_instance_with_its_profile(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = bulkprov(capsys, "status", str(LEDGER), "--all")
    assert code == 0, err
    assert "┃ profile" in out
    for profile, ended in ENDED.items():
        for key, status in ended.items():
            row = next(line for line in out.splitlines() if f"│ {key} " in line)
            assert profile in row and status in row, row


def test_tenant_limits_every_figure_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = bulkprov(capsys, "status", str(LEDGER), "--tenant", "fabrikam", "--all")
    assert code == 0, err
    assert "1 tenant (profile fabrikam) of 3, 1 run(s), 3" in " ".join(out.split())
    assert "f-bad" in out and "f-1" in out
    assert not any(k in out for k in ("c-1", "t-1", "t-sso", "contoso", "tailspin"))


def test_json_has_each_tenant_and_each_instance_its_profile(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = bulkprov(capsys, "status", str(LEDGER), "--json")
    assert code == 0, err
    summary = orjson.loads(out)
    ids = tenant_ids()
    assert summary["tenants"] == {
        p: {
            "tenant": ids[p],
            "graph": "mock:embedded",
            "instances": 3,
            "statuses": {
                s: sum(1 for v in ENDED[p].values() if v == s) for s in set(ENDED[p].values())
            },
        }
        for p in PROFILES
    }
    assert summary["instances"] == 9
    assert summary["statuses"] == {"done": 7, "failed": 1, "quarantined": 1}
    assert {r["key"]: r["profile"] for r in summary["rows"]} == {
        key: p for p, ended in ENDED.items() for key in ended
    }


def test_json_of_two_tenants_of_three(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = bulkprov(
        capsys, "status", str(LEDGER), "--json", "--tenant", "tailspin", "--tenant", "contoso"
    )
    assert code == 0, err
    summary = orjson.loads(out)
    assert sorted(summary["tenants"]) == ["contoso", "tailspin"]
    assert summary["instances"] == 6
    assert summary["statuses"] == {"done": 5, "quarantined": 1}
    assert {r["profile"] for r in summary["rows"]} == {"contoso", "tailspin"}
    assert summary["stepsDone"]["instantiate"] == 6


def test_an_unknown_profile_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = bulkprov(capsys, "status", str(LEDGER), "--tenant", "nope")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "has no tenant of profile 'nope'" in err
    assert "contoso, fabrikam, tailspin" in err


def test_tenant_with_a_ledger_of_one_tenant_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    one = FIXTURE.parent / "ledger-0.2.0" / "ledger.jsonl"
    code, _out, err = bulkprov(capsys, "status", str(one), "--tenant", "contoso")
    assert code == 2 and err.count("\n") == 1
    assert "a run of one tenant: leave --tenant out" in err
    # and without --tenant its summary has neither tenants nor profiles (as it always had)
    code, out, err = bulkprov(capsys, "status", str(one), "--json")
    assert code == 0, err
    summary = orjson.loads(out)
    assert "tenants" not in summary
    assert all("profile" not in r for r in summary["rows"])


def test_many_tenants_are_all_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A ledger of 24 tenants: the header names three and how many more, the table lists
    all, and the tenant whose instances have no final record counts them in progress."""
    ledger = many_tenants(tmp_path / "many.jsonl", 8)
    code, out, err = bulkprov(capsys, "status", str(ledger))
    assert code == 0, err
    assert "24 tenants (profiles contoso-00, contoso-01, contoso-02 and 21 more)" in " ".join(
        out.split()
    )
    code, out, err = bulkprov(capsys, "status", str(ledger), "--json")
    tenants = orjson.loads(out)["tenants"]
    assert len(tenants) == 24
    assert tenants["fabrikam-05"]["statuses"] == {"in progress": 3}
    assert tenants["fabrikam-04"]["statuses"] == {"done": 2, "failed": 1}
