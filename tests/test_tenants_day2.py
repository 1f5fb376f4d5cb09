"""``monitor``, ``cleanup`` and ``drift`` on the ledger of a run across many tenants, through
the CLI in this process: ``--mock`` serves each profile's tenant over real HTTPS on loopback,
kept beside the ledger between commands, as the run mapped them."""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bulkprov import ledger as ledger_mod
from bulkprov.cli import main
from bulkprov.mockgraph import MockGraph, MockSettings
from bulkprov.mockgraph import drift as mock_drift
from bulkprov.mockgraph.persist import beside

from .enginekit import write_secrets

SCALE = "0.005"
AWS = "AWS Single-Account Access"
PROFILES = ("north", "south", "west")
PER_TENANT = 2


def write_manifest(path: Path, rows: list[tuple[str, str]]) -> Path:
    """A manifest of (key, profile) rows, each an AWS app with file: credentials."""
    write_secrets(path.parent / "secrets")
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["key", "displayName", "template", "profile", "cred.ClientSecret", "cred.SecretToken"]
        )
        for key, profile in rows:
            w.writerow(
                [key, f"AWS {key}", AWS, profile, "file:secrets/key-id", "file:secrets/secret"]
            )
    return path


def all_rows() -> list[tuple[str, str]]:
    return [(f"{p}-{i}", p) for i in range(PER_TENANT) for p in PROFILES]


@dataclass(frozen=True)
class Demo:
    manifest: Path
    ledger: Path

    def tenants(self) -> dict[str, str]:
        """profile -> tenant id, as the ledger records them."""
        return {p: ref.tenant for p, ref in ledger_mod.read(self.ledger).tenants.items()}

    def ids(self, key: str) -> dict[str, str]:
        return ledger_mod.read(self.ledger).instances[key].ids

    def records(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.ledger.read_bytes().splitlines()]


