"""The URL-safety helpers: guid, token, odata_string, GraphClient.url and ConnectionSettings."""

from __future__ import annotations

import pytest

from bulkprov.client import GraphClient
from bulkprov.errors import ConfigError, UnsafeRequest
from bulkprov.graph import guid, odata_string, token
from bulkprov.settings import ConnectionSettings, Credential

GUID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


@pytest.mark.parametrize("value", [GUID, GUID.upper(), "00000000-0000-0000-0000-000000000000"])
def test_guid_accepts_guids(value: str) -> None:
    """guid() returns a GUID unchanged, in either case."""
    assert guid(value, "id") == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "../x",
        "..",
        "a/b",
        "%2F",
        GUID + "/../x",
        "../" + GUID,
        GUID + "%2F",
        GUID + "\n",
        GUID + " ",
        " " + GUID,
        GUID[:-1],
        GUID + "0",
        "{" + GUID + "}",
        GUID.replace("-", ""),
        "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fg",
        GUID + "?$select=id",
        GUID + "#x",
    ],
)
def test_guid_rejects_non_guids_and_path_tricks(value: str) -> None:
    """guid() raises UnsafeRequest, naming what was checked, for anything but a bare GUID."""
    with pytest.raises(UnsafeRequest, match="application id"):
        guid(value, "application id")


@pytest.mark.parametrize("value", [None, 12, b"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"])
def test_guid_rejects_non_strings(value: object) -> None:
    """guid() refuses values that are not str at all."""
    with pytest.raises(UnsafeRequest):
        guid(value, "id")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", ["AWSSingleAccountAccess.e2f1a0b9c8d7.1a2b3c", "scim", "a", "Job_1-2.3", "x" * 256]
)
def test_token_accepts_plain_identifiers(value: str) -> None:
    """token() returns a plain identifier (letters, digits, . _ -) unchanged."""
    assert token(value, "job id") == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "..",
        "a..b",
        "../x",
        "x/..",
        "/",
        "a/b",
        "%2F",
        "a%2Fb",
        "a b",
        " a",
        "a ",
        "a\n",
        "a\t",
        ".hidden",
        "-x",
        "a?b",
        "a#b",
        "a&b",
        "a'b",
        "x" * 257,
        "ü",
    ],
)
def test_token_rejects_traversal_and_separators(value: str) -> None:
    """token() raises UnsafeRequest for '..', '/', '%2F', spaces and anything not plain."""
    with pytest.raises(UnsafeRequest, match="job id"):
        token(value, "job id")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "'plain'"),
        ("O'Brien", "'O''Brien'"),
        ("''", "''''''"),
        ("a' or 1 eq 1 or 'b", "'a'' or 1 eq 1 or ''b'"),
        ("50% & (x) / y", "'50% & (x) / y'"),
        ("", "''"),
    ],
)
def test_odata_string_doubles_quotes(value: str, expected: str) -> None:
    """odata_string() wraps in single quotes and doubles every single quote inside."""
    assert odata_string(value) == expected


def test_odata_string_cannot_be_closed_early() -> None:
    """After the opening quote, every quote in an odata_string() literal comes in pairs."""
    lit = odata_string("x' eq 'y'' and '")
    inner = lit[1:-1]
    assert lit[0] == lit[-1] == "'" and inner.replace("''", "").count("'") == 0


def conn(graph_url: str = "https://graph.example.test", **kw: object) -> ConnectionSettings:
    return ConnectionSettings(
        graph_url=graph_url,
        tenant_id="t",
        client_id="c",
        credential=Credential(client_secret="dummy-not-a-secret"),
        **kw,
    )  # type: ignore[arg-type]


