"""``bulkprov templates``: the gallery over real HTTP to the mock, and the credential keys that
only an instance's synchronization templates tell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bulkprov.mockgraph import MockGraph
from bulkprov.templates import NO_INSTANCE, configuration_fields

from .enginekit import aws_manifest, run_engine
from .opskit import cli

pytestmark = pytest.mark.anyio
AWS_ID = "8b1025e4-1dd2-430b-a150-2ef79cd700f5"


async def templates(mock: MockGraph, tmp: Path, *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = await cli(mock, tmp, "templates", *args, "--json")
    assert code in (0, 1), err
    return code, orjson.loads(out)


async def test_search_lists_matches_with_provisioning_support(
    mock: MockGraph, tmp_path: Path
) -> None:
    """A search lists the templates whose display name contains it (any case), with id,
    publisher and provisioning support, and reads no keys for several matches."""
    code, body = await templates(mock, tmp_path, "aws")
    assert code == 0
    names = [t["displayName"] for t in body["templates"]]
    assert names == ["AWS Single Sign-on", "AWS Single-Account Access"]
    aws = body["templates"][1]
    assert aws["id"] == AWS_ID and aws["publisher"] == "Amazon"
    assert aws["provisioning"] is True and aws["supportedProvisioningTypes"] == ["sync"]
    assert aws["credentialKeys"] is None and aws["credentialKeysNote"] is None
    stats = mock.stats()["byRoute"]
    assert "GET /servicePrincipals" not in stats


async def test_keys_come_from_an_instance_or_are_unknown(mock: MockGraph, tmp_path: Path) -> None:
    """With an instance of a template in the tenant, its credential keys are read from the
    instance's synchronization templates (secrets marked); without one they are unknown,
    and the output says why."""
    result = await run_engine(
        mock, aws_manifest(tmp_path / "m.csv", 1, start=False), tmp_path / "l.jsonl", monitor=False
    )
    assert result.statuses["done"] == 1
    code, body = await templates(mock, tmp_path, "aws", "--keys")
    assert code == 0
    by_name = {t["displayName"]: t for t in body["templates"]}
    aws = by_name["AWS Single-Account Access"]
    assert aws["credentialKeys"] == [
        {
            "syncTemplate": "aws",
            "default": True,
            "keys": [
                {"key": "ClientSecret", "secret": True},
                {"key": "SecretToken", "secret": True},
            ],
        }
    ]
    assert aws["readFromServicePrincipal"]
    sso = by_name["AWS Single Sign-on"]
    assert sso["credentialKeys"] is None and sso["credentialKeysNote"] == NO_INSTANCE

    # one match (by name or by id): the keys are shown without --keys, in plain text too
    code, body = await templates(mock, tmp_path, AWS_ID)
    assert code == 0 and body["count"] == 1 and body["templates"][0]["credentialKeys"]
    code, out, err = await cli(mock, tmp_path, "templates", "single-account")
    assert code == 0, err
    assert "ClientSecret (secret), SecretToken (secret)" in out and AWS_ID in out
    code, out, err = await cli(mock, tmp_path, "templates", "Single Sign-on")
    assert code == 0, err
    assert "unknown (no instance in the tenant)" in out
    assert "only on the synchronization templates of an instance" in " ".join(out.split())


async def test_no_match_exits_1_and_quotes_are_escaped(mock: MockGraph, tmp_path: Path) -> None:
    """A search that matches nothing says so with exit code 1; a quote in it is an OData
    literal, not a broken filter."""
    code, out, err = await cli(mock, tmp_path, "templates", "O'Brien")
    assert code == 1, err
    assert "no gallery application template whose name contains 'O'Brien'" in out
    assert mock.stats()["byRoute"]["GET /applicationTemplates"] == {"200": 1}


def test_configuration_fields() -> None:
    """ConfigurationFields metadata gives the keys as a manifest spells them; a key is a
    secret when the template says so or when a manifest may not write it as it is
    (Password), and a plain setting (BaseAddress) is not."""
    tpl = {
        "metadata": [
            {
                "key": "ConfigurationFields",
                "value": orjson.dumps(
                    [
                        {"name": "baseaddress"},
                        {"name": "secrettoken", "secret": True},
                        {"name": "password"},
                    ]
                ).decode(),
            }
        ]
    }
    keys = configuration_fields(tpl)
    assert keys is not None
    assert [(k.key, k.secret) for k in keys] == [
        ("BaseAddress", False),
        ("SecretToken", True),
        ("Password", True),
    ]
    assert configuration_fields({"metadata": []}) is None
    assert (
        configuration_fields({"metadata": [{"key": "configurationfields", "value": "not json"}]})
        is None
    )
