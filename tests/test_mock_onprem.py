"""The mock's device-code sign-in (real MSAL PublicClientApplication) and its beta on-premises
agent-group routes, which accept delegated tokens only."""

from __future__ import annotations

import asyncio
from typing import Any

import msal
import orjson
import pytest
import requests

from bulkprov.mockgraph import MockGraph, MockInfo, MockSettings
from bulkprov.mockgraph.identity import b64url_decode

from .graphclient import PlainGraph

pytestmark = pytest.mark.anyio
SCOPES = ["https://graph.microsoft.com/.default"]
GROUPS = "/onPremisesPublishingProfiles/provisioning/agentGroups"


def public_app(info: MockInfo, tenant: str | None = None) -> msal.PublicClientApplication:
    session = requests.Session()
    session.verify = info.ca_file
    session.trust_env = False
    return msal.PublicClientApplication(
        info.client_id,
        authority=f"{info.authority_host}/{tenant or info.tenant_id}",
        instance_discovery=False,
        validate_authority=False,
        http_client=session,
    )


def device_flow(info: MockInfo, on_code: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    app = public_app(info)
    flow = app.initiate_device_flow(scopes=SCOPES)
    if on_code is not None:
        on_code(flow)
    result = app.acquire_token_by_device_flow(flow)
    return flow, result


def claims(token: str) -> dict[str, Any]:
    return dict(orjson.loads(b64url_decode(token.split(".")[1])))


async def delegated_token(mock: MockGraph) -> str:
    assert mock.info is not None
    _flow, result = await asyncio.to_thread(device_flow, mock.info)
    assert "access_token" in result, result
    return str(result["access_token"])


class TestDeviceCode:
    async def test_msal_device_flow_gets_delegated_token(self, mock: MockGraph) -> None:
        """MSAL's device flow against the mock: a user code and message, pending polls, then a
        delegated token (idtyp user, scp, the mock admin) that calls Graph; MSAL caches the
        account and refreshes the token silently with the refresh token."""
        assert mock.info is not None
        info = mock.info

        def run() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
            app = public_app(info)
            flow = app.initiate_device_flow(scopes=SCOPES)
            result = app.acquire_token_by_device_flow(flow)
            accounts = app.get_accounts()
            silent = app.acquire_token_silent(SCOPES, account=accounts[0], force_refresh=True)
            return flow, result, silent

        flow, result, silent = await asyncio.to_thread(run)
        assert len(flow["user_code"]) == 9 and flow["user_code"] in flow["message"]
        assert f"{info.authority_host}/devicelogin" in flow["message"]
        assert "access_token" in result, result
        c = claims(result["access_token"])
        assert c["idtyp"] == "user" and c["tid"] == info.tenant_id
        assert "Directory.ReadWrite.All" in c["scp"].split()
        assert "roles" not in c
        assert result["id_token_claims"]["preferred_username"] == info.users[0]
        assert silent is not None and "access_token" in silent
        assert silent["access_token"] != result["access_token"]
        async with PlainGraph(info, token=silent["access_token"]) as g:
            assert (await g.get("/applicationTemplates", params={"$top": "1"})).status == 200
        by_route = mock.stats()["byRoute"]
        # one pending poll before the mock's user approved (device_code_auto_approve=1)
        assert by_route["POST /{tenant}/oauth2/v2.0/token"]["400"] >= 1

    @pytest.mark.parametrize(
        "mock_settings", [MockSettings.quiet(time_scale=0.01, device_code_auto_approve=None)]
    )
    async def test_approval_and_decline_through_control(self, mock: MockGraph) -> None:
        """With automatic approval off, /_mock/control approves (or declines) a user code."""
        assert mock.info is not None
        info = mock.info

        async def control(body: dict[str, Any]) -> int:
            async with PlainGraph(info) as g:
                reply = await g.post(f"{info.graph_url}/_mock/control", json=body)
                return reply.status

        loop = asyncio.get_running_loop()

        def decide(approve: bool) -> Any:
            def on_code(flow: dict[str, Any]) -> None:
                fut = asyncio.run_coroutine_threadsafe(
                    control(
                        {
                            "action": "approve_device_code",
                            "user_code": flow["user_code"],
                            "approve": approve,
                        }
                    ),
                    loop,
                )
                assert fut.result(timeout=10) == 200

            return on_code

        _flow, result = await asyncio.to_thread(device_flow, info, decide(True))
        assert "access_token" in result, result
        _flow, result = await asyncio.to_thread(device_flow, info, decide(False))
        assert result.get("error") == "authorization_declined"
        assert "access_token" not in result

    async def test_unknown_client_refused(self, mock: MockGraph) -> None:
        """A device code for a client the tenant does not know is refused (AADSTS700016)."""
        assert mock.info is not None
        info = mock.info

        def run() -> dict[str, Any]:
            session = requests.Session()
            session.verify = info.ca_file
            session.trust_env = False
            app = msal.PublicClientApplication(
                "00000000-0000-0000-0000-000000000001",
                authority=f"{info.authority_host}/{info.tenant_id}",
                instance_discovery=False,
                validate_authority=False,
                http_client=session,
            )
            return dict(app.initiate_device_flow(scopes=SCOPES))

        flow = await asyncio.to_thread(run)
        assert "user_code" not in flow and flow.get("error") == "unauthorized_client"


class TestAgentGroups:
    async def test_app_only_token_gets_403(self, mock: MockGraph) -> None:
        """Every agent-group route answers 403 Authorization_RequestDenied to an app-only
        token, as Graph does (delegated permissions only)."""
        assert mock.info is not None
        async with PlainGraph(mock.info, version="beta") as g:
            app = await g.post(
                "/applicationTemplates/8b1025e4-1dd2-430b-a150-2ef79cd700f5/instantiate",
                json={"displayName": "AWS onprem"},
            )
            assert app.status == 201
            app_id = app.body["application"]["id"]
            for reply in (
                await g.get(GROUPS),
                await g.get("/onPremisesPublishingProfiles/provisioning/agents"),
                await g.put(
                    f"/applications/{app_id}/connectorGroup/$ref",
                    json={"@odata.id": f"https://graph.microsoft.com/beta{GROUPS}/x"},
                ),
                await g.get(f"/applications/{app_id}/connectorGroup"),
            ):
                assert reply.status == 403, reply.body
                assert reply.error_code == "Authorization_RequestDenied"
                assert "delegated" in reply.body["error"]["message"]

    async def test_delegated_token_lists_filters_and_assigns(self, mock: MockGraph) -> None:
        """With a delegated token: the seeded agent groups and agents are listed, $filter by
        displayName works, and an application is assigned, read back and unassigned."""
        assert mock.info is not None
        token = await delegated_token(mock)
        async with PlainGraph(mock.info, version="beta", token=token) as g:
            groups = await g.get(GROUPS)
            assert groups.status == 200
            names = {x["displayName"]: x for x in groups.body["value"]}
            assert set(names) == {"Default", "HR on-premises", "Datacenter West"}
            assert [n for n, x in names.items() if x["isDefault"]] == ["Default"]
            assert {x["publishingType"] for x in names.values()} == {"provisioning"}
            hr = names["HR on-premises"]
            flt = await g.get(GROUPS, params={"$filter": "displayName eq 'HR on-premises'"})
            assert [x["id"] for x in flt.body["value"]] == [hr["id"]]
            one = await g.get(f"{GROUPS}/{hr['id']}")
            assert one.status == 200 and one.body["displayName"] == "HR on-premises"
            agents = await g.get("/onPremisesPublishingProfiles/provisioning/agents")
            assert agents.status == 200 and len(agents.body["value"]) == 3
            assert {a["status"] for a in agents.body["value"]} == {"active", "inactive"}

            app = await g.post(
                "/applicationTemplates/8b1025e4-1dd2-430b-a150-2ef79cd700f5/instantiate",
                json={"displayName": "AWS onprem"},
            )
            app_id = app.body["application"]["id"]
            ref = f"/applications/{app_id}/connectorGroup/$ref"
            assert (await g.get(f"/applications/{app_id}/connectorGroup")).status == 404
            put = await g.put(
                ref, json={"@odata.id": f"https://graph.microsoft.com/beta{GROUPS}/{hr['id']}"}
            )
            assert put.status == 204, put.body
            got = await g.get(f"/applications/{app_id}/connectorGroup")
            assert got.status == 200
            assert got.body["id"] == hr["id"] and got.body["name"] == "HR on-premises"
            got_ref = await g.get(ref)
            assert got_ref.body["@odata.id"].endswith(f"{GROUPS}/{hr['id']}")
            bad = await g.put(ref, json={"@odata.id": "https://graph.microsoft.com/beta/x"})
            assert bad.status == 400
            unknown = await g.put(
                ref,
                json={
                    "@odata.id": f"https://graph.microsoft.com/beta{GROUPS}/"
                    "00000000-0000-0000-0000-000000000000"
                },
            )
            assert unknown.status == 404
            assert (await g.delete(ref)).status == 204
            assert (await g.get(f"/applications/{app_id}/connectorGroup")).status == 404

    async def test_not_in_v1(self, mock: MockGraph) -> None:
        """The agent-group routes are beta only: v1.0 answers 400 for the segment."""
        assert mock.info is not None
        token = await delegated_token(mock)
        async with PlainGraph(mock.info, version="v1.0", token=token) as g:
            reply = await g.get(GROUPS)
            assert reply.status == 400 and "onPremisesPublishingProfiles" in str(reply.body)
