"""``python -m benchmarks {race,pace,overhead,scale,soak,rotate,tenants,all,report}``: see
README.md."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from . import report

OUT = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument(
        "which",
        choices=("race", "pace", "overhead", "scale", "soak", "rotate", "tenants", "all", "report"),
        help="a benchmark, all of them, or `report`: render the Markdown and the "
        "plot again from the JSON results",
    )
    p.add_argument(
        "--n",
        type=int,
        default=None,
        help="instances (race, soak, overhead; rotate: default 5000; tenants: per tenant, "
        "default 250)",
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=None,
        help="real seconds per Graph second (race: default 1.0, Graph's own pace, "
        "so that no client is CPU-bound only because the clock was compressed; "
        "pace: 0.1, about 10 minutes in all; rotate: 1.0, see "
        "benchmarks/README.md; soak: 0.2)",
    )
    p.add_argument("--contenders", default=None, help="comma-separated subset")
    p.add_argument(
        "--sequential-budget",
        type=float,
        default=300.0,
        help="real seconds the sequential contender may run before it is stopped "
        "and its makespan projected from its pace",
    )
    p.add_argument("--tenants", type=int, default=20, help="tenants: how many (default 20)")
    p.add_argument(
        "--scenarios", default=None, help="tenants: comma-separated subset of published,drained"
    )
    p.add_argument("--sizes", default="1000,10000,100000", help="scale: manifest sizes")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--work", type=Path, default=None, help="scratch directory")
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bulkprov-bench-"))
    if args.which == "report":
        return rerender(args.out)
    which = ("race", "pace", "overhead", "scale", "soak") if args.which == "all" else (args.which,)
    for w in which:
        if w == "race":
            from .race import CONTENDERS, race

            res = race(
                n=args.n or 1000,
                time_scale=args.time_scale or 1.0,
                work=work / "race",
                contenders=tuple(args.contenders.split(",")) if args.contenders else CONTENDERS,
                sequential_budget=args.sequential_budget,
            )
            md = report.race_md(res)
            report.save(res, args.out, "race", md)
            report.race_plot(res, args.out / "race.png")
        elif w == "pace":
            from .pace import CONTENDERS as PACERS
            from .pace import pace, pace_md, pace_plot

            res = pace(
                n=args.n or 1000,
                time_scale=args.time_scale or 0.1,
                work=work / "pace",
                contenders=tuple(args.contenders.split(",")) if args.contenders else PACERS,
            )
            md = pace_md(res)
            report.save(res, args.out, "pace", md)
            pace_plot(res, args.out / "pace.png")
        elif w == "overhead":
            from .overhead import overhead

            res = overhead(n=args.n or 1000, work=work / "overhead")
            md = report.overhead_md(res)
            report.save(res, args.out, "overhead", md)
        elif w == "scale":
            from .scale import scale

            res = scale(sizes=[int(s) for s in args.sizes.split(",")], work=work / "scale")
            md = report.scale_md(res)
            report.save(res, args.out, "scale", md)
        elif w == "soak":
            from .soak import soak

            res = soak(n=args.n or 1000, time_scale=args.time_scale or 0.2, work=work / "soak")
            md = report.soak_md(res)
            report.save(res, args.out, "soak", md)
        elif w == "rotate":
            from .rotate import rotate

            res = rotate(n=args.n or 5000, time_scale=args.time_scale or 1.0, work=work / "rotate")
            md = report.rotate_md(res)
            report.save(res, args.out, "rotate", md)
        elif w == "tenants":
            from .tenants import SCENARIOS, tenants_bench, tenants_md, tenants_plot

            res = tenants_bench(
                tenants=args.tenants,
                per_tenant=args.n or 250,
                time_scale=args.time_scale or 1.0,
                work=work / "tenants",
                scenarios=tuple(args.scenarios.split(",")) if args.scenarios else tuple(SCENARIOS),
            )
            md = tenants_md(res)
            report.save(res, args.out, "tenants", md)
            tenants_plot(res, args.out / "tenants.png")
        print(md)
        print()
    print(f"results in {args.out} (scratch: {work})", file=sys.stderr)
    return 0


def rerender(out: Path) -> int:
    import json

    from .pace import pace_md, pace_plot
    from .tenants import tenants_md, tenants_plot

    render = {
        "race": report.race_md,
        "pace": pace_md,
        "overhead": report.overhead_md,
        "scale": report.scale_md,
        "soak": report.soak_md,
        "rotate": report.rotate_md,
        "tenants": tenants_md,
    }
    for name, fn in render.items():
        path = out / f"{name}.json"
        if path.exists():
            res = json.loads(path.read_text())
            (out / f"{name}.md").write_text(fn(res) + "\n")
            if name == "race":
                report.race_plot(res, out / "race.png")
            if name == "pace":
                pace_plot(res, out / "pace.png")
            if name == "tenants":
                tenants_plot(res, out / "tenants.png")
            print(fn(res), end="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
