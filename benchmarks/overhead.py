"""The engine's own cost: Graph requests per CPU second against a mock with no latency, no
throttling and no replication delay, side by side in one run with a bare aiohttp loop sending
as many requests (the machine's physical limit) and with the msgraph-sdk peer.

Each contender runs ``repeats`` times, alternating, each time against a fresh mock process;
the figures are medians. The bare loop sends the same calls as the seed sequence for each
instance, then reads until it has sent as many requests as bulkprov did. CPU seconds are the
client process's own, from the moment its work starts (imports excluded) to its end.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from .common import bench_env, mock_args, mock_process, run_measured, write_manifest
from .race import HERE, contender_cmd, read_timeline

# time scale only shortens the engine's waits between replication reads (no latency here)
QUIET = mock_args(time_scale=0.05, throttle=False, latency=False, replication=False)


def _one(name: str, manifest: Path, work: Path, requests: int | None) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    with mock_process(work, QUIET) as mock:
        if name == "bare":
            assert requests is not None
            cpu_file = work / "cpu.json"
            cmd = [
                sys.executable,
                str(HERE / "contenders" / "bare.py"),
                str(manifest),
                "--mock-info",
                str(mock.info_file),
                "--requests",
                str(requests),
                "--cpu-file",
                str(cpu_file),
            ]
            m = run_measured(cmd, env=bench_env(), cwd=work)
            cpu = json.loads(cpu_file.read_text())["work_cpu"]
            done = None
        else:
            cmd, timeline = contender_cmd(name, manifest, mock.info_file, work)
            m = run_measured(cmd, env=bench_env(), cwd=work)
            events, cpu = read_timeline(name, timeline, work)
            done = sum(1 for _t, st in events if st == "done")
        stats = mock.stats()
    sent = stats["requests"] - stats["byRoute"].get("token", {}).get("200", 0)
    return {
        "contender": name,
        "requests": stats["requests"],
        "work_cpu_s": cpu,
        "requests_per_cpu_s": stats["requests"] / cpu if cpu else None,
        "wall_s": m.wall,
        "done": done,
        "peak_rss_mb": m.max_rss_mb,
        "exit_code": m.returncode,
        "_graph_requests": sent,
    }


def overhead(*, n: int, work: Path, repeats: int = 3) -> dict[str, Any]:
    manifest = write_manifest(work / f"overhead-{n}.csv", n)
    runs: dict[str, list[dict[str, Any]]] = {"bulkprov": [], "bare": [], "msgraph-sdk": []}
    for i in range(repeats):
        print(f"overhead: round {i + 1}/{repeats}", file=sys.stderr)
        ours = _one("bulkprov", manifest, work / f"bulkprov-{i}", None)
        runs["bulkprov"].append(ours)
        runs["bare"].append(_one("bare", manifest, work / f"bare-{i}", ours["requests"]))
        runs["msgraph-sdk"].append(_one("msgraph-sdk", manifest, work / f"sdk-{i}", None))
    med = {
        name: {
            "requests": statistics.median(r["requests"] for r in rs),
            "work_cpu_s": statistics.median(r["work_cpu_s"] for r in rs),
            "requests_per_cpu_s": statistics.median(r["requests_per_cpu_s"] for r in rs),
            "done": rs[0]["done"],
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rs),
        }
        for name, rs in runs.items()
    }
    ours, bare, sdk = med["bulkprov"], med["bare"], med["msgraph-sdk"]
    vs_bare = ours["requests_per_cpu_s"] / bare["requests_per_cpu_s"]
    vs_sdk = ours["requests_per_cpu_s"] / sdk["requests_per_cpu_s"]
    return {
        "benchmark": "overhead",
        "n": n,
        "repeats": repeats,
        "mock": {"args": QUIET},
        "median": med,
        "runs": runs,
        "targets": [
            {
                "target": "at least 50% of the bare aiohttp loop's requests per CPU second",
                "met": vs_bare >= 0.5,
                "figure": f"{100 * vs_bare:.0f}%",
            },
            {
                "target": "at least 10x the msgraph-sdk peer's requests per CPU second",
                "met": vs_sdk >= 10,
                "figure": f"{vs_sdk:.1f}x",
            },
        ],
    }
