"""``bulkprov mock-graph`` as a real subprocess: info file, MSAL token, Graph call, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from bulkprov.mockgraph import MockInfo, MockSettings, run_mock

from .graphclient import PlainGraph

pytestmark = pytest.mark.anyio


def _wait_for_info(path: Path, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> MockInfo:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _out, err = proc.communicate()
            raise AssertionError(f"mock-graph exited {proc.returncode}: {err.decode()[-2000:]}")
        if path.exists():
            try:
                return MockInfo.from_json(path.read_bytes())
            except (orjson.JSONDecodeError, TypeError, KeyError):
                pass  # created but not written yet
        time.sleep(0.05)
    raise AssertionError("the info file never appeared")


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _read_info(path: Path) -> MockInfo:
    return MockInfo.from_json(path.read_bytes())


async def test_cli_mock_graph_serves_msal_and_graph(tmp_path: Path) -> None:
    """`bulkprov mock-graph --port 0 --info-file F` writes F (mode 0600) with what a client
    needs: an MSAL token from it calls Graph, until the process is terminated."""
    info_file = tmp_path / "sub" / "mock.json"
    proc = await asyncio.to_thread(
        subprocess.Popen,
        [
            sys.executable,
            "-m",
            "bulkprov.cli",
            "mock-graph",
            "--port",
            "0",
            "--info-file",
            str(info_file),
            "--time-scale",
            "0.01",
            "--no-latency",
            "--state-dir",
            str(tmp_path / "state"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        info = await asyncio.to_thread(_wait_for_info, info_file, proc)
        assert _mode(info_file) == 0o600
        assert info.graph_url.startswith("https://127.0.0.1:")
        assert not info.graph_url.endswith(":0")
        assert info.authority == f"{info.graph_url}/{info.tenant_id}"
        assert info.time_scale == 0.01
        assert await asyncio.to_thread(os.path.isfile, info.ca_file)
        assert info.client_secret not in repr(info)
        async with PlainGraph(info) as g:  # a real MSAL client-credentials token
            r = await g.get(
                "/applicationTemplates",
                params={"$filter": "displayName eq 'AWS Single-Account Access'"},
            )
            assert r.status == 200
            assert [t["id"] for t in r.body["value"]] == ["8b1025e4-1dd2-430b-a150-2ef79cd700f5"]
        # SIGTERM, not SIGINT: a shell runs background jobs with SIGINT ignored
        proc.terminate()
        out, _err = await asyncio.to_thread(proc.communicate, timeout=10)
        assert proc.returncode == -signal.SIGTERM
        text = out.decode()
        assert "bulkprov mock Graph is serving" in text
        assert info.client_secret not in text  # the secret stays in the info file
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def test_run_mock_info_file_is_private_even_if_it_existed(tmp_path: Path) -> None:
    """run_mock writes the info file (it holds the client secret) with mode 0600, also over a
    pre-existing world-readable file."""
    info_file = tmp_path / "mock.json"
    await asyncio.to_thread(info_file.write_bytes, b"{}")
    os.chmod(info_file, 0o644)
    ready = asyncio.Event()
    task = asyncio.create_task(
        run_mock(MockSettings.quiet(time_scale=0.01), port=0, info_file=info_file, ready=ready)
    )
    try:
        await asyncio.wait_for(ready.wait(), 10)
        assert _mode(info_file) == 0o600
        info = await asyncio.to_thread(_read_info, info_file)
        async with PlainGraph(info) as g:
            assert (await g.get("/applicationTemplates")).status == 200
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
