"""The physical limit of this machine: a bare aiohttp loop (one session, keep-alive, orjson,
``--concurrency`` requests in flight) sending ``--requests`` GETs to the mock, no retries, no
bookkeeping. Each request reads one gallery template."""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peerlib  # noqa: E402


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--mock-info", type=Path, required=True)
    p.add_argument("--requests", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=128)
    p.add_argument("--cpu-file", type=Path, required=True)
    args = p.parse_args()
    inf = peerlib.info(args.mock_info)
    cpu0 = time.process_time()
    token = await asyncio.to_thread(peerlib.msal_token, inf)
    ctx = ssl.create_default_context(cafile=inf["ca_file"])
    headers = {"Authorization": f"Bearer {token}"}
    url = inf["graph_url"] + "/v1.0/applicationTemplates/8b1025e4-1dd2-430b-a150-2ef79cd700f5"
    left = args.requests
    ok = 0

    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=ctx, limit=args.concurrency)
    ) as s:

        async def worker() -> None:
            nonlocal left, ok
            while left > 0:
                left -= 1
                async with s.get(url, headers=headers) as r:
                    orjson.loads(await r.read())
                    ok += r.status == 200

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    args.cpu_file.write_text(json.dumps({"work_cpu": time.process_time() - cpu0, "ok": ok}))


if __name__ == "__main__":
    asyncio.run(main())
