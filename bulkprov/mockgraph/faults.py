"""Injected faults of the mock: 5xx, dropped connections, slow and malformed answers, 429
storms, redirects, and the instantiate that fails although it created the objects.

Every fault is drawn from a generator of its own route class (seeded by ``FaultSettings.seed``),
or counted down from a burst (see :class:`~.settings.FaultSettings`), so that a run with the
same seed and request order sees the same faults. :class:`FaultInjector` plays its part at
three points of a request: before it takes effect (:meth:`~FaultInjector.gate`,
:meth:`~FaultInjector.drop`), inside ``instantiate`` (:meth:`~FaultInjector.instantiated`),
and once it took effect (:meth:`~FaultInjector.after`); :func:`malform` turns an answer into
the malformed one its fault asks for.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from ..jsontypes import JSON
from .clock import ScaledClock
from .identity import TokenClaims
from .settings import BURSTS, FaultSettings
from .wire import GraphError, MockRequest, MockResponse, not_found

_FAULT_CODES = {
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
_FAULT_MESSAGES = {
    500: "An internal server error occurred.",
    502: "The server received an invalid response from an upstream server.",
    503: "The service is temporarily unavailable. Please retry later.",
    504: "The request timed out before the service answered.",
}
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


class FaultInjector:
    """The faults of one mock, with their generators and what is left of their bursts."""

    def __init__(
        self,
        settings: FaultSettings,
        clock: ScaledClock,
        counters: Counter[str],
        latency: Callable[[str], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.counters = counters  # the mock's counters, shown in its stats
        self._latency = latency
        self._rngs: dict[str, random.Random] = {}
        self._bursts: dict[tuple[str, str], int] = {}
        self.arm(settings)

    def arm(self, settings: FaultSettings) -> None:
        """Take ``settings`` and set every counted fault to its full count."""
        self.settings = settings
        self._bursts = {
            (name, route_class): count
            for name in BURSTS
            for route_class, count in getattr(settings, name).items()
        }

    def burst(self, name: str, route_class: str, *, shared: bool = True) -> bool:
        """Whether this request gets the counted fault ``name`` (and count it down); with
        ``shared``, a ``"*"`` burst counts too."""
        keys = ((name, route_class), (name, "*")) if shared else ((name, route_class),)
        for key in keys:
            left = self._bursts.get(key)
            if left is not None:
                if left <= 0:
                    return False
                self._bursts[key] = left - 1
                return True
        return False

    def rng(self, route_class: str) -> random.Random:
        rng = self._rngs.get(route_class)
        if rng is None:
            rng = self._rngs[route_class] = random.Random(f"{self.settings.seed}:{route_class}")
        return rng

    def _faulted(self, table: Mapping[str, float], burst: str, route_class: str) -> bool:
        """A rate fault drawn from the class's generator, or the class's burst."""
        rate = self.settings.rate(table, route_class)
        if rate and self.rng(route_class).random() < rate:
            return True
        return self.burst(burst, route_class)

    # ------------------------------------------------------------------ before it takes effect
    async def gate(self, req: MockRequest, rc: str, claims: TokenClaims) -> MockResponse | None:
        """Raise the 429 storm or the 5xx this request gets, or return the redirect it gets
        (None: the request goes on)."""
        faults = self.settings
        if self.burst("throttle_burst", rc):
            self.counters["faults_429_storm"] += 1
            write = req.method in WRITE_METHODS
            kind = "Write" if write else "ResourceUnits"
            raise GraphError(
                429,
                "TooManyRequests",
                "Too many requests. Please retry later.",
                headers={
                    "Retry-After": str(math.ceil(faults.throttle_retry_after)),
                    "x-ms-throttle-scope": (
                        f"Tenant_Application/{kind}/{claims.app_id}/{claims.tenant_id}"
                    ),
                    "x-ms-throttle-information": (
                        "WriteLimitExceeded" if write else "ResourceUnitLimitExceeded"
                    ),
                },
            )
        if self.burst("redirect_burst", rc):
            self.counters["faults_redirect"] += 1
            return MockResponse(
                faults.redirect_status, headers={"Location": faults.redirect_location}
            )
        if self._faulted(faults.error_rate, "error_burst", rc):
            self.counters["faults_5xx"] += 1
            await self._latency(rc)
            status = self.rng(rc).choice((500, 502, 503, 504))
            raise GraphError(status, _FAULT_CODES[status], _FAULT_MESSAGES[status])
        return None

    def drop(self, req: MockRequest, rc: str) -> str | None:
        """Whether the connection is cut ``"before"`` the request takes effect or ``"after"``
        (in the middle of the answer), or not at all (None; never inside a batch)."""
        if req.in_batch:
            return None
        faults = self.settings
        drop: str | None = None
        rng = self.rng(rc)
        if rng.random() < faults.rate(faults.drop_rate, rc):
            drop = rng.choice(("before", "after"))
        elif self.burst("drop_burst", rc):
            drop = "after"  # cut in the middle of the response
        if drop is not None:
            self.counters[f"drops_{drop}"] += 1
        return drop

    # ------------------------------------------------------------------ inside instantiate
    async def instantiated(self, template_id: str) -> None:
        """The terraform-azuread #1406 cases, once instantiate created its objects: a 404, or
        no answer before the client's timeout."""
        faults = self.settings
        rng = self.rng("instantiate")
        if rng.random() < faults.instantiate_404_rate:
            self.counters["instantiate_404_but_created"] += 1
            raise not_found(template_id)
        if rng.random() < faults.instantiate_timeout_rate:
            self.counters["instantiate_timeout_but_created"] += 1
            await self.clock.sleep(faults.instantiate_timeout)
            raise GraphError(504, "UnknownError", "The request timed out.")

    # ------------------------------------------------------------------ once it took effect
    async def after(self, req: MockRequest, rc: str, resp: MockResponse) -> None:
        """Make the answer late or malformed, as the faults say (never inside a batch)."""
        if req.in_batch or resp.drop is not None:
            return
        faults = self.settings
        if self._faulted(faults.slow_rate, "slow_burst", rc):
            self.counters["faults_slow"] += 1
            await self.clock.sleep(faults.slow_delay)  # it took effect; the answer is late
        if self._faulted(faults.malformed_rate, "malformed_burst", rc):
            kinds = [k for k in faults.malformed_kinds if _malformable(k, resp)]
            if kinds:
                resp.malformed = self.rng(rc).choice(kinds)
                self.counters[f"faults_malformed_{resp.malformed}"] += 1


