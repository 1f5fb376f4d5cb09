"""Credential references: where the values of a manifest's ``credentials`` come from.

::

    env:VAR        an environment variable, read when the value is needed
    file:PATH      a file (a relative PATH is relative to the manifest), read when needed
    literal:VALUE  the value itself (refused for secrets unless --allow-inline-secrets)

A reference reaches only what the user meant the manifest to reach, because its value is sent
to Graph as a SaaS app's credentials:

- ``file:`` must resolve (``..`` applied, symbolic links followed) inside the manifest's
  directory or one of the secrets directories (``--secrets-dir DIR``, a profile's
  ``secrets_dirs``). The file is then opened beneath that directory one component at a time,
  following no link, so a path that becomes a link between the check and the open is caught.
  Only a regular file is read (a FIFO or a device is refused without blocking on it), at most
  :data:`MAX_SECRET_FILE` bytes of UTF-8.
- ``env:`` may not name bulkprov's own settings and credentials: ``BULKPROV_*`` in any case, the
  variable bulkprov's own client secret comes from, and those of an Azure managed identity.
- ``file:`` may not name the file bulkprov's own client secret or certificate comes from.

The rules hold when the manifest is validated and again when the value is read during the run
(the file may have changed in between). Every message names the reference, never the value.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "MAX_SECRET_FILE",
    "OWN_ENV_PREFIX",
    "CredentialRef",
    "RefError",
    "RefRules",
    "Secret",
    "parse_ref",
]

#: The largest secret file read: a secret file holds one secret (a key, a token, a PEM).
MAX_SECRET_FILE = 64 * 1024
#: bulkprov's own settings and credentials (compared case-insensitively).
OWN_ENV_PREFIX = "BULKPROV_"
#: Where Azure hands a managed identity the credential it signs in with.
MANAGED_IDENTITY_ENV = frozenset({"IDENTITY_HEADER", "MSI_SECRET"})
SCHEMES = ("env", "file", "literal")

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIR_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC
_FILE_FLAGS = (
    os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | _NOFOLLOW | _CLOEXEC
)
_WALK = os.open in os.supports_dir_fd and os.stat in os.supports_dir_fd and bool(_NOFOLLOW)


class RefError(LookupError):
    """A reference that cannot be read, or may not be: the message says why and what to do."""


class Secret:
    """A secret value: its repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('*****')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True, kw_only=True)
class RefRules:
    """What a manifest's references may reach besides the manifest's own directory.

    ``secrets_dirs``: further directories ``file:`` may resolve into. ``own_env`` and
    ``own_files``: the variables and files bulkprov's own connection takes its credential from
    (``--client-secret-env``, a profile's ``client_secret``, ``--certificate-file``...), which
    no reference may name. Paths are made absolute, with links resolved, here."""

    secrets_dirs: tuple[Path, ...] = ()
    own_env: frozenset[str] = frozenset()
    own_files: frozenset[Path] = frozenset()

    def __post_init__(self) -> None:
        real = tuple(dict.fromkeys(Path(os.path.realpath(d)) for d in self.secrets_dirs))
        object.__setattr__(self, "secrets_dirs", real)
        object.__setattr__(self, "own_env", frozenset(v.upper() for v in self.own_env))
        files = frozenset(Path(os.path.realpath(f)) for f in self.own_files)
        object.__setattr__(self, "own_files", files)

    def env_refusal(self, name: str) -> str | None:
        """Why ``env:name`` may not be used, or None."""
        upper = name.upper()
        if upper.startswith(OWN_ENV_PREFIX):
            return (
                f"env:{name} is one of bulkprov's own settings (BULKPROV_* variables configure "
                "bulkprov and hold its credentials) and is never sent as an app's credential; "
                "put the app's secret in a variable of its own"
            )
        if upper in self.own_env:
            return (
                f"env:{name} holds the client secret bulkprov itself signs in with and is never "
                "sent as an app's credential; put the app's secret in a variable of its own"
            )
        if upper in MANAGED_IDENTITY_ENV:
            return (
                f"env:{name} holds the credential of Azure's managed identity and is never sent "
                "as an app's credential; put the app's secret in a variable of its own"
            )
        return None

    def read_env(self, name: str) -> Secret:
        why = self.env_refusal(name)
        if why is not None:
            raise RefError(why)
        value = os.environ.get(name)
        if not value:
            raise RefError(f"environment variable {name} is not set or empty")
        return Secret(value)

    def read_file(self, target: str, base_dir: Path) -> Secret:
        """The secret in ``file:target`` (relative to ``base_dir``, the manifest's directory),
        under the rules of the module docstring."""
        path = Path(target)
        if not path.is_absolute():
            path = base_dir / path
        real = os.path.realpath(path)
        manifest_dir = os.path.realpath(base_dir)
        roots = [manifest_dir, *(str(d) for d in self.secrets_dirs)]
        root = next((r for r in roots if _beneath(real, r)), None)
        if root is None:
            resolved = "" if real == os.path.abspath(path) else f" (it resolves to {real})"
            others = (
                f" or the secrets directories {', '.join(map(str, self.secrets_dirs))}"
                if self.secrets_dirs
                else ""
            )
            raise RefError(
                f"file:{target}{resolved} is outside the manifest's directory {manifest_dir}"
                f"{others}; pass --secrets-dir DIR (or set secrets_dirs in the connection "
                "profile) to allow another directory"
            )
        if Path(real) in self.own_files:
            raise RefError(
                f"file:{target} is the file bulkprov's own credential comes from and is never "
                "sent as an app's credential"
            )
        data = _read_beneath(root, real, f"secret file {path}")
        try:
            value = data.decode("utf-8-sig").strip("\r\n")
        except UnicodeDecodeError:
            raise RefError(f"secret file {path} is not UTF-8 text") from None
        if not value:
            raise RefError(f"secret file {path} is empty")
        return Secret(value)


