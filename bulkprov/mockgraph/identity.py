"""The mock's identity platform: TLS material, app registrations, and OAuth2 v2.0 tokens.

MSAL's ``ConfidentialClientApplication`` accepts the mock as an authority: it reads the OIDC
discovery document, then posts a client-credentials grant with a client secret or a client
assertion (a JWT signed with the app's certificate, ``x5t`` or ``x5t#S256`` in its header). The
mock answers with an RS256 access token whose ``tid``/``appid`` claims the Graph side reads:
app-only, with ``roles``.

MSAL's ``PublicClientApplication`` device flow works too: ``/{tenant}/oauth2/v2.0/devicecode``
hands out a device code and a user code; the token endpoint answers the device-code grant
``authorization_pending`` until the mock's user approves (automatically after
``auto_approve_polls`` polls, or through ``/_mock/control``), then a delegated access token
(``scp``, ``idtyp: user``) with an ID token, client info and a refresh token that the
refresh-token grant accepts.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

GRAPH_AUDIENCE = "https://graph.microsoft.com"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: What the mock's signed-in administrator has consented to (delegated permissions).
DELEGATED_SCOPES = (
    "Application.ReadWrite.All",
    "Directory.ReadWrite.All",
    "Synchronization.ReadWrite.All",
    "AuditLog.Read.All",
    "OnPremisesPublishingProfiles.ReadWrite.All",
)
APP_ROLES = (
    "Application.ReadWrite.OwnedBy",
    "Directory.ReadWrite.All",
    "Synchronization.ReadWrite.All",
    "AuditLog.Read.All",
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A private CA and a server certificate for loopback, as PEM files."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def make_tls(
    directory: Path,
    hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1"),
    *,
    reuse: bool = False,
) -> TlsFiles:
    """Create a CA and a server certificate for ``hosts`` under ``directory``; with ``reuse``,
    keep the ones already there while the certificate has more than a day to run."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    if reuse and _still_good(files, hosts, now):
        return files
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bulkprov mock Graph CA")])
    ca_cert = _ca_certificate(ca_key, ca_name, now)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _server_certificate(key, ca_key, ca_name, hosts, now)
    files.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.key_file.chmod(0o600)
    return files


def _still_good(files: TlsFiles, hosts: tuple[str, ...], now: dt.datetime) -> bool:
    """Whether the certificate kept in ``files`` names every host and runs for another day."""
    if not all(f.is_file() for f in (files.ca_file, files.cert_file, files.key_file)):
        return False
    try:
        kept = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
        ext = kept.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        named = {str(n.value) for n in ext.value}
    except (ValueError, x509.ExtensionNotFound):
        return False
    return kept.not_valid_after_utc > now + dt.timedelta(days=1) and named >= set(hosts)


def _ca_certificate(
    ca_key: ec.EllipticCurvePrivateKey, ca_name: x509.Name, now: dt.datetime
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )


def _server_certificate(
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    hosts: tuple[str, ...],
    now: dt.datetime,
) -> x509.Certificate:
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )


def make_client_certificate(common_name: str) -> tuple[bytes, bytes, str]:
    """A self-signed RSA certificate for certificate credentials: (key PEM, cert PEM, SHA-1)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    thumbprint = cert.fingerprint(hashes.SHA1()).hex().upper()
    return key_pem, cert_pem, thumbprint


# --------------------------------------------------------------------------- registrations


@dataclass(slots=True)
class ClientRegistration:
    """An app registration allowed to call the mock Graph with application permissions."""

    client_id: str
    tenant_id: str
    display_name: str
    secret_hashes: list[bytes] = field(default_factory=list)
    certificates: dict[bytes, x509.Certificate] = field(default_factory=dict)  # x5t bytes -> cert
    certificates_s256: dict[bytes, x509.Certificate] = field(default_factory=dict)

    def add_secret(self, secret: str) -> None:
        self.secret_hashes.append(hashlib.sha256(secret.encode()).digest())

    def check_secret(self, secret: str) -> bool:
        digest = hashlib.sha256(secret.encode()).digest()
        return any(hmac.compare_digest(digest, h) for h in self.secret_hashes)

    def add_certificate(self, cert_pem: bytes) -> str:
        cert = x509.load_pem_x509_certificate(cert_pem)
        self.certificates[cert.fingerprint(hashes.SHA1())] = cert
        self.certificates_s256[cert.fingerprint(hashes.SHA256())] = cert
        return cert.fingerprint(hashes.SHA1()).hex().upper()


class OAuthError(Exception):
    """An error of the token endpoint, in the shape Microsoft's identity platform sends."""

    def __init__(self, status: int, error: str, aadsts: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.description = description

    def body(self, trace_id: str, correlation_id: str) -> dict[str, Any]:
        return {
            "error": self.error,
            "error_description": f"{self.aadsts}: {self.description} "
            f"Trace ID: {trace_id} Correlation ID: {correlation_id} "
            f"Timestamp: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%SZ}",
            "error_codes": [int(self.aadsts.removeprefix("AADSTS"))],
            "timestamp": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%SZ}",
            "trace_id": trace_id,
            "correlation_id": correlation_id,
        }


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What the Graph side learns from a valid bearer token."""

    tenant_id: str
    app_id: str
    expires: float  # time.time()
    scopes: tuple[str, ...] = ()  # delegated permissions (scp); empty for app-only tokens
    user_id: str | None = None  # the signed-in user's object id (oid) of a delegated token

    @property
    def delegated(self) -> bool:
        return self.user_id is not None


@dataclass(frozen=True, slots=True)
class MockUser:
    """The administrator who signs in to a mock tenant with a device code."""

    tenant_id: str
    object_id: str
    user_principal_name: str
    display_name: str

    @classmethod
    def for_tenant(cls, tenant_id: str, n: int) -> MockUser:
        return cls(
            tenant_id=tenant_id,
            object_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/admin")),
            user_principal_name=f"admin@tenant{n}.bulkprov.mock",
            display_name=f"Mock Administrator (tenant {n})",
        )


@dataclass(slots=True)
class DeviceCode:
    """One device authorization: pending until the user approves (or it expires)."""

    device_code: str
    user_code: str
    tenant_id: str
    client_id: str
    scope: str
    expires: float  # time.time()
    polls: int = 0
    approved: bool = False
    declined: bool = False


class TokenService:
    """Issues and verifies the mock's access tokens (RS256 JWTs)."""

    def __init__(self, *, token_lifetime: float) -> None:
        self.token_lifetime = token_lifetime
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = b64url(secrets.token_bytes(12))
        self._registrations: dict[tuple[str, str], ClientRegistration] = {}
        self._verified: dict[str, TokenClaims] = {}
        self.issued = 0
        self.users: dict[str, MockUser] = {}  # tenant id -> its administrator
        self.device_codes: dict[str, DeviceCode] = {}  # device code -> authorization
        self._refresh_tokens: dict[str, tuple[str, str, str]] = {}  # -> tenant, client, scope
        self.auto_approve_polls: int | None = 2  # None: only /_mock/control approves
        self.device_code_lifetime = 900.0

    # registrations
    def register(self, reg: ClientRegistration) -> None:
        self._registrations[(reg.tenant_id, reg.client_id)] = reg

    def registration(self, tenant_id: str, client_id: str) -> ClientRegistration | None:
        return self._registrations.get((tenant_id, client_id))

    def jwks(self) -> dict[str, Any]:
        numbers = self._key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": self.kid,
                    "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
                    "e": b64url(numbers.e.to_bytes(3, "big")),
                }
            ]
        }

    # the grants
    def grant(self, tenant_id: str, form: Mapping[str, str], token_endpoint: str) -> dict[str, Any]:
        """Answer a token request, or raise :class:`OAuthError`."""
        grant_type = form.get("grant_type")
        if grant_type == DEVICE_CODE_GRANT:
            return self._device_code_grant(tenant_id, form)
        if grant_type == "refresh_token":
            return self._refresh_grant(tenant_id, form)
        if grant_type != "client_credentials":
            raise OAuthError(
                400,
                "unsupported_grant_type",
                "AADSTS70003",
                "The app requested an unsupported grant type "
                f"'{form.get('grant_type', '')}'; the mock supports client_credentials, "
                "device_code and refresh_token.",
            )
        reg = self._app_registration(tenant_id, form)
        self._authenticate_client(reg, form, token_endpoint)
        return self._app_token(tenant_id, reg)

    def _app_registration(self, tenant_id: str, form: Mapping[str, str]) -> ClientRegistration:
        """The registration a client-credentials request names, once its scope and tenant
        are checked."""
        client_id = form.get("client_id", "")
        scope = form.get("scope", "")
        if not any(s.endswith("/.default") for s in scope.split()):
            raise OAuthError(
                400,
                "invalid_scope",
                "AADSTS1002012",
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier.",
            )
        if not any(tid == tenant_id for tid, _ in self._registrations):
            raise OAuthError(
                400,
                "invalid_request",
                "AADSTS90002",
                f"Tenant '{tenant_id}' not found. Check to make sure you have the correct "
                "tenant ID and are signing into the correct cloud.",
            )
        reg = self._registrations.get((tenant_id, client_id))
        if reg is None:
            raise OAuthError(
                400,
                "unauthorized_client",
                "AADSTS700016",
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant_id}'.",
            )
        return reg

    def _authenticate_client(
        self, reg: ClientRegistration, form: Mapping[str, str], token_endpoint: str
    ) -> None:
        """Check the client's secret or its certificate's signed assertion."""
        if "client_secret" in form:
            if not reg.check_secret(form["client_secret"]):
                raise OAuthError(
                    401,
                    "invalid_client",
                    "AADSTS7000215",
                    "Invalid client secret provided. Ensure the secret being sent in the "
                    f"request is the client secret value, not the client secret ID, for a "
                    f"secret added to app '{reg.client_id}'.",
                )
        elif form.get("client_assertion_type") == ASSERTION_TYPE:
            self._check_assertion(reg, form.get("client_assertion", ""), token_endpoint)
        else:
            raise OAuthError(
                401,
                "invalid_client",
                "AADSTS7000218",
                "The request body must contain the following parameter: 'client_assertion' "
                "or 'client_secret'.",
            )

    def _app_token(self, tenant_id: str, reg: ClientRegistration) -> dict[str, Any]:
        """An app-only access token for ``reg`` in ``tenant_id``."""
        now = time.time()
        claims = {
            "aud": GRAPH_AUDIENCE,
            "iss": f"https://sts.windows.net/{tenant_id}/",
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now + self.token_lifetime),
            "appid": reg.client_id,
            "app_displayname": reg.display_name,
            "idtyp": "app",
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/{reg.client_id}")),
            "roles": list(APP_ROLES),
            "tid": tenant_id,
            "uti": b64url(secrets.token_bytes(16)),
            "ver": "1.0",
        }
        self.issued += 1
        lifetime = max(1, int(self.token_lifetime))
        return {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self._sign(claims),
        }

    # device code (delegated)
    def _tenant_and_client(self, tenant_id: str, client_id: str) -> ClientRegistration:
        if tenant_id not in self.users:
            raise OAuthError(
                400,
                "invalid_request",
                "AADSTS90002",
                f"Tenant '{tenant_id}' not found. Check to make sure you have the correct "
                "tenant ID and are signing into the correct cloud.",
            )
        reg = self._registrations.get((tenant_id, client_id))
        if reg is None:
            raise OAuthError(
                400,
                "unauthorized_client",
                "AADSTS700016",
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant_id}'.",
            )
        return reg

    def device_authorization(
        self, tenant_id: str, form: Mapping[str, str], verification_uri: str
    ) -> dict[str, Any]:
        """Start a device flow: the answer of ``/{tenant}/oauth2/v2.0/devicecode``."""
        client_id = form.get("client_id", "")
        self._tenant_and_client(tenant_id, client_id)
        scope = form.get("scope", "")
        if not scope.strip():
            raise OAuthError(
                400,
                "invalid_request",
                "AADSTS900144",
                "The request body must contain the following parameter: 'scope'.",
            )
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
        user_code = "".join(secrets.choice(alphabet) for _ in range(9))
        code = DeviceCode(
            device_code=b64url(secrets.token_bytes(48)),
            user_code=user_code,
            tenant_id=tenant_id,
            client_id=client_id,
            scope=scope,
            expires=time.time() + self.device_code_lifetime,
        )
        self.device_codes[code.device_code] = code
        lifetime = int(self.device_code_lifetime)
        return {
            "user_code": user_code,
            "device_code": code.device_code,
            "verification_uri": verification_uri,
            "expires_in": lifetime,
            "interval": 1,
            "message": f"To sign in, use a web browser to open the page {verification_uri} "
            f"and enter the code {user_code} to authenticate.",
        }

    def decide_device_code(self, user_code: str, *, approve: bool = True) -> DeviceCode:
        """The mock user approves (or declines) the sign-in with ``user_code``."""
        for code in self.device_codes.values():
            if code.user_code == user_code:
                code.approved, code.declined = approve, not approve
                return code
        raise KeyError(user_code)

    def _device_code_grant(self, tenant_id: str, form: Mapping[str, str]) -> dict[str, Any]:
        code = self.device_codes.get(form.get("device_code", ""))
        if code is None or code.tenant_id != tenant_id:
            raise OAuthError(
                400,
                "invalid_grant",
                "AADSTS70000",
                "The provided value for the 'device_code' parameter is not valid.",
            )
        if code.client_id != form.get("client_id"):
            raise OAuthError(
                400, "invalid_grant", "AADSTS70000", "The device code was issued to another client."
            )
        if time.time() > code.expires:
            del self.device_codes[code.device_code]
            raise OAuthError(
                400,
                "expired_token",
                "AADSTS70020",
                "The provided value for the input "
                "parameter 'device_code' is not valid. This device code has expired.",
            )
        code.polls += 1
        if (
            not code.approved
            and not code.declined
            and self.auto_approve_polls is not None
            and code.polls > self.auto_approve_polls
        ):
            code.approved = True
        if code.declined:
            del self.device_codes[code.device_code]
            raise OAuthError(
                400, "authorization_declined", "AADSTS70016", "The user declined the sign-in."
            )
        if not code.approved:
            raise OAuthError(
                400,
                "authorization_pending",
                "AADSTS70016",
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )
        del self.device_codes[code.device_code]  # a device code is redeemed once
        return self._delegated_tokens(tenant_id, code.client_id, code.scope)

    def _refresh_grant(self, tenant_id: str, form: Mapping[str, str]) -> dict[str, Any]:
        held = self._refresh_tokens.get(form.get("refresh_token", ""))
        if held is None or held[0] != tenant_id or held[1] != form.get("client_id"):
            raise OAuthError(
                400,
                "invalid_grant",
                "AADSTS9002313",
                "Invalid request. The refresh token "
                "is malformed, expired or was issued to another client.",
            )
        return self._delegated_tokens(tenant_id, held[1], form.get("scope") or held[2])

    def _delegated_tokens(self, tenant_id: str, client_id: str, scope: str) -> dict[str, Any]:
        reg = self._tenant_and_client(tenant_id, client_id)
        user = self.users[tenant_id]
        now = time.time()
        lifetime = max(1, int(self.token_lifetime))
        claims = {
            "aud": GRAPH_AUDIENCE,
            "iss": f"https://sts.windows.net/{tenant_id}/",
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now + self.token_lifetime),
            "appid": client_id,
            "app_displayname": reg.display_name,
            "idtyp": "user",
            "oid": user.object_id,
            "upn": user.user_principal_name,
            "name": user.display_name,
            "scp": " ".join(DELEGATED_SCOPES),
            "tid": tenant_id,
            "uti": b64url(secrets.token_bytes(16)),
            "ver": "1.0",
        }
        id_token = {
            "aud": client_id,
            "iss": f"{GRAPH_AUDIENCE.replace('graph', 'login')}/{tenant_id}/v2.0",
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now + 3600),
            "oid": user.object_id,
            "sub": user.object_id,
            "tid": tenant_id,
            "preferred_username": user.user_principal_name,
            "name": user.display_name,
            "ver": "2.0",
        }
        refresh = b64url(secrets.token_bytes(48))
        self._refresh_tokens[refresh] = (tenant_id, client_id, scope)
        self.issued += 1
        granted = (
            " ".join(f"{GRAPH_AUDIENCE}/{s}" for s in DELEGATED_SCOPES)
            + " openid profile offline_access"
        )
        return {
            "token_type": "Bearer",
            "scope": granted,
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self._sign(claims),
            "refresh_token": refresh,
            "id_token": self._sign(id_token),
            "client_info": b64url(orjson.dumps({"uid": user.object_id, "utid": tenant_id})),
        }

    def _check_assertion(self, reg: ClientRegistration, assertion: str, endpoint: str) -> None:
        def bad(why: str) -> OAuthError:
            return OAuthError(
                401,
                "invalid_client",
                "AADSTS700027",
                f"The certificate with identifier used to sign the client assertion is not "
                f"registered on application, or the assertion is invalid: {why}.",
            )

        try:
            head_b64, body_b64, sig_b64 = assertion.split(".")
            header = orjson.loads(b64url_decode(head_b64))
            body = orjson.loads(b64url_decode(body_b64))
            signature = b64url_decode(sig_b64)
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise bad("malformed client assertion") from exc
        cert = None
        if "x5t#S256" in header:
            cert = reg.certificates_s256.get(b64url_decode(header["x5t#S256"]))
        elif "x5t" in header:
            cert = reg.certificates.get(b64url_decode(header["x5t"]))
        if cert is None:
            raise bad("unknown certificate thumbprint")
        public_key = cert.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise bad("only RSA certificates are supported")
        signed = f"{head_b64}.{body_b64}".encode()
        alg = header.get("alg")
        try:
            if alg == "RS256":
                public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
            elif alg == "PS256":
                public_key.verify(
                    signature,
                    signed,
                    padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                    hashes.SHA256(),
                )
            else:
                raise bad(f"unsupported algorithm {alg!r}")
        except InvalidSignature as exc:
            raise bad("signature does not verify") from exc
        now = time.time()
        if body.get("iss") != reg.client_id or body.get("sub") != reg.client_id:
            raise bad("iss and sub must be the client id")
        if body.get("aud") != endpoint:
            raise bad(f"audience {body.get('aud')!r} is not the token endpoint")
        if float(body.get("exp", 0)) < now - 300:
            raise bad("the assertion has expired")

    def _sign(self, claims: dict[str, Any]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        signed = f"{b64url(orjson.dumps(header))}.{b64url(orjson.dumps(claims))}"
        signature = self._key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signed}.{b64url(signature)}"

    def verify(self, token: str) -> TokenClaims | str:
        """The claims of a valid token, or the reason Graph would give for rejecting it."""
        claims = self._verified.get(token)
        if claims is None:
            try:
                head_b64, body_b64, sig_b64 = token.split(".")
                self._key.public_key().verify(
                    b64url_decode(sig_b64),
                    f"{head_b64}.{body_b64}".encode(),
                    padding.PKCS1v15(),
                    hashes.SHA256(),
                )
                body = orjson.loads(b64url_decode(body_b64))
            except (ValueError, InvalidSignature, orjson.JSONDecodeError):
                return "Invalid JWT signature or format."
            if body.get("aud") != GRAPH_AUDIENCE:
                return "Invalid audience."
            if body.get("idtyp") == "user":
                claims = TokenClaims(
                    tenant_id=body["tid"],
                    app_id=body["appid"],
                    expires=body["exp"],
                    scopes=tuple(str(body.get("scp", "")).split()),
                    user_id=body["oid"],
                )
            else:
                claims = TokenClaims(
                    tenant_id=body["tid"], app_id=body["appid"], expires=body["exp"]
                )
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[token] = claims
        if time.time() >= claims.expires:
            return "Lifetime validation failed, the token is expired."
        return claims
