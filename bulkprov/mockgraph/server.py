"""Serving the mock Graph over HTTPS (and optionally plain HTTP) with aiohttp.

Routes:

- ``/{tenant}/v2.0/.well-known/openid-configuration``, ``/{tenant}/discovery/v2.0/keys``,
  ``/{tenant}/oauth2/v2.0/token``, ``/{tenant}/oauth2/v2.0/devicecode``: the identity
  platform MSAL talks to;
- ``/v1.0/...`` and ``/beta/...`` (``$batch`` included): Graph;
- ``/_mock/info``, ``/_mock/stats``, ``/_mock/control``: for tests, benchmarks and operators.

``async with MockGraph(settings) as mock:`` runs it in-process on a free loopback port;
``bulkprov mock-graph`` runs it until interrupted. ``MockGraph(settings, keep=DIR)`` keeps its
tenants in a directory and serves them again the next time (:mod:`.persist`: ``--mock``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import random
import secrets
import ssl
import tempfile
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
import orjson
from aiohttp import web

from ..files import write_atomic
from .clock import ScaledClock
from .graph import GraphService
from .identity import ClientRegistration, MockUser, OAuthError, TokenService, make_tls
from .persist import PERIOD, Keeper, KeepError, Saved, restore
from .settings import (
    FaultSettings,
    JobSettings,
    LatencySettings,
    MockSettings,
    ReplicationSettings,
    ThrottleSettings,
)
from .state import Tenant
from .wire import MockRequest, MockResponse

JSON_CONTENT_TYPE = "application/json"
GRAPH_CONTENT_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8"
)


def tenant_id(n: int) -> str:
    """The stable id of the mock's n-th tenant (1-based)."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"tenant{n}.bulkprov.mock"))


CLIENT_ID = str(uuid.uuid5(uuid.NAMESPACE_DNS, "client.bulkprov.mock"))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MockInfo:
    """What a client needs to connect to a running mock."""

    graph_url: str  # Graph base URL without version, e.g. https://127.0.0.1:8443
    authority: str  # https://127.0.0.1:8443/<tenant id>
    authority_host: str  # https://127.0.0.1:8443
    ca_file: str
    tenant_id: str
    tenant_ids: tuple[str, ...]
    client_id: str
    client_secret: str
    time_scale: float
    http_url: str | None = None  # plain-HTTP Graph base URL, for curl
    # the user who signs in with a device code, per tenant (same order as tenant_ids); the
    # client id above is also a public client, so device-code sign-in uses it as well
    users: tuple[str, ...] = ()

    def to_json(self) -> bytes:
        return orjson.dumps(dataclasses.asdict(self), option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, data: bytes | str) -> MockInfo:
        raw = orjson.loads(data)
        raw["tenant_ids"] = tuple(raw["tenant_ids"])
        raw["users"] = tuple(raw.get("users", ()))
        return cls(**raw)

    def profiles(self, secret_file: Path) -> dict[str, dict[str, Any]]:
        """One app-only profile (``tenantN``, client secret from ``secret_file``) and one
        delegated profile (``tenantN-device``, device code) per tenant of the mock."""
        out: dict[str, dict[str, Any]] = {}
        for n, tid in enumerate(self.tenant_ids, start=1):
            common = {
                "tenant_id": tid,
                "client_id": self.client_id,
                "graph_url": self.graph_url,
                "authority_host": self.authority_host,
                "ca_file": self.ca_file,
            }
            out[f"tenant{n}"] = {**common, "client_secret": f"file:{secret_file}"}
            out[f"tenant{n}-device"] = {"auth": "device_code", **common}
        return out

    def __repr__(self) -> str:  # the client secret stays out of reprs and logs
        return (
            f"MockInfo(graph_url={self.graph_url!r}, authority={self.authority!r}, "
            f"tenant_id={self.tenant_id!r}, client_id={self.client_id!r})"
        )


