"""The app's limits across tenants on the client side: which paces a request goes through,
which pace a 429's ``x-ms-throttle-scope`` names, which one a limit percentage is taken to be
about, and clients of two tenants sharing one :class:`AppPaces` (a scripted transport and a
fake clock: no server, no waiting)."""

from __future__ import annotations

from dataclasses import replace

import anyio
import pytest

from bulkprov import pacing
from bulkprov.client import GraphClient
from bulkprov.errors import ConfigError, Throttled
from bulkprov.limiter import AppPaces, busiest, pace_settings, scope_pace, scopes
from bulkprov.mockgraph.throttle import SCOPES
from bulkprov.pacing import Pace
from bulkprov.retry import RetryPolicy
from bulkprov.settings import ClientSettings, ConnectionSettings, Credential, Quota
from bulkprov.transport import Answer

from .test_client_transport import GRAPH, OK, SP, Clock, Script, Tokens, json_answer

APP = "11111111-2222-3333-4444-555555555555"
TENANT = "66666666-7777-8888-9999-000000000000"


@pytest.mark.parametrize(
    ("kind", "header", "pace"),
    [
        ("write", f"Tenant_Application/Write/{APP}/{TENANT}", "write"),
        ("write", f"Application/Write/{APP}", "app_write"),
        ("write", f"Tenant/Write/{TENANT}", "write"),
        ("write", f"Tenant_Application/ResourceUnits/{APP}/{TENANT}", "ru"),
        ("write", f"Application/ResourceUnits/{APP}", "app_ru"),
        ("read", f"Application/ResourceUnits/{APP}", "app_ru"),
        ("read", f"Tenant_Application/ResourceUnits/{APP}/{TENANT}", "ru"),
        ("read", f"application/resourceunits/{APP}", "app_ru"),  # case as Graph may send it
        ("reports", f"Tenant_Application/Reports/{APP}/{TENANT}", "reports"),
        ("reports", None, "reports"),
        ("write", None, "write"),
        ("read", None, "ru"),
        ("read", "", "ru"),
        ("read", "Tenant/Read/t", "ru"),  # a scope not known: by what it meters
        ("write", "Directory/Write/x", "write"),
        ("read", "Tenant_Application/Reports/a/t", "reports"),
        ("write", "Application", "ru"),
    ],
)
def test_a_429s_scope_header_names_its_pace(kind: str, header: str | None, pace: str) -> None:
    assert scope_pace(kind, header) == pace


def test_every_scope_the_mock_throttles_in_has_its_pace() -> None:
    """The mock's header is the scope's name then its ids joined by "/"; each of its scopes
    maps to the pace that meters it (Application/Write no longer to the tenant's writes)."""
    expected = {
        "Tenant_Application/Reports": "reports",
        "Tenant_Application/ResourceUnits": "ru",
        "Application/ResourceUnits": "app_ru",
        "Tenant_Application/Write": "write",
        "Application/Write": "app_write",
        "Tenant/Write": "write",
    }
    ids = {"app": APP, "tenant": TENANT}
    for scope in SCOPES:
        header = "/".join((scope.name, *(ids[p] for p in scope.per)))
        kind = {"reports": "reports", "write": "write"}.get(scope.meter, "read")
        assert scope_pace(kind, header) == expected[scope.name], header


@pytest.mark.parametrize(
    ("kind", "ru", "paced"),
    [
        ("write", 1, (("write", 1.0), ("ru", 1.0), ("app_write", 1.0), ("app_ru", 1.0))),
        ("read", 2, (("ru", 2.0), ("app_ru", 2.0))),
        ("reports", 1, (("reports", 1.0),)),
    ],
)
def test_the_scopes_a_request_is_paced_in(
    kind: str, ru: int, paced: tuple[tuple[str, float], ...]
) -> None:
    assert scopes(kind, ru) == paced


def _pace(
    limit: int, window: float, *, spent: float = 0.0, at: float = 0.0, **state: object
) -> Pace:
    """A fresh pace of that quota with ``spent`` of its published bucket counted at ``at``."""
    p = pacing.start(pace_settings(Quota(limit=limit, window=window)), at)
    return replace(p, model=p.settings.burst - spent, **state)  # type: ignore[arg-type]


FRESH_WRITE = _pace(3000, 150)
FRESH_APP = _pace(35000, 300)


