"""Rotate: new credentials for N instances set up before, at Graph's quotas.

Set-up (not measured): a mock whose tenant is kept in a directory (:mod:`.keptmock`) with no
throttling, latency or replication delay, and ``bulkprov run --no-monitor`` with a client-side
write quota high enough not to pace, takes the N-instance manifest to done; the mock stops and
saves the tenant. Then every instance's credentials change (the environment variables the
manifest references get AWS's other documented example key pair) and the kept tenant is
reopened by a new mock process at Graph's quotas and latencies (its write buckets start full,
as Graph's do after an idle while) and time scale; ``bulkprov run`` with the same ledger, as a
user types it, applies the rotation: two writes per instance (validateCredentials, then PUT
secrets), so no run can finish before ``(2N - burst) / (limit / window)`` Graph seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bulkprov.mockgraph.settings import DEFAULT_LATENCY, LatencySettings, ThrottleSettings

from .common import SECRET_ENV, bench_env, ledger_timeline, run_measured, write_manifest

HERE = Path(__file__).resolve().parent
#: AWS's other documented example key pair (the mock checks the format of AWS credentials)
NEW_SECRET_ENV = {
    "BENCH_AWS_KEY_ID": "AKIAI44QH8DHBEXAMPLE",
    "BENCH_AWS_SECRET": "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
}
VALIDATE = "POST /servicePrincipals/{id}/synchronization/jobs/{jobId}/validateCredentials"
SECRETS = "PUT /servicePrincipals/{id}/synchronization/secrets"
#: set-up at full speed: nothing but the CPU paces it (buckets are not kept with the tenant)
SETUP_MOCK = ["--no-throttle", "--no-latency", "--no-replication"]


class KeptMock:
    """A :mod:`.keptmock` process: its info file, control surface and final result."""

    def __init__(
        self,
        work: Path,
        keep: Path,
        args: Sequence[str],
        *,
        create: bool,
        env: dict[str, str] | None = None,
    ) -> None:
        self.info_file = work / "mock-info.json"
        self.result_file = work / "mock-result.json"
        for f in (self.info_file, self.result_file):
            f.unlink(missing_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.keptmock",
            "--keep",
            str(keep),
            "--info-file",
            str(self.info_file),
            "--result-file",
            str(self.result_file),
            *(["--create"] if create else []),
            *args,
        ]
        self.proc = subprocess.Popen(
            cmd,
            cwd=HERE.parent,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        while not self.info_file.exists():
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"mock exited: {err[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("mock did not start within 120 s")
            time.sleep(0.05)
        self.info = json.loads(self.info_file.read_text())
        self.ctx = ssl.create_default_context(cafile=self.info["ca_file"])

    def stats(self) -> dict[str, Any]:
        req = urllib.request.Request(self.info["graph_url"] + "/_mock/stats")
        with urllib.request.urlopen(req, context=self.ctx, timeout=120) as resp:
            return dict(json.loads(resp.read()))

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(300)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if not self.result_file.exists():
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise RuntimeError(f"mock wrote no result: {err[-2000:]}")
        return dict(json.loads(self.result_file.read_text()))


@contextlib.contextmanager
def kept_mock(
    work: Path, keep: Path, args: Sequence[str], *, create: bool, env: dict[str, str] | None = None
) -> Iterator[KeptMock]:
    mock = KeptMock(work, keep, args, create=create, env=env)
    try:
        yield mock
    finally:
        if mock.proc.poll() is None:
            mock.proc.kill()
            mock.proc.wait()


def run_cmd(manifest: Path, info: Path, ledger: Path, work: Path, *extra: str) -> list[str]:
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
        "--progress-every",
        "0",
        *extra,
    ]


def by_route(
    before: dict[str, Any], after: dict[str, Any], *, answered: bool = False
) -> dict[str, int]:
    """Requests per route between two stats answers; ``answered``: only those not answered
    429 (a throttled request changed nothing, and its retry is counted again)."""

    def flat(s: dict[str, Any]) -> dict[str, int]:
        return {
            r: sum(v for code, v in c.items() if not (answered and code == "429"))
            for r, c in s["byRoute"].items()
        }

    a, b = flat(before), flat(after)
    return {r: n - a.get(r, 0) for r, n in sorted(b.items()) if n - a.get(r, 0)}


def writes_of(routes: dict[str, int]) -> dict[str, int]:
    return {
        r: n
        for r, n in routes.items()
        if r.split()[0] in ("POST", "PUT", "PATCH", "DELETE") and "oauth2" not in r
    }


def setup(
    n: int, work: Path, keep: Path, manifest: Path, ledger: Path, args: list[str]
) -> dict[str, Any]:
    """Take the manifest to done against a kept tenant, unmeasured."""
    shutil.rmtree(keep, ignore_errors=True)
    ledger.unlink(missing_ok=True)
    swork = work / "setup"
    swork.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with kept_mock(swork, keep, args, create=True) as mock:
        cmd = run_cmd(
            manifest,
            mock.info_file,
            ledger,
            swork,
            "--no-monitor",
            "--write-quota",
            "10000000/150",
            "--ru-quota",
            "10000000/10",
        )
        for _ in range(3):  # on a loaded machine a step may pass its deadline: resume
            m = run_measured(cmd, env=bench_env(), cwd=swork)
            if m.returncode == 0:
                break
        stats = mock.stats()
        mock.stop()
    tenant = next(iter(stats["tenants"].values()))
    if m.returncode != 0 or tenant["applications"] != n:
        raise RuntimeError(f"set-up failed (exit {m.returncode}): {m.stderr_tail[-800:]}")
    return {
        "wall_s": time.monotonic() - t0,
        "mock_args": args,
        "exit_code": m.returncode,
        "applications": tenant["applications"],
        "graph_clock_s": stats["now"],
    }


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rotate(
    *, n: int, time_scale: float, work: Path, setup_time_scale: float = 0.02
) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    port = ["--port", str(free_port())]  # a ledger names its Graph's URL: the same for both
    manifest = write_manifest(work / f"rotate-{n}.csv", n)
    ledger = work / "rotate.jsonl"
    keep = work / "tenant"
    print(
        f"rotate: setting up {n} instances (time scale {setup_time_scale}, not measured)",
        file=sys.stderr,
    )
    set_up = setup(
        n, work, keep, manifest, ledger, [*port, "--time-scale", str(setup_time_scale), *SETUP_MOCK]
    )
    print(f"rotate: set up in {set_up['wall_s']:.0f} s; rotating", file=sys.stderr)
    thr = ThrottleSettings()
    writes = 2 * n
    burst = thr.write_limit if thr.start_full else 0
    write_bound = max(0.0, writes - burst) * thr.write_window / thr.write_limit
    lat = LatencySettings()
    # one instance's two calls at their shortest service time: the floor for a small N
    critical = sum(lat.per_route.get(r, DEFAULT_LATENCY[r]) for r in ("validate", "secrets")) * (
        1 - lat.jitter
    )
    bound = max(write_bound, critical)
    margs = [*port, "--time-scale", str(time_scale)]
    mwork = work / "measured"
    mwork.mkdir(parents=True, exist_ok=True)
    expect = {
        "BENCH_EXPECT_KEY_ID": NEW_SECRET_ENV["BENCH_AWS_KEY_ID"],
        "BENCH_EXPECT_SECRET": NEW_SECRET_ENV["BENCH_AWS_SECRET"],
    }
    with kept_mock(mwork, keep, margs, create=False, env=expect) as mock:
        before = mock.stats()
        cpu0 = mock.cpu_seconds()
        cmd = run_cmd(manifest, mock.info_file, ledger, mwork)
        t0 = time.time()
        m = run_measured(cmd, env={**SECRET_ENV, **NEW_SECRET_ENV}, cwd=mwork)
        after = mock.stats()
        mock_cpu = mock.cpu_seconds() - cpu0
        held = mock.stop()
    return measured_result(
        n=n,
        time_scale=time_scale,
        margs=margs,
        set_up=set_up,
        m=m,
        t0=t0,
        before=before,
        after=after,
        mock_cpu=mock_cpu,
        held=held,
        ledger=ledger,
        mwork=mwork,
        bound=bound,
        burst=burst,
        writes=writes,
    )


def measured_result(
    *,
    n: int,
    time_scale: float,
    margs: list[str],
    set_up: dict[str, Any],
    m: Any,
    t0: float,
    before: dict[str, Any],
    after: dict[str, Any],
    mock_cpu: float,
    held: dict[str, Any],
    ledger: Path,
    mwork: Path,
    bound: float,
    burst: int,
    writes: int,
) -> dict[str, Any]:
    events, _ = ledger_timeline(ledger)
    mine = [(t - t0, st) for t, _k, st in events if t >= t0]
    run_t = next((r for r in _run_starts(ledger) if r >= t0), None)
    done = sum(1 for _t, st in mine if st == "done")
    finished = sorted(t for t, _ in mine)
    makespan = finished[-1] / time_scale if len(finished) >= n else None
    routes = by_route(before, after)
    w = writes_of(by_route(before, after, answered=True))
    cpu_file = mwork / "cpu.json"
    work_cpu = json.loads(cpu_file.read_text())["work_cpu"] if cpu_file.exists() else None
    res: dict[str, Any] = {
        "benchmark": "rotate",
        "n": n,
        "time_scale": time_scale,
        "mock": {"args": margs},
        "setup": set_up,
        "bound_graph_s": bound,
        "writes_expected": writes,
        "burst": burst,
        "makespan_graph_s": makespan,
        "ratio_to_bound": makespan / bound if makespan and bound else None,
        "graph_clock_s": after["now"] - before["now"],
        "wall_s": m.wall,
        "first_done_graph_s": finished[0] / time_scale if finished else None,
        # from the run's ledger header (manifest and ledger read, before the first request)
        "startup_graph_s": (run_t - t0) / time_scale if run_t is not None else None,
        "makespan_after_startup_graph_s": (finished[-1] - (run_t - t0)) / time_scale
        if run_t is not None and makespan
        else None,
        "done": done,
        "failed": len(mine) - done,
        "unfinished": n - len(mine),
        "exit_code": m.returncode,
        "requests": sum(routes.values()),
        "writes_by_route": w,
        "validate_writes": w.get(VALIDATE, 0),
        "secrets_writes": w.get(SECRETS, 0),
        "other_writes": sum(v for r, v in w.items() if r not in (VALIDATE, SECRETS)),
        "requests_by_route": routes,  # 429s included
        "throttled": after["throttled"] - before["throttled"],
        "early_retries": after["earlyRetries"] - before["earlyRetries"],
        "secrets_held": held["secrets"],
        "mock_loop_lag": held["loop_lag"],
        "mock_cpu_s": mock_cpu,
        "cpu_s": m.cpu,
        "work_cpu_s": work_cpu,
        "peak_rss_mb": m.max_rss_mb,
        "done_at_graph_s": [round(t / time_scale, 2) for t in finished],
        "stderr_tail": m.stderr_tail[-600:] if m.returncode else "",
    }
    res["targets"] = rotate_targets(res)
    return res


def _run_starts(ledger: Path) -> list[float]:
    """When each run on the ledger began (its ``run`` record), as epoch seconds."""
    from datetime import datetime

    out = []
    with ledger.open("rb") as f:
        for line in f:
            if line.startswith(b'{"type":"run"'):
                with contextlib.suppress(ValueError, KeyError):
                    out.append(datetime.fromisoformat(json.loads(line)["at"]).timestamp())
    return out


def rotate_targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    ms, bound, n = r["makespan_graph_s"], r["bound_graph_s"], r["n"]
    lag = r["mock_loop_lag"]
    return [
        {
            "target": "makespan within 1.10x of the write bound",
            "met": bool(ms and ms <= 1.10 * bound),
            "figure": f"{ms:.1f} Graph s vs {bound:.1f} (x{ms / bound:.3f})" if ms else "n/a",
        },
        {
            "target": "0 failed, every instance done",
            "met": r["failed"] == 0 and r["done"] == n,
            "figure": f"{r['done']:,} done, {r['failed']} failed, {r['unfinished']} unfinished",
        },
        {
            "target": f"exactly {n:,} validateCredentials + {n:,} secrets PUTs, no other write",
            "met": r["validate_writes"] == n
            and r["secrets_writes"] == n
            and r["other_writes"] == 0,
            "figure": f"{r['validate_writes']:,} + {r['secrets_writes']:,}, "
            f"{r['other_writes']} other",
        },
        {
            "target": "the mock holds the new credentials for every instance",
            "met": r["secrets_held"]["new"] == n,
            "figure": ", ".join(f"{k} {v:,}" for k, v in r["secrets_held"].items()),
        },
        {
            "target": "zero early retries",
            "met": r["early_retries"] == 0,
            "figure": f"{r['early_retries']} early retries, {r['throttled']} 429s",
        },
        {
            "target": "the mock is not CPU-bound (loop lag max under 0.1 real s)",
            "met": lag["max_s"] < 0.1,
            "figure": f"max {lag['max_s'] * 1000:.0f} ms, p99 {lag['p99_s'] * 1000:.0f} ms, "
            f"mean {lag['mean_s'] * 1000:.1f} ms",
        },
    ]
