"""The onboarding race: N instances at Graph's default quotas, three contenders side by side.

Each contender gets a fresh mock Graph process with the same settings and seed (Graph's quotas
and latencies, replication delays, a small fault rate, compressed by the time scale), runs as
its own process (CPU seconds and peak RSS from ``wait4``), and is judged from the mock's side
(requests, 429s, early retries, duplicates, orphans) and from its own timeline of finished
instances. All three do the seed's setup sequence, instantiate -> start; bulkprov runs with
``--no-monitor`` (it selects that same work; no tuning flag).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .common import (
    LowerBound,
    Measured,
    bench_env,
    ledger_timeline,
    lower_bound,
    mock_args,
    mock_process,
    mock_settings,
    run_measured,
    write_manifest,
)

CONTENDERS = ("bulkprov", "msgraph-sdk", "sequential")
HERE = Path(__file__).resolve().parent


def contender_cmd(name: str, manifest: Path, info: Path, work: Path) -> tuple[list[str], Path]:
    """The command line of a contender, and where its timeline ends up."""
    if name == "bulkprov":
        ledger = work / "bulkprov.jsonl"
        ledger.unlink(missing_ok=True)
        return [
            sys.executable,
            str(HERE / "contenders" / "bulkprov_run.py"),
            str(work / "cpu.json"),
            "run",
            str(manifest),
            "--mock-info",
            str(info),
            "--ledger",
            str(ledger),
            "--no-monitor",
        ], ledger
    script = {"msgraph-sdk": "sdk.py", "sequential": "sequential.py"}[name]
    events = work / f"{name}.events.jsonl"
    return [
        sys.executable,
        str(HERE / "contenders" / script),
        str(manifest),
        "--mock-info",
        str(info),
        "--events",
        str(events),
    ], events


def read_timeline(
    name: str, path: Path, work: Path
) -> tuple[list[tuple[float, str]], float | None]:
    """(wall time, status) of every finished instance, and the run's work CPU seconds."""
    if not path.exists():
        return [], None
    if name == "bulkprov":
        events, _ = ledger_timeline(path)
        cpu_file = work / "cpu.json"
        cpu = json.loads(cpu_file.read_text())["work_cpu"] if cpu_file.exists() else None
        return [(t, st) for t, _k, st in events], cpu
    out: list[tuple[float, str]] = []
    cpu = None
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("type") == "cpu":
            cpu = rec["work_cpu"]
        else:
            out.append((rec["t"], rec["status"]))
    return out, cpu


def run_contender(
    name: str,
    *,
    n: int,
    manifest: Path,
    work: Path,
    margs: list[str],
    time_scale: float,
    lb: LowerBound,
    budget: float | None,
) -> dict[str, Any]:
    import time

    cwork = work / name
    cwork.mkdir(parents=True, exist_ok=True)
    with mock_process(cwork, margs) as mock:
        cmd, timeline_path = contender_cmd(name, manifest, mock.info_file, cwork)
        mock_cpu0 = mock.cpu_seconds()
        mock_now0 = mock.stats()["now"]  # the mock's Graph clock when the contender starts
        t0 = time.time()
        m: Measured = run_measured(cmd, env=bench_env(), cwd=cwork, timeout=budget)
        stats = mock.stats()
        mock_cpu = mock.cpu_seconds() - mock_cpu0
    events, work_cpu = read_timeline(name, timeline_path, cwork)
    done = [t - t0 for t, st in events if st == "done"]
    failed = sum(1 for _t, st in events if st not in ("done",))
    finished = sorted(t - t0 for t, _ in events)
    makespan_real = finished[-1] if finished and len(finished) >= n else None
    projected = False
    if makespan_real is None and done:
        # stopped at its time budget: project from its own pace (clearly marked as such)
        makespan_real = m.wall * n / max(1, len(finished))
        projected = True
    makespan = makespan_real / time_scale if makespan_real is not None else None
    return {
        "contender": name,
        "makespan_graph_s": makespan,
        "makespan_real_s": makespan_real,
        "projected": projected,
        "ratio_to_lower_bound": makespan / lb.value if makespan else None,
        "completed": len(done),
        "failed": failed,
        "unfinished": n - len(events),
        "duplicates": stats["duplicates"],
        "orphans": stats["orphanApplications"] + stats["orphanServicePrincipals"],
        "requests": stats["requests"],
        "throttled": stats["throttled"],
        "throttled_pct": 100 * stats["throttled"] / max(1, stats["requests"]),
        "early_retries": stats["earlyRetries"],
        "throttled_in_flight": stats["throttledInFlight"],
        "faults_injected": sum(stats["faults"].values()),
        "cpu_s": m.cpu,
        "work_cpu_s": work_cpu,
        "peak_rss_mb": m.max_rss_mb,
        "mock_cpu_s": mock_cpu,
        "wall_s": m.wall,
        "exit_code": m.returncode,
        "timed_out": m.timed_out,
        "stderr_tail": m.stderr_tail[-600:] if m.returncode not in (0, 130) else "",
        "done_at_graph_s": [round(t / time_scale, 3) for t in sorted(done)],
        "throttled_at_graph_s": [round(t - mock_now0, 3) for t in stats.get("throttledAt", [])],
        "example_errors": _errors(name, timeline_path),
    }


