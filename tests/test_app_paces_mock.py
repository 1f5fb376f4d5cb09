"""Two tenants of one app writing at once against the mock over loopback HTTPS, the app's
write budget across tenants (Application/Write) the binding limit: clients that share an
:class:`AppPaces` keep to it together (few 429s, none early). Clients that pace it alone each
spend it as if it were theirs: dozens of 429s on an idle machine, a few on a loaded one, so
that case asserts only what holds either way (the budget, no early retry)."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any

import anyio
import pytest

from bulkprov.client import GraphClient
from bulkprov.errors import Throttled
from bulkprov.limiter import AppPaces
from bulkprov.mockgraph import MockGraph, MockSettings, ThrottleSettings
from bulkprov.settings import ClientSettings, Quota

from .enginekit import connection

AWS = "8b1025e4-1dd2-430b-a150-2ef79cd700f5"  # the gallery's AWS Single-Account Access
TIME_SCALE = 0.1  # real seconds per Graph second
LIMIT, WINDOW = 60, 10.0  # the app's writes across tenants: 6 per Graph second, 60 at once
DURATION = 60.0  # Graph seconds of writing
WORKERS = 48  # writes in flight per client
FEW = 6  # 429s that count as few (tenant two's first writes alone are 48)
LATE = 20.0  # Graph seconds tenant two starts after tenant one


def _instantiates(stats: dict[str, Any]) -> dict[str, int]:
    (route,) = [r for name, r in stats["byRoute"].items() if "instantiate" in name.lower()]
    return {str(k): int(v) for k, v in route.items()}


async def _write_until(
    client: GraphClient, tenant: int, stop: anyio.Event, delay: float = 0.0
) -> None:
    # a read first: the connection's TLS handshake is not taken for the writes' latency
    await client.get(f"/applicationTemplates/{AWS}")
    await anyio.sleep(delay * TIME_SCALE)
    n = 0
    while not stop.is_set():
        n += 1
        with contextlib.suppress(Throttled):  # its 429 budget spent: the mock counts them
            await client.request(
                "POST",
                f"/applicationTemplates/{AWS}/instantiate",
                json={"displayName": f"AWS tenant {tenant} {n}"},
            )


async def _two_tenants_write(mock: MockGraph, shared: bool) -> dict[str, Any]:
    """Both tenants write (tenant two LATE) until DURATION Graph seconds: the mock's counts."""
    info = mock.info
    assert info is not None
    settings = ClientSettings(
        time_scale=TIME_SCALE, app_write_quota=Quota(limit=LIMIT, window=WINDOW)
    )
    app = AppPaces(settings) if shared else None
    base = connection(mock)
    clients = [
        GraphClient(replace(base, tenant_id=tenant), settings, app_paces=app)
        for tenant in info.tenant_ids
    ]
    stop = anyio.Event()
    async with clients[0], clients[1]:
        # a token each first, so that the writing starts together
        for c in clients:
            await c.tokens.token()
        start = mock.stats()["now"]
        async with anyio.create_task_group() as tg:
            for i, c in enumerate(clients):
                for _ in range(WORKERS):
                    tg.start_soon(_write_until, c, i, stop, i * LATE)
            await anyio.sleep(DURATION * TIME_SCALE)
            stop.set()
            tg.cancel_scope.cancel()  # writes waiting on the paces are not sent
        stats = mock.stats()
    counts = _instantiates(stats)
    return {
        "graph_seconds": stats["now"] - start,
        "accepted": counts.get("201", 0),
        "throttled": stats["throttled"],
        "early": stats["earlyRetries"],
    }


@pytest.mark.anyio
@pytest.mark.parametrize(
    "mock_settings",
    [
        MockSettings.quiet(
            time_scale=TIME_SCALE,
            tenants=2,
            throttle=ThrottleSettings(
                app_write_limit=LIMIT, app_write_window=WINDOW, write_limit=1_000_000
            ),
        )
    ],
)
@pytest.mark.parametrize("shared", [True, False], ids=["shared", "alone"])
async def test_two_tenants_keep_to_the_apps_write_budget_together(
    mock: MockGraph, shared: bool
) -> None:
    """Tenant one writes from the start, tenant two from 20 Graph s on, 48 writes in flight
    each, for 60 Graph s, the app's 60 writes per 10 s the only binding limit. Sharing the
    app's paces, the clients spend most of the app's budget with a 429 or two (the first
    writes' connections take their time, and the client's bucket is as deep as Graph's) and
    no early retry. Pacing it alone, tenant two's client starts with the whole burst it
    believes in, into a bucket that tenant one keeps nearly empty."""
    run = await _two_tenants_write(mock, shared)
    elapsed = run["graph_seconds"]
    budget = LIMIT + LIMIT / WINDOW * elapsed  # what the app's bucket allows in that time
    # the mock enforces the budget, and the paces spend most of it
    assert 0.7 * budget <= run["accepted"] <= budget * 1.01, run
    assert run["early"] == 0, run  # alone or shared, nothing goes into a closed scope
    if shared:
        assert run["throttled"] <= FEW, run
    # Pacing the app's scope each alone, the clients met 37 429s in two runs on an idle
    # machine, and as few as 3 to 5 on a loaded one (tenant one's pace then leaves the bucket
    # room): too uncertain to assert, so the sharing itself is held by the scripted tests of
    # tests/test_app_paces.py, which fail if Application/Write goes to the tenant's pace.