@pytest.fixture
def client() -> GraphClient:
    return GraphClient(conn())


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/v1.0/applications",
        "https://graph.example.test.evil.example/v1.0/x",
        "https://graph.example.test@evil.example/v1.0/x",
        "http://graph.example.test/v1.0/applications",
        "https://graph.example.test:8443/v1.0/applications",
        "https://GRAPH.example.test:444/v1.0/applications",
        "HTTPS://evil.example/v1.0/x",
        "ftp://graph.example.test/v1.0/x",
    ],
)
def test_url_refuses_other_hosts_ports_and_schemes(client: GraphClient, url: str) -> None:
    """url() refuses an absolute URL whose scheme, host or port is not the configured Graph."""
    with pytest.raises(UnsafeRequest):
        client.url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://graph.example.test/v1.0/applications?$skiptoken=abc",
        "https://GRAPH.Example.Test/v1.0/servicePrincipals",
    ],
)
def test_url_accepts_same_origin_absolute_urls(client: GraphClient, url: str) -> None:
    """url() returns a same-origin absolute URL (an @odata.nextLink) unchanged."""
    assert client.url(url) == url


@pytest.mark.parametrize(
    "path", ["/applications", "/servicePrincipals(appId='x')", "//evil.example/x", "/@evil.example"]
)
def test_url_joins_paths_onto_the_base_url(client: GraphClient, path: str) -> None:
    """url() puts a path after the versioned base URL, so it cannot leave the Graph host."""
    got = client.url(path)
    assert got == "https://graph.example.test/v1.0" + path
    assert got.startswith("https://graph.example.test/v1.0/")


@pytest.mark.parametrize(
    "path",
    [
        "applications",
        "evil.example/x",
        "",
        "../v1.0/x",
        "graph.example.test/v1.0/x",
        "javascript:alert(1)",
    ],
)
def test_url_rejects_relative_paths_without_leading_slash(client: GraphClient, path: str) -> None:
    """url() refuses a relative path that does not start with '/'."""
    with pytest.raises(UnsafeRequest, match="must start with '/'"):
        client.url(path)


def test_url_on_a_loopback_http_graph() -> None:
    """With an http://127.0.0.1:port Graph, that exact origin passes and https on it does not."""
    c = GraphClient(conn("http://127.0.0.1:8080"))
    assert c.url("http://127.0.0.1:8080/v1.0/x") == "http://127.0.0.1:8080/v1.0/x"
    assert c.url("/x") == "http://127.0.0.1:8080/v1.0/x"
    for other in (
        "https://127.0.0.1:8080/v1.0/x",
        "http://127.0.0.1:8081/v1.0/x",
        "http://127.0.0.2:8080/v1.0/x",
        "http://localhost:8080/v1.0/x",
    ):
        with pytest.raises(UnsafeRequest):
            c.url(other)


@pytest.mark.parametrize(
    "url",
    [
        "http://graph.example.test",
        "http://10.0.0.1",
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io",
    ],
)
def test_connection_settings_refuse_plain_http_off_loopback(url: str) -> None:
    """http:// to a non-loopback host is refused (ConfigError) unless allow_http is set."""
    with pytest.raises(ConfigError, match="not TLS"):
        conn(url)
    assert conn(url, allow_http=True).graph_url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1",
        "http://127.0.0.1:8080",
        "http://localhost:1",
        "http://[::1]:8443",
        "https://graph.microsoft.com",
    ],
)
def test_connection_settings_accept_loopback_http_and_https(url: str) -> None:
    """http:// on loopback and any https:// Graph are accepted without allow_http."""
    assert conn(url).base_url == url + "/v1.0"


def test_connection_settings_refuse_plain_http_authority() -> None:
    """The authority host gets the same TLS rule as Graph."""
    with pytest.raises(ConfigError, match="authority_host"):
        conn(authority_host="http://login.example.test")


@pytest.mark.parametrize("url", ["graph.example.test", "file:///etc/passwd", "https://"])
def test_connection_settings_refuse_non_urls(url: str) -> None:
    """A Graph URL that is not an absolute http(s) URL with a host is refused."""
    with pytest.raises(ConfigError, match="absolute URL"):
        conn(url)


def test_credential_repr_hides_the_secret() -> None:
    """The client credential's repr shows its kind, never the secret."""
    c = conn()
    assert "dummy-not-a-secret" not in repr(c) and "dummy-not-a-secret" not in repr(c.credential)
