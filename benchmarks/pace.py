"""Pacing against the quota Graph really has (issue 16): N instances against a Graph whose
write bucket allows only ``rate`` writes per second with no burst, unknown to the client.

The mock's write bucket (app + tenant) is ``rate * 150`` writes per 150 s, and every bucket
starts empty (``--start-empty``: the "deep empty bucket": the capacity is there, but nothing is
in it, so the refill rate binds from the first write). The client knows only Graph's published
quota (3,000 per 150 s, a burst of 3,000). Each contender (bulkprov, msgraph-sdk) runs against a
fresh mock per rate; the figures are the race's (makespan against the bound, 429s as a share of
requests, early retries: requests sent inside a scope a 429 had closed, counted by the mock).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bulkprov.mockgraph.settings import MockSettings, ReplicationSettings, ThrottleSettings

from .common import lower_bound, mock_args, write_manifest
from .race import run_contender
from .report import _f, table

RATES = (10.0, 15.0, 20.0)
WINDOW = 150.0
CONTENDERS = ("bulkprov", "msgraph-sdk")
TARGET_RATIO, TARGET_429_PCT = 1.15, 1.0


def pace(
    *,
    n: int,
    time_scale: float,
    work: Path,
    rates: tuple[float, ...] = RATES,
    contenders: tuple[str, ...] = CONTENDERS,
    seed: int = 1406,
    budget_factor: float = 4.0,
) -> dict[str, Any]:
    manifest = write_manifest(work / f"pace-{n}.csv", n)
    runs = []
    for rate in rates:
        limit = round(rate * WINDOW)
        throttle = ["--write-limit", str(limit), "--write-window", str(WINDOW), "--start-empty"]
        margs = mock_args(time_scale=time_scale, seed=seed) + throttle
        lb = lower_bound(
            n,
            MockSettings(
                time_scale=time_scale,
                throttle=ThrottleSettings(write_limit=limit, write_window=WINDOW, start_full=False),
                replication=ReplicationSettings(),
            ),
        )
        for name in contenders:
            print(
                f"pace: {name} at {rate:g} writes/s ({n} instances, time scale {time_scale})",
                file=sys.stderr,
            )
            # a contender that falls far behind is stopped, its makespan projected (marked)
            budget = budget_factor * lb.value * time_scale + 60
            res = run_contender(
                name,
                n=n,
                manifest=manifest,
                work=work / f"rate-{rate:g}",
                margs=margs,
                time_scale=time_scale,
                lb=lb,
                budget=budget,
            )
            res.update(rate=rate, lower_bound=lb.value, write_bound=lb.write_bound)
            print(
                f"pace: {name} at {rate:g}/s: makespan {_f(res['makespan_graph_s'])} Graph s "
                f"(bound {lb.value:.0f}), {res['throttled']} 429s, "
                f"{res['early_retries']} early",
                file=sys.stderr,
            )
            runs.append(res)
    return {
        "benchmark": "pace",
        "n": n,
        "time_scale": time_scale,
        "write_window": WINDOW,
        "mock": "write bucket rate*150 per 150 s, every bucket starting empty (--start-empty)",
        "results": runs,
        "targets": pace_targets(runs),
    }


def pace_targets(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ours = [r for r in runs if r["contender"] == "bulkprov"]
    out = []
    for r in ours:
        ms, ratio = r["makespan_graph_s"], r["ratio_to_lower_bound"]
        complete = not r["projected"] and r["unfinished"] == 0 and r["failed"] == 0
        out += [
            {
                "target": f"{r['rate']:g}/s: makespan within {TARGET_RATIO}x of the bound",
                "met": bool(ratio and complete and ratio <= TARGET_RATIO),
                "figure": f"{_f(ms)} vs {r['lower_bound']:.1f} Graph s (x{_f(ratio, 3)})",
            },
            {
                "target": f"{r['rate']:g}/s: 429s under {TARGET_429_PCT:g}% of requests",
                "met": r["throttled_pct"] < TARGET_429_PCT,
                "figure": f"{r['throttled']} of {r['requests']} ({r['throttled_pct']:.2f}%)",
            },
            {
                "target": f"{r['rate']:g}/s: zero early retries",
                "met": r["early_retries"] == 0,
                "figure": str(r["early_retries"]),
            },
        ]
    return out


def pace_md(res: dict[str, Any]) -> str:
    rows = [
        [
            f"{r['rate']:g}",
            r["contender"],
            _f(r["makespan_graph_s"]) + (" (projected)" if r["projected"] else ""),
            f"{r['lower_bound']:.0f}",
            _f(r["ratio_to_lower_bound"], 2),
            f"{r['completed']}/{res['n']}",
            f"{r['throttled']} ({r['throttled_pct']:.2f}%)",
            r["early_retries"],
            r["requests"],
        ]
        for r in res["results"]
    ]
    lines = [
        f"## Pace: {res['n']:,} instances against an unknown write rate (no burst)",
        "",
        f"Mock: {res['mock']}; the client knows only Graph's published quota. Time scale "
        f"{res['time_scale']} (real seconds per Graph second; figures in Graph seconds). Bound: "
        "5N / rate plus the last call's shortest service time (the write bucket binds).",
        "",
        table(
            [
                "writes/s",
                "contender",
                "makespan (Graph s)",
                "bound",
                "x bound",
                "done",
                "429s (share of requests)",
                "early retries",
                "requests",
            ],
            rows,
        ),
        "",
        "Targets (bulkprov):",
        "",
    ]
    lines += [
        f"- {'met' if t['met'] else 'NOT met'}: {t['target']}: {t['figure']}"
        for t in res["targets"]
    ]
    return "\n".join(lines)


def pace_plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = sorted({r["rate"] for r in res["results"]})
    fig, axes = plt.subplots(1, len(rates), figsize=(5 * len(rates), 4.5), dpi=110, squeeze=False)
    colors = {"bulkprov": "tab:blue", "msgraph-sdk": "tab:orange"}
    for ax, rate in zip(axes[0], rates, strict=True):
        lb = 0.0
        xmax = 0.0
        for r in (r for r in res["results"] if r["rate"] == rate):
            lb = r["lower_bound"]
            xs = r["done_at_graph_s"]
            if not xs:
                continue
            c = colors.get(r["contender"])
            ax.step(
                xs,
                range(1, len(xs) + 1),
                where="post",
                color=c,
                label=f"{r['contender']} ({r['throttled_pct']:.1f}% 429s)",
            )
            if r["throttled_at_graph_s"]:
                t429 = r["throttled_at_graph_s"]
                ax.plot(t429, [0] * len(t429), "|", color=c, markersize=10, alpha=0.4)
            xmax = max(xmax, xs[-1])
        ax.axvline(lb, color="black", linestyle="--", label=f"bound {lb:.0f} s")
        ax.set_xlim(0, max(xmax, lb) * 1.05)
        ax.set_title(f"{rate:g} writes/s, no burst")
        ax.set_xlabel("Graph seconds (ticks at 0: 429s)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    axes[0][0].set_ylabel("instances onboarded")
    fig.suptitle(f"{res['n']:,} instances against a write rate the client does not know")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
