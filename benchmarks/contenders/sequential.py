"""The seeds' way: one instance after another, step after step, with plain aiohttp.

Retries: a 429 waits its Retry-After and retries; a 5xx or a dropped connection is retried
up to 3 times after 1, 2, 4 Graph seconds (the usual script loop). Writes are retried too,
which is what such scripts do (and how they make duplicates when a POST took effect).
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

import peerlib


class Failed(Exception):
    pass


class Graph:
    def __init__(self, session: aiohttp.ClientSession, inf: dict[str, Any], token: str) -> None:
        self.s = session
        self.base = inf["graph_url"] + "/v1.0"
        self.scale = float(inf["time_scale"])
        self.headers = {"Authorization": f"Bearer {token}"}

    async def sleep(self, graph_seconds: float) -> None:
        await asyncio.sleep(graph_seconds * self.scale)

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        errors = 0
        while True:
            try:
                async with self.s.request(
                    method,
                    self.base + path,
                    json=body,
                    headers=self.headers,
                    timeout=aiohttp.ClientTimeout(total=100 * self.scale + 5),
                ) as r:
                    data = await r.json(content_type=None) if r.status != 204 else None
                    if r.status == 429:
                        await self.sleep(float(r.headers.get("Retry-After", "1")))
                        continue
                    if r.status >= 500:
                        raise aiohttp.ServerConnectionError(f"HTTP {r.status}")
                    return r.status, data
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                errors += 1
                if errors > 3:
                    raise Failed(f"{method} {path}: {exc!r}") from None
                await self.sleep(2 ** (errors - 1))

    async def ok(self, method: str, path: str, body: Any = None, *, flap: bool = True) -> Any:
        for _ in range(peerlib.FLAP_TRIES if flap else 1):
            status, data = await self.call(method, path, body)
            if status < 300:
                return data
            if status != 404:
                break
            await self.sleep(peerlib.POLL)
        raise Failed(f"{method} {path}: HTTP {status} {str(data)[:200]}")


async def onboard(g: Graph, template_id: str, row: dict[str, str]) -> None:
    created = await g.ok(
        "POST",
        f"/applicationTemplates/{template_id}/instantiate",
        {"displayName": row["displayName"]},
        flap=False,
    )
    sp = created["servicePrincipal"]["id"]
    for _ in range(peerlib.POLL_TRIES):
        status, _ = await g.call("GET", f"/servicePrincipals/{sp}")
        if status == 200:
            break
        await g.sleep(peerlib.POLL)
    else:
        raise Failed("service principal never read back")
    sync = f"/servicePrincipals/{sp}/synchronization"
    templates = (await g.ok("GET", f"{sync}/templates"))["value"]
    tmpl = next((t for t in templates if t.get("default")), templates[0])
    job = await g.ok("POST", f"{sync}/jobs", {"templateId": tmpl["id"]})
    creds = peerlib.credentials(row)
    await g.ok(
        "POST",
        f"{sync}/jobs/{job['id']}/validateCredentials",
        {"useSavedCredentials": False, "credentials": creds},
    )
    await g.ok("PUT", f"{sync}/secrets", {"value": creds})
    await g.ok("POST", f"{sync}/jobs/{job['id']}/start")


async def main() -> None:
    args = peerlib.parse_args(__doc__ or "")
    inf = peerlib.info(args.mock_info)
    rows = peerlib.load(args.manifest)
    timeline = peerlib.Timeline(args.events)
    token = await asyncio.to_thread(peerlib.msal_token, inf)
    ctx = ssl.create_default_context(cafile=inf["ca_file"])
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        g = Graph(s, inf, token)
        found = await g.ok(
            "GET", f"/applicationTemplates?$filter=displayName eq '{peerlib.AWS}'", flap=False
        )
        template_id = found["value"][0]["id"]
        try:
            for row in rows:
                try:
                    await onboard(g, template_id, row)
                except Failed as exc:
                    timeline(row["key"], "failed", str(exc))
                else:
                    timeline(row["key"], "done")
        finally:
            timeline.close()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
