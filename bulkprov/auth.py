"""Access tokens from Microsoft's identity platform (or the mock's) through MSAL.

MSAL for Python is synchronous, so its calls run in a worker thread. The token is cached here
and refreshed before it expires, by one task at a time; a 401 invalidates it.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from msal.exceptions import MsalError

from .errors import AuthError
from .settings import ConnectionSettings

Sleep = Callable[[float], Awaitable[None]]


_KEY_BLOCK = re.compile(
    r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----", re.DOTALL
)


def _cert_credential(pem: bytes) -> dict[str, str]:
    """MSAL's certificate credential from one PEM file holding the private key and the cert."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise AuthError("the certificate file holds no PEM certificate") from exc
    key = _KEY_BLOCK.search(pem.decode(errors="replace"))
    if key is None:
        raise AuthError("the certificate file holds no PEM private key")
    return {
        "private_key": key.group(0),
        "thumbprint": cert.fingerprint(hashes.SHA1()).hex(),
        "public_certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
    }


class TokenProvider:
    """Gets, caches and refreshes the app's access token for Graph."""

    def __init__(
        self,
        conn: ConnectionSettings,
        *,
        sleep: Sleep = anyio.sleep,
        clock: Callable[[], float] = time.time,
        attempts: int = 8,
    ) -> None:
        self._conn = conn
        self._sleep = sleep
        self._clock = clock
        self._attempts = attempts
        self._app: msal.ConfidentialClientApplication | None = None
        self._token: str | None = None
        self._expires = 0.0
        self._refresh_at = 0.0
        self._lock = anyio.Lock()
        self._rng = random.Random()
        self.acquired = 0

    def _build(self) -> msal.ConfidentialClientApplication:
        conn = self._conn
        credential: Any
        if conn.credential.client_secret is not None:
            credential = conn.credential.client_secret
        else:
            assert conn.credential.certificate_pem is not None
            credential = _cert_credential(conn.credential.certificate_pem)
        kwargs: dict[str, Any] = {}
        if conn.ca_file is not None:
            # requests lets REQUESTS_CA_BUNDLE override `verify`: a session of our own that does
            # not trust the environment keeps the configured CA in force.
            session = requests.Session()
            session.verify = str(conn.ca_file)
            session.trust_env = False
            kwargs["http_client"] = session
        custom = not conn.authority_host.startswith("https://login.microsoftonline.")
        return msal.ConfidentialClientApplication(
            conn.client_id,
            client_credential=credential,
            authority=conn.authority,
            instance_discovery=not custom,
            validate_authority=not custom,
            token_cache=msal.TokenCache(),
            **kwargs,
        )

    def _acquire_blocking(self) -> dict[str, Any]:
        if self._app is None:
            self._app = self._build()
        cache = self._app.token_cache
        for at in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
            cache.remove_at(at)  # we decide when to refresh; MSAL must not hand back the old one
        result: dict[str, Any] = self._app.acquire_token_for_client(scopes=[self._conn.scope])
        return result

    async def token(self) -> str:
        """A valid access token, refreshed ahead of its expiry."""
        now = self._clock()
        if self._token is not None and now < self._refresh_at:
            return self._token
        async with self._lock:
            now = self._clock()
            if self._token is not None and now < self._refresh_at:
                return self._token
            await self._refresh()
            assert self._token is not None
            return self._token

    async def invalidate(self, token: str) -> None:
        """Graph refused ``token`` (401): the next :meth:`token` gets a new one."""
        if token == self._token:
            self._token = None
            self._refresh_at = 0.0

    async def _refresh(self) -> None:
        last = "no answer"
        for attempt in range(1, self._attempts + 1):
            try:
                result = await anyio.to_thread.run_sync(self._acquire_blocking)
            except (requests.RequestException, ValueError, OSError, MsalError) as exc:
                # MSAL raises MsalServiceError on a 5xx from the token endpoint (and answers the
                # same error from its cache for the Retry-After, 5 s by default): transient
                result = {"error": type(exc).__name__, "error_description": str(exc)}
            if "access_token" in result:
                lifetime = float(result.get("expires_in", 3599))
                now = self._clock()
                self._token = str(result["access_token"])
                self._expires = now + lifetime
                # refresh when 80% of the lifetime has passed (at most 5 minutes early)
                self._refresh_at = now + max(lifetime - min(300.0, lifetime * 0.2), 0.5)
                self.acquired += 1
                return
            error = str(result.get("error", "unknown_error"))
            last = f"{error}: {str(result.get('error_description', '')).splitlines()[0][:300]}"
            if error in (
                "invalid_client",
                "unauthorized_client",
                "invalid_scope",
                "invalid_request",
                "invalid_tenant",
            ):
                break  # a configuration problem: retrying will not help
            await self._sleep(min(30.0, 0.5 * 2 ** (attempt - 1)) * self._rng.uniform(0.5, 1))
        raise AuthError(
            f"no token for client {self._conn.client_id} from {self._conn.authority}: {last}"
        )
