"""A mock Graph process whose tenant is kept in a directory (``MockGraph(keep=DIR)``), for the
benchmarks that need a tenant set up before the measured run (``rotate``).

``python -m benchmarks.keptmock --keep DIR [--create] --info-file F --result-file R
[mock options]`` serves until SIGINT or SIGTERM, then writes ``R`` (JSON) before the tenant is
saved: the event loop's lag as sampled every 20 ms (max, p99, mean, in real seconds), and, when
``BENCH_EXPECT_KEY_ID`` / ``BENCH_EXPECT_SECRET`` are set, how many service principals hold
exactly those values (counts only; no value is written).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from bulkprov.files import write_atomic
from bulkprov.mockgraph.cli import add_mock_options, mock_settings_from_args
from bulkprov.mockgraph.server import MockGraph


class LagProbe:
    """Samples how late a 20 ms sleep wakes up: the event loop's lag."""

    def __init__(self, period: float = 0.02) -> None:
        self.period = period
        self.lags: list[float] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(self.period)
            self.lags.append(max(0.0, loop.time() - t0 - self.period))

    def summary(self) -> dict[str, float]:
        xs = sorted(self.lags) or [0.0]
        return {
            "samples": len(self.lags),
            "max_s": xs[-1],
            "p99_s": xs[min(len(xs) - 1, int(0.99 * len(xs)))],
            "mean_s": sum(xs) / len(xs),
        }


def secrets_held(mock: MockGraph) -> dict[str, int]:
    """Service principals holding the expected credentials, those holding other values, and
    those still holding only what a kept tenant restored (``(kept)``)."""
    key_id = os.environ.get("BENCH_EXPECT_KEY_ID")
    secret = os.environ.get("BENCH_EXPECT_SECRET")
    out = {"new": 0, "kept": 0, "other": 0, "none": 0}
    for tenant in mock.service.tenants.values():
        for sp in tenant.service_principals.values():
            held = sp.secrets
            if not held:
                out["none"] += 1
            elif (
                key_id and held.get("ClientSecret") == key_id and held.get("SecretToken") == secret
            ):
                out["new"] += 1
            elif all(v == "(kept)" for v in held.values()):
                out["kept"] += 1
            else:
                out["other"] += 1
    return out


async def serve(args: argparse.Namespace) -> None:
    settings = mock_settings_from_args(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    probe = LagProbe()
    async with MockGraph(settings, port=args.port, keep=args.keep, create=args.create) as mock:
        assert mock.info is not None
        write_atomic(args.info_file, mock.info.to_json())
        task = asyncio.create_task(probe.run())
        await stop.wait()
        task.cancel()
        result: dict[str, Any] = {
            "loop_lag": probe.summary(),
            "secrets": secrets_held(mock),
            "now": mock.clock.now(),
        }
        write_atomic(args.result_file, json.dumps(result).encode())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.keptmock", description=__doc__)
    p.add_argument("--keep", type=Path, required=True)
    p.add_argument("--create", action="store_true")
    p.add_argument(
        "--port",
        type=int,
        default=0,
        help="the same for set-up and measured run: a ledger names its Graph's URL",
    )
    p.add_argument("--info-file", type=Path, required=True)
    p.add_argument("--result-file", type=Path, required=True)
    add_mock_options(p)
    asyncio.run(serve(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
