"""Scale: bulkprov's peak RSS and time per instance for manifests of growing size, against a
mock with no latency, throttling or replication delay. Memory must stay flat as N grows: the
manifest is streamed, the ledger written as the run goes, in-flight state bounded."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .common import bench_env, mock_process, run_measured, write_manifest
from .overhead import QUIET
from .race import contender_cmd, read_timeline


def _mock_peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def scale(*, sizes: list[int], work: Path) -> dict[str, Any]:
    rows = []
    for n in sizes:
        print(f"scale: {n} instances", file=sys.stderr)
        w = work / f"n{n}"
        w.mkdir(parents=True, exist_ok=True)
        manifest = write_manifest(w / f"scale-{n}.csv", n)
        with mock_process(w, QUIET) as mock:
            cmd, ledger = contender_cmd("bulkprov", manifest, mock.info_file, w)
            m = run_measured(cmd, env=bench_env(), cwd=w)
            stats = mock.stats()
            mock_rss = _mock_peak_rss_mb(mock.proc.pid)
        events, cpu = read_timeline("bulkprov", ledger, w)
        done = sum(1 for _t, st in events if st == "done")
        rows.append(
            {
                "n": n,
                "done": done,
                "failed": len(events) - done,
                "peak_rss_mb": m.max_rss_mb,
                "wall_s": m.wall,
                "ms_per_instance": 1000 * m.wall / n,
                "cpu_ms_per_instance": 1000 * (cpu or m.cpu) / n,
                "requests": stats["requests"],
                "duplicates": stats["duplicates"],
                "ledger_mb": ledger.stat().st_size / 2**20 if ledger.exists() else 0.0,
                "mock_peak_rss_mb": mock_rss,
                "exit_code": m.returncode,
            }
        )
        print(f"scale: {n}: {m.max_rss_mb:.0f} MB peak RSS, {m.wall:.0f} s", file=sys.stderr)
    small, big = rows[0], rows[-1]
    ratio = big["peak_rss_mb"] / small["peak_rss_mb"]
    return {
        "benchmark": "scale",
        "mock": {"args": QUIET},
        "rows": rows,
        "targets": [
            {
                "target": f"peak RSS for {big['n']:,} instances under 200 MB",
                "met": big["peak_rss_mb"] < 200 and big["done"] == big["n"],
                "figure": f"{big['peak_rss_mb']:.0f} MB ({big['done']:,} done)",
            },
            {
                "target": f"peak RSS within 1.5x of the {small['n']:,}-instance run's",
                "met": ratio <= 1.5,
                "figure": f"x{ratio:.2f}",
            },
        ],
    }
