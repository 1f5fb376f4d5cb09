"""The mock's identity platform and Graph's bearer-token check, driven by real MSAL over TLS."""

from __future__ import annotations

import asyncio
from typing import Any

import msal
import pytest
import requests

from bulkprov.mockgraph import MockGraph, MockSettings
from bulkprov.mockgraph.identity import make_client_certificate

from .graphclient import PlainGraph, acquire_token, msal_app

pytestmark = pytest.mark.anyio

SCOPES = ["https://graph.microsoft.com/.default"]


def _token_result(mock: MockGraph, credential: Any) -> dict[str, Any]:
    assert mock.info is not None
    result: dict[str, Any] = msal_app(mock.info, credential).acquire_token_for_client(scopes=SCOPES)
    return result


async def _templates_status(mock: MockGraph, token: str) -> int:
    assert mock.info is not None
    async with PlainGraph(mock.info, token=token) as g:
        return (await g.get("/applicationTemplates", params={"$top": "1"})).status


async def test_client_secret_token_calls_graph(mock: MockGraph) -> None:
    """MSAL's ConfidentialClientApplication gets a bearer token with the client secret."""
    assert mock.info is not None
    result = await asyncio.to_thread(_token_result, mock, mock.info.client_secret)
    assert result.get("token_type") == "Bearer", result
    assert result["access_token"].count(".") == 2  # a JWT
    assert await _templates_status(mock, result["access_token"]) == 200
    assert mock.stats()["tokensIssued"] == 1


async def test_certificate_with_thumbprint_gets_token(mock: MockGraph) -> None:
    """A certificate credential (private key + SHA-1 thumbprint, x5t) registered on the app is
    accepted, and its token calls Graph."""
    assert mock.info is not None
    key_pem, cert_pem, thumbprint = make_client_certificate("bulkprov-test")
    reg = mock.tokens.registration(mock.info.tenant_id, mock.info.client_id)
    assert reg is not None
    assert reg.add_certificate(cert_pem) == thumbprint
    cred = {"private_key": key_pem.decode(), "thumbprint": thumbprint}
    result = await asyncio.to_thread(_token_result, mock, cred)
    assert "access_token" in result, result
    assert await _templates_status(mock, result["access_token"]) == 200


async def test_certificate_with_public_certificate_gets_token(mock: MockGraph) -> None:
    """A certificate credential given as private key + public certificate (MSAL signs PS256
    with x5t#S256 and sends x5c) is accepted."""
    assert mock.info is not None
    key_pem, cert_pem, _thumb = make_client_certificate("bulkprov-test-s256")
    reg = mock.tokens.registration(mock.info.tenant_id, mock.info.client_id)
    assert reg is not None
    reg.add_certificate(cert_pem)
    cred = {"private_key": key_pem.decode(), "public_certificate": cert_pem.decode()}
    result = await asyncio.to_thread(_token_result, mock, cred)
    assert "access_token" in result, result
    assert await _templates_status(mock, result["access_token"]) == 200


async def test_unregistered_certificate_is_refused(mock: MockGraph) -> None:
    """A certificate that is not registered on the app gets invalid_client (AADSTS700027)."""
    key_pem, _cert_pem, thumbprint = make_client_certificate("stranger")
    cred = {"private_key": key_pem.decode(), "thumbprint": thumbprint}
    result = await asyncio.to_thread(_token_result, mock, cred)
    assert "access_token" not in result
    assert result.get("error") == "invalid_client"
    assert 700027 in result.get("error_codes", [])


async def test_wrong_secret_is_refused(mock: MockGraph) -> None:
    """A wrong client secret is refused with invalid_client (AADSTS7000215) and no token."""
    result = await asyncio.to_thread(_token_result, mock, "not-the-secret")
    assert "access_token" not in result
    assert result.get("error") == "invalid_client"
    assert "AADSTS7000215" in result.get("error_description", "")


async def test_graph_call_without_token_is_401(mock: MockGraph) -> None:
    """A Graph call without a bearer token is 401 InvalidAuthenticationToken with Graph's error
    body (innerError with request-id)."""
    assert mock.info is not None
    async with PlainGraph(mock.info, token="unused") as g:
        r = await g.get(
            "/applicationTemplates", auth=False, headers={"client-request-id": "abc-123"}
        )
    assert r.status == 401
    assert r.error_code == "InvalidAuthenticationToken"
    inner = r.body["error"]["innerError"]
    assert inner["request-id"] == r.headers["request-id"]
    assert inner["client-request-id"] == "abc-123"
    assert "date" in inner
    assert "WWW-Authenticate" in r.headers


async def test_forged_token_is_401(mock: MockGraph) -> None:
    """A token not signed by the mock's key is 401 InvalidAuthenticationToken."""
    assert mock.info is not None
    good = await asyncio.to_thread(acquire_token, mock.info)
    head, body, _sig = good.split(".")
    async with PlainGraph(mock.info, token=f"{head}.{body}.AAAA") as g:
        r = await g.get("/applicationTemplates")
    assert r.status == 401 and r.error_code == "InvalidAuthenticationToken"


@pytest.mark.parametrize("mock_settings", [MockSettings.quiet(time_scale=0.01, token_lifetime=1)])
async def test_expired_token_is_401(mock: MockGraph) -> None:
    """A token used after its lifetime (1 s here) is refused with 401 'token is expired'."""
    assert mock.info is not None
    token = await asyncio.to_thread(acquire_token, mock.info)
    assert await _templates_status(mock, token) == 200
    await asyncio.sleep(1.2)
    async with PlainGraph(mock.info, token=token) as g:
        r = await g.get("/applicationTemplates")
    assert r.status == 401
    assert r.error_code == "InvalidAuthenticationToken"
    assert "expired" in r.body["error"]["message"]


async def test_msal_refuses_plain_http_authority(mock: MockGraph) -> None:
    """MSAL refuses an http:// authority with a ValueError about https: the reason the mock
    serves TLS with its own CA."""
    assert mock.info is not None
    http_authority = mock.info.authority.replace("https://", "http://", 1)
    session = requests.Session()
    session.trust_env = False
    with pytest.raises(ValueError, match="https"):
        msal.ConfidentialClientApplication(
            mock.info.client_id,
            client_credential=mock.info.client_secret,
            authority=http_authority,
            instance_discovery=False,
            validate_authority=False,
            http_client=session,
        )
    session.close()
