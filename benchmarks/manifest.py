"""Manifest reading: seconds and peak RSS to validate and to stream N instances as JSON, JSONL
and CSV (each with a ``file:`` and an ``env:`` credential), each measured in its own process.

``python -m benchmarks.manifest --n 50000`` (add ``--formats json`` for one format). Prints a
Markdown table; writes nothing but the manifests in a scratch directory.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import AWS, SECRET_ENV

FORMATS = ("json", "jsonl", "csv")


def write(path: Path, n: int) -> Path:
    """``n`` instances in the format of ``path``'s suffix, secrets in ``path.parent/secrets``."""
    secrets = path.parent / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    (secrets / "key-id").write_text(SECRET_ENV["BENCH_AWS_KEY_ID"] + "\n")
    recs = [
        {
            "key": f"bench-{i:06d}",
            "displayName": f"AWS {100000000000 + i * 7919:012d}",
            "template": AWS,
            "credentials": {
                "ClientSecret": "file:secrets/key-id",
                "SecretToken": "env:BENCH_AWS_SECRET",
            },
        }
        for i in range(n)
    ]
    if path.suffix == ".json":
        path.write_text(json.dumps({"instances": recs}, indent=2))  # as `bulkprov export` writes
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    else:
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["key", "displayName", "template", "cred.ClientSecret", "cred.SecretToken"])
            for r in recs:
                c = r["credentials"]
                assert isinstance(c, dict)
                w.writerow(
                    [r["key"], r["displayName"], r["template"], c["ClientSecret"], c["SecretToken"]]
                )
    return path


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited from the parent)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(op: str, path: Path) -> None:
    from bulkprov.manifest import iter_instances, validate

    t0 = time.perf_counter()
    if op == "validate":
        summary = validate(path)
        assert not summary.problems, summary.problems[:3]
        count = summary.count
    else:
        count = sum(1 for _ in iter_instances(path))
    elapsed = time.perf_counter() - t0
    rss = _peak_rss_mb()
    print(json.dumps({"op": op, "count": count, "seconds": elapsed, "rss_mb": rss}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.manifest", description=__doc__)
    p.add_argument("--n", type=int, default=50_000, help="instances (default 50,000)")
    p.add_argument("--formats", default=",".join(FORMATS), help="comma-separated subset")
    p.add_argument("--work", type=Path, default=None, help="scratch directory")
    p.add_argument("--child", nargs=2, metavar=("OP", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="bulkprov-manifest-"))
    env = {**os.environ, **SECRET_ENV}
    print("| format | instances | size MB | validate s | stream s | peak RSS MB (validate) |")
    print("|---|---:|---:|---:|---:|---:|")
    for fmt in args.formats.split(","):
        path = write(work / f"m.{fmt}", args.n)
        got = {}
        for op in ("validate", "stream"):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.manifest", "--child", op, str(path)],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            got[op] = json.loads(out)
            assert got[op]["count"] == args.n, got[op]
        size = path.stat().st_size / 1e6
        print(
            f"| {fmt} | {args.n:,} | {size:.1f} | {got['validate']['seconds']:.2f} "
            f"| {got['stream']['seconds']:.2f} | {got['validate']['rss_mb']:.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
