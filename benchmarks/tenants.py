"""Many tenants at once: one ``bulkprov run`` of 20 tenants x 250 AWS instances (5,000), each
row's ``profile`` naming its tenant, against one mock Graph that serves all 20.

Each tenant has its own app + tenant buckets (3,000 writes per 150 s, 3,500 resource units per
10 s) and its own tenant bucket (18,000 writes per 5 min); the per-app buckets across tenants
(35,000 writes per 5 min, 150,000 resource units per 20 s) are shared by all 20, since every
tenant's token names the same app. Two scenarios, each against a fresh mock with the race's
latencies, replication delays and faults (0.2% 5xx, 0.1% dropped connections):

- ``published``: buckets start full, as Graph's are after an idle while. The 25,000 writes fit
  in the app's burst of 35,000 and each tenant's 1,250 in its 3,000, so no quota binds and the
  bound is one instance's critical path; the run is then paced by this machine's CPU (client
  and mock on 2 cores).
- ``drained``: every bucket starts empty (``--start-empty``), as after earlier work spent the
  budgets. The app's write bucket across tenants binds: 25,000 writes at 35,000 per 300 s
  (116.7/s) take 214 Graph s, against 62.5 s for each tenant's own 1,250 at 20/s.

The makespan runs from the process's launch to its last instance record (as in the race), in
Graph seconds; per tenant, to that tenant's last record. Duplicates and orphans are counted by
the mock in each tenant; requests, 429s and early retries by its counters.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from bulkprov.mockgraph.settings import MockSettings, ReplicationSettings, ThrottleSettings

from .common import (
    LowerBound,
    Mock,
    bench_env,
    ledger_records,
    ledger_timeline,
    lower_bound,
    mock_args,
    mock_process,
    read_manifest_rows,
    run_measured,
    write_manifest,
)
from .report import _f, table, targets_md

HERE = Path(__file__).resolve().parent
#: scenario -> extra mock flags
SCENARIOS: dict[str, tuple[str, ...]] = {"published": (), "drained": ("--start-empty",)}
TARGET_RATIO, TARGET_429_PCT = 1.15, 1.0


def tenant_profiles(tenants: int) -> list[str]:
    """The app-only profiles ``mock-graph --profiles-file`` writes, one per tenant."""
    return [f"tenant{k}" for k in range(1, tenants + 1)]


def scenario_bound(
    scenario: str, *, tenants: int, per_tenant: int, time_scale: float
) -> LowerBound:
    """The lower bound of one scenario: Graph's default quotas, buckets full or empty."""
    settings = MockSettings(
        time_scale=time_scale,
        throttle=ThrottleSettings(start_full="--start-empty" not in SCENARIOS[scenario]),
        replication=ReplicationSettings(),
    )
    return lower_bound(tenants * per_tenant, settings, per_tenant=[per_tenant] * tenants)


