"""A run across many tenants: a manifest whose rows name profiles runs every tenant at once,
each with its own client; the ledger records each instance's profile and each profile's
tenant, resumes without duplicates, and refuses a row whose profile moved."""

from __future__ import annotations

import asyncio
import csv
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from bulkprov import ledger as ledger_mod
from bulkprov.client import GraphClient
from bulkprov.errors import LedgerError, ManifestError
from bulkprov.limiter import AppPaces
from bulkprov.mockgraph import MockGraph
from bulkprov.mockgraph.server import write_profiles
from bulkprov.mockgraph.settings import MockSettings
from bulkprov.run import Runner, RunResult, Tenant
from bulkprov.settings import ClientSettings, ConnectionSettings, Credential, Quota, RunSettings

from .enginekit import AWS, run_engine, write_secrets

pytestmark = pytest.mark.anyio

PROFILES = ("contoso", "fabrikam", "northwind")


@pytest.fixture
def mock_settings() -> MockSettings:
    return MockSettings.quiet(time_scale=0.01, tenants=3)


def manifest(path: Path, rows: Sequence[tuple[str, str | None]], *, name: str = "AWS") -> Path:
    """One AWS instance per (key, profile); the display names repeat across tenants, as an
    MSP's do (each tenant has its own "AWS 1")."""
    write_secrets(path.parent / "secrets")
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["key", "displayName", "template", "profile", "cred.ClientSecret", "cred.SecretToken"]
        )
        seen: dict[str | None, int] = {}
        for key, profile in rows:
            n = seen[profile] = seen.get(profile, -1) + 1  # the row's number in its tenant
            w.writerow(
                [
                    key,
                    f"{name} {n}",
                    AWS,
                    profile or "",
                    "file:secrets/key-id",
                    "file:secrets/secret",
                ]
            )
    return path


def spread(per: int = 4, profiles: Sequence[str] = PROFILES) -> list[tuple[str, str | None]]:
    """``per`` rows for each profile, interleaved."""
    return [(f"{p}-{i}", p) for i in range(per) for p in profiles]


def conn(mock: MockGraph, tenant: str) -> ConnectionSettings:
    info = mock.info
    assert info is not None
    return ConnectionSettings(
        graph_url=info.graph_url,
        authority_host=info.authority_host,
        tenant_id=tenant,
        client_id=info.client_id,
        credential=Credential(client_secret=info.client_secret),
        ca_file=Path(info.ca_file),
    )


@asynccontextmanager
async def tenants(
    mock: MockGraph, quotas: dict[str, Quota] | None = None
) -> AsyncIterator[list[Tenant]]:
    """One client per profile, on the mock's tenants in order; ``quotas``: a profile's
    client-side write quota."""
    assert mock.info is not None
    shared = AppPaces(ClientSettings(time_scale=mock.settings.time_scale))  # as `run` shares it
    async with AsyncExitStack() as stack:
        out = []
        for profile, tid in zip(PROFILES, mock.info.tenant_ids, strict=True):
            extra: dict[str, Any] = {}
            if quotas and profile in quotas:
                extra["write_quota"] = quotas[profile]
            settings = ClientSettings(time_scale=mock.settings.time_scale, **extra)
            client = await stack.enter_async_context(
                GraphClient(conn(mock, tid), settings, app_paces=shared)
            )
            out.append(Tenant(client, client.conn.base_url, profile))
        yield out


async def run_tenants(
    mock: MockGraph, path: Path, ledger: Path, *, stop_after: int | None = None, **kw: Any
) -> RunResult:
    quotas, default = kw.pop("quotas", None), kw.pop("default_profile", None)
    async with tenants(mock, quotas) as ts:
        seen: list[object] = []

        def on_result(_rec: object) -> None:
            seen.append(_rec)
            if stop_after is not None and len(seen) >= stop_after:
                runner.request_stop()

        runner = Runner(
            manifest=path,
            ledger_path=ledger,
            tenants=ts,
            settings=RunSettings(**kw),
            on_result=on_result,
            default_profile=default,
        )
        return await runner.run()


