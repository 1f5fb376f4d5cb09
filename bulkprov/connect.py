"""Where a command's Graph comes from: a connection profile, flags and BULKPROV_* variables, a
mock's info file, or the embedded mock (``--mock``).

Precedence, per setting: an explicit flag, then the chosen profile (``--profile`` or
``BULKPROV_PROFILE``), then the BULKPROV_* variable, then the default. A credential flag
(``--client-secret-env``, ``--client-secret-file``, ``--certificate-file``) replaces the
profile's credential as a whole."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from . import profiles as profiles_mod
from .errors import ConfigError
from .settings import AUTHORITY_HOST, GRAPH_URL, ClientSettings, ConnectionSettings, Credential

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


def add_connection_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "connection (each flag also reads the BULKPROV_* variable named in its help)"
    )
    g.add_argument(
        "--mock",
        action="store_true",
        help="run against the embedded mock Graph (no tenant or credentials needed); its "
        "tenant is kept beside the ledger (runs/x.jsonl -> runs/x.mock/), where the next "
        "--mock command with that ledger (run, plan, monitor, cleanup) finds it",
    )
    g.add_argument(
        "--profile",
        default=None,
        metavar="NAME",
        help="connection profile from the profiles file [BULKPROV_PROFILE]; flags given "
        "as well override its values",
    )
    g.add_argument(
        "--profiles",
        type=Path,
        default=None,
        metavar="FILE",
        help="profiles file (TOML) [BULKPROV_PROFILES] (default "
        "$XDG_CONFIG_HOME/bulkprov/profiles.toml, i.e. ~/.config/bulkprov/profiles.toml)",
    )
    g.add_argument(
        "--mock-info",
        type=Path,
        default=None,
        help="connect to a running `bulkprov mock-graph` through its --info-file "
        "[BULKPROV_MOCK_INFO]",
    )
    g.add_argument(
        "--graph-url",
        default=None,
        help=f"Graph base URL without version [BULKPROV_GRAPH_URL] (default {GRAPH_URL};"
        " e.g. https://graph.microsoft.us, https://microsoftgraph.chinacloudapi.cn)",
    )
    g.add_argument(
        "--api-version",
        choices=("v1.0", "beta"),
        default=None,
        help="Graph API version of the provisioning calls (default v1.0; on-premises agent "
        "group assignment always uses beta)",
    )
    g.add_argument(
        "--authority-host",
        default=None,
        help=f"identity platform [BULKPROV_AUTHORITY_HOST] (default {AUTHORITY_HOST})",
    )
    g.add_argument("--tenant-id", default=None, help="tenant id [BULKPROV_TENANT_ID]")
    g.add_argument(
        "--client-id", default=None, help="app registration (client) id [BULKPROV_CLIENT_ID]"
    )
    g.add_argument(
        "--client-secret-env",
        default=None,
        metavar="VAR",
        help=f"environment variable holding the client secret (default {SECRET_ENV}); "
        "secrets are never taken from the command line",
    )
    g.add_argument(
        "--client-secret-file",
        type=Path,
        default=None,
        help="file holding the client secret [BULKPROV_CLIENT_SECRET_FILE]",
    )
    g.add_argument(
        "--certificate-file",
        type=Path,
        default=None,
        help="PEM file with the private key and certificate of the app [BULKPROV_CERTIFICATE_FILE]",
    )
    g.add_argument(
        "--ca-file",
        type=Path,
        default=None,
        help="CA bundle to trust for Graph and the authority [BULKPROV_CA_FILE]",
    )
    g.add_argument(
        "--allow-http",
        action="store_true",
        help="allow a non-TLS Graph or authority that is not on loopback",
    )
    g.add_argument(
        "--client-time-scale",
        dest="client_time_scale",
        type=float,
        default=None,
        help=argparse.SUPPRESS,
    )


def _opt(args: argparse.Namespace, name: str) -> str | None:
    value = getattr(args, name, None)
    if value is not None:
        return str(value)
    return os.environ.get(ENV[name]) or None


#: The Graph a ledger of the embedded mock's kept tenant records (its URL has a random port).
MOCK_GRAPH = "mock:embedded"


@dataclass(frozen=True, slots=True)
class Target:
    conn: ConnectionSettings
    time_scale: float
    label: str
    identity: str | None = None  # what the ledger records as its Graph (default: base URL)

    @property
    def ledger_graph(self) -> str:
        """The Graph a ledger records and checks: the base URL, or :data:`MOCK_GRAPH`."""
        return self.identity or self.conn.base_url


def from_flags(args: argparse.Namespace) -> Target:
    profile_name = getattr(args, "profile", None) or os.environ.get(profiles_mod.ENV_NAME)
    if profile_name:
        if getattr(args, "mock_info", None):
            raise ConfigError("give --profile or --mock-info, not both")
        return from_profile(args, profile_name)
    info_path = _opt(args, "mock_info")
    scale_text = _scale_text(args)
    if info_path:
        from .mockgraph.server import MockInfo

        try:
            info = MockInfo.from_json(Path(info_path).read_bytes())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"cannot read mock info file {info_path}: {exc}") from None
        conn = ConnectionSettings(
            graph_url=info.graph_url,
            api_version=args.api_version or "v1.0",
            authority_host=info.authority_host,
            tenant_id=args.tenant_id or info.tenant_id,
            client_id=info.client_id,
            credential=Credential(client_secret=info.client_secret),
            ca_file=Path(info.ca_file),
            unreachable_hint=MOCK_HINT,
        )
        _check_files(conn, mock_info=Path(info_path))
        scale = float(scale_text) if scale_text else info.time_scale
        return Target(conn, scale, f"mock Graph at {info.graph_url}")
    tenant, client = _opt(args, "tenant_id"), _opt(args, "client_id")
    if not tenant or not client:
        raise ConfigError(
            "no Graph to talk to: give --profile, or --tenant-id and --client-id (or "
            "BULKPROV_TENANT_ID / BULKPROV_CLIENT_ID) with a credential, or --mock"
        )
    credential = _credential(args)
    if credential is None:
        raise ConfigError(
            f"no client credential: set {args.client_secret_env or SECRET_ENV}, or give "
            "--client-secret-file or --certificate-file (or use --profile)"
        )
    conn = ConnectionSettings(
        graph_url=_opt(args, "graph_url") or GRAPH_URL,
        api_version=args.api_version or "v1.0",
        authority_host=_opt(args, "authority_host") or AUTHORITY_HOST,
        tenant_id=tenant,
        client_id=client,
        credential=credential,
        ca_file=Path(p) if (p := _opt(args, "ca_file")) else None,
        allow_http=args.allow_http,
    )
    _check_files(conn)
    return Target(conn, float(scale_text) if scale_text else 1.0, conn.graph_url)


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


def _scale_text(args: argparse.Namespace) -> str | None:
    if getattr(args, "client_time_scale", None) is not None:
        return str(args.client_time_scale)
    return _opt(args, "time_scale")


def from_profile(args: argparse.Namespace, name: str) -> Target:
    """A profile's connection, with explicit flags overriding its values."""
    path = profiles_mod.profiles_path(getattr(args, "profiles", None))
    prof = profiles_mod.select(path, name)

    def pick(flag: str, value: str | None, env: bool = True) -> str | None:
        explicit = getattr(args, flag, None)
        if explicit is not None:
            return str(explicit)
        if value is not None:
            return value
        return (os.environ.get(ENV[flag]) or None) if env else None

    credential = _credential(args, explicit_only=True) or prof.credential()
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
    scale_text = _scale_text(args)
    try:
        conn = ConnectionSettings(
            graph_url=pick("graph_url", prof.graph_url) or GRAPH_URL,
            api_version=args.api_version or prof.api_version or "v1.0",
            authority_host=pick("authority_host", prof.authority_host) or AUTHORITY_HOST,
            tenant_id=tenant,
            client_id=client,
            credential=credential,
            ca_file=Path(ca) if ca else None,
            allow_http=bool(args.allow_http or prof.allow_http),
            **({"scope": prof.scope} if prof.scope else {}),
        )
    except ConfigError as exc:
        raise prof.error(None, str(exc)) from None
    _check_files(conn)
    return Target(
        conn,
        float(scale_text) if scale_text else 1.0,
        f"{conn.graph_url} (profile {name}, {credential.kind})",
    )