def wait_for_profiles(path: Path, tenants: int, mock: Mock, timeout: float = 30.0) -> None:
    """Wait for the profiles file, which the mock writes just after its info file."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            profiles = tomllib.loads(path.read_text()).get("profiles", {})
            if all(p in profiles for p in tenant_profiles(tenants)):
                return
        except (OSError, tomllib.TOMLDecodeError):
            pass
        if mock.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{path}: the mock wrote no profiles for its {tenants} tenants")
        time.sleep(0.05)


def read_ledger(ledger: Path) -> dict[str, dict[str, Any]]:
    """The last instance record of each key (``profile`` and ``tenant`` among its fields)."""
    out: dict[str, dict[str, Any]] = {}
    if not ledger.exists():
        return out
    for rec in ledger_records(ledger):
        if rec.get("type") == "instance":
            out[rec["key"]] = rec
    return out


def run_scenario(
    scenario: str,
    *,
    manifest: Path,
    key_profile: dict[str, str],
    tenants: int,
    per_tenant: int,
    time_scale: float,
    margs: list[str],
    work: Path,
) -> dict[str, Any]:
    """One scenario: a fresh mock, one ``bulkprov run`` of every tenant, the figures."""
    swork = work / scenario
    swork.mkdir(parents=True, exist_ok=True)
    prof, ledger, summary = swork / "profiles.toml", swork / "run.jsonl", swork / "summary.json"
    for f in (ledger, summary):
        f.unlink(missing_ok=True)
    lb = scenario_bound(scenario, tenants=tenants, per_tenant=per_tenant, time_scale=time_scale)
    args = [*margs, "--tenants", str(tenants), "--profiles-file", str(prof), *SCENARIOS[scenario]]
    cmd = [sys.executable, str(HERE / "contenders" / "bulkprov_run.py"), str(swork / "cpu.json")]
    cmd += ["run", str(manifest), "--profiles", str(prof), "--ledger", str(ledger)]
    cmd += ["--summary-json", str(summary), "--no-monitor"]
    env = {**bench_env(), "BULKPROV_TIME_SCALE": str(time_scale)}
    with mock_process(swork, args) as mock:
        wait_for_profiles(prof, tenants, mock)
        names = dict(zip(mock.info["tenant_ids"], tenant_profiles(tenants), strict=True))
        mock_cpu0, now0 = mock.cpu_seconds(), mock.stats()["now"]
        t0 = time.time()
        m = run_measured(cmd, env=env, cwd=swork)
        stats = mock.stats()
        mock_cpu = mock.cpu_seconds() - mock_cpu0
    res: dict[str, Any] = {
        "scenario": scenario,
        "mock_flags": list(SCENARIOS[scenario]),
        "lower_bound": lb.to_json(),
        "cpu_s": m.cpu,
        "work_cpu_s": _work_cpu(swork / "cpu.json"),
        "peak_rss_mb": m.max_rss_mb,
        "mock_cpu_s": mock_cpu,
        "wall_s": m.wall,
        "exit_code": m.returncode,
        "stderr_tail": m.stderr_tail[-600:] if m.returncode != 0 else "",
        "throttled_at_graph_s": [round(t - now0, 3) for t in stats.get("throttledAt", [])],
    }
    res.update(_timeline(ledger, key_profile, t0, time_scale, lb, tenants * per_tenant))
    res.update(_mock_figures(stats, names))
    res["targets"] = scenario_targets(res)
    return res


def _work_cpu(path: Path) -> float | None:
    return json.loads(path.read_text())["work_cpu"] if path.exists() else None


def _timeline(
    ledger: Path,
    key_profile: dict[str, str],
    t0: float,
    time_scale: float,
    lb: LowerBound,
    n: int,
) -> dict[str, Any]:
    """Makespan, rate and per-tenant spread from the ledger's instance records."""
    events, _start = ledger_timeline(ledger) if ledger.exists() else ([], None)
    finished = sorted((t - t0) / time_scale for t, _k, _s in events)
    done = sorted((t - t0) / time_scale for t, _k, st in events if st == "done")
    last: dict[str, float] = {}
    for t, key, _st in events:
        p = key_profile.get(key, "?")
        last[p] = max(last.get(p, 0.0), (t - t0) / time_scale)
    ms = finished[-1] if len(finished) >= n else None
    spread = sorted(last.values())
    recs = read_ledger(ledger)
    wrong = sum(1 for k, r in recs.items() if r.get("profile") != key_profile.get(k))
    return {
        "makespan_graph_s": ms,
        "instances_per_graph_s": n / ms if ms else None,
        "ratio_to_lower_bound": ms / lb.value if ms else None,
        "completed": len(done),
        "failed": sum(1 for _t, _k, st in events if st != "done"),
        "unfinished": n - len(events),
        "tenant_makespan_graph_s": {p: round(v, 3) for p, v in sorted(last.items())},
        "tenant_makespan_spread": {
            "min": spread[0] if spread else None,
            "median": statistics.median(spread) if spread else None,
            "max": spread[-1] if spread else None,
        },
        "ledger_profile_mismatches": wrong,
        "ledger_records_with_tenant": sum(1 for r in recs.values() if r.get("tenant")),
        "done_at_graph_s": [round(t, 3) for t in done],
        "example_errors": _errors(recs),
    }


def _errors(recs: dict[str, dict[str, Any]]) -> list[str]:
    """A few distinct failure reasons, to say why instances were lost."""
    seen: list[str] = []
    for rec in recs.values():
        msg = rec.get("error")
        if isinstance(msg, dict):
            msg = f"{rec.get('failedStep', '')}: {msg.get('message', '')}"
        if msg and rec.get("status") != "done" and str(msg)[:160] not in seen:
            seen.append(str(msg)[:160])
        if len(seen) >= 3:
            break
    return seen


