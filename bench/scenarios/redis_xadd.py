"""Floor: Redis's own XADD rate on the bench's Valkey, from ``redis-benchmark``
(Debian's redis-tools); skipped with a note when it is not installed."""

from __future__ import annotations

import asyncio
import shutil
from urllib.parse import urlparse

from bench.common import Context, Result

REQUESTS = 100_000


async def run(ctx: Context) -> None:
    binary = shutil.which("redis-benchmark") or shutil.which("valkey-benchmark")
    if binary is None:
        ctx.add(Result("redis_xadd", "floor: XADD/s", None, "/s", note="redis-benchmark not found"))
        return
    url = urlparse(ctx.redis_url)
    key = "bench-floor:xadd"
    for pipeline in (1, 16):
        process = await asyncio.create_subprocess_exec(
            binary,
            "-h", url.hostname or "127.0.0.1",
            "-p", str(url.port),
            "-n", str(REQUESTS),
            "-P", str(pipeline),
            "-q",
            "XADD", key, "*", "f", "v",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await process.communicate()
        # "XADD bench-floor:xadd * f v: 71839.08 requests per second, p50=0.375 msec"
        text = out.decode().replace("\r", "\n").strip().splitlines()[-1]
        rate = float(text.split(": ", 1)[1].split(" requests per second")[0])
        ctx.add(
            Result(
                "redis_xadd",
                f"floor: XADD/s (50 clients, pipeline {pipeline})",
                rate,
                "/s",
                note=f"{binary}: {text}",
            )
        )
    process = await asyncio.create_subprocess_exec(
        "redis-cli", "-h", url.hostname or "127.0.0.1", "-p", str(url.port), "DEL", key,
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await process.wait()
