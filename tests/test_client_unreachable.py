"""A Graph or token endpoint that cannot be reached: on a fresh start it fails after one quick
retry with one whole line naming the host and the reason (and, for a mock's info file, a hint);
once the client has been answered, an outage keeps the retry policy's longer tolerance."""

from __future__ import annotations

import dataclasses
import errno
import os
import socket
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import anyio
import certifi
import pytest
import requests
import urllib3.exceptions

from bulkprov.auth import TokenProvider
from bulkprov.client import GraphClient
from bulkprov.errors import AuthError, AuthorityUnreachable, GraphUnreachable, TransportError
from bulkprov.mockgraph import MockGraph, MockSettings
from bulkprov.mockgraph.server import write_info
from bulkprov.reach import Failure, explain
from bulkprov.settings import ClientSettings

from .enginekit import aws_manifest, connection

pytestmark = pytest.mark.anyio


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A loopback port bound by nobody's listener: connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, never listening: the port stays ours and refuses
        yield int(s.getsockname()[1])


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await anyio.lowlevel.checkpoint()


@pytest.mark.parametrize("command", ["plan", "run"])
async def test_cli_names_the_unreachable_host_at_once(
    mock: MockGraph, dead_port: int, tmp_path: Path, command: str
) -> None:
    """`plan` and `run` against a mock info file whose mock has gone exit 2 quickly with one
    error line naming the host, the reason and the hint, and no traceback."""
    assert mock.info is not None
    dead = f"https://127.0.0.1:{dead_port}"
    info = dataclasses.replace(
        mock.info, graph_url=dead, authority_host=dead, authority=f"{dead}/{mock.info.tenant_id}"
    )
    write_info(tmp_path / "mock.json", info)
    manifest = aws_manifest(tmp_path / "m.csv", 2)
    extra = ["--ledger", str(tmp_path / "l.jsonl")] if command == "run" else []
    t0 = time.monotonic()
    proc = await anyio.run_process(
        [
            sys.executable,
            "-m",
            "bulkprov.cli",
            command,
            str(manifest),
            *extra,
            "--mock-info",
            str(tmp_path / "mock.json"),
        ],
        check=False,
        env={**os.environ, "COLUMNS": "400"},
    )
    elapsed = time.monotonic() - t0
    stderr = proc.stderr.decode()
    assert proc.returncode == 2, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("bulkprov: error:")]
    assert errors == [
        f"bulkprov: error: cannot reach the token endpoint {dead} (client {info.client_id}, "
        f"tenant {info.tenant_id}): connection refused; is `bulkprov mock-graph` still running?"
    ], stderr
    assert info.client_secret not in stderr
    assert elapsed < 15, elapsed


async def test_a_fresh_token_endpoint_that_refuses_is_tried_twice(
    mock: MockGraph, dead_port: int
) -> None:
    """Before the first token, a refused connection is retried once after a short pause."""
    dead = f"https://127.0.0.1:{dead_port}"
    sleeps = Sleeps()
    tokens = TokenProvider(dataclasses.replace(connection(mock), authority_host=dead), sleep=sleeps)
    with pytest.raises(AuthorityUnreachable) as caught:
        await tokens.token()
    assert caught.value.host == dead and caught.value.reason == "connection refused"
    assert len(sleeps.delays) == 1 and sleeps.delays[0] <= 0.5


async def test_a_token_endpoint_lost_mid_run_keeps_the_long_tolerance(tmp_path: Path) -> None:
    """Once a token was had, a token endpoint that refuses is tried for about a minute (nine
    tries, pauses doubling to 30 s) before the run is stopped."""
    sleeps = Sleeps()
    mock = MockGraph(MockSettings.quiet(time_scale=0.01), state_dir=tmp_path)  # CA outlives it
    await mock.start()
    try:
        tokens = TokenProvider(connection(mock), sleep=sleeps)
        token = await tokens.token()
    finally:
        await mock.aclose()
    await tokens.invalidate(token)
    with pytest.raises(AuthError) as caught:
        await tokens.token()
    assert not isinstance(caught.value, AuthorityUnreachable)
    assert "after 9 attempts: cannot reach https://127.0.0.1:" in str(caught.value)
    assert str(caught.value).endswith(": connection refused")
    assert len(sleeps.delays) == 8
    assert 45 <= sum(sleeps.delays) <= 92  # 0.5 s doubling to 30 s, each with jitter