def _mock_figures(stats: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """What the mock counted: requests, 429s, early retries, and each tenant's objects."""
    per: dict[str, dict[str, int]] = {}
    for tid, t in stats["tenants"].items():
        per[names.get(tid, tid)] = {
            "applications": t["applications"],
            "duplicates": t["duplicates"],
            "orphans": t["orphanApplications"] + t["orphanServicePrincipals"],
            "jobs": t["jobs"],
        }
    return {
        "requests": stats["requests"],
        "throttled": stats["throttled"],
        "throttled_pct": 100 * stats["throttled"] / max(1, stats["requests"]),
        "early_retries": stats["earlyRetries"],
        "early_retries_by": stats.get("earlyRetriesBy", {}),
        "throttled_at": stats.get("throttledAt", [])[:2000],
        "throttled_in_flight": stats["throttledInFlight"],
        "faults_injected": sum(stats["faults"].values()),
        "tokens_issued": stats["tokensIssued"],
        "duplicates": sum(t["duplicates"] for t in per.values()),
        "orphans": sum(t["orphans"] for t in per.values()),
        "tenants_with_duplicates": sorted(p for p, t in per.items() if t["duplicates"]),
        "per_tenant": per,
    }


def scenario_targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    lb = r["lower_bound"]
    ms, ratio = r["makespan_graph_s"], r["ratio_to_lower_bound"]
    s = r["scenario"]
    return [
        {
            "target": f"{s}: makespan within {TARGET_RATIO}x of the bound",
            "met": bool(ratio and ratio <= TARGET_RATIO),
            "figure": f"{_f(ms)} vs {lb['value']:.1f} Graph s "
            f"({'x' + _f(ratio, 3) if ratio else 'unfinished'}; {lb['binding']} binds)",
        },
        {
            "target": f"{s}: zero failed, duplicate, orphan",
            "met": r["failed"] == 0
            and r["unfinished"] == 0
            and r["duplicates"] == 0
            and r["orphans"] == 0,
            "figure": f"{r['failed']} failed, {r['unfinished']} unfinished, "
            f"{r['duplicates']} duplicates, {r['orphans']} orphans (all tenants)",
        },
        {
            "target": f"{s}: 429s under {TARGET_429_PCT:g}% of requests",
            "met": r["throttled_pct"] < TARGET_429_PCT,
            "figure": f"{r['throttled']} of {r['requests']} ({r['throttled_pct']:.2f}%)",
        },
        {
            "target": f"{s}: zero early retries",
            "met": r["early_retries"] == 0,
            "figure": str(r["early_retries"]),
        },
    ]


def tenants_bench(
    *,
    tenants: int = 20,
    per_tenant: int = 250,
    time_scale: float,
    work: Path,
    scenarios: tuple[str, ...] = tuple(SCENARIOS),
    fault_rate: float = 0.002,
    drop_rate: float = 0.001,
    seed: int = 1406,
) -> dict[str, Any]:
    n = tenants * per_tenant
    profiles = tenant_profiles(tenants)
    manifest = write_manifest(work / f"tenants-{tenants}x{per_tenant}.csv", n, profiles=profiles)
    key_profile = {row["key"]: row["profile"] for row in read_manifest_rows(manifest)}
    margs = mock_args(time_scale=time_scale, seed=seed, fault_rate=fault_rate, drop_rate=drop_rate)
    results = []
    for scenario in scenarios:
        print(
            f"tenants: {scenario} ({tenants} x {per_tenant} instances, time scale {time_scale})",
            file=sys.stderr,
        )
        r = run_scenario(
            scenario,
            manifest=manifest,
            key_profile=key_profile,
            tenants=tenants,
            per_tenant=per_tenant,
            time_scale=time_scale,
            margs=margs,
            work=work,
        )
        print(
            f"tenants: {scenario}: makespan {_f(r['makespan_graph_s'])} Graph s "
            f"(bound {r['lower_bound']['value']:.1f}, {r['lower_bound']['binding']}), "
            f"{r['completed']} done, {r['throttled']} 429s, {r['early_retries']} early, "
            f"exit {r['exit_code']} {r['stderr_tail'][-300:]}",
            file=sys.stderr,
        )
        results.append(r)
    return {
        "benchmark": "tenants",
        "tenants": tenants,
        "per_tenant": per_tenant,
        "n": n,
        "time_scale": time_scale,
        "manifest": f"rows interleaved round robin: row i is tenant (i mod {tenants}) + 1's",
        "mock": {"args": margs},
        "results": results,
        "targets": [t for r in results for t in r["targets"]],
    }


CORES = 2  # this machine's: the client and the mock share them


def quantile_done(r: dict[str, Any], n: int, q: float) -> float | None:
    """Graph seconds until the first ``q`` of the ``n`` instances were done."""
    done = r["done_at_graph_s"]
    k = max(1, round(q * n))
    return done[k - 1] if len(done) >= k else None


def cpu_floor(r: dict[str, Any], time_scale: float) -> float:
    """Graph seconds the client's and the mock's CPU seconds need of the machine's cores at
    the least: not a bound of Graph's, a measure of what this machine could do."""
    return (r["cpu_s"] + r["mock_cpu_s"]) / CORES / time_scale


def tenants_md(res: dict[str, Any]) -> str:
    rows = []
    for r in res["results"]:
        lb, sp = r["lower_bound"], r["tenant_makespan_spread"]
        rows.append(
            [
                r["scenario"],
                r["makespan_graph_s"],
                quantile_done(r, res["n"], 0.99),
                r["instances_per_graph_s"],
                f"{lb['value']:.1f} ({lb['binding']})",
                _f(r["ratio_to_lower_bound"], 2),
                f"{r['completed']:,}/{res['n']:,}",
                r["failed"],
                r["duplicates"],
                f"{r['throttled']:,} ({r['throttled_pct']:.2f}%)",
                r["early_retries"],
                f"{_f(sp['min'])} / {_f(sp['median'])} / {_f(sp['max'])}",
                r["work_cpu_s"],
                r["mock_cpu_s"],
                cpu_floor(r, res["time_scale"]),
                r["peak_rss_mb"],
            ]
        )
    lines = [
        f"### Tenants: {res['tenants']} tenants x {res['per_tenant']:,} instances in one run "
        f"(time scale {res['time_scale']})",
        "",
        f"One `bulkprov run` of a manifest whose `profile` column names each row's tenant "
        f"({res['manifest']}), against one mock serving {res['tenants']} tenants. "
        f"Mock: `{' '.join(res['mock']['args'])}` plus the scenario's flags. Figures in Graph "
        "seconds, from the process's launch. CPU floor: the client's (whole process) and the "
        f"mock's CPU seconds over this machine's {CORES} cores, in Graph s: what this machine "
        "could do at best, not a limit of Graph's.",
        "",
        table(
            [
                "scenario",
                "makespan (Graph s)",
                "99% done at",
                "instances per s",
                "bound (binds)",
                "x bound",
                "done",
                "failed",
                "duplicates",
                "429s (share)",
                "early retries",
                "tenant makespan min / median / max",
                "CPU s (run)",
                "mock CPU s",
                f"CPU floor ({CORES} cores)",
                "peak RSS MB",
            ],
            rows,
        ),
        "",
        bounds_md(res),
        "",
        targets_md(res["targets"]),
    ]
    for r in res["results"]:
        if r["example_errors"]:
            lines += ["", f"{r['scenario']} failures, e.g.: " + "; ".join(r["example_errors"])]
        if r["exit_code"] != 0:
            tail = r["stderr_tail"].strip().splitlines()[-1:] or [""]
            lines += ["", f"{r['scenario']}: `bulkprov run` exited {r['exit_code']}: `{tail[0]}`"]
    return "\n".join(lines)


def bounds_md(res: dict[str, Any]) -> str:
    """Each scope's floor per scenario, to show which limit binds."""
    results = res["results"]
    names = list(results[0]["lower_bound"]["scopes"]) if results else []
    shared = {"Application/Write", "Application/ResourceUnits"}
    rows = [
        [
            "critical path (one instance)",
            *(f"{r['lower_bound']['critical_path']:.1f}" for r in results),
        ]
    ]
    for name in names:
        who = "all tenants" if name in shared else "each tenant"
        rows.append(
            [f"{name} ({who})", *(f"{r['lower_bound']['scopes'][name]:.1f}" for r in results)]
        )
    return "Floors (Graph s) of the bound, the largest binds:\n\n" + table(
        ["limit", *(r["scenario"] for r in results)], rows
    )


def tenants_plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = res["results"]
    fig, axes = plt.subplots(
        1, len(results), figsize=(6 * len(results), 4.5), dpi=110, squeeze=False
    )
    for ax, r in zip(axes[0], results, strict=True):
        lb = r["lower_bound"]
        xs = r["done_at_graph_s"]
        xmax = max([lb["value"], *(xs[-1:])]) * 1.05
        if xs:
            ax.step(xs, range(1, len(xs) + 1), where="post", color="tab:blue", label="all tenants")
        ends = sorted(r["tenant_makespan_graph_s"].values())
        ax.plot(ends, [0] * len(ends), "|", color="tab:green", markersize=12, label="a tenant done")
        if r["throttled_at_graph_s"]:
            t429 = r["throttled_at_graph_s"]
            ax.plot(t429, [res["n"]] * len(t429), "|", color="tab:red", alpha=0.4, label="429")
        ax.axvline(lb["value"], color="black", linestyle="--", label=f"bound {lb['value']:.0f} s")
        ax.set_xlim(0, xmax)
        ax.set_title(f"{r['scenario']}: bound set by {lb['binding']}", fontsize=10)
        ax.set_xlabel("Graph seconds since launch")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    axes[0][0].set_ylabel("instances onboarded")
    fig.suptitle(f"{res['tenants']} tenants x {res['per_tenant']} instances in one run")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
