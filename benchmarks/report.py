"""Results to JSON, Markdown tables and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _f(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_f(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def targets_md(targets: list[dict[str, Any]]) -> str:
    return table(
        ["target", "met", "figure"],
        [[t["target"], "**met**" if t["met"] else "**not met**", t["figure"]] for t in targets],
    )


def race_md(res: dict[str, Any]) -> str:
    lb = res["lower_bound"]
    out = [
        f"### Race: {res['n']:,} instances at Graph's default quotas "
        f"(time scale {res['time_scale']})",
        "",
        f"Lower bound {lb['value']:.1f} Graph s (writes {lb['write_bound']:.1f}, "
        f"resource units {lb['ru_bound']:.1f}, one instance's critical path "
        f"{lb['critical_path']:.1f}). Mock: `{' '.join(res['mock']['args'])}`.",
        "",
        table(
            [
                "contender",
                "makespan (Graph s)",
                "x lower bound",
                "done",
                "failed",
                "unfinished",
                "duplicates",
                "orphans",
                "requests",
                "429s",
                "early retries",
                "CPU s (run)",
                "CPU s (process)",
                "peak RSS MB",
            ],
            [
                [
                    r["contender"],
                    (_f(r["makespan_graph_s"]) + (" (projected)" if r["projected"] else "")),
                    f"{r['ratio_to_lower_bound']:.2f}" if r["ratio_to_lower_bound"] else "-",
                    r["completed"],
                    r["failed"],
                    r["unfinished"],
                    r["duplicates"],
                    r["orphans"],
                    r["requests"],
                    r["throttled"],
                    r["early_retries"],
                    r["work_cpu_s"],
                    r["cpu_s"],
                    r["peak_rss_mb"],
                ]
                for r in res["results"]
            ],
        ),
        "",
        targets_md(res["targets"]),
    ]
    for r in res["results"]:
        if r["example_errors"]:
            out += [
                "",
                f"{r['contender']} failures, e.g.: "
                + "; ".join(f"`{e}`" for e in r["example_errors"]),
            ]
    return "\n".join(out)


def race_plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    lb = res["lower_bound"]["value"]
    colors = {"bulkprov": "tab:blue", "msgraph-sdk": "tab:orange", "sequential": "tab:gray"}
    xmax = lb * 1.5
    for r in res["results"]:
        xs = r["done_at_graph_s"]
        if not xs:
            continue
        ys = list(range(1, len(xs) + 1))
        c = colors.get(r["contender"])
        label = f"{r['contender']} ({r['completed']} done"
        label += f", {r['throttled']} 429s)" if r["throttled"] else ")"
        ax.step(xs, ys, where="post", color=c, label=label)
        xmax = max(xmax, min(xs[-1], lb * 4) * 1.05)
        if r["throttled_at_graph_s"]:
            t429 = r["throttled_at_graph_s"]
            ax.plot(t429, [0] * len(t429), "|", color=c, markersize=12, alpha=0.5)
    ax.axvline(lb, color="black", linestyle="--", label=f"lower bound {lb:.0f} Graph s")
    ax.axhline(res["n"], color="black", linewidth=0.5)
    ax.set_xlim(0, xmax)
    ax.set_xlabel("Graph seconds since start (ticks at 0: 429s answered)")
    ax.set_ylabel("instances onboarded")
    ax.set_title(f"Onboarding {res['n']:,} instances at Graph's quotas")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save(res: dict[str, Any], out: Path, name: str, md: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / f"{name}.md").write_text(md + "\n")


def overhead_md(res: dict[str, Any]) -> str:
    med = res["median"]
    rows = [
        [name, m["requests"], m["work_cpu_s"], m["requests_per_cpu_s"], m["done"], m["peak_rss_mb"]]
        for name, m in med.items()
    ]
    return "\n".join(
        [
            f"### Overhead: {res['n']:,} instances, mock with no latency, throttling or "
            f"replication delay (medians of {res['repeats']} alternating runs)",
            "",
            table(
                [
                    "client",
                    "requests",
                    "CPU s",
                    "requests per CPU s",
                    "instances done",
                    "peak RSS MB",
                ],
                rows,
            ),
            "",
            targets_md(res["targets"]),
        ]
    )


def scale_md(res: dict[str, Any]) -> str:
    rows = [
        [
            r["n"],
            r["done"],
            r["failed"],
            r["peak_rss_mb"],
            r["wall_s"],
            r["ms_per_instance"],
            r["cpu_ms_per_instance"],
            r["requests"],
            r["ledger_mb"],
            r["mock_peak_rss_mb"],
        ]
        for r in res["rows"]
    ]
    return "\n".join(
        [
            "### Scale: bulkprov against a mock with no latency, throttling or replication delay",
            "",
            table(
                [
                    "instances",
                    "done",
                    "failed",
                    "peak RSS MB",
                    "wall s",
                    "ms per instance",
                    "CPU ms per instance",
                    "requests",
                    "ledger MB",
                    "mock peak RSS MB",
                ],
                rows,
            ),
            "",
            targets_md(res["targets"]),
        ]
    )


def soak_md(res: dict[str, Any]) -> str:
    faults = ", ".join(f"{k} {v}" for k, v in sorted(res["faults_injected"].items()))
    return "\n".join(
        [
            f"### Soak: {res['n']:,} instances, {res['fault_pct']:.1f}% of requests faulted, "
            f"{len(res['kills'])} SIGKILLs (time scale {res['time_scale']})",
            "",
            f"Mock: `{' '.join(res['mock']['args'])}`. Faults injected: {faults}. "
            f"{res['requests']:,} requests, {res['throttled']} 429s, {res['early_retries']} early "
            f"retries, {res['runs']} runs on one ledger (killed at {res['kills']} s), final exit "
            f"code {res['final_exit_code']}, {res['wall_s']:.0f} s.",
            "",
            targets_md(res["targets"]),
        ]
    )


def rotate_md(res: dict[str, Any]) -> str:
    lag = res["mock_loop_lag"]
    writes = ", ".join(f"`{r}` {n:,}" for r, n in res["writes_by_route"].items())
    return "\n".join(
        [
            f"### Rotate: new credentials for {res['n']:,} instances set up before, at Graph's "
            f"quotas (time scale {res['time_scale']})",
            "",
            f"Bound {res['bound_graph_s']:.1f} Graph s: {res['writes_expected']:,} writes, the "
            f"first {res['burst']:,} from the full bucket, the rest at 20 per Graph s. "
            f"Mock: `{' '.join(res['mock']['args'])}`; set-up (not measured) "
            f"{res['setup']['wall_s']:.0f} s at `{' '.join(res['setup']['mock_args'])}`.",
            "",
            table(
                [
                    "makespan (Graph s)",
                    "x bound",
                    "start-up (Graph s)",
                    "done",
                    "failed",
                    "requests",
                    "writes",
                    "429s",
                    "early retries",
                    "mock loop lag max / p99 (ms)",
                    "CPU s (run)",
                    "mock CPU s",
                    "peak RSS MB",
                ],
                [
                    [
                        res["makespan_graph_s"],
                        f"{res['ratio_to_bound']:.3f}" if res["ratio_to_bound"] else "-",
                        res["startup_graph_s"],
                        res["done"],
                        res["failed"],
                        res["requests"],
                        sum(res["writes_by_route"].values()),
                        res["throttled"],
                        res["early_retries"],
                        f"{lag['max_s'] * 1000:.0f} / {lag['p99_s'] * 1000:.0f}",
                        res["work_cpu_s"],
                        res["mock_cpu_s"],
                        res["peak_rss_mb"],
                    ]
                ],
            ),
            "",
            f"Writes by route (not counting those answered 429): {writes}.",
            "",
            targets_md(res["targets"]),
        ]
    )
