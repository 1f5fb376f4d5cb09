"""How the Graph client sends one HTTP request: the :class:`Transport` seam, and aiohttp behind it.

The client (:mod:`bulkprov.client`) decides what to send, when and how often; a transport only
carries one :class:`Request` and hands back its :class:`Answer`, read whole. aiohttp is the real
transport (:class:`AiohttpTransport`); a test gives the client a transport of its own to answer
without a server.

A transport follows no redirect (a 3xx is an answer like any other), and raises
:class:`OSError`, :class:`TimeoutError` or :class:`aiohttp.ClientError` when no answer came:
:data:`NO_ANSWER` lists them.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from .reach import CONNECT_TIMEOUT
from .settings import ConnectionSettings

#: What a transport raises when a request got no answer (refused, dropped, timed out).
NO_ANSWER: tuple[type[BaseException], ...] = (TimeoutError, aiohttp.ClientError, OSError)

USER_AGENT = "bulkprov/0.1"


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request as the client built it: an absolute URL, its headers (the token
    included) and body, and the real seconds the whole exchange may take."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None
    params: Mapping[str, str] | None = None
    timeout: float = 100.0


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer, its body read whole. Header names are case-insensitive, whatever
    mapping the transport gave."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def __post_init__(self) -> None:
        if not isinstance(self.headers, CIMultiDict | CIMultiDictProxy):
            object.__setattr__(self, "headers", CIMultiDictProxy(CIMultiDict(self.headers)))


class Transport(Protocol):
    """Sends one request; the client holds the answer inside the block (and reacts to a 429
    there, before the connection is anyone else's)."""

    def send(self, request: Request) -> AbstractAsyncContextManager[Answer]: ...

    async def aclose(self) -> None: ...


class AiohttpTransport:
    """The real transport: one aiohttp session, its connection pool shared by all requests."""

    def __init__(self, session: aiohttp.ClientSession, *, own: bool = False) -> None:
        self._session = session
        self._own = own

    @classmethod
    def open(cls, conn: ConnectionSettings, connections: int) -> AiohttpTransport:
        """A session of its own, trusting ``conn.ca_file`` if given (inside the running loop)."""
        ctx: ssl.SSLContext | bool = True
        if conn.ca_file is not None:
            ctx = ssl.create_default_context(cafile=str(conn.ca_file))
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, ssl=ctx),
            json_serialize=lambda o: orjson.dumps(o).decode(),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )
        return cls(session, own=True)

    @asynccontextmanager
    async def send(self, request: Request) -> AsyncIterator[Answer]:
        timeout = aiohttp.ClientTimeout(total=request.timeout, sock_connect=CONNECT_TIMEOUT)
        async with self._session.request(
            request.method,
            request.url,
            params=request.params,
            data=request.body,
            headers=dict(request.headers),
            timeout=timeout,
            allow_redirects=False,
        ) as resp:
            body = await resp.read()
            yield Answer(resp.status, resp.headers, body)

    async def aclose(self) -> None:
        if self._own:
            await self._session.close()
