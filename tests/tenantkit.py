"""Ledgers of runs across many tenants for the readers' tests (status, report): the fixture
of one run across three tenants (tests/data/ledger-tenants, see its README.txt), and a ledger
of many tenants made from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bulkprov import cli

FIXTURE = Path(__file__).parent / "data" / "ledger-tenants"
LEDGER = FIXTURE / "ledger.jsonl"
PROFILES = ("contoso", "fabrikam", "tailspin")
#: profile -> its instances and how each ended, as the fixture's README says
ENDED = {
    "contoso": {"c-1": "done", "c-2": "done", "c-3": "done"},
    "fabrikam": {"f-1": "done", "f-2": "done", "f-bad": "failed"},
    "tailspin": {"t-1": "done", "t-2": "done", "t-sso": "quarantined"},
}


def lines(path: Path = LEDGER) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def tenant_ids(path: Path = LEDGER) -> dict[str, str]:
    """profile -> tenant id, as the ledger's header records them."""
    return {p: ref["tenant"] for p, ref in lines(path)[0]["tenants"].items()}


def bulkprov(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``bulkprov ARGS`` in this process: its exit code, stdout and stderr."""
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def many_tenants(path: Path, copies: int) -> Path:
    """A ledger of ``copies`` times the fixture's three tenants (profiles ``contoso-00``, ...,
    each with a tenant id of its own and its instances' keys suffixed the same way), written
    at ``path``; the instances of copy 5 of fabrikam are left unfinished (no final record)."""
    recs = lines()
    header, run, rest = recs[0], recs[1], recs[2:]
    refs = {}
    for n in range(copies):
        for p, ref in header["tenants"].items():
            refs[f"{p}-{n:02d}"] = {"graph": ref["graph"], "tenant": f"{n:08d}{ref['tenant'][8:]}"}
    out = [{**header, "tenants": refs}, {**run, "tenants": refs}]
    for n in range(copies):
        for rec in rest:
            profile = f"{rec['profile']}-{n:02d}"
            if rec["type"] == "instance" and profile == "fabrikam-05":
                continue
            copy = {**rec, "key": f"{rec['key']}-{n:02d}", "profile": profile}
            if "tenant" in rec:
                copy["tenant"] = refs[profile]["tenant"]
            out.append(copy)
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in out))
    return path