async def test_a_fresh_graph_that_refuses_names_its_host(mock: MockGraph, dead_port: int) -> None:
    """A Graph that refuses before it ever answered fails after one quick retry, naming its
    host, the request and the hint; the token endpoint answered."""
    dead = f"https://127.0.0.1:{dead_port}"
    conn = dataclasses.replace(connection(mock), graph_url=dead, unreachable_hint="is it up?")
    sleeps = Sleeps()
    async with GraphClient(conn, ClientSettings(time_scale=0.01), sleep=sleeps) as c:
        with pytest.raises(GraphUnreachable) as caught:
            await c.get("/applicationTemplates")
        assert c.stats.requests == 2
    assert str(caught.value) == (
        f"cannot reach Graph {dead} (GET /applicationTemplates): connection refused; is it up?"
    )


async def test_a_graph_lost_after_answering_keeps_the_retry_policy(tmp_path: Path) -> None:
    """Once Graph has answered, a refused connection is retried as the policy says (six
    tries) and ends as a transport error, not as an unreachable Graph."""
    sleeps = Sleeps()
    mock = MockGraph(MockSettings.quiet(time_scale=0.01), state_dir=tmp_path)
    await mock.start()
    settings = ClientSettings(time_scale=0.01)
    try:
        async with GraphClient(connection(mock), settings, sleep=sleeps) as c:
            await c.get("/applicationTemplates")
            await mock.aclose()
            with pytest.raises(TransportError) as caught:
                await c.get("/applicationTemplates")
            assert c.stats.requests == 1 + settings.retry.max_attempts
    finally:
        await mock.aclose()
    assert not isinstance(caught.value, GraphUnreachable)


async def test_an_untrusted_certificate_is_named(mock: MockGraph) -> None:
    """A token endpoint whose certificate the CA file does not vouch for fails at once, saying
    so."""
    conn = dataclasses.replace(connection(mock), ca_file=Path(certifi.where()))
    with pytest.raises(AuthorityUnreachable) as caught:
        await TokenProvider(conn, sleep=Sleeps()).token()
    assert caught.value.reason.startswith("TLS certificate verification failed ("), caught.value


def _wrapped(inner: BaseException) -> BaseException:
    """``inner`` as requests hands it over: ConnectionError(MaxRetryError(reason=...))."""
    outer = urllib3.exceptions.MaxRetryError(None, "/x", reason=inner)  # type: ignore[arg-type]
    return requests.ConnectionError(outer)


def _caused(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    ("exc", "failure"),
    [
        (
            _wrapped(
                _caused(
                    urllib3.exceptions.NewConnectionError(None, "x"),  # type: ignore[arg-type]
                    ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
                )
            ),
            Failure("connection refused", True),
        ),
        (
            _wrapped(
                _caused(
                    urllib3.exceptions.NewConnectionError(None, "x"),  # type: ignore[arg-type]
                    socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
                )
            ),
            Failure("DNS lookup failed (Name or service not known)", True),
        ),
        (
            aiohttp.ClientConnectorDNSError(
                None, socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            ),  # type: ignore[arg-type]
            Failure("DNS lookup failed (Name or service not known)", True),
        ),
        (
            aiohttp.ClientConnectorError(
                None, ConnectionRefusedError(errno.ECONNREFUSED, "refused")
            ),  # type: ignore[arg-type]
            Failure("connection refused", True),
        ),
        (
            aiohttp.ClientOSError(errno.EHOSTUNREACH, "No route to host"),
            Failure("no route to host", True),
        ),
        (
            aiohttp.ConnectionTimeoutError("Connection timeout to host"),
            Failure("timed out connecting", True),
        ),
        (requests.ConnectTimeout("timed out"), Failure("timed out connecting", True)),
        (
            requests.ReadTimeout("read timed out"),
            Failure("timed out waiting for the answer", False),
        ),
        (TimeoutError(), Failure("timed out waiting for the answer", False)),
        (aiohttp.ServerDisconnectedError(), Failure("connection dropped", False)),
        (
            _wrapped(ConnectionResetError(errno.ECONNRESET, "reset")),
            Failure("connection dropped", False),
        ),
        (
            ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"),
            Failure(
                "TLS handshake failed ([SSL: WRONG_VERSION_NUMBER] wrong version number)", True
            ),
        ),
    ],
)
def test_explain_names_the_reason(exc: BaseException, failure: Failure) -> None:
    """Each library's way of saying a connection failed comes out as the same few words."""
    assert explain(exc) == failure
