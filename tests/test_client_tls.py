"""The client's TLS read buffers: one TLS record each, and answers many records long still read
whole, over real TLS to the mock."""

from __future__ import annotations

import asyncio.sslproto
import copy
from typing import Any

import orjson
import pytest

from bulkprov.client import GraphClient
from bulkprov.mockgraph import MockGraph
from bulkprov.settings import ClientSettings
from bulkprov.tls import TLS_READ_BUFFER

from .enginekit import AWS, connection

pytestmark = pytest.mark.anyio


async def test_answers_larger_than_the_read_buffer_arrive_whole(mock: MockGraph) -> None:
    settings = ClientSettings(time_scale=mock.settings.time_scale)
    async with GraphClient(connection(mock), settings) as c:
        assert asyncio.sslproto.SSLProtocol.max_size == TLS_READ_BUFFER
        found = await c.get("/applicationTemplates", params={"$filter": f"displayName eq '{AWS}'"})
        template_id = found["value"][0]["id"]
        made = (
            await c.request(
                "POST",
                f"/applicationTemplates/{template_id}/instantiate",
                json={"displayName": "AWS tls buffers"},
            )
        ).body
        sp = made["servicePrincipal"]["id"]
        sync = (await c.get(f"/servicePrincipals/{sp}/synchronization/templates"))["value"][0]
        job = (
            await c.request(
                "POST",
                f"/servicePrincipals/{sp}/synchronization/jobs",
                json={"templateId": sync["factoryTag"]},
            )
        ).body
        schema_path = f"/servicePrincipals/{sp}/synchronization/jobs/{job['id']}/schema"
        schema: dict[str, Any] = await c.get(schema_path)
        rule = schema["synchronizationRules"][0]
        mapping = rule["objectMappings"][0]["attributeMappings"][0]
        many = []
        for i in range(2000):
            m = copy.deepcopy(mapping)
            m["targetAttributeName"] = f"extension_{i:05d}_attribute"
            many.append(m)
        rule["objectMappings"][0]["attributeMappings"] = many
        await c.request("PUT", schema_path, json=schema)
        back = await c.get(schema_path)
        size = len(orjson.dumps(back))
        assert size > 20 * TLS_READ_BUFFER, size
        names = [
            m["targetAttributeName"]
            for m in back["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"]
        ]
        assert names == [m["targetAttributeName"] for m in many]