@pytest.mark.parametrize(
    ("case", "states", "now", "chosen"),
    [
        (
            "nothing spent: the request's own scope",
            {"write": FRESH_WRITE, "app_write": FRESH_APP},
            0.0,
            "write",
        ),
        (
            "a tie goes to the own scope",
            {"app_write": FRESH_APP, "write": FRESH_WRITE},
            0.0,
            "write",
        ),
        (
            "the tenant's bucket spent most",
            {"write": _pace(3000, 150, spent=2900), "app_write": _pace(35000, 300, spent=2900)},
            0.0,
            "write",
        ),
        (
            "the app's bucket, spent by other tenants' clients too",
            {"write": _pace(3000, 150, spent=500), "app_write": _pace(35000, 300, spent=34000)},
            0.0,
            "app_write",
        ),
        (
            "the app's bucket has refilled since it was last counted",
            {"write": _pace(3000, 150, spent=500), "app_write": _pace(35000, 300, spent=34000)},
            300.0,
            "write",
        ),
        (
            "Graph disproved the published tenant quota: what it reported counts",
            {
                "write": _pace(3000, 150, spent=0, trusting=False, used=0.97),
                "app_write": _pace(35000, 300, spent=30000),
            },
            0.0,
            "write",
        ),
        (
            "throttled lately (a 429 reads as full)",
            {
                "ru": _pace(3500, 10),
                "app_ru": _pace(150000, 20, trusting=False, used=1.0),
            },
            0.0,
            "app_ru",
        ),
        (
            "a read's resource units",
            {"ru": _pace(3500, 10, spent=3400), "app_ru": _pace(150000, 20, spent=3400)},
            0.0,
            "ru",
        ),
        ("the own scope is not among them", {"app_ru": FRESH_APP}, 0.0, "app_ru"),
    ],
)
def test_the_limit_percentage_goes_to_the_scope_believed_most_used(
    case: str, states: dict[str, Pace], now: float, chosen: str
) -> None:
    own = "ru" if "write" not in states else "write"
    assert busiest(states, own, now) == chosen, case


# ------------------------------------------------------------------ clients sharing AppPaces

BIG = Quota(limit=10_000, window=1)


def settings(**changes: object) -> ClientSettings:
    """Tenant quotas that never hold a request up, so that only the app's scopes do."""
    base = ClientSettings(time_scale=1.0, seed=7, ru_quota=BIG, write_quota=BIG, reports_quota=BIG)
    return replace(base, **changes)  # type: ignore[arg-type]


def client(
    clock: Clock, tenant: str, replies: list[Answer], app_paces: AppPaces | None, s: ClientSettings
) -> tuple[GraphClient, Script]:
    conn = ConnectionSettings(
        graph_url=GRAPH,
        tenant_id=tenant,
        client_id=APP,
        credential=Credential(client_secret="dummy-not-a-secret"),
    )
    transport = Script(clock, list(replies))
    c = GraphClient(
        conn,
        s,
        tokens=Tokens(),
        transport=transport,
        sleep=clock.sleep,
        clock=clock,
        app_paces=app_paces,
    )
    return c, transport


def app_429(retry_after: int = 30) -> Answer:
    return json_answer(
        429,
        {},
        **{"Retry-After": str(retry_after), "x-ms-throttle-scope": f"Application/Write/{APP}"},
    )


@pytest.mark.anyio
@pytest.mark.parametrize("shared", [True, False])
async def test_an_application_429_closes_the_scope_for_every_client_sharing_it(
    shared: bool,
) -> None:
    """Tenant one's write meets a 429 in Application/Write (Retry-After 30) and gives up (its
    policy allows one 429). Tenant two's client, sharing the app's paces, sends its write only
    after the 30 s; a client pacing the app alone sends at once, into the scope Graph closed."""
    clock = Clock()
    s = settings()
    app = AppPaces(s) if shared else None
    impatient = replace(s, retry=RetryPolicy(max_throttle_attempts=1))
    one, sent_one = client(clock, "t1", [app_429()], app, impatient)
    two, sent_two = client(clock, "t2", [OK], app, s)
    async with one, two:
        with pytest.raises(Throttled):
            await one.request("PATCH", f"/servicePrincipals/{SP}", json={"x": 1})
        await two.request("PATCH", f"/servicePrincipals/{SP}", json={"x": 2})
    ((t429, _),) = sent_one.sent
    ((at, _),) = sent_two.sent
    if shared:
        assert at > t429 + 30
    else:
        assert at == t429  # nothing held it up


@pytest.mark.anyio
async def test_a_tenant_429_closes_only_its_own_tenants_pace() -> None:
    """A 429 in Tenant_Application/Write closes that tenant's write pace, not the app's
    shared one, nor the other tenant's."""
    clock = Clock()
    s = settings(write_quota=Quota(limit=3000, window=150))
    app = AppPaces(s)
    tenant_429 = json_answer(
        429,
        {},
        **{"Retry-After": "30", "x-ms-throttle-scope": f"Tenant_Application/Write/{APP}/t1"},
    )
    one, sent_one = client(clock, "t1", [tenant_429, OK], app, s)
    two, _ = client(clock, "t2", [], app, s)
    async with one, two:
        await one.request("PATCH", f"/servicePrincipals/{SP}", json={"x": 1})
        assert one._paces is not None and two._paces is not None
        t429 = sent_one.sent[0][0]
        assert one._paces["write"].state.closed_until > t429 + 30
        assert two._paces["write"].state.closed_until == 0.0
        shared = one._paces["app_write"]
        assert shared is two._paces["app_write"]
        assert shared.state.closed_until == 0.0 and shared.state.trusting


