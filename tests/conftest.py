"""Shared fixtures: a mock Graph on a loopback port, and a plain client with a real token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from bulkprov.mockgraph import MockGraph, MockSettings
from bulkprov.tls import restore_tls_read_buffers, small_tls_read_buffers

from .graphclient import PlainGraph


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True, scope="session")
def small_tls_buffers() -> Iterator[None]:
    """asyncio's TLS read buffers capped at one record, as ``bulkprov``'s entry point does for
    its process, and restored after the tests."""
    before = small_tls_read_buffers()
    yield
    restore_tls_read_buffers(before)


@pytest.fixture(autouse=True)
def fingerprint_key_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fingerprint key (and any other state) goes to a directory of the test's own: tests
    never read or write the real ``~/.local/state``."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    monkeypatch.delenv("BULKPROV_FINGERPRINT_KEY_FILE", raising=False)


@pytest.fixture(autouse=True)
def quiet_logs() -> None:
    """Engine logs at warning level in tests (bulkprov's only global state is logging)."""
    from bulkprov.log import configure

    configure(console_level="warning")


@pytest.fixture
def mock_settings() -> MockSettings:
    """Override in a test module (or parametrize) to shape the mock."""
    return MockSettings.quiet(time_scale=0.01)


@pytest.fixture
async def mock(mock_settings: MockSettings) -> AsyncIterator[MockGraph]:
    async with MockGraph(mock_settings) as m:
        yield m


@pytest.fixture
async def graph(mock: MockGraph) -> AsyncIterator[PlainGraph]:
    assert mock.info is not None
    async with PlainGraph(mock.info) as g:
        yield g