DEFAULT_RULES = RefRules()


@dataclass(frozen=True, slots=True)
class CredentialRef:
    """Where one credential's value comes from."""

    key: str
    scheme: str  # env | file | literal
    target: str = field(repr=False)  # variable name, path, or the value itself
    base_dir: Path = field(repr=False, default=Path("."))
    rules: RefRules = field(repr=False, default=DEFAULT_RULES, compare=False)

    def describe(self) -> str:
        if self.scheme == "literal":
            return f"{self.key}=literal"
        return f"{self.key}={self.scheme}:{self.target}"

    def resolve(self) -> Secret:
        """Read the value now: :class:`RefError` (a ``LookupError``) says why it cannot be,
        naming the reference, never the value."""
        if self.scheme == "env":
            return self.rules.read_env(self.target)
        if self.scheme == "file":
            return self.rules.read_file(self.target, self.base_dir)
        return Secret(self.target)


def parse_ref(
    key: str, value: str, base_dir: Path, rules: RefRules = DEFAULT_RULES
) -> CredentialRef:
    """``env:VAR``, ``file:PATH`` or ``literal:VALUE``; anything else is a literal value."""
    scheme, sep, rest = value.partition(":")
    if sep and scheme in SCHEMES:
        return CredentialRef(key, scheme, rest, base_dir, rules)
    return CredentialRef(key, "literal", value, base_dir, rules)


def _beneath(path: str, root: str) -> bool:
    return path == root or path.startswith(root if root.endswith(os.sep) else root + os.sep)


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)


def _not_regular(what: str, mode: int) -> RefError:
    kind = next((k for test, k in _KINDS if test(mode)), "not a regular file")
    return RefError(f"{what} is {kind}; a secret must be in a regular file")


def _read_beneath(root: str, real: str, what: str) -> bytes:
    """The bytes of the regular file ``real`` (inside ``root``, links resolved), opened beneath
    ``root`` without following any link, read without blocking, at most MAX_SECRET_FILE."""
    try:
        fd = _open_beneath(root, real, what)
    except OSError as exc:
        raise RefError(f"cannot read {what}: {exc.strerror or type(exc).__name__}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced after it was checked
            raise _not_regular(what, st.st_mode)
        too_big = RefError(
            f"{what} is larger than {MAX_SECRET_FILE // 1024} KiB, the limit of a secret file "
            "(a secret file holds one secret)"
        )
        if st.st_size > MAX_SECRET_FILE:
            raise too_big
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_SECRET_FILE:  # st_size may be 0 or stale (/proc, a growing file)
            chunk = os.read(fd, MAX_SECRET_FILE + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_SECRET_FILE:
            raise too_big
        return b"".join(chunks)
    except OSError as exc:
        raise RefError(f"cannot read {what}: {exc.strerror or type(exc).__name__}") from None
    finally:
        os.close(fd)


def _open_beneath(root: str, real: str, what: str) -> int:
    """A descriptor of ``real``, a regular file, opened from ``root`` one component at a time
    with O_NOFOLLOW (and O_NONBLOCK: nothing waits for a FIFO's writer)."""
    if not _WALK:  # no openat(2): open the resolved path, its last component not followed
        st = os.stat(real, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(what, st.st_mode)
        return os.open(real, _FILE_FLAGS)
    rel = os.path.relpath(real, root)
    parts = [] if rel == os.curdir else rel.split(os.sep)
    if not parts:
        raise _not_regular(what, stat.S_IFDIR)
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            try:
                nxt = os.open(part, _DIR_FLAGS | _NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ENOTDIR, errno.ELOOP) and _is_link(part, fd):
                    raise _swapped(what) from None
                raise
            os.close(fd)
            fd = nxt
        st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise _swapped(what)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(what, st.st_mode)
        try:
            return os.open(parts[-1], _FILE_FLAGS, dir_fd=fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _swapped(what) from None
            raise
    finally:
        os.close(fd)


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _swapped(what: str) -> RefError:
    return RefError(
        f"{what} changed while it was opened (a part of its path became a symbolic link); "
        "it was not read"
    )
