"""bulkprov's exceptions, one tree::

    BulkProvError
    ├── ConfigError                 bad settings or command-line input
    ├── ManifestError               a manifest that does not validate (all problems at once)
    ├── LedgerError                 a ledger that cannot be used (other manifest, other tenant)
    ├── AuthError                   no token could be acquired
    │   └── AuthorityUnreachable    the identity platform cannot be reached at all: host, why
    ├── TransportError              no HTTP answer: refused, dropped, timed out
    │   └── GraphUnreachable        Graph cannot be reached, and never answered: host, why
    ├── GraphError                  Graph answered with an error status
    │   ├── Throttled               429, with its Retry-After
    │   └── NotYetReplicated        404 on an object we know exists: try again later
    ├── UnsafeRequest               a request bulkprov refuses to send (e.g. token to another host)
    │   └── Redirected              an answer redirecting elsewhere: no redirect is followed
    └── StepError                   an instance's step failed, with the instance and the step

Messages are built in constructors and never contain a secret value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit


class BulkProvError(Exception):
    """The root of every error bulkprov raises on purpose."""


class ConfigError(BulkProvError):
    """Settings or command-line input that cannot work."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One manifest problem, located as precisely as the format allows."""

    file: str
    line: int | None
    field: str | None
    message: str
    key: str | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        parts = [where]
        if self.key is not None:
            parts.append(f"instance {self.key!r}")
        if self.field is not None:
            parts.append(f"field {self.field!r}")
        return f"{': '.join(parts)}: {self.message}"


class ManifestError(BulkProvError):
    """The manifest does not validate; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        shown = "\n".join(f"  {p}" for p in self.problems[:50])
        more = len(self.problems) - 50
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"{len(self.problems)} problem(s) in the manifest:\n{shown}{tail}")


class LedgerError(BulkProvError):
    """A ledger that cannot be used for this run."""


class AuthError(BulkProvError):
    """No access token could be acquired."""


def origin(url: str) -> str:
    """``scheme://host:port`` of a URL (the scheme's default port made explicit): what an error
    may say of a URL, whose path and query are not ours to repeat."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        return "an unparsable URL"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{port}" if port else f"{parts.scheme}://{host}"


def _with_hint(message: str, hint: str | None) -> str:
    return f"{message}; {hint}" if hint else message


class AuthorityUnreachable(AuthError):
    """The identity platform could not be reached at all (refused, no such host, a TLS
    certificate not trusted, timed out), before any token was had."""

    def __init__(self, host: str, reason: str, *, context: str, hint: str | None = None) -> None:
        self.host = host
        self.reason = reason
        self.hint = hint
        super().__init__(
            _with_hint(f"cannot reach the token endpoint {host} ({context}): {reason}", hint)
        )


class TransportError(BulkProvError):
    """No usable HTTP answer: connection refused or dropped, or the request timed out."""

    def __init__(
        self, method: str, path: str, reason: str, *, client_request_id: str | None = None
    ) -> None:
        self.method = method
        self.path = path
        self.reason = reason
        self.client_request_id = client_request_id
        super().__init__(
            f"{method} {path}: no answer from Graph ({reason}); "
            f"client-request-id {client_request_id}"
        )


class GraphUnreachable(TransportError):
    """Graph could not be reached at all (refused, no such host, a TLS certificate not trusted,
    timed out) and has not answered once since the client started."""

    def __init__(
        self,
        method: str,
        path: str,
        host: str,
        reason: str,
        *,
        hint: str | None = None,
        client_request_id: str | None = None,
    ) -> None:
        super().__init__(method, path, reason, client_request_id=client_request_id)
        self.host = host
        self.hint = hint
        self.args = (_with_hint(f"cannot reach Graph {host} ({method} {path}): {reason}", hint),)


class GraphError(BulkProvError):
    """Graph answered with an error status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        method: str = "",
        path: str = "",
        request_id: str | None = None,
        client_request_id: str | None = None,
        detail_codes: Sequence[str] = (),
    ) -> None:
        self.status = status
        self.code = code
        self.graph_message = message
        self.method = method
        self.path = path
        self.request_id = request_id
        self.client_request_id = client_request_id
        self.detail_codes = tuple(detail_codes)
        super().__init__(
            f"{method} {path}: {status} {code}: {message} (request-id {request_id}, "
            f"client-request-id {client_request_id})"
        )


class Throttled(GraphError):
    """429 Too Many Requests."""

    def __init__(self, retry_after: float | None, scope: str | None, **kw: Any) -> None:
        self.retry_after = retry_after
        self.scope = scope
        super().__init__(
            429,
            "TooManyRequests",
            f"throttled in scope {scope or 'unknown'}; Retry-After {retry_after}",
            **kw,
        )


class NotYetReplicated(BulkProvError):
    """An object we created is not readable yet: Graph's replication, not a failure."""

    def __init__(self, what: str, waited: float) -> None:
        self.what = what
        self.waited = waited
        super().__init__(f"{what} still not readable after {waited:.0f} Graph seconds")


class UnsafeRequest(BulkProvError):
    """A request bulkprov refuses to send."""


class Redirected(UnsafeRequest):
    """An answer that redirects (3xx). bulkprov follows no redirect: Graph and the identity
    platform redirect none of its calls, and following one would send the request, its token or
    client secret included, to the ``Location`` host. Only that host's origin is named."""

    def __init__(
        self,
        request: str,
        status: int,
        url: str,
        location: str | None,
        *,
        request_id: str | None = None,
        client_request_id: str | None = None,
    ) -> None:
        self.status = status
        self.target = origin(urljoin(url, location)) if location else None
        self.request_id = request_id
        self.client_request_id = client_request_id
        where = f"a redirect to {self.target}" if self.target else "a redirect without a Location"
        ids = [f"request-id {request_id}"] if request_id else []
        if client_request_id:
            ids.append(f"client-request-id {client_request_id}")
        tail = f" ({', '.join(ids)})" if ids else ""
        super().__init__(
            f"{request}: answered {status}, {where}; bulkprov follows no redirect (the request, "
            f"credentials included, would go to that host){tail}"
        )


class StepError(BulkProvError):
    """An instance's step failed: names the instance, the step and the cause."""

    def __init__(
        self,
        key: str,
        step: str,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.key = key
        self.step = step
        self.reason = message
        self.code = code
        self.request_id = request_id
        rid = f" (request-id {request_id})" if request_id else ""
        super().__init__(f"instance {key!r}, step {step}: {message}{rid}")


#: Errors about the connection or the ledger, not about one item: commands that work item by
#: item (monitor, cleanup, export) stop on them rather than record one failure per item.
STOPS_THE_COMMAND: tuple[type[BulkProvError], ...] = (AuthError, GraphUnreachable, LedgerError)