def bulkprov(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``bulkprov ARGS --time-scale SCALE`` in this process."""
    code = main([*args, "--time-scale", SCALE])
    out, err = capsys.readouterr()
    return code, out, err


def with_kept(demo: Demo, work: Callable[[MockGraph], Any]) -> Any:
    """``work`` on a mock serving the tenants kept beside the demo's ledger (and saving them)."""

    async def go() -> Any:
        async with MockGraph(MockSettings.quiet(time_scale=0.01), keep=beside(demo.ledger)) as m:
            return work(m)

    return anyio.run(go)


def kept_counts(demo: Demo) -> dict[str, dict[str, Any]]:
    """profile -> its kept tenant's counts (applications, jobs, created, ...)."""
    tenants = demo.tenants()

    def read(m: MockGraph) -> dict[str, dict[str, Any]]:
        stats = m.stats()["tenants"]
        return {p: dict(stats[tid]) for p, tid in tenants.items()}

    return with_kept(demo, read)


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """A console wide enough that no line the tests look for is wrapped."""
    monkeypatch.setenv("COLUMNS", "240")


@pytest.fixture(scope="module")
def demo_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of 3 profiles x 2 instances on the embedded mock (made once, copied per test)."""
    d = tmp_path_factory.mktemp("tenants")
    manifest = write_manifest(d / "m.csv", all_rows())
    code = main(
        ["run", str(manifest), "--mock", "--ledger", str(d / "l.jsonl"), "--time-scale", SCALE]
    )
    assert code == 0
    return d


@pytest.fixture
def demo(demo_base: Path, tmp_path: Path) -> Demo:
    d = tmp_path / "demo"
    shutil.copytree(demo_base, d)
    return Demo(d / "m.csv", d / "l.jsonl")


def test_monitor_lists_every_tenants_jobs(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    """Every tenant's jobs, each row naming its profile; --tenant one tenant's only; the
    table has a tenant column and the summary a line per tenant."""
    code, out, err = bulkprov(capsys, "monitor", "--mock", str(demo.ledger), "--json")
    assert code == 0, err
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert sorted((r["profile"], r["key"]) for r in rows) == sorted((p, k) for k, p in all_rows())
    assert {r["status"] for r in rows} == {"Active"}
    tenants = demo.tenants()
    assert all(tenants[r["profile"]].replace("-", "") in r["jobId"] for r in rows)

    code, out, err = bulkprov(
        capsys, "monitor", "--mock", str(demo.ledger), "--json", "--tenant", "south"
    )
    assert code == 0, err
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert sorted(r["key"] for r in rows) == ["south-0", "south-1"]

    code, out, err = bulkprov(capsys, "monitor", "--mock", str(demo.ledger), "--all", "--no-logs")
    assert code == 0, err
    assert "in 3 tenants (profiles north, south, west): 6 job(s): 6 Active" in out
    for p in PROFILES:
        assert f"tenant {p}: 2 job(s): 2 Active" in out
    assert "┃ tenant ┃ instance" in out  # the table names each row's tenant


def test_monitor_restart_records_name_the_profile(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--restart`` opens the ledger as a run across many tenants: its run line records the
    tenants (nothing is quarantined, so nothing is restarted)."""
    code, _out, err = bulkprov(
        capsys, "monitor", "--mock", str(demo.ledger), "--restart", "--no-logs"
    )
    assert code == 0, err
    last = demo.records()[-1]
    assert last["type"] == "run" and last["command"] == "monitor"
    assert sorted(last["tenants"]) == list(PROFILES)


def quarantine(m: MockGraph, sp_id: str) -> str:
    """Start ``sp_id``'s job again and play its cycle with the target refusing the
    credentials (the job falls into quarantine), then mend the target; its tenant's id."""
    for tenant in m.service.tenants.values():
        sp = tenant.service_principals.get(sp_id)
        if sp is not None:
            sp.target_broken = True
            now = m.clock.now()
            for job in sp.jobs.values():
                tenant.restart_job(job, now, "Full")
            tenant.advance(now + 600)
            assert {job.code for job in sp.jobs.values()} == {"Quarantine"}
            sp.target_broken = False
            tenant.touch(sp_id)
            return tenant.id
    raise KeyError(sp_id)


def test_monitor_restart_in_one_tenant_records_its_profile(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job quarantined in one tenant is reported there (exit 3) and ``--restart`` restarts
    it with its tenant's client, its restart records naming its profile."""
    sp_id = demo.ids("south-1")["servicePrincipalId"]
    assert with_kept(demo, lambda m: quarantine(m, sp_id)) == demo.tenants()["south"]
    code, out, err = bulkprov(capsys, "monitor", "--mock", str(demo.ledger), "--no-logs")
    assert code == 3, err
    assert "tenant south: 2 job(s): 1 Active, 1 Quarantine" in out
    assert "tenant north: 2 job(s): 2 Active" in out

    code, out, err = bulkprov(
        capsys, "monitor", "--mock", str(demo.ledger), "--restart", "--no-logs", "--json"
    )
    assert code == 0, err
    rows = {r["key"]: r for r in map(orjson.loads, out.splitlines())}
    assert rows["south-1"]["restarted"] and rows["south-1"]["profile"] == "south"
    assert not any(r.get("restarted") for k, r in rows.items() if k != "south-1")
    steps = [r for r in demo.records() if r.get("step") == "restart"]
    assert [(r["key"], r["event"], r["profile"]) for r in steps] == [
        ("south-1", "start", "south"),
        ("south-1", "done", "south"),
    ]


def test_cleanup_of_one_tenant_leaves_the_others(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    """``cleanup --tenant north --yes`` deletes north's apps only (the mock still has the
    others'), its records name north; the next run recreates north's and creates nothing
    elsewhere."""
    before = kept_counts(demo)
    assert {p: c["applications"] for p, c in before.items()} == dict.fromkeys(PROFILES, 2)
    code, _out, err = bulkprov(
        capsys, "cleanup", "--mock", str(demo.ledger), "--yes", "--tenant", "north"
    )
    assert code == 0, err
    assert "tenant north: 2 instance(s), 2 jobs, 2 service principals, 2 applications" in err
    after = kept_counts(demo)
    assert {p: c["applications"] for p, c in after.items()} == {"north": 0, "south": 2, "west": 2}
    assert {p: c["jobs"] for p, c in after.items()} == {"north": 0, "south": 2, "west": 2}
    written = [r for r in demo.records() if r["type"] in ("cleanup", "instance")]
    mine = [r for r in written if r["type"] == "cleanup" or r["status"] == "removed"]
    assert len(mine) == 2 * 4 and {r["profile"] for r in mine} == {"north"}
    removed = [r for r in mine if r["type"] == "instance"]
    assert {r["tenant"] for r in removed} == {demo.tenants()["north"]}
    replay = ledger_mod.read(demo.ledger)
    assert {k for k, st in replay.instances.items() if st.status == "removed"} == {
        "north-0",
        "north-1",
    }
    assert replay.instances["north-0"].profile == "north"

    code, _out, err = bulkprov(
        capsys, "run", str(demo.manifest), "--mock", "--ledger", str(demo.ledger)
    )
    assert code == 0, err
    again = kept_counts(demo)
    assert {p: c["applications"] for p, c in again.items()} == dict.fromkeys(PROFILES, 2)
    for p in ("south", "west"):
        assert again[p]["created"] == before[p]["created"]
    assert (
        again["north"]["created"]["applications"] == 2 + before["north"]["created"]["applications"]
    )


def test_cleanup_of_all_tenants_asks_with_counts_per_tenant(
    demo: Demo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prompt counts what goes in each tenant; declined, nothing goes; ``--yes`` empties
    every tenant, and a second cleanup has nothing to do."""
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    code, _out, err = bulkprov(capsys, "cleanup", "--mock", str(demo.ledger))
    assert code == 1, err
    for p in PROFILES:
        assert f"tenant {p}: 2 instance(s), 2 jobs, 2 service principals, 2 applications" in err
    assert "not confirmed: nothing deleted" in err
    assert {p: c["applications"] for p, c in kept_counts(demo).items()} == dict.fromkeys(
        PROFILES, 2
    )

    code, _out, err = bulkprov(capsys, "cleanup", "--mock", str(demo.ledger), "--yes")
    assert code == 0, err
    assert "6 instance(s) removed" in err and "by tenant (3 profiles)" in err
    empty = kept_counts(demo)
    assert {
        p: (c["applications"], c["servicePrincipals"], c["jobs"]) for p, c in empty.items()
    } == (dict.fromkeys(PROFILES, (0, 0, 0)))
    code, _out, err = bulkprov(capsys, "cleanup", "--mock", str(demo.ledger), "--yes")
    assert code == 0 and "nothing to delete" in err, err


def test_drift_per_tenant(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    """No drift on the unchanged manifest (exit 0); a job paused in one tenant is that
    tenant's drift (exit 4), recorded with its profile; --tenant of another sees none; a row
    dropped from the manifest is reported with its profile."""
    args = ["drift", "--mock", str(demo.ledger), str(demo.manifest), "--json"]
    code, out, err = bulkprov(capsys, *args)
    assert code == 0, err
    doc = orjson.loads(out)
    assert doc["drifted"] == 0 and len(doc["instances"]) == 6
    assert doc["tenants"] == {p: {"read": 2, "drifted": 0, "unread": 0} for p in PROFILES}

    sp_id = demo.ids("west-1")["servicePrincipalId"]
    tenant = with_kept(
        demo,
        lambda m: (
            mock_drift.apply(
                m.service.tenants.values(), {"servicePrincipalId": sp_id, "change": "pause"}
            ).id
        ),
    )
    assert tenant == demo.tenants()["west"]
    code, out, err = bulkprov(capsys, *args)
    assert code == 4, err
    doc = orjson.loads(out)
    (found,) = [i for i in doc["instances"] if i["drifted"]]
    assert (found["key"], found["profile"], found["fields"]) == ("west-1", "west", ["job"])
    assert doc["tenants"]["west"]["drifted"] == 1 and doc["tenants"]["north"]["drifted"] == 0
    (rec,) = [r for r in demo.records() if r["type"] == "drift"]
    assert (rec["key"], rec["profile"]) == ("west-1", "west")

    code, out, err = bulkprov(capsys, *args, "--tenant", "north", "--tenant", "south")
    assert code == 0, err
    assert sorted(i["key"] for i in orjson.loads(out)["instances"]) == [
        "north-0",
        "north-1",
        "south-0",
        "south-1",
    ]

    code, out, err = bulkprov(capsys, "drift", "--mock", str(demo.ledger), str(demo.manifest))
    assert code == 4, err
    assert "tenant west: 2 read, 1 drifted" in out and "tenant north" not in out

    write_manifest(demo.manifest, [r for r in all_rows() if r[0] != "south-0"])
    code, out, err = bulkprov(capsys, *args, "--tenant", "south", "--no-record")
    assert code == 4, err
    (gone,) = [i for i in orjson.loads(out)["instances"] if i["drifted"]]
    assert (gone["key"], gone["profile"], gone["removed"]) == ("south-0", "south", True)

    # a row of a profile the ledger has no tenant of yet: a run would set it up
    write_manifest(demo.manifest, [*all_rows(), ("east-0", "east")])
    code, out, err = bulkprov(capsys, *args, "--no-record")
    assert code == 4 and orjson.loads(out)["notSetUp"] == 1, err
    code, out, err = bulkprov(capsys, *args, "--no-record", "--tenant", "north")
    assert code == 0 and orjson.loads(out)["notSetUp"] == 0, err


@pytest.mark.parametrize("command", ["monitor", "cleanup", "drift"])
def test_errors_are_one_line(
    demo: Demo, capsys: pytest.CaptureFixture[str], command: str, tmp_path: Path
) -> None:
    """An unknown --tenant, a profile the profiles file lacks, a profile that connects to
    another tenant than the ledger records, a --tenant on a ledger of one tenant, and a
    --mock ledger whose kept tenants are gone: one line each, exit 2, the ledger as it was."""
    tail = [str(demo.manifest)] if command == "drift" else []
    written = demo.ledger.read_bytes()
    tenants = demo.tenants()
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    profiles = tmp_path / "p.toml"
    profiles.write_text(
        f'[profiles.north]\ntenant_id = "{tenants["north"]}"\nclient_id = "c"\n'
        f'client_secret = "file:{secret}"\n'
        f'[profiles.south]\ntenant_id = "{tenants["north"]}"\nclient_id = "c"\n'
        f'client_secret = "file:{secret}"\n'
    )
    profiles.chmod(0o600)
    cases = [
        (["--mock", "--tenant", "east"], "has no tenant of profile 'east'; its profiles: north"),
        (["--profiles", str(profiles)], "profile 'west': no such profile"),
        (
            ["--profiles", str(profiles), "--tenant", "south"],
            f"records profile 'south' as tenant '{tenants['south']}', but it connects to "
            f"'{tenants['north']}'",
        ),
    ]
    for extra, message in cases:
        code, _out, err = bulkprov(capsys, command, str(demo.ledger), *tail, *extra)
        assert code == 2, err
        assert err.count("\n") == 1 and message in err, err
        assert "s3cret" not in err
    assert demo.ledger.read_bytes() == written

    shutil.rmtree(beside(demo.ledger))
    code, _out, err = bulkprov(capsys, command, str(demo.ledger), *tail, "--mock")
    assert code == 2 and err.count("\n") == 1 and "is missing" in err, err
    assert demo.ledger.read_bytes() == written


def test_tenant_on_a_ledger_of_one_tenant_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [("one", "")])
    ledger = tmp_path / "l.jsonl"
    code, _out, err = bulkprov(
        capsys, "run", str(manifest), "--mock", "--ledger", str(ledger), "--no-monitor"
    )
    assert code == 0, err
    for args in (["monitor"], ["cleanup", "--yes"], ["drift"]):
        tail = [str(manifest)] if args[0] == "drift" else []
        code, _out, err = bulkprov(
            capsys, args[0], str(ledger), *tail, *args[1:], "--mock", "--tenant", "north"
        )
        assert code == 2 and err.count("\n") == 1, err
        assert "(a run of one tenant: leave --tenant out)" in err
    code, out, err = bulkprov(capsys, "monitor", "--mock", str(ledger), "--no-logs")
    assert code == 0 and out.endswith("l.jsonl: 1 job(s): 1 Active\n"), err