def _errors(name: str, path: Path) -> list[str]:
    """A few distinct failure reasons, to say why a contender lost instances."""
    seen: list[str] = []
    if not path.exists():
        return seen
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        msg = rec.get("error")
        if isinstance(msg, dict):
            msg = f"{rec.get('failedStep', '')}: {msg.get('message', '')}"
        if rec.get("type", "instance") == "instance" and msg and rec.get("status") != "done":
            short = str(msg)[:160]
            if short not in seen:
                seen.append(short)
        if len(seen) >= 3:
            break
    return seen


def race(
    *,
    n: int,
    time_scale: float,
    work: Path,
    contenders: tuple[str, ...] = CONTENDERS,
    fault_rate: float = 0.002,
    drop_rate: float = 0.001,
    sequential_budget: float = 300.0,
    seed: int = 1406,
) -> dict[str, Any]:
    margs = mock_args(time_scale=time_scale, seed=seed, fault_rate=fault_rate, drop_rate=drop_rate)
    lb = lower_bound(n, mock_settings(time_scale))
    manifest = write_manifest(work / f"race-{n}.csv", n)
    results = []
    for name in contenders:
        budget = sequential_budget if name == "sequential" else None
        print(f"race: {name} ({n} instances, time scale {time_scale})", file=sys.stderr)
        res = run_contender(
            name,
            n=n,
            manifest=manifest,
            work=work,
            margs=margs,
            time_scale=time_scale,
            lb=lb,
            budget=budget,
        )
        print(
            f"race: {name}: makespan {res['makespan_graph_s']} Graph s, "
            f"{res['completed']} done, {res['throttled']} 429s",
            file=sys.stderr,
        )
        results.append(res)
    return {
        "benchmark": "race",
        "n": n,
        "time_scale": time_scale,
        "mock": {"args": margs},
        "lower_bound": lb.to_json(),
        "results": results,
        "targets": race_targets(results, lb),
        "_lb": asdict(lb),
    }


def race_targets(results: list[dict[str, Any]], lb: LowerBound) -> list[dict[str, Any]]:
    ours = next((r for r in results if r["contender"] == "bulkprov"), None)
    if ours is None:
        return []
    ms = ours["makespan_graph_s"]
    return [
        {
            "target": "makespan within 10% of the lower bound",
            "met": bool(ms and not ours["projected"] and ms <= 1.10 * lb.value),
            "figure": f"{ms:.1f} Graph s vs {lb.value:.1f} (x{ms / lb.value:.3f})" if ms else "n/a",
        },
        {
            "target": "zero failed, duplicate, orphan",
            "met": ours["failed"] == 0
            and ours["unfinished"] == 0
            and ours["duplicates"] == 0
            and ours["orphans"] == 0,
            "figure": f"{ours['failed']} failed, {ours['unfinished']} unfinished, "
            f"{ours['duplicates']} duplicates, {ours['orphans']} orphans",
        },
        {
            "target": "429s under 1% of requests",
            "met": ours["throttled_pct"] < 1.0,
            "figure": f"{ours['throttled']} of {ours['requests']} ({ours['throttled_pct']:.2f}%)",
        },
        {
            "target": "zero early retries",
            "met": ours["early_retries"] == 0,
            "figure": str(ours["early_retries"]),
        },
    ]
