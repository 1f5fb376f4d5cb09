"""Soak: N instances against a mock injecting faults on about 5% of requests (5xx, dropped
connections, instantiate answering 404 or timing out although it created the objects), at
Graph's quotas and latencies, with the run killed (SIGKILL) at random moments and resumed
from its ledger. Judged from the mock's state: nothing lost, nothing duplicated, no orphan,
and the ledger names exactly the applications the tenant holds."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bulkprov import ledger as ledger_mod

from .common import bench_env, mock_args, mock_process, write_manifest

FAULTS = {
    "fault_rate": 0.035,
    "drop_rate": 0.015,
    "instantiate_404_rate": 0.02,
    "instantiate_timeout_rate": 0.02,
}


def soak(*, n: int, time_scale: float, work: Path, kills: int = 3, seed: int = 5) -> dict[str, Any]:
    import os

    work.mkdir(parents=True, exist_ok=True)
    manifest = write_manifest(work / f"soak-{n}.csv", n)
    margs = mock_args(time_scale=time_scale, seed=seed, **FAULTS)
    ledger = work / "soak.jsonl"
    ledger.unlink(missing_ok=True)
    rng = random.Random(seed)
    env = {**os.environ, **bench_env()}
    with mock_process(work, margs) as mock:
        cmd = [
            sys.executable,
            "-m",
            "bulkprov.cli",
            "run",
            str(manifest),
            "--mock-info",
            str(mock.info_file),
            "--ledger",
            str(ledger),
            "--no-monitor",
        ]
        t0 = time.monotonic()
        killed_at = []
        for _ in range(kills):
            proc = subprocess.Popen(
                cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            runs = ledger_mod.read(ledger).runs if ledger.exists() else 0
            while (
                not ledger.exists() or ledger_mod.read(ledger).runs == runs
            ) and proc.poll() is None:
                time.sleep(0.05)
            delay = rng.uniform(1.0, 60 * time_scale)
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed_at.append(round(time.monotonic() - t0, 1))
            proc.wait()
        final = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.monotonic() - t0
        stats = mock.stats()
    replay = ledger_mod.read(ledger)
    tenant = next(iter(stats["tenants"].values()))
    statuses: dict[str, int] = {}
    for st in replay.instances.values():
        statuses[st.status or "unfinished"] = statuses.get(st.status or "unfinished", 0) + 1
    app_ids = {st.ids.get("applicationId") for st in replay.instances.values()} - {None}
    lost = n - statuses.get("done", 0)
    res = {
        "benchmark": "soak",
        "n": n,
        "time_scale": time_scale,
        "mock": {"args": margs},
        "kills": killed_at,
        "final_exit_code": final.returncode,
        "wall_s": wall,
        "statuses": statuses,
        "lost": lost,
        "applications_in_tenant": tenant["applications"],
        "ledger_application_ids": len(app_ids),
        "duplicates": stats["duplicates"],
        "orphans": stats["orphanApplications"] + stats["orphanServicePrincipals"],
        "requests": stats["requests"],
        "faults_injected": stats["faults"],
        "fault_pct": 100 * sum(stats["faults"].values()) / max(1, stats["requests"]),
        "throttled": stats["throttled"],
        "early_retries": stats["earlyRetries"],
        "runs": replay.runs,
    }
    res["targets"] = [
        {
            "target": "zero lost (every instance done)",
            "met": lost == 0,
            "figure": json.dumps(statuses),
        },
        {
            "target": "zero duplicated, zero orphans",
            "met": stats["duplicates"] == 0 and res["orphans"] == 0,
            "figure": f"{stats['duplicates']} duplicates, {res['orphans']} orphans",
        },
        {
            "target": "the ledger names exactly the tenant's applications",
            "met": len(app_ids) == tenant["applications"] == n,
            "figure": f"{len(app_ids)} in ledger, {tenant['applications']} in tenant",
        },
    ]
    return res
