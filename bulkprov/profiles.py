"""Connection profiles: several tenants (or clouds, or credentials) in one TOML file.

::

    [profiles.contoso]
    tenant_id = "..."
    client_id = "..."
    client_secret = "env:CONTOSO_SECRET"        # or "file:secrets/contoso" - never the value

    [profiles.fabrikam-gov]
    tenant_id = "..."
    client_id = "..."
    certificate_file = "certs/fabrikam.pem"     # PEM: private key and certificate
    graph_url = "https://graph.microsoft.us"
    authority_host = "https://login.microsoftonline.us"

    [profiles.contoso-admin]                    # a user signs in: delegated permissions
    auth = "device_code"
    tenant_id = "..."
    client_id = "..."                           # a public client app registration

    [profiles.automation]                       # on an Azure VM, App Service, Functions...
    auth = "managed_identity"
    tenant_id = "..."
    managed_identity_client_id = "..."          # user-assigned; omit for system-assigned
    secrets_dirs = ["/run/secrets"]             # where manifests' file: references may point

The file is found by ``--profiles``, then ``BULKPROV_PROFILES``, then
``$XDG_CONFIG_HOME/bulkprov/profiles.toml`` (``~/.config/...``). Relative paths in it are relative
to the file. Every error names the file, the profile and the field.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .settings import CREDENTIAL_KINDS, MANAGED_IDENTITY_IDS, Credential, ManagedIdentity

ENV_FILE = "BULKPROV_PROFILES"
ENV_NAME = "BULKPROV_PROFILE"
AUTH_KINDS = {
    "client_secret": "secret",
    "secret": "secret",
    "certificate": "certificate",
    "device_code": "device_code",
    "managed_identity": "managed_identity",
}
STRING_FIELDS = (
    "tenant_id",
    "client_id",
    "client_secret",
    "certificate_file",
    "graph_url",
    "authority_host",
    "ca_file",
    "api_version",
    "scope",
    "auth",
    "description",
    *(f"managed_identity_{k}" for k in MANAGED_IDENTITY_IDS),
)
FIELDS = frozenset((*STRING_FIELDS, "allow_http", "secrets_dirs"))
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")


class ProfileWarning(UserWarning):
    """A profiles file that works but is unsafe (e.g. readable by other users)."""


def default_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "bulkprov" / "profiles.toml"


def profiles_path(explicit: str | Path | None = None) -> Path:
    """Where the profiles file is: the flag, then ``BULKPROV_PROFILES``, then the default."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_FILE)
    return Path(env).expanduser() if env else default_path()


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """One profile as written in the file (values not yet read: a secret stays a reference)."""

    name: str
    file: Path
    auth: str  # one of CREDENTIAL_KINDS
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret_ref: str | None = None  # env:VAR or file:PATH
    certificate_file: Path | None = None
    managed_identity: ManagedIdentity | None = None
    graph_url: str | None = None
    authority_host: str | None = None
    ca_file: Path | None = None
    api_version: str | None = None
    scope: str | None = None
    allow_http: bool | None = None
    # directories (besides the manifest's) that a manifest's file: references may resolve into
    secrets_dirs: tuple[Path, ...] = ()

    def error(self, field_name: str | None, message: str) -> ConfigError:
        return profile_error(self.file, self.name, field_name, message)

    @property
    def app_only(self) -> bool:
        return self.auth != "device_code"

    def credential(self) -> Credential:
        """The credential, reading the secret or certificate now."""
        if self.auth == "device_code":
            return Credential(device_code=True)
        if self.auth == "managed_identity":
            return Credential(managed_identity=self.managed_identity or ManagedIdentity())
        if self.auth == "certificate":
            assert self.certificate_file is not None
            try:
                return Credential(certificate_pem=self.certificate_file.read_bytes())
            except OSError as exc:
                raise self.error(
                    "certificate_file", f"cannot read {self.certificate_file}: {exc.strerror}"
                ) from None
        assert self.client_secret_ref is not None
        scheme, _, target = self.client_secret_ref.partition(":")
        if scheme == "env":
            value = os.environ.get(target)
            if not value:
                raise self.error(
                    "client_secret", f"environment variable {target} is not set or empty"
                )
            return Credential(client_secret=value)
        path = self._path(target)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise self.error("client_secret", f"cannot read secret file {path}: {why}") from None
        if not value:
            raise self.error("client_secret", f"secret file {path} is empty")
        _check_secret_mode(path, self.name)
        return Credential(client_secret=value)

    def checked_secrets_dirs(self) -> tuple[Path, ...]:
        """``secrets_dirs``, each checked to be a directory now (when the profile is used: a
        profile used on another machine may name directories this one lacks)."""
        for i, d in enumerate(self.secrets_dirs):
            if not d.is_dir():
                why = "does not exist" if not d.exists() else "is not a directory"
                raise self.error(f"secrets_dirs[{i}]", f"{d} {why}")
        return self.secrets_dirs

    def own_sources(self) -> tuple[frozenset[str], frozenset[Path]]:
        """The variable and the files this profile's own credential comes from: a manifest's
        reference may not name them (it would send bulkprov's credential to a SaaS app)."""
        env: set[str] = set()
        files: set[Path] = set()
        if self.client_secret_ref is not None:
            scheme, _, target = self.client_secret_ref.partition(":")
            if scheme == "env":
                env.add(target)
            else:
                files.add(self._path(target))
        if self.certificate_file is not None:
            files.add(self.certificate_file)
        return frozenset(env), frozenset(files)

    def _path(self, text: str) -> Path:
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.file.parent / path


