"""The physical limit of this machine: a bare aiohttp loop (one session, keep-alive, orjson,
``--concurrency`` requests in flight, no retries, no bookkeeping) sending the seed's calls for
each instance of the manifest (instantiate, read the service principal, synchronization
templates, create job, validate, secrets, start), then reads of service principals until it
has sent ``--requests`` requests: the same number and kinds of requests an engine sends, and
nothing else. It needs a mock without replication delay or faults."""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peerlib

AWS_TEMPLATE = "8b1025e4-1dd2-430b-a150-2ef79cd700f5"


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("manifest", type=Path)
    p.add_argument("--mock-info", type=Path, required=True)
    p.add_argument("--requests", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=128)
    p.add_argument("--cpu-file", type=Path, required=True)
    args = p.parse_args()
    inf = peerlib.info(args.mock_info)
    rows = peerlib.load(args.manifest)
    cpu0 = time.process_time()
    token = await asyncio.to_thread(peerlib.msal_token, inf)
    ctx = ssl.create_default_context(cafile=inf["ca_file"])
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    base = inf["graph_url"] + "/v1.0"
    sent = 0
    sps: list[str] = []

    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=ctx, limit=args.concurrency)
    ) as s:

        async def call(method: str, path: str, body: Any = None) -> Any:
            nonlocal sent
            sent += 1
            data = orjson.dumps(body) if body is not None else None
            async with s.request(method, base + path, data=data, headers=headers) as r:
                raw = await r.read()
                if r.status >= 400:
                    raise RuntimeError(f"{method} {path}: {r.status}")
                return orjson.loads(raw) if raw else None

        async def instance(row: dict[str, str]) -> None:
            made = await call(
                "POST",
                f"/applicationTemplates/{AWS_TEMPLATE}/instantiate",
                {"displayName": row["displayName"]},
            )
            sp = made["servicePrincipal"]["id"]
            sps.append(sp)
            await call("GET", f"/servicePrincipals/{sp}")
            sync = f"/servicePrincipals/{sp}/synchronization"
            tmpl = (await call("GET", f"{sync}/templates"))["value"][0]["id"]
            job = (await call("POST", f"{sync}/jobs", {"templateId": tmpl}))["id"]
            creds = peerlib.credentials(row)
            await call(
                "POST",
                f"{sync}/jobs/{job}/validateCredentials",
                {"useSavedCredentials": False, "credentials": creds},
            )
            await call("PUT", f"{sync}/secrets", {"value": creds})
            await call("POST", f"{sync}/jobs/{job}/start")

        queue = list(reversed(rows))

        async def worker() -> None:
            while queue:
                await instance(queue.pop())
            i = 0
            while sent < args.requests:
                await call("GET", f"/servicePrincipals/{sps[i % len(sps)]}")
                i += 1

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    args.cpu_file.write_text(json.dumps({"work_cpu": time.process_time() - cpu0, "sent": sent}))


if __name__ == "__main__":
    asyncio.run(main())
