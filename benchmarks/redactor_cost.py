"""What masking costs per string as the number of secrets held grows.

``python -m benchmarks.redactor_cost [--secrets 2,2000,20000]``: registers that many distinct
secrets (AWS-like key pairs: a 20-character key id and a 40-character secret with ``/`` and
``+``, as a 100k-instance mass onboarding holds them for the instances in flight), then times
:meth:`Redactor.text` on a short ledger string, a 300-character Graph error that echoes one
secret, and a 16 KiB error body without one. Figures are the median of several repeats, in
microseconds per string; ``add`` and ``discard`` are per secret.
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import time
from collections.abc import Callable

from bulkprov.ledger import Redactor


def _secrets(n: int, rng: random.Random) -> list[str]:
    alphabet = string.ascii_letters + string.digits + "/+"
    out: list[str] = []
    for i in range(n // 2 or 1):
        out.append(f"AKIA{i:016d}")
        out.append("".join(rng.choice(alphabet) for _ in range(40)))
    return out[:n]


def _time(fn: Callable[[], object], loops: int, repeats: int = 5) -> float:
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        runs.append((time.perf_counter() - t0) / loops)
    return statistics.median(runs) * 1e6


def measure(n: int) -> dict[str, float]:
    rng = random.Random(n)
    values = _secrets(n, rng)
    red = Redactor()
    t0 = time.perf_counter()
    for v in values:
        red.add(v)
    add_us = (time.perf_counter() - t0) / len(values) * 1e6
    short = "instantiate"
    echoed = (
        "Graph answered 400 BadRequest to POST /servicePrincipals/x/synchronization/jobs/y/"
        f"validateCredentials: the target rejected secret {values[-1]} for key {values[0]}; "
        + "the request was well formed but the credentials are not valid. "
        * 3
    )[:300]
    body = "".join(rng.choice(string.ascii_letters + " ") for _ in range(16 * 1024))
    assert values[-1] not in red.text(echoed)
    out = {
        "add": add_us,
        "short": _time(lambda: red.text(short), 2000),
        "error300": _time(lambda: red.text(echoed), 300),
        "body16k": _time(lambda: red.text(body), 5),
    }
    t0 = time.perf_counter()
    for v in values:
        red.discard(v)
    out["discard"] = (time.perf_counter() - t0) / len(values) * 1e6
    assert red.held == 0
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--secrets", default="2,2000,20000")
    args = p.parse_args()
    print(
        f"{'secrets':>8} {'add':>8} {'short':>8} {'error300':>9} {'body16k':>9} {'discard':>8}"
        "   (microseconds)"
    )
    for n in (int(x) for x in args.secrets.split(",")):
        m = measure(n)
        print(
            f"{n:>8} {m['add']:>8.1f} {m['short']:>8.2f} {m['error300']:>9.1f} "
            f"{m['body16k']:>9.0f} {m['discard']:>8.1f}"
        )


if __name__ == "__main__":
    main()