def profile_error(
    file: Path, name: str | None, field_name: str | None, message: str
) -> ConfigError:
    parts = [f"profiles file {file}"]
    if name is not None:
        parts.append(f"profile {name!r}")
    if field_name is not None:
        parts.append(f"field {field_name!r}")
    return ConfigError(f"{', '.join(parts)}: {message}")


def load(path: Path) -> dict[str, Profile]:
    """Every profile of the file, validated; :class:`ConfigError` names file, profile, field."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise profile_error(path, None, None, f"cannot read: {exc.strerror}") from None
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise profile_error(path, None, None, "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise profile_error(path, None, None, f"not valid TOML: {exc}") from None
    unknown = set(doc) - {"profiles"}
    if unknown:
        raise profile_error(
            path,
            None,
            ", ".join(sorted(unknown)),
            "unknown top-level key; profiles go under [profiles.NAME]",
        )
    table = doc.get("profiles")
    if not isinstance(table, dict) or not table:
        raise profile_error(path, None, "profiles", "no [profiles.NAME] table in the file")
    profiles = {name: _parse(path, name, raw) for name, raw in table.items()}
    _check_mode(path)
    return profiles


def select(path: Path, name: str) -> Profile:
    profiles = load(path)
    if name not in profiles:
        import difflib

        close = difflib.get_close_matches(name, list(profiles), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise profile_error(
            path, name, None, f"no such profile{hint}; the file has {', '.join(sorted(profiles))}"
        )
    return profiles[name]


_Bad = Callable[[str | None, str], ConfigError]  # (field, message) -> the error naming them


def _parse(path: Path, name: str, raw: Any) -> Profile:
    def bad(field_name: str | None, message: str) -> ConfigError:
        return profile_error(path, name, field_name, message)

    values = _string_values(name, raw, bad)
    allow_http = raw.get("allow_http")
    if allow_http is not None and not isinstance(allow_http, bool):
        raise bad("allow_http", "must be true or false")
    secrets_dirs = _secrets_dirs(path, raw.get("secrets_dirs", []), bad)
    mi_ids = {
        k: values[f"managed_identity_{k}"]
        for k in MANAGED_IDENTITY_IDS
        if f"managed_identity_{k}" in values
    }
    auth = _auth_kind(values, mi_ids, bad)
    secret_ref, cert, managed = _credential_fields(path, auth, values, mi_ids, bad)
    required = ("tenant_id",) if auth == "managed_identity" else ("tenant_id", "client_id")
    for key in required:
        if key not in values:
            raise bad(key, "is required")
    api = values.get("api_version")
    if api is not None and api not in ("v1.0", "beta"):
        raise bad("api_version", "must be v1.0 or beta")
    for key in ("graph_url", "authority_host"):
        if key in values and not re.match(r"^https?://[^/\s]+", values[key]):
            raise bad(key, f"must be an absolute URL, got {values[key]!r}")
    ca = values.get("ca_file")
    return Profile(
        name=name,
        file=path,
        auth=auth,
        tenant_id=values.get("tenant_id"),
        client_id=values.get("client_id"),
        client_secret_ref=secret_ref,
        certificate_file=cert,
        managed_identity=managed,
        graph_url=values.get("graph_url"),
        authority_host=values.get("authority_host"),
        ca_file=_beside(path, ca) if ca is not None else None,
        api_version=api,
        scope=values.get("scope"),
        allow_http=allow_http,
        secrets_dirs=secrets_dirs,
    )


def _beside(path: Path, text: str) -> Path:
    """A path a profiles file gives: ``~`` expanded, relative to the file's directory."""
    given = Path(text).expanduser()
    return given if given.is_absolute() else path.parent / given