def by_tenant(mock: MockGraph) -> dict[str, dict[str, Any]]:
    stats = mock.stats()["tenants"]
    assert mock.info is not None
    return {p: stats[t] for p, t in zip(PROFILES, mock.info.tenant_ids, strict=True)}


async def test_each_tenant_gets_its_own_instances(mock: MockGraph, tmp_path: Path) -> None:
    """Twelve rows over three profiles: four applications in each tenant, the same display
    names in each (names in two tenants never meet); the ledger maps each profile to its
    tenant and names each instance's profile; a second run sets nothing up."""
    path = manifest(tmp_path / "m.csv", spread())
    ledger = tmp_path / "l.jsonl"
    result = await run_tenants(mock, path, ledger)
    assert result.statuses == {"done": 12} and result.ok
    assert sorted(result.tenants) == list(PROFILES)
    assert all(t.statuses == {"done": 4} and t.total == 4 for t in result.tenants.values())
    for stats in by_tenant(mock).values():
        assert stats["applications"] == 4 and stats["duplicates"] == 0
    replay = ledger_mod.read(ledger)
    assert mock.info is not None
    mapping = {p: r.tenant for p, r in replay.tenants.items()}
    assert mapping == dict(zip(PROFILES, mock.info.tenant_ids, strict=True))
    assert replay.header is not None and replay.header.tenant is None
    for key, st in replay.instances.items():
        assert st.profile == key.split("-")[0]
        assert st.record is not None and st.record.tenant == mapping[st.profile]
    steps = [orjson.loads(line) for line in ledger.read_bytes().splitlines()]
    assert all(r.get("profile") for r in steps if r["type"] == "step")

    again = await run_tenants(mock, path, ledger)
    assert again.skipped == 12 and again.this_run == {}
    assert all(s["applications"] == 4 for s in by_tenant(mock).values())


async def test_an_interrupted_run_resumes_without_a_duplicate(
    mock: MockGraph, tmp_path: Path
) -> None:
    """A run drained after a few instances ended resumes: every tenant ends with exactly its
    own applications, none twice."""
    path = manifest(tmp_path / "m.csv", spread(6))
    ledger = tmp_path / "l.jsonl"
    first = await run_tenants(mock, path, ledger, stop_after=3, concurrency=1, monitor=False)
    assert first.interrupted and 3 <= first.statuses["done"] < 18
    second = await run_tenants(mock, path, ledger)
    assert second.ok and second.statuses["done"] == 18
    for stats in by_tenant(mock).values():
        assert stats["applications"] == 6 and stats["duplicates"] == 0
        assert stats["orphanApplications"] == 0


async def test_a_row_whose_profile_moved_is_refused(mock: MockGraph, tmp_path: Path) -> None:
    """The ledger has the instance's objects in contoso's tenant: a row that names fabrikam
    now is a manifest problem at its line, and nothing is set up anywhere."""
    rows = spread(2)
    path = manifest(tmp_path / "m.csv", rows)
    ledger = tmp_path / "l.jsonl"
    assert (await run_tenants(mock, path, ledger)).ok
    before = ledger.read_bytes()
    rows[0] = (rows[0][0], "fabrikam")
    manifest(path, rows)
    with pytest.raises(ManifestError) as err:
        await run_tenants(mock, path, ledger)
    text = str(err.value)
    assert "m.csv:2" in text and "profile" in text and "'contoso'" in text
    assert ledger.read_bytes() == before


async def test_one_tenants_ledger_is_not_taken_for_many(mock: MockGraph, tmp_path: Path) -> None:
    """A ledger of a run of one tenant is refused by a run across many, and the other way
    round: the ids of one would be looked for in the other's tenants."""
    single = tmp_path / "single.csv"
    manifest(single, [("a-0", None), ("a-1", None)])
    one = tmp_path / "one.jsonl"
    assert (await run_engine(mock, single, one)).ok
    many = manifest(tmp_path / "many.csv", [("a-0", "contoso"), ("a-1", "fabrikam")])
    with pytest.raises(LedgerError, match="alone"):
        await run_tenants(mock, many, one)
    other = tmp_path / "many.jsonl"
    assert (await run_tenants(mock, many, other)).ok
    with pytest.raises(LedgerError, match="across 3 tenants"):
        await run_engine(mock, single, other)


