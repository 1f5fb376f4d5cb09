"""Why a host could not be reached, in a few words, whichever library failed: aiohttp (Graph),
requests and urllib3 (MSAL's token requests), or the socket layer under both.

:func:`explain` walks an exception's causes (``__cause__``, ``__context__``, aiohttp's
``os_error``/``certificate_error``, urllib3's ``reason``, requests' wrapped ``args``) for the one
that says what happened, and tells apart a connection that was never made (refused, no such
host, a TLS certificate not trusted, a connect timeout) from one lost on the way.
"""

from __future__ import annotations

import errno
import http.client
import os
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import aiohttp
import requests
import urllib3.exceptions

#: Real seconds to open a connection (TCP and TLS), to Graph and to the identity platform: a
#: host that takes longer is not answering, whatever the time scale of the run.
CONNECT_TIMEOUT = 6.0

_CONNECT_TIMEOUTS = (
    aiohttp.ConnectionTimeoutError,
    requests.ConnectTimeout,
    urllib3.exceptions.ConnectTimeoutError,
)
_DROPPED = (
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
    aiohttp.ServerDisconnectedError,
    http.client.RemoteDisconnected,
    urllib3.exceptions.ProtocolError,
)
_NOT_REACHED = {
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "no route to host",
    errno.EADDRNOTAVAIL: "address not available",
}


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong, for a message: ``reason`` in a few words; ``connecting`` when no
    connection was ever made (so nothing was sent)."""

    reason: str
    connecting: bool


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps, breadth first, each once."""
    queue: list[BaseException] = [exc]
    seen: set[int] = set()
    while queue:
        e = queue.pop(0)
        if id(e) in seen or len(seen) > 50:
            continue
        seen.add(id(e))
        yield e
        inner: list[object] = [
            getattr(e, "certificate_error", None),
            getattr(e, "os_error", None),
            getattr(e, "reason", None),
            *e.args,
            e.__cause__,
            e.__context__,
        ]
        queue.extend(x for x in inner if isinstance(x, BaseException))


def _certificate(e: BaseException) -> Failure | None:
    if isinstance(e, ssl.SSLCertVerificationError):
        detail = e.verify_message or getattr(e, "reason", None) or "not trusted"
        return Failure(f"TLS certificate verification failed ({detail})", True)
    return None


def _dns(e: BaseException) -> Failure | None:
    if isinstance(e, socket.gaierror):
        return Failure(f"DNS lookup failed ({e.strerror or e})", True)
    if isinstance(e, urllib3.exceptions.NameResolutionError):
        return Failure("DNS lookup failed", True)
    return None


def _refused(e: BaseException) -> Failure | None:
    if not isinstance(e, OSError):
        return None
    if e.errno == errno.ECONNREFUSED or f"[Errno {errno.ECONNREFUSED}]" in str(e):
        return Failure("connection refused", True)
    if e.errno is not None and e.errno in _NOT_REACHED:
        return Failure(_NOT_REACHED[e.errno], True)
    return None


def _connect_timeout(e: BaseException) -> Failure | None:
    return Failure("timed out connecting", True) if isinstance(e, _CONNECT_TIMEOUTS) else None


def _handshake(e: BaseException) -> Failure | None:
    if isinstance(e, ssl.SSLError):
        detail = getattr(e, "reason", None) or e.strerror or str(e)
        return Failure(f"TLS handshake failed ({detail})", True)
    return None


def _answer_timeout(e: BaseException) -> Failure | None:
    if isinstance(e, (TimeoutError, requests.Timeout, urllib3.exceptions.TimeoutError)):
        return Failure("timed out waiting for the answer", False)
    return None


def _dropped(e: BaseException) -> Failure | None:
    return Failure("connection dropped", False) if isinstance(e, _DROPPED) else None


def _os_error(e: BaseException) -> Failure | None:
    if isinstance(e, OSError) and e.errno is not None:
        return Failure(os.strerror(e.errno).lower(), False)
    return None


# most telling first: each is tried against the whole chain of causes before the next
_EXPLAINERS: tuple[Callable[[BaseException], Failure | None], ...] = (
    _certificate,
    _dns,
    _refused,
    _connect_timeout,
    _handshake,
    _answer_timeout,
    _dropped,
    _os_error,
)


def explain(exc: BaseException) -> Failure:
    """The reason an exchange got no answer, e.g. ``Failure("connection refused", True)``."""
    chain = list(_causes(exc))
    for explainer in _EXPLAINERS:
        for e in chain:
            if (failure := explainer(e)) is not None:
                return failure
    text = str(exc)
    return Failure(f"{type(exc).__name__}: {text}" if text else type(exc).__name__, False)
