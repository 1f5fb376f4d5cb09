"""Files that decide where the token and the client secret go (a mock info file, a CA file
from a flag or a profile) warn, naming the file and the fix, when other users can write them."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import anyio
import pytest

from bulkprov import connect
from bulkprov.cli import build_parser
from bulkprov.cliconnect import connection_options
from bulkprov.mockgraph import MockGraph
from bulkprov.mockgraph.server import write_info
from bulkprov.profiles import ProfileWarning

from .enginekit import aws_manifest

pytestmark = pytest.mark.anyio


def info_file(mock: MockGraph, tmp_path: Path) -> Path:
    assert mock.info is not None
    path = tmp_path / "mock.json"
    write_info(path, mock.info)
    return path


def warning(what: str, path: Path) -> str:
    """The warning's text, as a regular expression."""
    return (
        re.escape(f"{what} {path} can be written by other users (mode 620): ")
        + ".*"
        + re.escape(f"; run chmod go-w {path}")
    )


async def test_private_files_draw_no_warning(mock: MockGraph, tmp_path: Path) -> None:
    """The mock writes its info file readable by its owner only: nothing to warn about
    (warnings are errors in this suite)."""
    args = build_parser().parse_args(
        ["plan", "m.csv", "--mock-info", str(info_file(mock, tmp_path))]
    )
    assert connect.from_flags(connection_options(args)).conn.unreachable_hint == connect.MOCK_HINT


async def test_a_mock_info_file_others_can_write_warns(mock: MockGraph, tmp_path: Path) -> None:
    """Whoever can write the mock info file decides where the client secret goes."""
    path = info_file(mock, tmp_path)
    path.chmod(0o620)
    args = build_parser().parse_args(["plan", "m.csv", "--mock-info", str(path)])
    with pytest.warns(ProfileWarning, match=warning("mock info file", path)):
        connect.from_flags(connection_options(args))


async def test_a_ca_file_others_can_write_warns(
    mock: MockGraph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A --ca-file others can write warns: they could make TLS trust a host of theirs."""
    assert mock.info is not None
    ca = tmp_path / "ca.pem"
    shutil.copyfile(mock.info.ca_file, ca)
    ca.chmod(0o620)
    monkeypatch.setenv("BULKPROV_CLIENT_SECRET", "not-a-real-secret")
    args = build_parser().parse_args(
        ["plan", "m.csv", "--tenant-id", "t", "--client-id", "c", "--ca-file", str(ca)]
    )
    with pytest.warns(ProfileWarning, match=warning("CA file", ca)):
        connect.from_flags(connection_options(args))


async def test_a_profiles_ca_file_others_can_write_warns(tmp_path: Path) -> None:
    """A profile's ca_file is checked like the flag's."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    ca.chmod(0o620)
    (tmp_path / "secret").write_text("not-a-real-secret\n")
    (tmp_path / "secret").chmod(0o600)
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(
        '[profiles.p]\ntenant_id = "t"\nclient_id = "c"\n'
        'client_secret = "file:secret"\nca_file = "ca.pem"\n'
    )
    profiles.chmod(0o600)
    args = build_parser().parse_args(
        ["plan", "m.csv", "--profiles", str(profiles), "--profile", "p"]
    )
    with pytest.warns(ProfileWarning, match=warning("CA file", ca)):
        connect.from_flags(connection_options(args))


async def test_the_cli_warns_once_on_stderr(mock: MockGraph, tmp_path: Path) -> None:
    """`bulkprov plan` with a mock info file others can write says so once on stderr, and
    goes on."""
    path = info_file(mock, tmp_path)
    path.chmod(0o620)
    manifest = aws_manifest(tmp_path / "m.csv", 1)
    proc = await anyio.run_process(
        [sys.executable, "-m", "bulkprov.cli", "plan", str(manifest), "--mock-info", str(path)],
        check=False,
        env={**os.environ, "COLUMNS": "400"},
    )
    stderr = proc.stderr.decode()
    assert proc.returncode == 0, stderr
    assert len(re.findall(warning("mock info file", path), stderr)) == 1, stderr
