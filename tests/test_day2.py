"""Day 2 over real HTTPS on the mock: a finished ledger whose manifest changed gets only the
steps the change needs, nothing re-created."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bulkprov import ledger as ledger_mod
from bulkprov.mockgraph import MockGraph

from .enginekit import aws_manifest, run_engine, tenant_stats, write_secrets

pytestmark = pytest.mark.anyio

NEW_ID = "AKIAI44QH8DHBEXAMPLE"
NEW_SECRET = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"


def _sp_of(mock: MockGraph, ledger: Path, key: str) -> object:
    st = ledger_mod.read(ledger).instances[key]
    tenant = next(iter(mock.service.tenants.values()))
    return tenant.service_principals[st.ids["servicePrincipalId"]]


VALIDATE = "POST /servicePrincipals/{id}/synchronization/jobs/{jobId}/validateCredentials"
SECRETS = "PUT /servicePrincipals/{id}/synchronization/secrets"


def _writes(routes: dict[str, int]) -> dict[str, int]:
    """The Graph writes among ``routes`` (a token request is none)."""
    return {
        r: n
        for r, n in routes.items()
        if r.split()[0] in ("POST", "PUT", "PATCH", "DELETE") and "oauth2" not in r
    }


def _by_route(mock: MockGraph) -> dict[str, int]:
    return {r: sum(c.values()) for r, c in mock.stats()["byRoute"].items()}


async def test_rotate_the_credentials_of_50_instances(mock: MockGraph, tmp_path: Path) -> None:
    manifest = aws_manifest(tmp_path / "m.csv", 50)
    ledger = tmp_path / "l.jsonl"
    first = await run_engine(mock, manifest, ledger)
    assert first.statuses["done"] == 50, first.failures[:3]
    mock.service.requests.clear()
    write_secrets(tmp_path / "secrets", NEW_ID, NEW_SECRET)
    second = await run_engine(mock, manifest, ledger)
    assert second.statuses["done"] == 50 and second.skipped == 0, second.failures[:3]
    routes = _by_route(mock)
    assert routes.pop(VALIDATE) == 50 and routes.pop(SECRETS) == 50  # two writes each
    assert not _writes(routes), routes  # and no other: nothing re-created
    t = tenant_stats(mock)
    assert t["applications"] == 50 and t["duplicates"] == 0
    sp = _sp_of(mock, ledger, "acct-00007")
    assert sp.secrets["ClientSecret"] == NEW_ID  # type: ignore[attr-defined]
    text = ledger.read_text()
    assert NEW_SECRET not in text and NEW_ID not in text
    mock.service.requests.clear()
    third = await run_engine(mock, manifest, ledger)  # nothing differs now
    assert third.skipped == 50
    assert not _writes(_by_route(mock))


def _set_start(manifest: Path, start: bool) -> None:
    rows = list(csv.reader(manifest.read_text(encoding="utf-8").splitlines()))
    for row in rows[1:]:
        row[5] = str(start).lower()
    with manifest.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)


async def test_start_false_pauses_and_true_starts(mock: MockGraph, tmp_path: Path) -> None:
    """start true -> false pauses each job (one write each), nothing else is written; back to
    true starts each again."""
    manifest = aws_manifest(tmp_path / "m.csv", 5)
    ledger = tmp_path / "l.jsonl"
    assert (await run_engine(mock, manifest, ledger)).statuses["done"] == 5
    _set_start(manifest, False)
    mock.service.requests.clear()
    result = await run_engine(mock, manifest, ledger)
    assert result.statuses["done"] == 5, result.failures[:3]
    writes = _writes(_by_route(mock))
    assert writes == {
        "POST /servicePrincipals/{id}/synchronization/jobs/{jobId}/pause": 5,
    }
    assert tenant_stats(mock)["jobStatus"] == {"Paused": 5}
    # paused behind bulkprov's back after start true again: the run starts what is not running
    _set_start(manifest, True)
    mock.service.requests.clear()
    assert (await run_engine(mock, manifest, ledger)).statuses["done"] == 5
    assert _writes(_by_route(mock)) == {
        "POST /servicePrincipals/{id}/synchronization/jobs/{jobId}/start": 5
    }
    assert tenant_stats(mock)["jobStatus"] == {"Active": 5}


async def test_the_drift_control_changes_a_tenant(mock: MockGraph, tmp_path: Path) -> None:
    """POST /_mock/control {"action": "drift"} pauses a job behind bulkprov's back."""
    import ssl

    import httpx

    manifest = aws_manifest(tmp_path / "m.csv", 2)
    ledger = tmp_path / "l.jsonl"
    assert (await run_engine(mock, manifest, ledger)).statuses["done"] == 2
    sp_id = ledger_mod.read(ledger).instances["acct-00001"].ids["servicePrincipalId"]
    info = mock.info
    assert info is not None
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=info.ca_file)) as http:
        base = info.graph_url
        r = await http.post(
            f"{base}/_mock/control",
            content=json.dumps({"action": "drift", "servicePrincipalId": sp_id, "change": "pause"}),
        )
        assert r.status_code == 200, r.text
        bad = await http.post(
            f"{base}/_mock/control",
            content=json.dumps(
                {"action": "drift", "servicePrincipalId": sp_id, "change": "explode"}
            ),
        )
        assert bad.status_code == 400
    assert tenant_stats(mock)["jobStatus"] == {"Active": 1, "Paused": 1}
