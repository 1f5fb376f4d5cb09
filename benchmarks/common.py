"""What every benchmark needs: a mock Graph in its own process, client processes measured with
``wait4`` (CPU seconds, peak RSS), manifests, and the lower bound from the mock's settings."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bulkprov.mockgraph.settings import (
    DEFAULT_LATENCY,
    MockSettings,
    ReplicationSettings,
    ThrottleSettings,
)

ROOT = Path(__file__).resolve().parent
AWS = "AWS Single-Account Access"
# AWS's documented example key pair: the mock validates the format of AWS credentials
SECRET_ENV = {
    "BENCH_AWS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "BENCH_AWS_SECRET": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


# ---------------------------------------------------------------------------------- mock
@dataclass
class Mock:
    """A ``bulkprov mock-graph`` process, its info file and its HTTP control surface."""

    proc: subprocess.Popen[bytes]
    info_file: Path
    info: dict[str, Any]
    ctx: ssl.SSLContext

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.info["graph_url"] + path,
            data=data,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, context=self.ctx, timeout=60) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        return dict(self._call("/_mock/stats"))

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def mock_args(
    *,
    time_scale: float,
    seed: int = 1406,
    throttle: bool = True,
    latency: bool = True,
    replication: bool = True,
    fault_rate: float = 0.0,
    drop_rate: float = 0.0,
    instantiate_404_rate: float = 0.0,
    instantiate_timeout_rate: float = 0.0,
) -> list[str]:
    args = ["--time-scale", str(time_scale), "--seed", str(seed)]
    if not throttle:
        args.append("--no-throttle")
    if not latency:
        args.append("--no-latency")
    if not replication:
        args.append("--no-replication")
    for flag, value in (
        ("--fault-rate", fault_rate),
        ("--drop-rate", drop_rate),
        ("--instantiate-404-rate", instantiate_404_rate),
        ("--instantiate-timeout-rate", instantiate_timeout_rate),
    ):
        if value:
            args += [flag, str(value)]
    return args


@contextlib.contextmanager
def mock_process(workdir: Path, args: Sequence[str]) -> Iterator[Mock]:
    """Start ``bulkprov mock-graph`` with ``args`` on a free port; stop it on exit."""
    info_file = workdir / "mock-info.json"
    info_file.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bulkprov.cli",
            "mock-graph",
            "--port",
            "0",
            "--info-file",
            str(info_file),
            "--state-dir",
            str(workdir / "mock-state"),
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not info_file.exists() or not info_file.stat().st_size:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"mock exited: {err}")
            if time.monotonic() > deadline:
                raise RuntimeError("mock did not start within 60 s")
            time.sleep(0.05)
        time.sleep(0.05)
        info = json.loads(info_file.read_text())
        ctx = ssl.create_default_context(cafile=info["ca_file"])
        yield Mock(proc, info_file, info, ctx)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def mock_settings(time_scale: float, **kw: Any) -> MockSettings:
    """The MockSettings that :func:`mock_args` gives the mock process (for the lower bound)."""
    return MockSettings(
        time_scale=time_scale,
        throttle=ThrottleSettings(enabled=kw.get("throttle", True)),
        replication=ReplicationSettings(enabled=kw.get("replication", True)),
    )


# ------------------------------------------------------------------------ client processes
@dataclass
class Measured:
    """One client process: what ``wait4`` says of it, and how long it ran."""

    returncode: int
    wall: float
    cpu: float  # user + system seconds of the process and its children
    max_rss_mb: float
    timed_out: bool = False
    stderr_tail: str = ""


def run_measured(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    stdout: Path | None = None,
) -> Measured:
    """Run ``cmd``, return its wall time, CPU seconds and peak RSS (from ``wait4``).

    On ``timeout`` the process gets SIGINT (a clean stop: contenders write what they finished
    as they go), then SIGKILL 30 s later.
    """
    full_env = {**os.environ, **(env or {})}
    with tempfile.TemporaryFile() as err, open(stdout or os.devnull, "wb") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, env=full_env, cwd=cwd, stdout=out, stderr=err)
        timed_out = False
        status = rusage = None
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if timeout is not None and time.monotonic() - t0 > timeout and not timed_out:
                timed_out = True
                proc.send_signal(signal.SIGINT)
                kill_at = time.monotonic() + 30
            if timed_out and time.monotonic() > kill_at:
                proc.kill()
            time.sleep(0.02)
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace")[-2000:]
    return Measured(
        returncode=proc.returncode,
        wall=wall,
        cpu=rusage.ru_utime + rusage.ru_stime,
        max_rss_mb=rusage.ru_maxrss / 1024,
        timed_out=timed_out,
        stderr_tail=tail,
    )


# ------------------------------------------------------------------------------ manifests
def write_manifest(
    path: Path, n: int, *, prefix: str = "bench", profiles: Sequence[str] = ()
) -> Path:
    """``n`` AWS Single-Account Access instances, credentials from the environment.

    With ``profiles``, a ``profile`` column names each row's profile, round robin (row ``i``
    gets ``profiles[i % len(profiles)]``: the tenants' rows interleaved, so that every tenant
    has instances in flight from the start); keys and display names stay unique across them.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        head = ["key", "displayName", "template", "cred.ClientSecret", "cred.SecretToken"]
        w.writerow(head + (["profile"] if profiles else []))
        for i in range(n):
            acct = f"{100000000000 + i * 7919:012d}"
            row = [f"{prefix}-{acct}", f"AWS {acct}", AWS, "env:BENCH_AWS_KEY_ID"]
            row.append("env:BENCH_AWS_SECRET")
            w.writerow(row + ([profiles[i % len(profiles)]] if profiles else []))
    return path