async def test_a_profile_that_connects_elsewhere_is_refused(
    mock: MockGraph, tmp_path: Path
) -> None:
    """A profile the ledger records with one tenant that connects to another is refused before
    any Graph call: its objects are in the first."""
    path = manifest(tmp_path / "m.csv", spread(1))
    ledger = tmp_path / "l.jsonl"
    assert (await run_tenants(mock, path, ledger)).ok
    assert mock.info is not None
    ids = mock.info.tenant_ids
    async with tenants(mock) as ts:
        swapped = [Tenant(ts[1].client, ts[1].ledger_graph, "contoso"), *ts[1:]]
        swapped[1] = Tenant(ts[0].client, ts[0].ledger_graph, "fabrikam")
        runner = Runner(manifest=path, ledger_path=ledger, tenants=swapped, settings=RunSettings())
        with pytest.raises(LedgerError) as err:
            await runner.run()
    assert "profile 'contoso'" in str(err.value) and ids[0] in str(err.value)


async def test_a_throttled_tenant_slows_only_itself(mock: MockGraph, tmp_path: Path) -> None:
    """contoso's client may write once per 10 Graph seconds (its 16 writes take 150 Graph s,
    1.5 s here); the other tenants', Graph's quota: they end long before contoso does."""
    path = manifest(tmp_path / "m.csv", spread(4))
    result = await run_tenants(
        mock,
        path,
        tmp_path / "l.jsonl",
        quotas={"contoso": Quota(limit=1, window=10)},
        monitor=False,
    )
    assert result.ok
    slow = result.tenants["contoso"].elapsed
    fast = max(result.tenants[p].elapsed for p in ("fabrikam", "northwind"))
    assert fast < slow / 3, (fast, slow)


