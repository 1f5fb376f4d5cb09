"""Access tokens from Microsoft's identity platform (or the mock's) through MSAL.

MSAL for Python is synchronous, so its calls run in a worker thread. The token is cached here
and refreshed before it expires, by one task at a time; a 401 invalidates it.

MSAL's HTTP goes through a session of our own: it follows no redirect (a redirected token
request would carry the client secret to the ``Location`` host) and gives up on a connection
after :data:`~bulkprov.reach.CONNECT_TIMEOUT`. A token endpoint that is down is tried for about
a minute; one that cannot be connected to at all before the first token (refused, no such
host, a TLS certificate not trusted) fails at once, after one quick retry.

By credential kind: a client secret or certificate uses a ``ConfidentialClientApplication``
(client credentials grant); a managed identity a ``ManagedIdentityClient``; device code a
``PublicClientApplication``: the first token needs a user to enter the code shown on stderr,
later ones are refreshed silently with MSAL's refresh token.
"""

from __future__ import annotations

import random
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import anyio
import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from msal.exceptions import MsalError

from .errors import AuthError, AuthorityUnreachable, Redirected, origin
from .reach import CONNECT_TIMEOUT, explain
from .redact import Redactor, shorten
from .retry import jittered
from .settings import ConnectionSettings

Sleep = Callable[[float], Awaitable[None]]
Prompt = Callable[[str], None]
#: Token-endpoint errors that retrying cannot fix.
FATAL_ERRORS = frozenset(
    {
        "invalid_client",
        "unauthorized_client",
        "invalid_scope",
        "invalid_request",
        "invalid_tenant",
        "invalid_grant",
        "authorization_declined",
        "expired_token",
        "bad_verification_code",
        "device_flow_failed",
    }
)


#: Real seconds to connect to the token endpoint, and to wait for its answer.
TOKEN_TIMEOUT = (CONNECT_TIMEOUT, 30.0)
#: Tries before the first token, when the token endpoint cannot be connected to at all.
FRESH_ATTEMPTS = 2