def _credential(args: argparse.Namespace, *, explicit_only: bool = False) -> Credential | None:
    """The credential the flags (and, unless ``explicit_only``, the variables) give, if any."""
    if explicit_only:
        cert = getattr(args, "certificate_file", None)
        secret_file = getattr(args, "client_secret_file", None)
    else:
        cert = _opt(args, "certificate_file")
        secret_file = _opt(args, "client_secret_file")
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
    var = getattr(args, "client_secret_env", None)
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
    args: argparse.Namespace, *, ledger: Path | None = None, create: bool = False
) -> AsyncIterator[Target]:
    """The Graph to use; with ``--mock``, an embedded mock that lives as long as the block.

    Given the ``ledger`` of the command, the embedded mock serves the tenant kept beside it
    (``runs/x.jsonl`` -> ``runs/x.mock/``, see :mod:`.mockgraph.persist`) and saves it there;
    ``create`` (``run``) makes a new one when neither the ledger nor the tenant exists yet."""
    if not getattr(args, "mock", False):
        yield from_flags(args)
        return
    from .cli import mock_settings_from_args
    from .mockgraph import persist
    from .mockgraph.server import MockGraph

    settings = mock_settings_from_args(args, default_time_scale=0.02)
    keep = None
    if ledger is not None:
        keep = persist.beside(ledger)
        if not persist.exists(keep):
            _no_kept_tenant(ledger, keep, create=create)
    try:
        mock = MockGraph(settings, keep=keep, create=create)
    except persist.KeepError as exc:
        raise ConfigError(str(exc)) from None
    try:
        async with mock:
            info = mock.info
            assert info is not None
            conn = ConnectionSettings(
                graph_url=info.graph_url,
                api_version=args.api_version or "v1.0",
                authority_host=info.authority_host,
                tenant_id=info.tenant_id,
                client_id=info.client_id,
                credential=Credential(client_secret=info.client_secret),
                ca_file=Path(info.ca_file),
            )
            where = f", tenant kept in {keep}" if keep is not None else ""
            yield Target(
                conn,
                info.time_scale,
                f"embedded mock Graph (time scale {info.time_scale}{where})",
                MOCK_GRAPH if keep is not None else None,
            )
    except persist.KeepError as exc:  # the last save failed (a full disk)
        raise ConfigError(str(exc)) from None