@pytest.mark.anyio
async def test_concurrent_429s_of_two_tenants_are_one_episode_of_the_shared_scope() -> None:
    """Both tenants' writes are on their way when the app's bucket runs out: both meet a 429
    in Application/Write. The shared pace counts one throttling episode (the second 429 was
    sent before the first came back), not a cut per client."""
    clock = Clock()
    s = settings()
    app = AppPaces(s)
    one, _ = client(clock, "t1", [app_429(2), OK], app, s)
    two, _ = client(clock, "t2", [app_429(2), OK], app, s)
    async with one, two, anyio.create_task_group() as tg:
        for c in (one, two):
            tg.start_soon(lambda c=c: c.request("PATCH", f"/servicePrincipals/{SP}", json={}))
    state = app.paces(0.0)["app_write"].state
    assert state.refused == 2 and not state.trusting
    # one episode: the published rate is the estimate still (a second one would have cut it)
    assert state.estimate == pytest.approx(35000 / 300)
    assert one.stats.throttled == 1 and two.stats.throttled == 1


@pytest.mark.anyio
async def test_the_limit_percentage_of_a_write_teaches_the_app_scope_spent_most() -> None:
    """Nine of the app's ten writes are spent: the tenth write's answer says 95% used. The
    client counts the app's bucket as nearly empty and its tenant's as nearly full, so the
    share goes to the app's write pace, not the tenant's."""
    clock = Clock()
    s = settings(
        app_write_quota=Quota(limit=10, window=1000), write_quota=Quota(limit=3000, window=150)
    )
    hot = json_answer(200, {"id": SP}, **{"x-ms-throttle-limit-percentage": "95"})
    c, _ = client(clock, "t1", [OK] * 9 + [hot], None, s)
    async with c:
        for _ in range(10):
            await c.request("PATCH", f"/servicePrincipals/{SP}", json={})
        assert c._paces is not None
        paces = {name: p.state for name, p in c._paces.items()}
    assert paces["app_write"].used == pytest.approx(0.95)
    assert paces["write"].used == 0.0 and paces["write"].trusting


def test_clients_of_another_time_scale_are_refused() -> None:
    app = AppPaces(ClientSettings(time_scale=0.1))
    conn = ConnectionSettings(
        graph_url=GRAPH, tenant_id="t9", client_id=APP, credential=Credential(client_secret="x")
    )
    with pytest.raises(ConfigError, match=r"tenant t9: time_scale 1 differs from the 0\.1 "):
        GraphClient(conn, ClientSettings(time_scale=1.0), app_paces=app)


def test_the_shared_paces_start_once_at_the_first_clients_time() -> None:
    """Made outside any event loop; the first to ask starts the paces, the next gets the same."""
    app = AppPaces(ClientSettings(app_ru_quota=Quota(limit=100, window=10)))
    first = app.paces(5.0)
    again = app.paces(50.0)
    assert first["app_ru"] is again["app_ru"] and first["app_write"] is again["app_write"]
    assert first["app_ru"].state.level_at == 5.0 and first["app_ru"].quota.limit == 100


class _RealClock:
    """The event loop's clock, with ``now`` for :class:`Script`'s record of each request."""

    @property
    def now(self) -> float:
        return anyio.current_time()


@pytest.mark.anyio
async def test_a_first_instantiate_goes_before_the_steps_of_instances_begun() -> None:
    """The write bucket is spent; a write of an instance already begun starts waiting, then
    another instance's first instantiate: the bucket's next token goes to the instantiate,
    although it asked later (real time: one write per 10 Graph s, 0.1 s real each)."""
    from bulkprov.client import priority
    from bulkprov.limiter import FIRST

    clock = _RealClock()
    s = settings(time_scale=0.01, write_quota=Quota(limit=1, window=10))
    transport = Script(clock, [OK, OK, OK])  # type: ignore[arg-type]
    conn = ConnectionSettings(
        graph_url=GRAPH,
        tenant_id=TENANT,
        client_id=APP,
        credential=Credential(client_secret="dummy-not-a-secret"),
    )
    order: list[str] = []

    async def write(name: str, first: bool) -> None:
        if first:
            with priority(FIRST):
                await c.request("POST", "/applicationTemplates/x/instantiate", json={})
        else:
            await c.request("PATCH", f"/servicePrincipals/{SP}", json={})
        order.append(name)

    async with GraphClient(conn, s, tokens=Tokens(), transport=transport) as c:
        await write("spends the burst", False)
        async with anyio.create_task_group() as tg:
            tg.start_soon(write, "begun", False)
            await anyio.sleep(0.02)  # it waits for the next token now
            tg.start_soon(write, "first instantiate", True)
    assert order == ["spends the burst", "first instantiate", "begun"]


@pytest.mark.parametrize(
    ("slots", "gates"), [(100, [84, 92]), (12, [10, 11]), (2, [2, 2]), (1, [1, 1])]
)
def test_higher_priorities_always_find_a_connection(slots: int, gates: list[int]) -> None:
    """Of a kind's connections, NORMAL requests may hold all but two twelfths and NORMAL and
    FIRST together all but one: an URGENT one never queues behind waiters of lower ones
    for a connection (too few connections to spare: none kept)."""
    from bulkprov.client import _gates

    assert [g.value for g in _gates(slots)] == gates