class MockGraph:
    """The whole mock: identity platform, Graph, tenants and their state, and the servers."""

    def __init__(
        self,
        settings: MockSettings | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        http_port: int | None = None,
        state_dir: Path | None = None,
        client_secret: str | None = None,
        keep: Path | None = None,
        create: bool = False,
    ) -> None:
        """``keep``: a directory to keep the tenants in (:mod:`.persist`): they are read back
        from it (a new one is made there with ``create``), journaled and saved to it as they
        change; the TLS files go there too, ``state_dir`` is not used."""
        self.settings = settings or MockSettings()
        self.host = host
        self.port = port
        self.http_port = http_port
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.keeper: Keeper | None = None
        saved: Saved | None = None
        if keep is not None:
            self.keeper = Keeper(keep)
            saved = self.keeper.open(create=create)
            state_dir = keep
        elif state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="bulkprov-mock-")
            state_dir = Path(self._tmp.name)
        self.state_dir = state_dir
        if saved is not None:  # Graph time goes on from where the kept tenant stopped
            self.clock = ScaledClock(self.settings.time_scale, start=saved.now, wall0=saved.wall0)
        else:
            self.clock = ScaledClock(self.settings.time_scale)
        self.tokens = TokenService(token_lifetime=self.settings.token_lifetime)
        self.tokens.auto_approve_polls = self.settings.device_code_auto_approve
        self.client_secret = client_secret or secrets.token_urlsafe(30)
        if self.keeper is not None:
            # a kept tenant has an id of its own, and new objects must not take the ids that
            # a seeded generator gave the objects already kept
            rng = random.Random(secrets.randbits(64))
            ids = (
                [str(t["id"]) for t in saved.tenants]
                if saved is not None
                else [str(uuid.uuid4()) for _ in range(self.settings.tenants)]
            )
        else:
            rng = random.Random(f"{self.settings.faults.seed}:state")
            ids = [tenant_id(n) for n in range(1, self.settings.tenants + 1)]
        tenants = {}
        for n, tid in enumerate(ids, start=1):
            tenants[tid] = Tenant(tid, self.settings, self.clock, rng)
            reg = ClientRegistration(client_id=CLIENT_ID, tenant_id=tid, display_name="bulkprov")
            reg.add_secret(self.client_secret)
            self.tokens.register(reg)
            self.tokens.users[tid] = MockUser.for_tenant(tid, n)
        self.service = GraphService(self.settings, self.clock, self.tokens, tenants)
        self._token_rng = random.Random(f"{self.settings.faults.seed}:token")
        self._runner: web.AppRunner | None = None
        self._background: contextlib.AsyncExitStack | None = None  # its task group
        self._served = 0  # requests answered: a kept tenant is saved when it moved on
        self.info: MockInfo | None = None
        if self.keeper is not None:
            try:
                for n, t in enumerate(tenants.values()):
                    t.touched = set()
                    if saved is not None:
                        restore(t, saved.tenants[n])
                self.keeper.snapshot(list(tenants.values()), self.clock)
            except BaseException:
                self.keeper.release()  # the kept files stay as they were
                raise
            self.service.journal = self.keeper.journal

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> MockInfo:
        tls = make_tls(
            self.state_dir / "tls", hosts=_hosts(self.host), reuse=self.keeper is not None
        )
        if self.keeper is not None:
            self.keeper.private(tls.ca_file.parent)
        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_ctx.load_cert_chain(tls.cert_file, tls.key_file)
        app = web.Application(client_max_size=8 * 1024 * 1024)
        self._routes(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=ssl_ctx)
        await site.start()
        await self._start_background()
        port = _bound_port(site)
        http_url = None
        if self.http_port is not None:
            http_site = web.TCPSite(self._runner, self.host, self.http_port)
            await http_site.start()
            http_url = f"http://{_url_host(self.host)}:{_bound_port(http_site)}"
        base = f"https://{_url_host(self.host)}:{port}"
        first = next(iter(self.service.tenants))
        self.info = MockInfo(
            graph_url=base,
            authority=f"{base}/{first}",
            authority_host=base,
            ca_file=str(tls.ca_file),
            tenant_id=first,
            tenant_ids=tuple(self.service.tenants),
            client_id=CLIENT_ID,
            client_secret=self.client_secret,
            time_scale=self.settings.time_scale,
            http_url=http_url,
            users=tuple(self.tokens.users[t].user_principal_name for t in self.service.tenants),
        )
        return self.info

    async def _start_background(self) -> None:
        """Run the mock's background work (the loop-lag watch, the periodic save of a kept
        tenant) under a task group that :meth:`aclose` cancels."""
        stack = contextlib.AsyncExitStack()
        tg = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(tg.cancel_scope.cancel)  # runs first: the group then exits at once
        self._background = stack
        tg.start_soon(self._watch_loop_lag)
        if self.keeper is not None:
            tg.start_soon(self._save_periodically)

    async def _watch_loop_lag(self, period: float = 0.02, window: float = 1.0) -> None:
        """Keep the throttler told of the event loop's longest lag over the last ``window``
        seconds, so that a request a busy loop delayed is not judged an early retry."""
        loop = asyncio.get_running_loop()
        throttler = self.service.throttler
        recent: collections.deque[tuple[float, float]] = collections.deque()
        while True:
            t0 = loop.time()
            await asyncio.sleep(period)
            now = loop.time()
            recent.append((now, max(0.0, now - t0 - period)))
            while recent[0][0] < now - window:
                recent.popleft()
            throttler.loop_lag = max(lag for _, lag in recent) / self.settings.time_scale

    async def _save_periodically(self, period: float = PERIOD) -> None:
        """Snapshot a kept tenant every ``period`` real seconds in which requests came in
        (job cycles and provisioning logs, which the journal does not hold)."""
        assert self.keeper is not None
        saved_at = self._served
        while True:
            await asyncio.sleep(period)
            if self._served != saved_at:
                saved_at = self._served
                with contextlib.suppress(KeepError):  # the journal still has it all
                    self.keeper.snapshot(list(self.service.tenants.values()), self.clock)

    async def aclose(self) -> None:
        """Stop the background work, the server, the keeper and the TLS files, each even when
        an earlier one raised (a cancellation arriving during the close, say)."""
        try:
            if self._background is not None:
                background, self._background = self._background, None
                await background.aclose()
        finally:
            try:
                if self._runner is not None:
                    runner, self._runner = self._runner, None
                    await runner.cleanup()
            finally:
                self._close_files()

    def _close_files(self) -> None:
        try:
            if self.keeper is not None:
                keeper, self.keeper = self.keeper, None
                keeper.close(list(self.service.tenants.values()), self.clock)
        finally:
            if self._tmp is not None:
                tmp, self._tmp = self._tmp, None
                tmp.cleanup()

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def stats(self) -> dict[str, Any]:
        return self.service.stats()

    def update_settings(self, changes: dict[str, Any]) -> MockSettings:
        """Apply a JSON patch of settings live, e.g. ``{"faults": {"error_rate": {"*": 0.1}}}``."""
        nested = {
            "faults": FaultSettings,
            "latency": LatencySettings,
            "replication": ReplicationSettings,
            "throttle": ThrottleSettings,
            "jobs": JobSettings,
        }
        kwargs: dict[str, Any] = {}
        for key, value in changes.items():
            if key in nested:
                current = getattr(self.settings, key)
                kwargs[key] = dataclasses.replace(current, **value)
            elif key in ("page_size", "max_page_size", "batch_limit"):
                kwargs[key] = value
            else:
                raise ValueError(f"setting {key!r} cannot be changed on a running mock")
        self.settings = self.settings.evolve(**kwargs)
        self.service.apply_settings(self.settings)
        if "faults" in changes:  # setting a burst again arms it again
            self.service.arm_bursts(self.settings.faults)
        return self.settings

    # ------------------------------------------------------------------ routes
    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/_mock/info", self._h_info)
        app.router.add_get("/_mock/stats", self._h_stats)
        app.router.add_post("/_mock/control", self._h_control)
        app.router.add_post("/{version:v1\\.0|beta}/$batch", self._h_batch)
        app.router.add_route("*", "/{version:v1\\.0|beta}/{tail:.*}", self._h_graph)
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._h_oidc)
        app.router.add_get("/{tenant}/.well-known/openid-configuration", self._h_oidc)
        app.router.add_get("/{tenant}/discovery/v2.0/keys", self._h_keys)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._h_token)
        app.router.add_post("/{tenant}/oauth2/v2.0/devicecode", self._h_devicecode)

    @staticmethod
    def _base(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    def _mock_request(self, request: web.Request, body: bytes) -> MockRequest:
        version = request.match_info["version"]
        raw = request.raw_path.split("?", 1)[0]
        path = raw[len(version) + 1 :]
        return MockRequest(
            method=request.method,
            path=path,
            query={k: v for k, v in request.query.items()},
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            version=version,
            base_url=self._base(request),
            conn=id(request.protocol),
        )

    async def _h_graph(self, request: web.Request) -> web.StreamResponse:
        self._served += 1
        body = await request.read()
        resp = await self.service.handle(self._mock_request(request, body))
        return await self._send(request, resp)

    async def _h_batch(self, request: web.Request) -> web.StreamResponse:
        self._served += 1
        body = await request.read()
        req = self._mock_request(request, body)
        # the envelope's token is checked first; items are then checked one by one
        return await self._send(request, await self.service.batch(req))

    async def _send(self, request: web.Request, resp: MockResponse) -> web.StreamResponse:
        if resp.drop == "before":
            _abort(request)  # the response below is never written: the client sees a reset
            return web.Response(status=500)
        headers = dict(resp.headers)
        if resp.raw is not None:  # a malformed-answer fault
            payload = resp.raw
            headers["Content-Type"] = resp.content_type or JSON_CONTENT_TYPE
        else:
            payload = b"" if resp.body is None else orjson.dumps(resp.body)
            if resp.body is not None:
                headers["Content-Type"] = GRAPH_CONTENT_TYPE
        if resp.drop == "after":
            stream = web.StreamResponse(status=resp.status, headers=headers)
            stream.content_length = len(payload)
            await stream.prepare(request)
            await stream.write(payload[: max(1, len(payload) // 2)])
            _abort(request)
            return stream
        if resp.on_sent:
            stream = web.StreamResponse(status=resp.status, headers=headers)
            stream.content_length = len(payload)
            await stream.prepare(request)
            await stream.write(payload)
            await stream.write_eof()
            for callback in resp.on_sent:
                callback()
            return stream
        if resp.raw is not None:
            stream = web.StreamResponse(status=resp.status, headers=headers)
            stream.content_length = len(payload)
            await stream.prepare(request)
            await stream.write(payload)
            await stream.write_eof()
            return stream
        return web.Response(status=resp.status, body=payload or None, headers=headers)

    # identity platform
    async def _h_oidc(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        base = self._base(request)
        doc = {
            "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{tenant}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base}/oidc/userinfo",
            "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/{tenant}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid", "appid"],
            "tenant_region_scope": "NA",
            "cloud_instance_name": "bulkprov.mock",
        }
        if tenant not in self.service.tenants:
            return web.json_response(
                {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant '{tenant}' not found.",
                },
                status=400,
            )
        return web.Response(body=orjson.dumps(doc), content_type=JSON_CONTENT_TYPE)

    async def _h_keys(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.tokens.jwks()), content_type=JSON_CONTENT_TYPE)

    async def _h_token(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        await self.service.latency("token")
        trace_id, correlation_id = (
            str(uuid.uuid4()),
            request.headers.get("client-request-id", str(uuid.uuid4())),
        )
        status: int
        if self.service.burst("redirect_burst", "token", shared=False):
            faults = self.settings.faults
            self.service.counters["faults_token_redirect"] += 1
            self.service.requests["POST /{tenant}/oauth2/v2.0/token"][faults.redirect_status] += 1
            return web.Response(
                status=faults.redirect_status, headers={"Location": faults.redirect_location}
            )
        if self.service.burst("drop_burst", "token", shared=False):
            self.service.counters["faults_token_drop"] += 1
            self.service.requests["POST /{tenant}/oauth2/v2.0/token"][0] += 1
            _abort(request)
            return web.Response(status=500)
        if self.service.burst("error_burst", "token", shared=False) or (
            self._token_rng.random() < self.settings.faults.token_error_rate
        ):
            self.service.counters["faults_token_5xx"] += 1
            err = OAuthError(
                503,
                "temporarily_unavailable",
                "AADSTS50196",
                "The server is temporarily unavailable. Retry later.",
            )
            body: dict[str, Any] = err.body(trace_id, correlation_id)
            status = err.status
        else:
            try:
                endpoint = f"{self._base(request)}/{tenant}/oauth2/v2.0/token"
                body = self.tokens.grant(tenant, form, endpoint)
                status = 200
            except OAuthError as err:
                body, status = err.body(trace_id, correlation_id), err.status
        self.service.requests["POST /{tenant}/oauth2/v2.0/token"][status] += 1
        return web.Response(
            status=status,
            body=orjson.dumps(body),
            content_type=JSON_CONTENT_TYPE,
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    async def _h_devicecode(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        await self.service.latency("token")
        try:
            body = self.tokens.device_authorization(
                tenant, form, f"{self._base(request)}/devicelogin"
            )
            status = 200
        except OAuthError as err:
            cid = request.headers.get("client-request-id", str(uuid.uuid4()))
            body, status = err.body(str(uuid.uuid4()), cid), err.status
        self.service.requests["POST /{tenant}/oauth2/v2.0/devicecode"][status] += 1
        return web.Response(
            status=status,
            body=orjson.dumps(body),
            content_type=JSON_CONTENT_TYPE,
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    # the mock's own endpoints
    async def _h_info(self, request: web.Request) -> web.Response:
        assert self.info is not None
        return web.Response(body=self.info.to_json(), content_type=JSON_CONTENT_TYPE)

    async def _h_stats(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.stats()), content_type=JSON_CONTENT_TYPE)

    async def _h_control(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
            action = body["action"]
            if action == "settings":
                self.update_settings(body.get("changes", {}))
            elif action == "break_target":
                sp_id = body["servicePrincipalId"]
                for t in self.service.tenants.values():
                    sp = t.service_principals.get(sp_id)
                    if sp is not None:
                        sp.target_broken = bool(body.get("broken", True))
                        if self.keeper is not None:
                            t.touch(sp.id)
                            self.keeper.journal(t)
                        break
                else:
                    raise KeyError(sp_id)
            elif action == "drift":  # change a tenant behind bulkprov's back (drift tests)
                from . import drift

                tenant = drift.apply(self.service.tenants.values(), body)
                if self.keeper is not None:
                    self.keeper.journal(tenant)
            elif action == "approve_device_code":
                self.tokens.decide_device_code(
                    str(body["user_code"]), approve=bool(body.get("approve", True))
                )
            elif action == "device_code_auto_approve":
                polls = body.get("polls")
                self.tokens.auto_approve_polls = None if polls is None else int(polls)
            elif action == "reset_stats":
                self.service.requests.clear()
                self.service.counters.clear()
                self.service.throttle_log.clear()
            else:
                raise ValueError(f"unknown action {action!r}")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": f"bad control request: {exc!r}"}, status=400)
        return web.json_response({"ok": True})


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort() if hasattr(transport, "abort") else transport.close()


def _hosts(host: str) -> tuple[str, ...]:
    hosts = ["127.0.0.1", "localhost", "::1"]
    if host not in hosts and host not in ("0.0.0.0", "::"):
        hosts.insert(0, host)
    return tuple(hosts)


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _bound_port(site: web.TCPSite) -> int:
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    return int(sockets[0].getsockname()[1])


def write_info(path: Path, info: MockInfo) -> None:
    """Write the connection details (they hold the client secret) readable by the owner only,
    and whole (renamed into place): whoever polls for the file reads all of it once it is
    there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, info.to_json())


def write_profiles(path: Path, info: MockInfo) -> Path:
    """Write a profiles file for ``info`` (one app-only and one device-code profile per tenant)
    and, beside it, the client secret it references; both readable by the owner only. Returns
    the secret file's path."""
    from ..profiles import render

    path.parent.mkdir(parents=True, exist_ok=True)
    secret_file = path.with_name(path.name + ".secret")
    for f in (secret_file, path):
        f.touch(mode=0o600)
        f.chmod(0o600)
    secret_file.write_text(info.client_secret + "\n", encoding="utf-8")
    text = (
        f"# bulkprov profiles for the mock Graph at {info.graph_url}\n"
        "# tenantN: app-only (client secret); tenantN-device: delegated (device code)\n\n"
        + render(info.profiles(secret_file.resolve()))
    )
    path.write_text(text, encoding="utf-8")
    return secret_file


async def run_mock(
    settings: MockSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8443,
    http_port: int | None = None,
    info_file: Path | None = None,
    profiles_file: Path | None = None,
    state_dir: Path | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Run the mock until cancelled, writing its :class:`MockInfo` to ``info_file``. The
    cancellation goes through the mock's ``async with``, which closes it, and is then raised
    on, as a cancelled task must."""
    async with MockGraph(
        settings, host=host, port=port, http_port=http_port, state_dir=state_dir
    ) as mock:
        assert mock.info is not None
        if info_file is not None:
            write_info(info_file, mock.info)
        if profiles_file is not None:
            write_profiles(profiles_file, mock.info)
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()