def _no_kept_tenant(ledger: Path, keep: Path, *, create: bool) -> None:
    """Refuse a ``--mock`` ledger whose kept tenant is missing (nothing it records can be
    reached), unless ``create`` and there is no ledger yet either."""
    written = _ledger_graph(ledger)
    if written is not None and written != MOCK_GRAPH:
        raise ConfigError(
            f"{ledger} records a run against {written}, not a tenant the embedded mock "
            "kept: connect to that Graph without --mock (a ledger of a --mock run from "
            "before tenants were kept has none: start a new demo)"
        )
    if written is not None or not create:
        raise ConfigError(
            f"the mock tenant of {ledger} is gone: {keep} is missing (deleted?), and "
            "with it everything the ledger records; start a new demo with `bulkprov run "
            "MANIFEST --mock` (a new ledger)"
        )


def _ledger_graph(ledger: Path) -> str | None:
    """The Graph a ledger's header records, or None when there is no ledger (yet)."""
    try:
        with ledger.open("rb") as fh:
            first = fh.readline()
    except OSError:
        return None
    try:
        header = orjson.loads(first)
    except orjson.JSONDecodeError:
        return None  # torn or not a ledger: the ledger itself will say so
    graph = header.get("graph") if isinstance(header, dict) else None
    return str(graph) if graph is not None else None


def client_settings(args: argparse.Namespace, time_scale: float) -> ClientSettings:
    from .settings import Quota

    kwargs: dict[str, Any] = {}
    if getattr(args, "write_quota", None):
        kwargs["write_quota"] = Quota.parse(args.write_quota)
    if getattr(args, "ru_quota", None):
        kwargs["ru_quota"] = Quota.parse(args.ru_quota)
    return ClientSettings(time_scale=time_scale, **kwargs)
