"""JSON batching: ``POST /$batch`` with up to ``batch_limit`` requests and ``dependsOn``.

The envelope needs a valid token (Graph answers 401 for the whole batch); each item then goes
through the service's whole pipeline on its own (authenticated, metered, delayed, possibly
faulted), the items whose dependencies have answered running together under one task group.
An item whose dependency failed answers 424; a throttled item comes back as a 429 with its own
``Retry-After`` inside the batch's 200.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

import anyio
import orjson

from ...jsontypes import JSON
from ..identity import TokenClaims
from ..rest import parse_query
from ..settings import MockSettings
from ..wire import GraphError, MockRequest, MockResponse, error_response

#: the headers of an item's answer that the batch's answer carries for it
ITEM_HEADERS = (
    "retry-after",
    "location",
    "x-ms-throttle-scope",
    "x-ms-throttle-information",
    "x-ms-resource-unit",
    "x-ms-throttle-limit-percentage",
)


def _item_error(status: int, code: str, message: str) -> MockResponse:
    return MockResponse(status, {"error": {"code": code, "message": message}})


class Batch:
    """Runs batches through ``handle``, the service's pipeline for one request."""

    def __init__(
        self,
        handle: Callable[[MockRequest], Awaitable[MockResponse]],
        authenticate: Callable[[MockRequest], TokenClaims],
        latency: Callable[[str], Awaitable[None]],
        settings: Callable[[], MockSettings],
        counters: Counter[str],
    ) -> None:
        self._handle = handle
        self._authenticate = authenticate
        self._latency = latency
        self._settings = settings  # the service's current settings (they change live)
        self.counters = counters

    async def __call__(self, req: MockRequest) -> MockResponse:
        """Run a JSON batch: each item through the pipeline, honouring ``dependsOn``."""
        request_id = str(uuid.uuid4())
        try:
            self._authenticate(req)
        except GraphError as err:
            resp = error_response(err.status, err.code, err.message, request_id)
            resp.headers.update(err.headers)
            return resp
        items = self._items(req, request_id)
        if isinstance(items, MockResponse):
            return items
        await self._latency("batch")
        results = await self._run(req, items)
        self.counters["batches"] += 1
        resp = MockResponse(
            200,
            {"responses": [_entry(i, results[i]) for i in items]},
            {"request-id": request_id},
        )
        for r in results.values():
            resp.on_sent.extend(r.on_sent)
        return resp

    def _items(self, req: MockRequest, request_id: str) -> dict[str, JSON] | MockResponse:
        """The batch's items by id, or the 400 its envelope gets."""
        try:
            body = orjson.loads(req.body)
            items = body["requests"]
            if not isinstance(items, list):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return error_response(400, "BadRequest", "Invalid batch payload format.", request_id)
        limit = self._settings().batch_limit
        if len(items) > limit:
            return error_response(
                400,
                "BadRequest",
                f"Number of requests in a batch exceeds the limit of {limit}.",
                request_id,
            )
        ids = [str(it.get("id")) if isinstance(it, dict) else "" for it in items]
        if len(set(ids)) != len(ids) or any(not i for i in ids):
            return error_response(
                400, "BadRequest", "Batch request ids must be unique and present.", request_id
            )
        return dict(zip(ids, items, strict=True))

    async def _run(self, req: MockRequest, items: dict[str, JSON]) -> dict[str, MockResponse]:
        """Answer every item: in waves of those whose dependencies have all answered."""
        results: dict[str, MockResponse] = {}
        pending = dict(items)
        while pending:
            ready = {
                i: it
                for i, it in pending.items()
                if all(d in results for d in (it.get("dependsOn") or []))
            }
            if not ready:
                for i in pending:
                    results[i] = _item_error(
                        400, "BadRequest", "dependsOn refers to an unknown id."
                    )
                break
            for i in ready:
                del pending[i]
            async with anyio.create_task_group() as tg:
                for i, it in ready.items():
                    tg.start_soon(self._run_item, req, i, it, results)
        return results

    async def _run_item(
        self, req: MockRequest, item_id: str, item: JSON, results: dict[str, MockResponse]
    ) -> None:
        deps = item.get("dependsOn") or []
        if any(results[d].status >= 400 for d in deps if d in results):
            results[item_id] = _item_error(424, "FailedDependency", "A dependent request failed.")
            return
        results[item_id] = await self._handle(_sub_request(req, item))


def _sub_request(req: MockRequest, item: JSON) -> MockRequest:
    """The request a batch item stands for, with the envelope's token and connection."""
    url = str(item.get("url", ""))
    path, _, query = url.partition("?")
    if not path.startswith("/"):
        path = "/" + path
    return MockRequest(
        method=str(item.get("method", "GET")).upper(),
        path=path,
        query=parse_query(query),
        headers={
            **{k.lower(): str(v) for k, v in (item.get("headers") or {}).items()},
            "authorization": req.headers.get("authorization", ""),
        },
        body=orjson.dumps(item["body"]) if "body" in item else b"",
        version=req.version,
        base_url=req.base_url,
        in_batch=True,
        conn=req.conn,
    )


def _entry(item_id: str, r: MockResponse) -> JSON:
    """An item's answer as the batch's answer holds it."""
    headers = {k: v for k, v in r.headers.items() if k.lower() in ITEM_HEADERS}
    headers["Content-Type"] = "application/json"
    entry: JSON = {"id": item_id, "status": r.status, "headers": headers}
    if r.body is not None:
        entry["body"] = r.body
    return entry
