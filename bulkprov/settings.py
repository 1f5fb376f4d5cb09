"""bulkprov's settings: frozen, keyword-only value objects, validated on creation."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError
from .retry import RetryPolicy

GRAPH_URL = "https://graph.microsoft.com"
AUTHORITY_HOST = "https://login.microsoftonline.com"


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class Quota:
    """``limit`` units per ``window`` Graph seconds."""

    limit: int
    window: float

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window <= 0:
            raise ConfigError(f"a quota needs a positive limit and window, got {self}")

    @classmethod
    def parse(cls, text: str) -> Quota:
        """``"3000/150"`` -> 3,000 per 150 s."""
        try:
            limit, window = text.split("/")
            return cls(limit=int(limit), window=float(window))
        except ValueError as exc:
            raise ConfigError(f"a quota is LIMIT/SECONDS, e.g. 3000/150; got {text!r}") from exc

    def __str__(self) -> str:
        return f"{self.limit}/{self.window:g}s"


#: Credential kinds. All but ``device_code`` are app-only (application permissions);
#: ``device_code`` signs a user in and acts with delegated permissions.
CREDENTIAL_KINDS = ("secret", "certificate", "device_code", "managed_identity")
#: How a user-assigned managed identity is named (system-assigned: none of them).
MANAGED_IDENTITY_IDS = ("client_id", "resource_id", "object_id")


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagedIdentity:
    """An Azure managed identity: system-assigned, or user-assigned by one of its ids."""

    id_type: str | None = None  # None: system-assigned; else one of MANAGED_IDENTITY_IDS
    id: str | None = None

    def __post_init__(self) -> None:
        if (self.id_type is None) != (self.id is None):
            raise ConfigError("a user-assigned managed identity needs an id type and an id")
        if self.id_type is not None and self.id_type not in MANAGED_IDENTITY_IDS:
            raise ConfigError(
                f"managed identity id type must be one of {', '.join(MANAGED_IDENTITY_IDS)}"
            )

    @property
    def system_assigned(self) -> bool:
        return self.id_type is None


@dataclass(frozen=True, slots=True, kw_only=True)
class Credential:
    """How bulkprov proves itself: a client secret or a certificate (PEM key + cert) of an app
    registration, a managed identity (all three app-only), or a user signing in with a device
    code (delegated)."""

    client_secret: str | None = field(default=None, repr=False)
    certificate_pem: bytes | None = field(default=None, repr=False)
    device_code: bool = False
    managed_identity: ManagedIdentity | None = None

    def __post_init__(self) -> None:
        given = (
            (self.client_secret is not None)
            + (self.certificate_pem is not None)
            + self.device_code
            + (self.managed_identity is not None)
        )
        if given != 1:
            raise ConfigError(
                "give exactly one credential: a client secret, a certificate, device code "
                "sign-in or a managed identity"
            )

    @property
    def kind(self) -> str:
        if self.client_secret is not None:
            return "secret"
        if self.certificate_pem is not None:
            return "certificate"
        return "device_code" if self.device_code else "managed_identity"

    @property
    def delegated(self) -> bool:
        """True when tokens act for a signed-in user (delegated permissions)."""
        return self.device_code

    def __repr__(self) -> str:
        return f"Credential(kind={self.kind!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionSettings:
    """Where Graph is and how to get a token for it."""

    graph_url: str = GRAPH_URL
    api_version: str = "v1.0"
    authority_host: str = AUTHORITY_HOST
    tenant_id: str
    client_id: str
    credential: Credential
    ca_file: Path | None = None
    allow_http: bool = False
    scope: str = "https://graph.microsoft.com/.default"
    # added to the error when Graph or the authority cannot be reached at all (e.g. a mock
    # that may have stopped)
    unreachable_hint: str | None = None

    def __post_init__(self) -> None:
        for name in ("graph_url", "authority_host"):
            url = getattr(self, name)
            parts = urlsplit(url)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise ConfigError(f"{name} must be an absolute URL, got {url!r}")
            if parts.scheme == "http" and not (self.allow_http or is_loopback(url)):
                raise ConfigError(
                    f"{name} {url!r} is not TLS: bulkprov sends tokens and secrets only over "
                    "https (plain http is allowed for loopback, or with --allow-http)"
                )
        if self.api_version not in ("v1.0", "beta"):
            raise ConfigError(f"api_version must be v1.0 or beta, got {self.api_version!r}")
        if not self.tenant_id or not self.client_id:
            raise ConfigError("tenant id and client id are required")
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ConfigError(f"CA file {self.ca_file} does not exist")

    @property
    def base_url(self) -> str:
        return f"{self.graph_url.rstrip('/')}/{self.api_version}"

    @property
    def authority(self) -> str:
        return f"{self.authority_host.rstrip('/')}/{self.tenant_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientSettings:
    """How the Graph client paces and retries (durations in Graph seconds)."""

    time_scale: float = 1.0  # real seconds per Graph second (only a mock compresses time)
    write_quota: Quota = field(default_factory=lambda: Quota(limit=3000, window=150))
    ru_quota: Quota = field(default_factory=lambda: Quota(limit=3500, window=10))
    reports_quota: Quota = field(default_factory=lambda: Quota(limit=5, window=10))
    # the app's limits across all the tenants it serves (Graph's "Application/..." scopes):
    # paced together by the clients that share one bulkprov.limiter.AppPaces
    app_write_quota: Quota = field(default_factory=lambda: Quota(limit=35000, window=300))
    app_ru_quota: Quota = field(default_factory=lambda: Quota(limit=150000, window=20))
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    request_timeout: float = 100.0  # Graph's own gateway gives up after about 100 s
    connections: int = 200
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.time_scale <= 0:
            raise ConfigError("time_scale must be positive")
        if self.request_timeout <= 0 or self.connections < 1:
            raise ConfigError("request_timeout and connections must be positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSettings:
    """How a run drives instances (durations in Graph seconds)."""

    concurrency: int = 1000  # instances in flight: most wait on quotas or replication
    monitor_concurrency: int = 2000  # started jobs watched at once
    step_deadline: float = 3600.0  # a hang guard: includes time queued on the quotas
    replication_deadline: float = 300.0  # how long a new object may stay unreadable
    confirm_reads: int = 2  # consecutive reads before a new service principal is trusted
    poll_interval: float = 3.0  # while waiting for replication
    monitor_interval: float = 10.0  # job status polls
    monitor_deadline: float = 900.0  # from start to steady state
    monitor: bool = True
    collect_logs: bool = True
    on_existing: str = "adopt"  # an app of that name and template already exists: adopt | fail
    instantiate_attempts: int = 3
    fsync: bool = False

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.monitor_concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        if self.on_existing not in ("adopt", "fail"):
            raise ConfigError("on_existing must be 'adopt' or 'fail'")
        if self.confirm_reads < 1:
            raise ConfigError("confirm_reads must be at least 1")
