"""What the mock's Graph service takes and gives, independent of aiohttp.

A :class:`MockRequest` comes in (from the server, or from a ``$batch`` item) and a
:class:`MockResponse` goes out; a handler that refuses raises :class:`GraphError`, which the
service renders as Graph's error body. A :class:`Route` binds a method and path template to the
handler callable that serves it; handlers get a :class:`Ctx` (the request, its tenant, the
token's claims, the Graph time) and the path's parameters as keyword arguments.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..jsontypes import JSON
from .identity import TokenClaims
from .state import Tenant


@dataclass(slots=True)
class MockRequest:
    method: str
    path: str  # below the version, e.g. "/applicationTemplates", still percent-encoded
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    version: str  # "v1.0" or "beta"
    base_url: str  # "https://127.0.0.1:8443"
    in_batch: bool = False
    conn: int = 0  # identifies the client connection the request came on


@dataclass(slots=True)
class MockResponse:
    status: int
    body: Any = None  # JSON-able, or None for no content
    headers: dict[str, str] = field(default_factory=dict)
    drop: str | None = None  # "before" / "after": the connection is dropped
    on_sent: list[Callable[[], None]] = field(default_factory=list)  # run once written
    malformed: str | None = None  # a malformed-answer fault to apply (settings.MALFORMED_KINDS)
    raw: bytes | None = None  # the body as sent, when it is not ``body`` as JSON
    content_type: str | None = None  # with ``raw``


class GraphError(Exception):
    """A Graph error answer: status, code and message, in Graph's error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        details: list[JSON] | None = None,
        on_sent: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(message)
        self.on_sent = on_sent
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.details = details
        self.route_name = "unmatched"  # the route that refused, for the request counts


def not_found(object_id: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{object_id}' does not exist or one of its queried reference-property "
        "objects are not present.",
    )


def error_response(status: int, code: str, message: str, request_id: str) -> MockResponse:
    """A bare Graph error answer (the ``$batch`` envelope's)."""
    return MockResponse(
        status,
        {"error": {"code": code, "message": message, "innerError": {"request-id": request_id}}},
        {"request-id": request_id},
    )


@dataclass(slots=True)
class Ctx:
    """One request as a handler sees it."""

    req: MockRequest
    tenant: Tenant
    claims: TokenClaims
    now: float


Handler = Callable[..., Awaitable[MockResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    name: str  # e.g. "POST /applicationTemplates/{id}/instantiate"
    route_class: str
    handler: Handler
    ru: int = 1


def route(method: str, template: str, route_class: str, handler: Handler, ru: int = 1) -> Route:
    """A route for ``template`` (``{name}`` matches one path segment, passed as ``name=``)."""
    regex = re.escape(template)
    regex = re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m.group(1)}>[^/()]+)", regex)
    return Route(method, re.compile(f"^{regex}$"), f"{method} {template}", route_class, handler, ru)
