"""Run the benchmark scenarios; print a table and write bench/results/<timestamp>.json.

    python -m bench.run [--quick] [--only NAME[,NAME…]]

The server under test runs as ``python -m server`` (a subprocess) on a private
Valkey this command starts (or ``PRESENCE_BENCH_REDIS_URL``); the load
generator runs here, with raw ``websockets`` clients and ``httpx``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.common import Context, Result, delete_prefix, raise_fd_limit, redis_url
from bench.scenarios import (
    acd,
    admission,
    churn,
    durability,
    failover,
    idle,
    log_query,
    monitor_page,
    redis_xadd,
    sdk,
    soak,
    storm,
    tenants,
)

SCENARIOS: dict[str, Callable[[Context], Awaitable[None]]] = {
    "acd": acd.run,
    "admission": admission.run,
    "churn": churn.run,
    "durability": durability.run,
    "storm": storm.run,
    "failover": failover.run,
    "sdk": sdk.run,
    "idle": idle.run,
    "log_query": log_query.run,
    "redis_xadd": redis_xadd.run,
    "tenants": tenants.run,
    "monitor_page": monitor_page.run,
    "soak": soak.run,
}
RESULTS = Path(__file__).parent / "results"


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def table(results: list[Result]) -> str:
    rows = [("scenario", "metric", "value", "unit", "target", "met?")]
    for r in results:
        met = {True: "yes", False: "NO", None: ""}[r.met]
        rows.append((r.scenario, r.metric, fmt(r.value), r.unit, r.target, met))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.rjust(w) if i == 2 else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append(" | ".join(cells).rstrip())
        if n == 0:
            lines.append("-+-".join("-" * w for w in widths))
    notes = [f"  {r.scenario} / {r.metric}: {r.note}" for r in results if r.note]
    return "\n".join(lines + (["", "notes:", *notes] if notes else []))


def machine() -> dict[str, object]:
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        mem_kib = int(meminfo.readline().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
    }


async def run_all(ctx: Context, names: list[str]) -> list[str]:
    failed = []
    for name in names:
        print(f"== {name}", flush=True)
        began = time.perf_counter()
        try:
            await SCENARIOS[name](ctx)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            ctx.add(Result(name, "FAILED (see traceback above)", None, ""))
        print(f"   {time.perf_counter() - began:.1f} s", flush=True)
    if os.environ.get("PRESENCE_BENCH_REDIS_URL"):
        await delete_prefix(ctx.redis_url, "bench-")  # a shared server: leave it clean
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, shorter runs")
    parser.add_argument("--only", help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="on a Redis Cluster of 3 masters started for the run (redis-server on PATH)",
    )
    options = parser.parse_args()
    names = options.only.split(",") if options.only else list(SCENARIOS)
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    raise_fd_limit()
    started = time.strftime("%Y%m%dT%H%M%S")
    with redis_url(options.cluster) as url:
        ctx = Context(url, options.quick)
        failed = asyncio.run(run_all(ctx, names))
    print()
    print(table(ctx.results))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{started}.json"
    document = {
        "started": started,
        "command": "python -m bench.run"
        + (" --quick" if options.quick else "")
        + (f" --only {options.only}" if options.only else "")
        + (" --cluster" if options.cluster else ""),
        "machine": machine(),
        "results": [dataclasses.asdict(r) | {"met": r.met} for r in ctx.results],
    }
    path.write_text(json.dumps(document, indent=2))
    print(f"\nwritten {path}")
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