class NoRedirectSession(requests.Session):
    """MSAL's HTTP client: no redirect is followed (the request would go, client secret and
    all, to the ``Location`` host: :class:`Redirected` instead), and every request has
    :data:`TOKEN_TIMEOUT` (MSAL sets no timeout on a client it is given)."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        kwargs["allow_redirects"] = False
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = TOKEN_TIMEOUT
        resp = super().send(request, **kwargs)
        if 300 <= resp.status_code < 400 and resp.status_code != 304:
            url = str(request.url)
            resp.close()
            raise Redirected(
                f"{request.method} {origin(url)}{urlsplit(url).path}",
                resp.status_code,
                url,
                resp.headers.get("Location"),
            )
        return resp


def _stderr_prompt(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
    """Gets, caches and refreshes the access token for Graph."""

    def __init__(
        self,
        conn: ConnectionSettings,
        *,
        sleep: Sleep = anyio.sleep,
        clock: Callable[[], float] = time.time,
        attempts: int = 9,  # about a minute of tries: 0.5 s doubling to 30 s between them
        prompt: Prompt = _stderr_prompt,
    ) -> None:
        self._conn = conn
        self._sleep = sleep
        self._clock = clock
        self._attempts = attempts
        self._prompt = prompt
        self._app: Any = None
        self._token: str | None = None
        self._expires = 0.0
        self._refresh_at = 0.0
        self._lock = anyio.Lock()
        self._rng = random.Random()
        self._abandon = threading.Event()  # set when a waiting device flow is cancelled
        self.acquired = 0

    @property
    def delegated(self) -> bool:
        """Tokens act for a signed-in user (device code): delegated permissions."""
        return self._conn.credential.delegated

    def _own_secret(self) -> Redactor:
        """A redactor that masks this connection's client secret (in an error description)."""
        redactor = Redactor()
        if self._conn.credential.client_secret is not None:
            redactor.add(self._conn.credential.client_secret)
        return redactor

    def _http_client(self) -> requests.Session:
        session = NoRedirectSession()
        if self._conn.ca_file is not None:
            # requests lets REQUESTS_CA_BUNDLE override `verify`: a session that does not
            # trust the environment keeps the configured CA in force.
            session.verify = str(self._conn.ca_file)
            session.trust_env = False
        return session

    def _build(self) -> Any:
        """The MSAL application for the credential kind."""
        conn = self._conn
        cred = conn.credential
        kwargs: dict[str, Any] = {"http_client": self._http_client()}
        if cred.managed_identity is not None:
            mi = cred.managed_identity
            identity: Any
            if mi.id_type is None:
                identity = msal.SystemAssignedManagedIdentity()
            else:
                identity = msal.UserAssignedManagedIdentity(**{mi.id_type: mi.id})
            return msal.ManagedIdentityClient(
                identity,
                http_client=kwargs["http_client"],
                token_cache=msal.TokenCache(),
            )
        custom = not conn.authority_host.startswith("https://login.microsoftonline.")
        common: dict[str, Any] = {
            "authority": conn.authority,
            "instance_discovery": not custom,
            "validate_authority": not custom,
            "token_cache": msal.TokenCache(),
            **kwargs,
        }
        if cred.device_code:
            return msal.PublicClientApplication(conn.client_id, **common)
        credential: Any
        if cred.client_secret is not None:
            credential = cred.client_secret
        else:
            assert cred.certificate_pem is not None
            credential = _cert_credential(cred.certificate_pem)
        return msal.ConfidentialClientApplication(
            conn.client_id, client_credential=credential, **common
        )

    def _acquire_blocking(self) -> dict[str, Any]:
        if self._app is None:
            self._app = self._build()
        app = self._app
        if isinstance(app, msal.ManagedIdentityClient):
            # managed identities take a resource, not a scope
            resource = self._conn.scope.removesuffix("/.default")
            result: dict[str, Any] = app.acquire_token_for_client(resource=resource)
            return result
        cache = app.token_cache
        for at in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
            cache.remove_at(at)  # we decide when to refresh; MSAL must not hand back the old one
        scopes = [self._conn.scope]
        if isinstance(app, msal.PublicClientApplication):
            accounts = app.get_accounts()
            if accounts:
                silent = app.acquire_token_silent_with_error(scopes, account=accounts[0])
                if silent and "access_token" in silent:
                    return dict(silent)
            return self._device_flow(app, scopes)
        result = app.acquire_token_for_client(scopes=scopes)
        return result

    def _device_flow(self, app: Any, scopes: list[str]) -> dict[str, Any]:
        flow = app.initiate_device_flow(scopes=scopes)
        if "user_code" not in flow:
            return {
                "error": str(flow.get("error", "device_flow_failed")),
                "error_description": str(flow.get("error_description", "no user code")),
            }
        self._prompt(str(flow.get("message") or flow["user_code"]))
        result: dict[str, Any] = app.acquire_token_by_device_flow(
            flow,
            exit_condition=lambda f: self._abandon.is_set() or f.get("expires_at", 0) < time.time(),
        )
        if result.get("error") in ("authorization_pending", "slow_down"):
            return {
                "error": "expired_token",
                "error_description": "no sign-in before the code "
                "expired (or the wait was cancelled)",
            }
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

    def _unreachable(self, exc: requests.RequestException, attempt: int) -> str:
        """Why the token endpoint gave no answer; before the first token, a host that cannot
        be connected to at all is not tried for a minute: :class:`AuthorityUnreachable`."""
        url = getattr(exc.request, "url", None) or self._conn.authority
        host, failure = origin(str(url)), explain(exc)
        if failure.connecting and self.acquired == 0 and attempt >= FRESH_ATTEMPTS:
            raise AuthorityUnreachable(
                host,
                failure.reason,
                context=f"client {self._conn.client_id}, tenant {self._conn.tenant_id}",
                hint=self._conn.unreachable_hint,
            ) from None
        return f"cannot reach {host}: {failure.reason}"

    async def _refresh(self) -> None:
        last = "no answer"
        attempt = 0
        for attempt in range(1, self._attempts + 1):
            unreachable: str | None = None
            try:
                self._abandon.clear()
                result = await anyio.to_thread.run_sync(
                    self._acquire_blocking, abandon_on_cancel=True
                )
            except anyio.get_cancelled_exc_class():
                self._abandon.set()  # a device flow waiting for its user stops polling
                raise
            except Redirected as exc:
                raise AuthError(
                    f"no token for client {self._conn.client_id} from {self._conn.authority}: {exc}"
                ) from None
            except requests.RequestException as exc:
                unreachable = self._unreachable(exc, attempt)
                result = {"error": "unreachable"}
            except (ValueError, OSError, MsalError) as exc:
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
            description = str(result.get("error_description") or "").splitlines() or [""]
            last = unreachable or f"{error}: {shorten(description[0], 300, self._own_secret())}"
            if error in FATAL_ERRORS:
                break  # a configuration problem, or the user did not sign in: do not retry
            if attempt < self._attempts:
                await self._sleep(jittered(attempt, 0.5, 30.0, self._rng))
        tries = f" after {attempt} attempts" if attempt > 1 else ""
        raise AuthError(
            f"no token for client {self._conn.client_id} from {self._conn.authority}{tries}: {last}"
        )