def read_manifest_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------- lower bound
#: The seed's setup sequence, one instance: (route class, writes) of each sequential call.
SETUP_CALLS = (
    ("instantiate", 1),
    ("directory_read", 0),  # the first read-back that succeeds after replication
    ("sync_templates", 0),
    ("job_create", 1),
    ("validate", 1),
    ("secrets", 1),
    ("job_control", 1),
)


@dataclass
class LowerBound:
    """The shortest makespan Graph allows, in Graph seconds, and what it is made of.

    ``scopes`` has each quota scope's own floor (see :func:`quota_scopes`); ``write_bound`` and
    ``ru_bound`` are the largest of the write and of the resource-unit scopes, and ``binding``
    names what sets ``value``: ``"critical path"`` or the scope whose floor is the largest.
    """

    n: int
    critical_path: float
    write_bound: float
    ru_bound: float
    tenants: int = 1
    scopes: dict[str, float] = field(default_factory=dict)
    value: float = field(init=False)
    binding: str = field(init=False)

    def __post_init__(self) -> None:
        self.value = max(self.critical_path, self.write_bound, self.ru_bound)
        worst = max(self.scopes.items(), key=lambda kv: kv[1], default=("", 0.0))
        self.binding = worst[0] if worst[1] > self.critical_path else "critical path"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class QuotaScope:
    """One of Graph's token buckets as the bound sees it: what it meters (``"write"``, one per
    write; ``"ru"``, one resource unit per call), whether every tenant draws on the same bucket
    (the per-app limits across tenants) or each tenant on its own, and its limit per window."""

    name: str
    meter: str
    shared: bool
    limit: float
    window: float


def quota_scopes(thr: ThrottleSettings) -> tuple[QuotaScope, ...]:
    """The mock's write and resource-unit buckets (its scopes but the reports one: the setup
    sequence reads no provisioning logs)."""
    return (
        QuotaScope("Tenant_Application/Write", "write", False, thr.write_limit, thr.write_window),
        QuotaScope("Tenant/Write", "write", False, thr.tenant_write_limit, thr.tenant_write_window),
        QuotaScope("Application/Write", "write", True, thr.app_write_limit, thr.app_write_window),
        QuotaScope(
            "Tenant_Application/ResourceUnits", "ru", False, thr.effective_ru_limit, thr.ru_window
        ),
        QuotaScope("Application/ResourceUnits", "ru", True, thr.app_ru_limit, thr.app_ru_window),
    )


