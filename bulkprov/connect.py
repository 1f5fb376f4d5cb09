"""Where a command's Graph comes from: a connection profile, flags and BULKPROV_* variables, a
mock's info file, or the embedded mock (``--mock``).

What the command line says is a :class:`ConnectionOptions` of plain values (made from its
flags by :func:`bulkprov.cliconnect.connection_options`); :func:`from_flags` and
:func:`target` resolve it against the environment and the profiles file.

Precedence, per setting: an explicit flag, then the chosen profile (``--profile`` or
``BULKPROV_PROFILE``), then the BULKPROV_* variable, then the default. A credential flag
(``--client-secret-env``, ``--client-secret-file``, ``--certificate-file``) replaces the
profile's credential as a whole."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import profiles as profiles_mod
from . import tenancy
from .errors import ConfigError
from .settings import AUTHORITY_HOST, GRAPH_URL, ClientSettings, ConnectionSettings, Credential

if TYPE_CHECKING:
    from .client import GraphClient
    from .limiter import AppPaces
    from .mockgraph.server import MockInfo
    from .mockgraph.settings import MockSettings

ENV = {
    "graph_url": "BULKPROV_GRAPH_URL",
    "authority_host": "BULKPROV_AUTHORITY_HOST",
    "tenant_id": "BULKPROV_TENANT_ID",
    "client_id": "BULKPROV_CLIENT_ID",
    "client_secret_file": "BULKPROV_CLIENT_SECRET_FILE",
    "certificate_file": "BULKPROV_CERTIFICATE_FILE",
    "ca_file": "BULKPROV_CA_FILE",
    "mock_info": "BULKPROV_MOCK_INFO",
    "time_scale": "BULKPROV_TIME_SCALE",
}
SECRET_ENV = "BULKPROV_CLIENT_SECRET"
MOCK_HINT = "is `bulkprov mock-graph` still running?"


@dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """What a command was told about its Graph, each ``None`` (``False``) when not given: the
    BULKPROV_* variable, the profile or the default decides then."""

    profile: str | None = None  # --profile
    profiles: Path | None = None  # --profiles (the profiles file)
    mock_info: Path | None = None  # --mock-info: a running `bulkprov mock-graph`
    graph_url: str | None = None
    api_version: str | None = None
    authority_host: str | None = None
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret_env: str | None = None  # the variable holding the client secret
    client_secret_file: Path | None = None
    certificate_file: Path | None = None
    ca_file: Path | None = None
    allow_http: bool = False
    time_scale: float | None = None  # --client-time-scale: the client's real s per Graph s
    write_quota: str | None = None  # the client's quotas, N/SECONDS (default Graph's)
    ru_quota: str | None = None
    mock: MockSettings | None = None  # --mock: the embedded mock to start

    def flag(self, name: str) -> str | None:
        """The option ``name`` as text, when given."""
        value = getattr(self, name)
        return None if value is None else str(value)

    def env(self, name: str) -> str | None:
        """The option ``name`` as given, else its BULKPROV_* variable."""
        value = self.flag(name)
        return value if value is not None else (os.environ.get(ENV[name]) or None)

    def profile_name(self) -> str | None:
        """The profile chosen by ``--profile`` or ``BULKPROV_PROFILE``."""
        return self.profile or os.environ.get(profiles_mod.ENV_NAME) or None


@dataclass(frozen=True, slots=True)
class Target:
    conn: ConnectionSettings
    time_scale: float
    label: str
    identity: str | None = None  # what the ledger records as its Graph (default: base URL)

    @property
    def ledger_graph(self) -> str:
        """The Graph a ledger records and checks: the base URL, or
        :data:`bulkprov.mockgraph.cli.MOCK_GRAPH`."""
        return self.identity or self.conn.base_url


def from_flags(opts: ConnectionOptions) -> Target:
    """The Graph that the options, the BULKPROV_* variables and the chosen profile name (never
    the embedded mock: see :func:`target`)."""
    profile_name = opts.profile_name()
    if profile_name:
        if opts.mock_info:
            raise ConfigError("give --profile or --mock-info, not both")
        return from_profile(opts, profile_name)
    info_path = opts.env("mock_info")
    if info_path:
        return _from_mock_info(opts, Path(info_path))
    tenant, client = opts.env("tenant_id"), opts.env("client_id")
    if not tenant or not client:
        raise ConfigError(
            "no Graph to talk to: give --profile, or --tenant-id and --client-id (or "
            "BULKPROV_TENANT_ID / BULKPROV_CLIENT_ID) with a credential, or --mock"
        )
    credential = _credential(opts)
    if credential is None:
        raise ConfigError(
            f"no client credential: set {opts.client_secret_env or SECRET_ENV}, or give "
            "--client-secret-file or --certificate-file (or use --profile)"
        )
    conn = ConnectionSettings(
        graph_url=opts.env("graph_url") or GRAPH_URL,
        api_version=opts.api_version or "v1.0",
        authority_host=opts.env("authority_host") or AUTHORITY_HOST,
        tenant_id=tenant,
        client_id=client,
        credential=credential,
        ca_file=Path(p) if (p := opts.env("ca_file")) else None,
        allow_http=opts.allow_http,
    )
    _check_files(conn)
    return Target(conn, _time_scale(opts, 1.0), conn.graph_url)


def _from_mock_info(opts: ConnectionOptions, info_path: Path) -> Target:
    """A running ``bulkprov mock-graph``, from the info file it wrote."""
    from .mockgraph.server import MockInfo

    try:
        info = MockInfo.from_json(info_path.read_bytes())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read mock info file {info_path}: {exc}") from None
    conn = ConnectionSettings(
        graph_url=info.graph_url,
        api_version=opts.api_version or "v1.0",
        authority_host=info.authority_host,
        tenant_id=opts.tenant_id or info.tenant_id,
        client_id=info.client_id,
        credential=Credential(client_secret=info.client_secret),
        ca_file=Path(info.ca_file),
        unreachable_hint=MOCK_HINT,
    )
    _check_files(conn, mock_info=info_path)
    return Target(conn, _time_scale(opts, info.time_scale), f"mock Graph at {info.graph_url}")


def _check_files(conn: ConnectionSettings, *, mock_info: Path | None = None) -> None:
    """Warn about the files that decide where the token and the client secret go when other
    users can write them: a mock info file (Graph's address, and the secret itself) and the CA
    file (whom TLS trusts)."""
    if mock_info is not None:
        profiles_mod.warn_if_others_can_write(
            mock_info,
            "mock info file",
            "they could point bulkprov at a Graph of their own and receive the client secret",
            stacklevel=3,
        )
    if conn.ca_file is not None:
        profiles_mod.warn_if_others_can_write(
            conn.ca_file,
            "CA file",
            "they could add a CA of their own and receive your token or secret",
            stacklevel=3,
        )


def _time_scale(opts: ConnectionOptions, default: float) -> float:
    """The client's time scale: ``--client-time-scale``, else BULKPROV_TIME_SCALE, else
    ``default``."""
    text = opts.env("time_scale")
    return float(text) if text else default


def from_profile(opts: ConnectionOptions, name: str) -> Target:
    """A profile's connection, with explicit flags overriding its values."""
    path = profiles_mod.profiles_path(opts.profiles)
    prof = profiles_mod.select(path, name)

    def pick(flag: str, value: str | None) -> str | None:
        explicit = opts.flag(flag)
        if explicit is not None:
            return explicit
        if value is not None:
            return value
        return os.environ.get(ENV[flag]) or None

    credential = _credential(opts, explicit_only=True) or prof.credential()
    tenant = pick("tenant_id", prof.tenant_id)
    client = pick("client_id", prof.client_id)
    if credential.managed_identity is not None and not client:
        mi = credential.managed_identity
        client = mi.id if mi.id_type == "client_id" and mi.id else "managed-identity"
    if not tenant:
        raise prof.error("tenant_id", "is required")
    if not client:
        raise prof.error("client_id", "is required")
    ca = pick("ca_file", str(prof.ca_file) if prof.ca_file else None)
    try:
        conn = ConnectionSettings(
            graph_url=pick("graph_url", prof.graph_url) or GRAPH_URL,
            api_version=opts.api_version or prof.api_version or "v1.0",
            authority_host=pick("authority_host", prof.authority_host) or AUTHORITY_HOST,
            tenant_id=tenant,
            client_id=client,
            credential=credential,
            ca_file=Path(ca) if ca else None,
            allow_http=bool(opts.allow_http or prof.allow_http),
            **({"scope": prof.scope} if prof.scope else {}),
        )
    except ConfigError as exc:
        raise prof.error(None, str(exc)) from None
    _check_files(conn)
    return Target(
        conn, _time_scale(opts, 1.0), f"{conn.graph_url} (profile {name}, {credential.kind})"
    )


def _credential(opts: ConnectionOptions, *, explicit_only: bool = False) -> Credential | None:
    """The credential the flags (and, unless ``explicit_only``, the variables) give, if any."""
    if explicit_only:
        cert, secret_file = opts.flag("certificate_file"), opts.flag("client_secret_file")
    else:
        cert, secret_file = opts.env("certificate_file"), opts.env("client_secret_file")
    if cert:
        try:
            return Credential(certificate_pem=Path(cert).read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read certificate file {cert}: {exc.strerror}") from None
    if secret_file:
        try:
            secret = Path(secret_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read client secret file {secret_file}: {exc.strerror}"
            ) from None
        if not secret:
            raise ConfigError(f"client secret file {secret_file} is empty")
        return Credential(client_secret=secret)
    var = opts.client_secret_env
    if explicit_only and var is None:
        return None
    from_env = os.environ.get(var or SECRET_ENV)
    if from_env:
        return Credential(client_secret=from_env)
    if explicit_only:
        raise ConfigError(f"--client-secret-env {var}: the variable is not set or empty")
    return None


@contextlib.asynccontextmanager
async def target(
    opts: ConnectionOptions, *, ledger: Path | None = None, create: bool = False
) -> AsyncIterator[Target]:
    """The Graph to use; with ``opts.mock``, an embedded mock that lives as long as the block
    (:func:`bulkprov.mockgraph.cli.embedded_mock`: the ``ledger`` of the command keeps its
    tenant, and ``create`` (``run``) makes a new one when there is neither yet)."""
    if opts.mock is None:
        yield from_flags(opts)
        return
    from .mockgraph.cli import embedded_mock

    async with embedded_mock(opts.mock, ledger=ledger, create=create) as mock:
        info = mock.info
        conn = _embedded_conn(opts, info, info.tenant_id)
        where = f", tenant kept in {mock.keep}" if mock.keep is not None else ""
        yield Target(
            conn,
            info.time_scale,
            f"embedded mock Graph (time scale {info.time_scale}{where})",
            mock.ledger_graph,
        )


def _embedded_conn(opts: ConnectionOptions, info: MockInfo, tenant_id: str) -> ConnectionSettings:
    """The connection to tenant ``tenant_id`` of the embedded mock that ``info`` describes."""
    return ConnectionSettings(
        graph_url=info.graph_url,
        api_version=opts.api_version or "v1.0",
        authority_host=info.authority_host,
        tenant_id=tenant_id,
        client_id=info.client_id,
        credential=Credential(client_secret=info.client_secret),
        ca_file=Path(info.ca_file),
    )


@contextlib.asynccontextmanager
async def tenant_targets(
    opts: ConnectionOptions,
    profiles: Sequence[str],
    *,
    ledger: Path | None = None,
    create: bool = False,
    every_profile: Sequence[str] | None = None,
) -> AsyncIterator[list[tuple[str, Target]]]:
    """Each of ``profiles`` (a run across many tenants) with the Graph it connects to: a
    profile of the profiles file, with explicit flags overriding its values as for
    ``--profile``; with ``opts.mock``, one tenant of an embedded mock each: the one the
    ``ledger`` records for it, else one no profile has (in name order; a new mock is made
    with a tenant for each of ``every_profile``, the manifest's, when ``profiles`` is a part
    of them)."""
    names = sorted(set(profiles))
    if opts.mock is None:
        if opts.tenant_id or opts.client_id or opts.mock_info:
            raise ConfigError(
                "the manifest's rows name profiles, each its own tenant: --tenant-id, "
                "--client-id and --mock-info name one; put the connections in the profiles "
                "file (`bulkprov mock-graph --profiles-file` writes one for its tenants)"
            )
        path = profiles_mod.profiles_path(opts.profiles)
        if not path.exists():
            raise ConfigError(
                f"the manifest's rows name {tenancy.describe(names)}, and there is no profiles "
                f"file at {path}: give --profiles FILE (or BULKPROV_PROFILES), or --mock to "
                "run them on the embedded mock"
            )
        yield [(name, from_profile(opts, name)) for name in names]
        return
    from dataclasses import replace

    from .mockgraph.cli import embedded_mock

    known = tenancy.recorded(ledger)
    every = sorted({*names, *(every_profile or ()), *known})  # the mock's tenants are for all
    settings = replace(opts.mock, tenants=max(opts.mock.tenants, len(every)))
    async with embedded_mock(settings, ledger=ledger, create=create) as mock:
        info = mock.info
        mapping = tenancy.assign(every, info.tenant_ids, known)
        if len(mapping) < len(every):
            raise ConfigError(
                f"the embedded mock kept {len(info.tenant_ids)} tenants in {mock.keep}, and "
                f"the manifest and the ledger name {len(every)} profiles: a demo's tenants are "
                "made by its first run; start a new demo (a new ledger) for more tenants"
            )
        out = []
        for name in names:
            tid = mapping[name]
            conn = _embedded_conn(opts, info, tid)
            label = f"embedded mock Graph tenant {tid} (profile {name})"
            out.append((name, Target(conn, info.time_scale, label, mock.ledger_graph)))
        yield out


def targets_label(targets: Sequence[tuple[str | None, Target]]) -> str:
    """What a command's first line says it connects to: one tenant's label, or the tenants'
    profiles (a profile of None: a ledger or manifest of one tenant) and their Graph."""
    if len(targets) == 1 and targets[0][0] is None:
        return targets[0][1].label
    graphs = sorted({t.conn.graph_url for _p, t in targets})
    where = graphs[0] if len(graphs) == 1 else f"{len(graphs)} Graphs"
    return f"{tenancy.describe([str(p) for p, _t in targets])} at {where}"


class AppShares:
    """The clients of a run across many tenants share Graph's per-app limits across tenants:
    one :class:`bulkprov.limiter.AppPaces` per app (a client id, at one Graph and one
    authority), handed to each client of that app's tenants."""

    def __init__(self, opts: ConnectionOptions) -> None:
        self.opts = opts
        self._by_app: dict[tuple[str, str, str], AppPaces] = {}

    def paces(self, tgt: Target) -> AppPaces:
        from .limiter import AppPaces

        c = tgt.conn
        key = (c.graph_url, c.authority_host, c.client_id)
        shared = self._by_app.get(key)
        if shared is None:
            shared = self._by_app[key] = AppPaces(client_settings(self.opts, tgt.time_scale))
        return shared


@contextlib.asynccontextmanager
async def tenant_clients(
    opts: ConnectionOptions, targets: Sequence[Target]
) -> AsyncIterator[list[GraphClient]]:
    """A client for each target (each tenant of a run across many), open for the block: one
    count of requests for all of them (``stats`` of each is the same object), and the
    per-app limits across tenants shared by the clients of each app (:class:`AppShares`)."""
    from .client import ClientStats, GraphClient

    stats = ClientStats()
    shares = AppShares(opts)
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for tgt in targets:
            settings = client_settings(opts, tgt.time_scale)
            client = await stack.enter_async_context(
                GraphClient(tgt.conn, settings, app_paces=shares.paces(tgt))
            )
            client.stats = stats
            clients.append(client)
        yield clients


def client_settings(opts: ConnectionOptions, time_scale: float) -> ClientSettings:
    from .settings import Quota

    kwargs: dict[str, Any] = {}
    if opts.write_quota:
        kwargs["write_quota"] = Quota.parse(opts.write_quota)
    if opts.ru_quota:
        kwargs["ru_quota"] = Quota.parse(opts.ru_quota)
    return ClientSettings(time_scale=time_scale, **kwargs)
