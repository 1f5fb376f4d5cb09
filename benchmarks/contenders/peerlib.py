"""What the two peer scripts share: arguments, the token, the timeline, the step list.

The peers do what Microsoft's seed documents do for one app, per instance: instantiate the
gallery template, wait until the service principal reads back (polling every 3 Graph seconds,
as bulkprov does), read the synchronization templates, create the job, validate the
credentials, save them, start the job. A 404 on a synchronization call right after
replication (another replica answered) is retried after the same poll interval, up to 10
times, as a careful script would; everything else is left to each peer's retry policy.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path
from typing import Any, TextIO

AWS = "AWS Single-Account Access"
POLL = 3.0  # Graph seconds between replication reads
POLL_TRIES = 100  # 300 Graph seconds, bulkprov's replication deadline
FLAP_TRIES = 10


def parse_args(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("manifest", type=Path)
    p.add_argument("--mock-info", type=Path, required=True)
    p.add_argument("--events", type=Path, required=True, help="JSONL timeline written here")
    # the same number of instances in flight as bulkprov's default
    p.add_argument("--concurrency", type=int, default=1000)
    return p.parse_args()


def load(manifest: Path) -> list[dict[str, str]]:
    with manifest.open(newline="") as f:
        return list(csv.DictReader(f))


def credentials(row: dict[str, str]) -> list[dict[str, str]]:
    out = []
    for k, v in row.items():
        if k.startswith("cred.") and v:
            if v.startswith("env:"):
                v = os.environ[v[4:]]
            out.append({"key": k[5:], "value": v})
    return out


class Timeline:
    """One line per finished instance: wall time, key, status (and the error if any)."""

    def __init__(self, path: Path) -> None:
        self.f: TextIO = path.open("w", buffering=1)
        self.cpu0 = time.process_time()

    def close(self) -> None:
        """Record the CPU seconds spent since the timeline opened (imports excluded)."""
        cpu = time.process_time() - self.cpu0
        self.f.write(json.dumps({"t": time.time(), "type": "cpu", "work_cpu": cpu}) + "\n")
        self.f.close()

    def __call__(self, key: str, status: str, error: str | None = None) -> None:
        rec: dict[str, Any] = {"t": time.time(), "key": key, "status": status}
        if error:
            rec["error"] = error[:300]
        self.f.write(json.dumps(rec) + "\n")


def info(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def msal_token(inf: dict[str, Any]) -> str:
    """A token for Graph from the mock's authority, MSAL client-credentials flow."""
    import msal
    import requests

    session = requests.Session()
    session.verify = inf["ca_file"]
    session.trust_env = False
    app = msal.ConfidentialClientApplication(
        inf["client_id"],
        client_credential=inf["client_secret"],
        authority=f"{inf['authority_host']}/{inf['tenant_id']}",
        validate_authority=False,
        instance_discovery=False,
        http_client=session,
    )
    result = app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
    if "access_token" not in result:
        raise SystemExit(f"no token: {result.get('error')}")
    return str(result["access_token"])
