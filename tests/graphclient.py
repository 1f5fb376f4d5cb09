"""A deliberately plain Graph client for tests: real MSAL tokens, real HTTPS to the mock.

It does no retrying and no throttling of its own, so tests see exactly what the mock answers.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp
import msal
import orjson
import requests

from bulkprov.mockgraph import MockInfo


def msal_app(
    info: MockInfo, credential: Any = None, tenant_id: str | None = None
) -> msal.ConfidentialClientApplication:
    """A ConfidentialClientApplication pointed at the mock, trusting only its CA."""
    session = requests.Session()
    session.verify = info.ca_file
    session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise override verify
    authority = f"{info.authority_host}/{tenant_id or info.tenant_id}"
    return msal.ConfidentialClientApplication(
        info.client_id,
        client_credential=credential if credential is not None else info.client_secret,
        authority=authority,
        instance_discovery=False,
        validate_authority=False,
        http_client=session,
    )


def acquire_token(info: MockInfo, credential: Any = None, tenant_id: str | None = None) -> str:
    result = msal_app(info, credential, tenant_id).acquire_token_for_client(
        scopes=["https://graph.microsoft.com/.default"]
    )
    if "access_token" not in result:
        raise AssertionError(f"no token: {result.get('error')}: {result.get('error_description')}")
    return str(result["access_token"])


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def error_code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return str(self.body["error"].get("code"))
        return None


class PlainGraph:
    """``async with PlainGraph(info) as g: await g.get("/applicationTemplates")``."""

    def __init__(
        self,
        info: MockInfo,
        *,
        version: str = "v1.0",
        token: str | None = None,
        tenant_id: str | None = None,
    ) -> None:
        self.info = info
        self.version = version
        self.token = token
        self.tenant_id = tenant_id
        self.ssl = ssl.create_default_context(cafile=info.ca_file)
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> PlainGraph:
        if self.token is None:
            self.token = await asyncio.to_thread(acquire_token, self.info, None, self.tenant_id)
        self.session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.session is not None
        await self.session.close()

    def url(self, path: str) -> str:
        if path.startswith("http"):
            return path
        return f"{self.info.graph_url}/{self.version}{path}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        timeout: float | None = None,  # noqa: ASYNC109 - per-request
    ) -> Reply:
        assert self.session is not None
        h = dict(headers or {})
        if auth:
            h["Authorization"] = f"Bearer {self.token}"
        body = data
        if json is not None:
            body = orjson.dumps(json)
            h["Content-Type"] = "application/json"
        async with self.session.request(
            method,
            self.url(path),
            data=body,
            params=params,
            headers=h,
            ssl=self.ssl,
            timeout=aiohttp.ClientTimeout(total=timeout) if timeout else None,
        ) as resp:
            raw = await resp.read()
            parsed = orjson.loads(raw) if raw else None
            return Reply(resp.status, dict(resp.headers), parsed)

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> Reply:
        return await self.request("POST", path, json=json, **kw)

    async def put(self, path: str, json: Any = None, **kw: Any) -> Reply:
        return await self.request("PUT", path, json=json, **kw)

    async def patch(self, path: str, json: Any = None, **kw: Any) -> Reply:
        return await self.request("PATCH", path, json=json, **kw)

    async def delete(self, path: str, **kw: Any) -> Reply:
        return await self.request("DELETE", path, **kw)