def bucket_floor(demand: float, limit: float, window: float, *, start_full: bool) -> float:
    """Graph seconds before a bucket of ``limit`` per ``window`` has let ``demand`` tokens
    through: a full bucket gives ``limit`` at once, the rest come at ``limit / window``."""
    burst = limit if start_full else 0.0
    return max(0.0, (demand - burst) * window / limit)


def lower_bound(
    n: int, settings: MockSettings, *, per_tenant: Sequence[int] | None = None
) -> LowerBound:
    """The larger of latency's floor and the quotas' floor for ``n`` instances.

    Critical path: the sequential calls of one instance, each at its shortest service time
    (latency x (1 - jitter)), plus the shortest replication delay. Quotas: token buckets that
    start full (a burst of ``limit``) or empty, refilled at ``limit / window``; the last
    instance's last write cannot be sent before every bucket it passes holds its token, and it
    still takes the shortest service time of a ``start`` call. Same for resource units (one per
    call). ``per_tenant`` splits the ``n`` instances among tenants (default: one tenant): a
    tenant's own buckets (app + tenant, tenant) see only its instances, the per-app buckets
    across tenants see all ``n``; the bound is the largest of every tenant's and the shared ones.
    """
    counts = list(per_tenant) if per_tenant is not None else [n]
    if sum(counts) != n or not counts:
        raise ValueError(f"per_tenant must split the {n} instances among tenants, got {counts}")
    lat = settings.latency
    per = lat.per_route if lat.enabled else {}
    floor = 1 - lat.jitter if lat.enabled else 0.0

    def t(route: str) -> float:
        return per.get(route, DEFAULT_LATENCY[route] if lat.enabled else 0.0) * floor

    repl = settings.replication.min_delay if settings.replication.enabled else 0.0
    cp = sum(t(r) for r, _ in SETUP_CALLS) + repl
    thr = settings.throttle
    tail = t("job_control")
    per_instance = {"write": sum(w for _, w in SETUP_CALLS), "ru": len(SETUP_CALLS)}
    scopes: dict[str, float] = {}
    if thr.enabled:
        for q in quota_scopes(thr):
            demand = per_instance[q.meter] * (n if q.shared else max(counts))
            wait = bucket_floor(demand, q.limit, q.window, start_full=thr.start_full)
            scopes[q.name] = wait + tail
    writes = [v for k, v in scopes.items() if k.endswith("Write")]
    rus = [v for k, v in scopes.items() if k.endswith("ResourceUnits")]
    return LowerBound(
        n=n,
        critical_path=cp,
        write_bound=max(writes, default=0.0),
        ru_bound=max(rus, default=0.0),
        tenants=len(counts),
        scopes=scopes,
    )


def bench_env() -> dict[str, str]:
    """Environment for client processes: the secrets the manifest references."""
    return dict(SECRET_ENV)


def ledger_records(ledger: Path) -> Iterator[dict[str, Any]]:
    """Each record of a ledger file (a line that is no JSON, a torn last one, left out)."""
    with ledger.open("rb") as f:
        for line in f:
            try:
                yield json.loads(line)
            except ValueError:
                continue


def ledger_timeline(ledger: Path) -> tuple[list[tuple[float, str, str]], float | None]:
    """(wall time, key, status) of every instance record, and the run's start time."""
    events: list[tuple[float, str, str]] = []
    start = None
    for rec in ledger_records(ledger):
        if rec.get("type") == "run" and start is None:
            start = rec.get("t")
        if rec.get("type") == "instance":
            events.append((rec["t"], rec["key"], rec["status"]))
    return events, start
