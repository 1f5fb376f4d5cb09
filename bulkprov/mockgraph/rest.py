"""The OData conventions every handler of the mock follows.

JSON request bodies, ``@odata.context``, pages (``$top``, ``$skip``, ``$skiptoken``, ``$count``
and ``@odata.nextLink``), ``$select``, ``$filter`` (through :mod:`.odata`) and object ids.
Page sizes come from the tenant's settings (``page_size``, ``max_page_size``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl, urlencode

import orjson

from ..jsontypes import JSON
from .odata import FilterError, FilterSpec, parse_filter
from .wire import Ctx, GraphError, MockResponse

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def json_body(ctx: Ctx) -> JSON:
    """The request's JSON object, or Graph's 400."""
    if not ctx.req.body.strip():
        raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
    try:
        body = orjson.loads(ctx.req.body)
    except orjson.JSONDecodeError as exc:
        raise GraphError(
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set "
            "and payload is of valid JSON format.",
        ) from exc
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "The request payload must be a JSON object.")
    return body


def context(ctx: Ctx, fragment: str) -> str:
    """The ``@odata.context`` of an answer about ``fragment``."""
    return f"{ctx.req.base_url}/{ctx.req.version}/$metadata#{fragment}"


def entity(ctx: Ctx, fragment: str, item: JSON) -> MockResponse:
    """A 200 answer with one object (``$select`` applied) and its ``@odata.context``."""
    body = {"@odata.context": context(ctx, fragment)}
    body.update(select(ctx, item))
    return MockResponse(200, body)


def next_link(ctx: Ctx, query: dict[str, str]) -> str:
    return f"{ctx.req.base_url}/{ctx.req.version}{ctx.req.path}?{urlencode(query)}"


def page(
    ctx: Ctx, items: list[JSON], fragment: str, *, default_top: int | None = None
) -> MockResponse:
    """A page of ``items`` (already filtered) with ``$top``, ``$select`` and a nextLink."""
    q = ctx.req.query
    size = top(ctx, default_top)
    offset = skiptoken(q)
    if "$skip" in q:
        try:
            offset += int(q["$skip"])
        except ValueError as exc:
            raise GraphError(400, "BadRequest", "Invalid value for $skip.") from exc
    chunk = items[offset : offset + size]
    body: JSON = {"@odata.context": context(ctx, fragment)}
    if "$count" in q and q["$count"].lower() == "true":
        body["@odata.count"] = len(items)
    body["value"] = [select(ctx, it) for it in chunk]
    if offset + size < len(items):
        query = {k: v for k, v in q.items() if k not in ("$skiptoken", "$skip")}
        query["$skiptoken"] = encode_token(offset + size)
        body["@odata.nextLink"] = next_link(ctx, query)
    return MockResponse(200, body)


def top(ctx: Ctx, default_top: int | None) -> int:
    """The page size ``$top`` asks for (or the default), within Graph's bounds."""
    settings = ctx.tenant.settings
    q = ctx.req.query
    size = default_top or settings.page_size
    if "$top" in q:
        try:
            size = int(q["$top"])
        except ValueError as exc:
            raise GraphError(
                400, "BadRequest", f"Invalid value '{q['$top']}' for $top query option."
            ) from exc
        if not 1 <= size <= settings.max_page_size:
            raise GraphError(
                400,
                "Request_BadRequest",
                f"Invalid page size specified: '{size}'. Must be between 1 and "
                f"{settings.max_page_size} inclusive.",
            )
    return size


def skiptoken(q: Mapping[str, str]) -> int:
    """The position a ``$skiptoken`` stands for (0 without one)."""
    token = q.get("$skiptoken")
    if token is None:
        return 0
    try:
        return decode_token(token)
    except ValueError as exc:
        raise GraphError(
            400, "Request_BadRequest", "Invalid $skiptoken: the token is malformed or expired."
        ) from exc


def select(ctx: Ctx, item: JSON) -> JSON:
    """``item`` with only the properties ``$select`` names (and its id)."""
    wanted = ctx.req.query.get("$select")
    if not wanted:
        return item
    fields = {f.strip() for f in wanted.split(",") if f.strip()}
    return {k: v for k, v in item.items() if k in fields or k == "id"}


def filter_of(ctx: Ctx, spec: FilterSpec, *, directory: bool) -> Callable[[JSON], bool]:
    """The predicate of the request's ``$filter`` (everything without one); ``directory``
    objects answer an unsupported property with ``Request_UnsupportedQuery``."""
    text = ctx.req.query.get("$filter")
    if text is None:
        return lambda _obj: True
    try:
        return parse_filter(text, spec)
    except FilterError as err:
        code = "Request_UnsupportedQuery" if directory else "BadRequest"
        if err.unsupported_property is None and directory:
            code = "BadRequest"
        raise GraphError(400, code, str(err)) from err


def check_guid(object_id: str) -> None:
    if GUID.match(object_id) is None:
        raise GraphError(400, "Request_BadRequest", f"Invalid object identifier '{object_id}'.")


def encode_token(offset: int) -> str:
    return f"X'{offset:x}'"


def decode_token(token: str) -> int:
    if not (token.startswith("X'") and token.endswith("'")):
        raise ValueError(token)
    value = int(token[2:-1], 16)
    if value < 0:
        raise ValueError(token)
    return value


def parse_query(query: str) -> dict[str, str]:
    return dict(parse_qsl(query, keep_blank_values=True))
