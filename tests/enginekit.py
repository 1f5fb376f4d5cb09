"""Helpers for engine tests: manifests, and a Runner pointed at a mock."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from bulkprov.client import GraphClient
from bulkprov.mockgraph import MockGraph
from bulkprov.run import Runner, RunResult
from bulkprov.settings import ClientSettings, ConnectionSettings, Credential, RunSettings

AWS = "AWS Single-Account Access"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def write_secrets(directory: Path, key_id: str = KEY_ID, secret: str = SECRET_KEY) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "key-id").write_text(key_id + "\n")
    (directory / "secret").write_text(secret + "\n")


def aws_manifest(path: Path, n: int, *, prefix: str = "acct", start: bool = True) -> Path:
    write_secrets(path.parent / "secrets")
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["key", "displayName", "template", "cred.ClientSecret", "cred.SecretToken", "start"]
        )
        for i in range(n):
            w.writerow(
                [
                    f"{prefix}-{i:05d}",
                    f"AWS {prefix} {i:05d}",
                    AWS,
                    "file:secrets/key-id",
                    "file:secrets/secret",
                    str(start).lower(),
                ]
            )
    return path


def connection(mock: MockGraph) -> ConnectionSettings:
    info = mock.info
    assert info is not None
    return ConnectionSettings(
        graph_url=info.graph_url,
        authority_host=info.authority_host,
        tenant_id=info.tenant_id,
        client_id=info.client_id,
        credential=Credential(client_secret=info.client_secret),
        ca_file=Path(info.ca_file),
    )


async def run_engine(
    mock: MockGraph, manifest: Path, ledger: Path, client: dict[str, Any] | None = None, **run: Any
) -> RunResult:
    settings = ClientSettings(time_scale=mock.settings.time_scale, **(client or {}))
    async with GraphClient(connection(mock), settings) as c:
        runner = Runner(
            manifest=manifest, ledger_path=ledger, client=c, settings=RunSettings(**run)
        )
        return await runner.run()


def tenant_stats(mock: MockGraph) -> dict[str, Any]:
    stats = mock.stats()
    return dict(stats["tenants"][mock.info.tenant_id])  # type: ignore[union-attr]