# ---------------------------------------------------------------------- malformed answers
PROXY_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
PORTAL_200 = (
    b"<!DOCTYPE html><html><head><title>Sign in to continue</title></head><body>"
    b'<form method="post" action="/login"><p>Your session has expired.</p></form>'
    b"</body></html>"
)


def _malformable(kind: str, resp: MockResponse) -> bool:
    """Whether ``kind`` can change this answer (an empty 204 cannot be truncated)."""
    if kind in ("html_502", "html_200"):
        return True
    if kind in ("empty", "truncated"):
        return resp.body is not None
    if kind == "extra_fields":
        return isinstance(resp.body, dict)
    return _has_ids(resp.body)


def _has_ids(obj: Any) -> bool:
    if isinstance(obj, dict):
        return "id" in obj or any(_has_ids(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_has_ids(v) for v in obj)
    return False


def _without_ids(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _without_ids(v) for k, v in obj.items() if k != "id"}
    if isinstance(obj, list):
        return [_without_ids(v) for v in obj]
    return obj


def _with_extras(obj: JSON) -> JSON:
    extra = {
        "@odata.nextGenerationAnnotation": "ignored",
        "bulkprovFutureProperty": {"nested": [1, "two", None], "enabled": True},
    }
    out = {**obj, **extra}
    for k, v in obj.items():
        if isinstance(v, dict):
            out[k] = {**v, **extra}
        elif isinstance(v, list):
            out[k] = [{**i, **extra} if isinstance(i, dict) else i for i in v]
    return out


def malform(resp: MockResponse) -> None:
    """Turn a good answer into the malformed one its fault asks for."""
    kind = resp.malformed
    if kind in ("html_502", "html_200"):
        # a proxy or portal answered: none of Graph's headers or body
        for name in (
            "request-id",
            "client-request-id",
            "x-ms-ags-diagnostic",
            "x-ms-resource-unit",
            "x-ms-throttle-limit-percentage",
        ):
            resp.headers.pop(name, None)
        resp.status = 502 if kind == "html_502" else 200
        resp.raw = PROXY_502 if kind == "html_502" else PORTAL_200
        resp.content_type = "text/html"
    elif kind == "empty":
        resp.raw = b""
        resp.content_type = "application/json"
    elif kind == "truncated":
        data = orjson.dumps(resp.body)
        resp.raw = data[: max(1, len(data) // 2)]
    elif kind == "extra_fields":
        resp.body = _with_extras(resp.body)
    elif kind == "missing_ids":
        resp.body = _without_ids(resp.body)