def _string_values(name: str, raw: Any, bad: _Bad) -> dict[str, str]:
    """The profile's string fields, stripped, after checking its name and that it is a table
    of known fields."""
    if not _NAME_RE.fullmatch(name):
        raise bad(None, "a profile name is 1-64 letters, digits and . _ - characters")
    if not isinstance(raw, dict):
        raise bad(None, "must be a table ([profiles.NAME])")
    for key in raw:
        if key not in FIELDS:
            import difflib

            close = difflib.get_close_matches(key, sorted(FIELDS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise bad(key, f"unknown field{hint}")
    values: dict[str, str] = {}
    for key in STRING_FIELDS:
        if key not in raw:
            continue
        v = raw[key]
        if not isinstance(v, str) or not v.strip():
            raise bad(key, "must be a non-empty string")
        values[key] = v.strip()
    return values


def _auth_kind(values: dict[str, str], mi_ids: dict[str, str], bad: _Bad) -> str:
    """``auth``, or the kind of credential the fields given imply."""
    if "auth" in values:
        auth = AUTH_KINDS.get(values["auth"])
        if auth is None:
            raise bad("auth", f"must be one of {', '.join(sorted(AUTH_KINDS))}")
    elif "client_secret" in values and "certificate_file" not in values:
        auth = "secret"
    elif "certificate_file" in values and "client_secret" not in values:
        auth = "certificate"
    elif mi_ids:
        auth = "managed_identity"
    else:
        raise bad(
            "auth",
            "no credential: give client_secret (env:VAR or file:PATH), certificate_file, "
            'or auth = "device_code" / "managed_identity"',
        )
    assert auth in CREDENTIAL_KINDS
    return auth


def _credential_fields(
    path: Path, auth: str, values: dict[str, str], mi_ids: dict[str, str], bad: _Bad
) -> tuple[str | None, Path | None, ManagedIdentity | None]:
    """The client secret reference, certificate file or managed identity of ``auth``; the
    fields of another kind of credential are refused."""

    def forbid(*fields: str) -> None:
        for f in fields:
            if f in values:
                raise bad(f, f"does not apply to auth {auth!r}")

    mi_fields = [f"managed_identity_{k}" for k in MANAGED_IDENTITY_IDS]
    if auth == "secret":
        forbid("certificate_file", *mi_fields)
        return _secret_ref(values.get("client_secret"), bad), None, None
    if auth == "certificate":
        forbid("client_secret", *mi_fields)
        if "certificate_file" not in values:
            raise bad("certificate_file", "is required (a PEM file with key and certificate)")
        return None, _beside(path, values["certificate_file"]), None
    if auth == "device_code":
        forbid("client_secret", "certificate_file", *mi_fields)
        return None, None, None
    forbid("client_secret", "certificate_file")
    if len(mi_ids) > 1:
        raise bad(
            ", ".join(f"managed_identity_{k}" for k in mi_ids),
            "give at most one id of a user-assigned identity",
        )
    if mi_ids:
        ((id_type, ident),) = mi_ids.items()
        return None, None, ManagedIdentity(id_type=id_type, id=ident)
    return None, None, ManagedIdentity()


def _secret_ref(ref: str | None, bad: _Bad) -> str:
    """``client_secret``: a reference (env:VAR or file:PATH), never a value."""
    if ref is None:
        raise bad("client_secret", "is required (env:VAR or file:PATH)")
    scheme, sep, target = ref.partition(":")
    if not sep or scheme not in ("env", "file") or not target:
        raise bad(
            "client_secret",
            "must be a reference, env:VAR or file:PATH; a secret value is never written "
            "in a profiles file",
        )
    if scheme == "env" and not _ENV_RE.fullmatch(target):
        raise bad("client_secret", f"env:{target} is not a valid environment variable name")
    return ref


def _secrets_dirs(path: Path, raw: Any, bad: _Bad) -> tuple[Path, ...]:
    """``secrets_dirs = ["...", ...]``: directories, relative to the profiles file."""
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise bad("secrets_dirs", 'must be a list of directories, e.g. ["secrets", "/run/secrets"]')
    dirs = []
    for i, item in enumerate(raw):
        if not isinstance(item, str) or not item.strip():
            raise bad(f"secrets_dirs[{i}]", "must be a non-empty string (a directory)")
        d = Path(item.strip()).expanduser()
        dirs.append(d if d.is_absolute() else path.parent / d)
    return tuple(dirs)


def _check_mode(path: Path) -> None:
    """Warn about a profiles file that other users can write: whoever changes ``graph_url`` or
    ``authority_host`` receives the token or the client secret. Others reading it is harmless:
    it holds references, never secret values (a referenced secret file is checked on read)."""
    warn_if_others_can_write(
        path, "profiles file", "they could send your token or secret elsewhere", stacklevel=4
    )


def warn_if_others_can_write(path: Path, what: str, risk: str, *, stacklevel: int = 2) -> None:
    """Warn (a :class:`ProfileWarning`, shown once per file) when users other than the owner
    can write ``path``, a file that decides where the token or secret goes: ``what`` names
    the file ("CA file"), ``risk`` says what they could do."""
    try:
        st = path.stat()
    except OSError:
        return
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        warnings.warn(
            f"{what} {path} can be written by other users (mode "
            f"{stat.S_IMODE(st.st_mode):o}): {risk}; run chmod go-w {path}",
            ProfileWarning,
            stacklevel=stacklevel,
        )


def _check_secret_mode(path: Path, profile: str) -> None:
    try:
        st = path.stat()
    except OSError:
        return
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.warn(
            f"secret file {path} of profile {profile!r} is readable by other users (mode "
            f"{stat.S_IMODE(st.st_mode):o}); run chmod 600 {path}",
            ProfileWarning,
            stacklevel=3,
        )


def render(profiles: Mapping[str, Mapping[str, Any]]) -> str:
    """A profiles file's TOML text (for :func:`bulkprov.mockgraph.server.write_profiles`)."""
    lines = []
    for name, fields in profiles.items():
        lines.append(f"[profiles.{name}]")
        for key, value in fields.items():
            if isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            else:
                text = str(value).replace("\\", "\\\\").replace('"', '\\"')
                lines.append(f'{key} = "{text}"')
        lines.append("")
    return "\n".join(lines)