async def test_rows_naming_no_profile_take_the_default(mock: MockGraph, tmp_path: Path) -> None:
    """A row naming no profile runs with the default one (``--profile``)."""
    rows: list[tuple[str, str | None]] = [("a-0", "contoso"), ("a-1", None), ("a-2", "fabrikam")]
    path = manifest(tmp_path / "m.csv", rows)
    result = await run_tenants(mock, path, tmp_path / "l.jsonl", default_profile="northwind")
    assert result.ok and result.tenants["northwind"].statuses == {"done": 1}
    assert by_tenant(mock)["northwind"]["applications"] == 1


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BULKPROV_TIME_SCALE": "0.01",
        "BULKPROV_FINGERPRINT_KEY_FILE": str(cwd / "fp.key"),
    }
    return subprocess.run(
        [sys.executable, "-m", "bulkprov.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_cli_runs_every_profile_of_the_profiles_file(mock: MockGraph, tmp_path: Path) -> None:
    """`bulkprov run M --profiles P`: each row's profile from the profiles file (here the
    mock's, as `mock-graph --profiles-file` writes it), every tenant at once; the summary has
    a row per profile, --summary-json each tenant's id."""
    assert mock.info is not None
    prof = tmp_path / "profiles.toml"
    write_profiles(prof, mock.info)
    rows = [(f"k{i}", f"tenant{1 + i % 3}") for i in range(6)]
    path = manifest(tmp_path / "m.csv", rows)
    done = await asyncio.to_thread(
        _cli,
        "run",
        str(path),
        "--profiles",
        str(prof),
        "--ledger",
        "l.jsonl",
        "--summary-json",
        "s.json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "3 tenants (profiles tenant1, tenant2, tenant3)" in done.stderr
    assert "by tenant (3 profiles)" in done.stderr
    summary = orjson.loads((tmp_path / "s.json").read_bytes())
    assert {p: t["tenant"] for p, t in summary["tenants"].items()} == {
        f"tenant{n}": tid for n, tid in enumerate(mock.info.tenant_ids, start=1)
    }
    assert all(t["statuses"] == {"done": 2} for t in summary["tenants"].values())


async def test_cli_rows_without_a_profile_need_one(tmp_path: Path) -> None:
    """Rows naming no profile among rows that do: one line naming the row, exit 2, nothing
    started; with --profile they take that one."""
    path = manifest(tmp_path / "m.csv", [("a", "contoso"), ("b", None)])
    out = await asyncio.to_thread(
        _cli, "run", str(path), "--mock", "--ledger", "l.jsonl", cwd=tmp_path
    )
    assert out.returncode == 2
    assert "m.csv:3" in out.stderr and "names no profile" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "l.jsonl").exists()
    ok = await asyncio.to_thread(
        _cli,
        "run",
        str(path),
        "--mock",
        "--profile",
        "fabrikam",
        "--ledger",
        "l.jsonl",
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "2 tenants (profiles contoso, fabrikam)" in ok.stderr


async def test_cli_plan_plans_each_tenant(tmp_path: Path) -> None:
    """`plan` of a manifest of many tenants plans each in its own tenant: every row names its
    profile, in the manifest's order; after the run, each is done."""
    path = manifest(tmp_path / "m.csv", spread(2, PROFILES[:2]))
    before = await asyncio.to_thread(_cli, "plan", str(path), "--mock", "--json", cwd=tmp_path)
    assert before.returncode == 0, before.stderr[-2000:]
    rows = orjson.loads(before.stdout)["instances"]
    assert [(r["key"], r["profile"], r["action"]) for r in rows] == [
        (key, profile, "create") for key, profile in spread(2, PROFILES[:2])
    ]
    run = await asyncio.to_thread(
        _cli, "run", str(path), "--mock", "--ledger", "l.jsonl", "--no-monitor", cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr[-2000:]
    after = await asyncio.to_thread(
        _cli, "plan", str(path), "--mock", "--ledger", "l.jsonl", "--json", cwd=tmp_path
    )
    assert after.returncode == 0, after.stderr[-2000:]
    assert {r["action"] for r in orjson.loads(after.stdout)["instances"]} == {"done"}


async def test_cli_one_tenant_first_then_the_rest(tmp_path: Path) -> None:
    """`run --tenant fabrikam` sets up fabrikam's rows only; a run of all of them then keeps
    fabrikam on the mock tenant it had (the ledger says which) and sets up the others; an
    unknown --tenant is one line naming the manifest's profiles."""
    path = manifest(tmp_path / "m.csv", spread(2))
    args = ("run", str(path), "--mock", "--ledger", "l.jsonl", "--no-monitor")
    one = await asyncio.to_thread(_cli, *args, "--tenant", "fabrikam", cwd=tmp_path)
    assert one.returncode == 0, one.stderr[-2000:]
    assert "2 instances from" in one.stderr
    first = ledger_mod.read(tmp_path / "l.jsonl")
    assert {st.profile for st in first.instances.values()} == {"fabrikam"}
    every = await asyncio.to_thread(_cli, *args, cwd=tmp_path)
    assert every.returncode == 0, every.stderr[-2000:]
    replay = ledger_mod.read(tmp_path / "l.jsonl")
    assert replay.tenants["fabrikam"] == first.tenants["fabrikam"]
    assert len({r.tenant for r in replay.tenants.values()}) == 3
    assert sorted(k for k, st in replay.instances.items() if st.finished) == sorted(
        k for k, _p in spread(2)
    )
    bad = await asyncio.to_thread(_cli, *args, "--tenant", "nope", cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "--tenant nope" in bad.stderr and "contoso, fabrikam, northwind" in bad.stderr


def test_mock_tenants_go_to_the_profiles_the_ledger_records() -> None:
    """A profile the ledger knows keeps its tenant; new ones take the free tenants in name
    order; with too few tenants, the last ones get none."""
    from bulkprov.tenancy import TenantRef, assign

    known = {"m": TenantRef("m", "g", "t2")}
    assert assign(["a", "m", "z"], ["t1", "t2", "t3"], known) == {"m": "t2", "a": "t1", "z": "t3"}
    assert assign(["a", "b"], ["t1", "t2"], {}) == {"a": "t1", "b": "t2"}
    assert assign(["a", "b", "c"], ["t1", "t2"], {}) == {"a": "t1", "b": "t2"}
