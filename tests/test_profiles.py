"""Connection profiles: the TOML file, its errors, and how flags and variables combine with it."""

from __future__ import annotations

import os
from pathlib import Path

import msal
import pytest

from bulkprov import profiles
from bulkprov.auth import TokenProvider
from bulkprov.cli import build_parser
from bulkprov.cliconnect import connection_options
from bulkprov.connect import ConnectionOptions, from_flags
from bulkprov.errors import ConfigError
from bulkprov.settings import ConnectionSettings, Credential, ManagedIdentity

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "66666666-7777-8888-9999-000000000000"
GOOD = f"""
[profiles.contoso]
tenant_id = "{TENANT}"
client_id = "{CLIENT}"
client_secret = "env:CONTOSO_SECRET"

[profiles.fabrikam-gov]
tenant_id = "{TENANT}"
client_id = "{CLIENT}"
certificate_file = "certs/app.pem"
graph_url = "https://graph.microsoft.us"
authority_host = "https://login.microsoftonline.us"
api_version = "beta"

[profiles.filed]
tenant_id = "{TENANT}"
client_id = "{CLIENT}"
client_secret = "file:secrets/contoso"
ca_file = "ca.pem"

[profiles.admin]
auth = "device_code"
tenant_id = "{TENANT}"
client_id = "{CLIENT}"

[profiles.vm]
auth = "managed_identity"
tenant_id = "{TENANT}"

[profiles.vm-user]
tenant_id = "{TENANT}"
managed_identity_client_id = "{CLIENT}"
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No BULKPROV_* variable of the machine leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("BULKPROV_") or name == "CONTOSO_SECRET":
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str = GOOD, name: str = "profiles.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(0o600)
    (tmp_path / "certs").mkdir(exist_ok=True)
    (tmp_path / "certs" / "app.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "secrets").mkdir(exist_ok=True)
    secret = tmp_path / "secrets" / "contoso"
    secret.write_text("from-a-file\n")
    secret.chmod(0o600)
    (tmp_path / "ca.pem").write_text("ca")
    return path


def args(*argv: str) -> ConnectionOptions:
    return connection_options(build_parser().parse_args(["plan", "m.csv", *argv]))


class TestParse:
    def test_every_credential_kind(self, tmp_path: Path) -> None:
        """A file with a secret, a certificate, device code and managed identity profiles
        parses into the right kinds, with relative paths resolved against the file."""
        path = write(tmp_path)
        got = profiles.load(path)
        assert {n: p.auth for n, p in got.items()} == {
            "contoso": "secret",
            "fabrikam-gov": "certificate",
            "filed": "secret",
            "admin": "device_code",
            "vm": "managed_identity",
            "vm-user": "managed_identity",
        }
        assert got["fabrikam-gov"].certificate_file == tmp_path / "certs" / "app.pem"
        assert got["fabrikam-gov"].api_version == "beta"
        assert got["filed"].ca_file == tmp_path / "ca.pem"
        assert got["vm"].managed_identity == ManagedIdentity()
        assert got["vm-user"].managed_identity == ManagedIdentity(id_type="client_id", id=CLIENT)
        assert not got["admin"].app_only and got["contoso"].app_only

    def test_secret_reference_is_read_only_when_used(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """env: and file: references are read when the credential is built, not when parsed."""
        path = write(tmp_path)
        got = profiles.load(path)  # CONTOSO_SECRET is not set: parsing still works
        with pytest.raises(ConfigError, match="CONTOSO_SECRET is not set"):
            got["contoso"].credential()
        monkeypatch.setenv("CONTOSO_SECRET", "s3cr3t-value")
        assert got["contoso"].credential().client_secret == "s3cr3t-value"
        assert got["filed"].credential().client_secret == "from-a-file"
        assert got["admin"].credential().kind == "device_code"

    @pytest.mark.parametrize(
        ("body", "field", "message"),
        [
            ('client_secret = "hunter2-literal"', "client_secret", "must be a reference"),
            ('client_secret = "env:1BAD"', "client_secret", "not a valid environment"),
            ('client_secret = "env:X"\ncertificate_file = "a.pem"', "auth", "no credential"),
            ('auth = "password"', "auth", "must be one of"),
            ('auth = "device_code"\nclient_secret = "env:X"', "client_secret", "does not apply"),
            ('client_secret = "env:X"\napi_version = "v2"', "api_version", "v1.0 or beta"),
            ('client_secret = "env:X"\ngraph_url = "graph.microsoft.com"', "graph_url", "absolute"),
            ('client_secret = "env:X"\ntenant = "x"', "tenant", "did you mean 'tenant_id'"),
            ('client_secret = "env:X"\nallow_http = "yes"', "allow_http", "true or false"),
            ('client_secret = ""', "client_secret", "non-empty string"),
            ('client_secret = "env:X"\nsecrets_dirs = 5', "secrets_dirs", "list of directories"),
            ('client_secret = "env:X"\nsecrets_dirs = ["a", ""]', "secrets_dirs[1]", "non-empty"),
        ],
    )
    def test_bad_field_named(self, tmp_path: Path, body: str, field: str, message: str) -> None:
        """A bad field is reported with the file, the profile and the field."""
        text = f'[profiles.p1]\ntenant_id = "{TENANT}"\nclient_id = "{CLIENT}"\n{body}\n'
        path = write(tmp_path, text)
        with pytest.raises(ConfigError) as exc:
            profiles.load(path)
        text = str(exc.value)
        assert str(path) in text and "profile 'p1'" in text and f"field '{field}'" in text
        assert message in text
        assert "hunter2" not in text  # a literal secret is refused without being echoed

    def test_secrets_dirs_are_relative_to_the_file_and_checked_when_used(
        self, tmp_path: Path
    ) -> None:
        """secrets_dirs are relative to the profiles file; a missing one is an error naming the
        file, the profile and the field when the profile is used, not when the file is read."""
        text = (
            f'[profiles.p]\ntenant_id = "{TENANT}"\nclient_id = "{CLIENT}"\n'
            'client_secret = "file:key"\nsecrets_dirs = ["shared", "/nowhere/at/all"]\n'
        )
        path = write(tmp_path, text)
        prof = profiles.load(path)["p"]
        assert prof.secrets_dirs == (tmp_path / "shared", Path("/nowhere/at/all"))
        assert prof.own_sources() == (frozenset(), frozenset({tmp_path / "key"}))
        (tmp_path / "shared").mkdir()
        with pytest.raises(ConfigError) as exc:
            prof.checked_secrets_dirs()
        text = str(exc.value)
        assert str(path) in text and "profile 'p'" in text and "field 'secrets_dirs[1]'" in text
        assert "/nowhere/at/all does not exist" in text

    @pytest.mark.parametrize("missing", ["tenant_id", "client_id"])
    def test_missing_required(self, tmp_path: Path, missing: str) -> None:
        """tenant_id and client_id are required (client_id not for a managed identity)."""
        fields = {"tenant_id": TENANT, "client_id": CLIENT}
        del fields[missing]
        lines = "\n".join(f'{k} = "{v}"' for k, v in fields.items())
        path = write(tmp_path, f'[profiles.p]\n{lines}\nclient_secret = "env:X"\n')
        with pytest.raises(ConfigError, match=f"profile 'p', field '{missing}': is required"):
            profiles.load(path)

    def test_not_toml_and_unknown_profile(self, tmp_path: Path) -> None:
        """Invalid TOML names the file; an unknown profile lists the ones there are."""
        bad = write(tmp_path, "[profiles.x\n", name="bad.toml")
        with pytest.raises(ConfigError, match=f"profiles file {bad}: not valid TOML"):
            profiles.load(bad)
        path = write(tmp_path)
        with pytest.raises(ConfigError, match=r"profile 'contosso': no such profile .*'contoso'"):
            profiles.select(path, "contosso")
        with pytest.raises(ConfigError, match="cannot read"):
            profiles.load(tmp_path / "absent.toml")

    def test_writable_by_others_warns(self, tmp_path: Path) -> None:
        """A profiles file others can write warns (they could redirect the token); one others
        can only read does not (it holds references, not secrets)."""
        path = write(tmp_path)
        path.chmod(0o644)
        profiles.load(path)  # no warning (warnings are errors in this suite)
        path.chmod(0o664)
        with pytest.warns(profiles.ProfileWarning, match="can be written by other users"):
            profiles.load(path)

    def test_readable_secret_file_warns(self, tmp_path: Path) -> None:
        """A referenced secret file that others can read warns when it is read."""
        path = write(tmp_path)
        (tmp_path / "secrets" / "contoso").chmod(0o644)
        with pytest.warns(profiles.ProfileWarning, match="readable by other users"):
            profiles.load(path)["filed"].credential()


class TestConnectPrecedence:
    def test_profile_gives_connection(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """--profile with --profiles builds the connection from the profile."""
        path = write(tmp_path)
        monkeypatch.setenv("CONTOSO_SECRET", "s3cr3t-value")
        tgt = from_flags(args("--profiles", str(path), "--profile", "contoso"))
        assert tgt.conn.tenant_id == TENANT and tgt.conn.client_id == CLIENT
        assert tgt.conn.credential.client_secret == "s3cr3t-value"
        assert tgt.conn.graph_url == "https://graph.microsoft.com"
        assert "profile contoso" in tgt.label

    def test_variables_choose_file_and_profile(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """BULKPROV_PROFILES and BULKPROV_PROFILE work like the flags."""
        path = write(tmp_path)
        monkeypatch.setenv("BULKPROV_PROFILES", str(path))
        monkeypatch.setenv("BULKPROV_PROFILE", "fabrikam-gov")
        tgt = from_flags(args())
        assert tgt.conn.graph_url == "https://graph.microsoft.us"
        assert tgt.conn.base_url == "https://graph.microsoft.us/beta"
        assert tgt.conn.credential.kind == "certificate"

    def test_default_path_under_xdg(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without --profiles or BULKPROV_PROFILES the file is $XDG_CONFIG_HOME/bulkprov/."""
        (tmp_path / "bulkprov").mkdir()
        write(tmp_path / "bulkprov")
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
        tgt = from_flags(args("--profile", "admin"))
        assert tgt.conn.credential.device_code and tgt.conn.credential.delegated

    def test_flags_override_profile(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Explicit flags beat the profile; the profile beats BULKPROV_* variables; a
        credential flag replaces the profile's credential."""
        path = write(tmp_path)
        monkeypatch.setenv("CONTOSO_SECRET", "s3cr3t-value")
        monkeypatch.setenv("BULKPROV_TENANT_ID", "99999999-9999-9999-9999-999999999999")
        monkeypatch.setenv("BULKPROV_GRAPH_URL", "https://graph.example.invalid")
        other = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
        secret_file = tmp_path / "override"
        secret_file.write_text("override-secret\n")
        tgt = from_flags(
            args(
                "--profiles",
                str(path),
                "--profile",
                "fabrikam-gov",
                "--client-id",
                other,
                "--api-version",
                "v1.0",
                "--client-secret-file",
                str(secret_file),
            )
        )
        assert tgt.conn.client_id == other  # flag
        assert tgt.conn.tenant_id == TENANT  # profile, not the variable
        assert tgt.conn.graph_url == "https://graph.microsoft.us"  # profile, not the variable
        assert tgt.conn.api_version == "v1.0"  # flag over the profile's beta
        assert tgt.conn.credential.client_secret == "override-secret"
        # a variable fills what the profile leaves out
        tgt = from_flags(args("--profiles", str(path), "--profile", "vm"))
        assert tgt.conn.graph_url == "https://graph.example.invalid"

    def test_profile_and_mock_info_conflict(self, tmp_path: Path) -> None:
        """--profile and --mock-info together are refused."""
        path = write(tmp_path)
        with pytest.raises(ConfigError, match="not both"):
            from_flags(
                args(
                    "--profiles",
                    str(path),
                    "--profile",
                    "admin",
                    "--mock-info",
                    str(tmp_path / "mock.json"),
                )
            )

    def test_bad_url_in_profile_names_profile(self, tmp_path: Path) -> None:
        """A profile whose Graph is plain http off loopback is refused, naming the profile."""
        path = write(
            tmp_path,
            f'[profiles.p]\ntenant_id = "{TENANT}"\nclient_id = "{CLIENT}"\n'
            'auth = "device_code"\ngraph_url = "http://graph.example.com"\n',
        )
        with pytest.raises(ConfigError, match=r"profile 'p': graph_url .* is not TLS"):
            from_flags(args("--profiles", str(path), "--profile", "p"))


class TestPlainValues:
    """A connection resolves from a ConnectionOptions of plain values, without argparse; the
    command line's flags make the same one."""

    def test_options_without_the_command_line(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Values given win; a value not given falls back to its BULKPROV_* variable."""
        monkeypatch.setenv("BULKPROV_CLIENT_SECRET", "from-the-variable")
        monkeypatch.setenv("BULKPROV_CLIENT_ID", CLIENT)
        monkeypatch.setenv("BULKPROV_GRAPH_URL", "https://graph.microsoft.us")
        opts = ConnectionOptions(tenant_id=TENANT, api_version="beta", time_scale=0.5)
        tgt = from_flags(opts)
        assert (tgt.conn.tenant_id, tgt.conn.client_id) == (TENANT, CLIENT)
        assert tgt.conn.base_url == "https://graph.microsoft.us/beta"
        assert tgt.conn.credential.client_secret == "from-the-variable"
        assert tgt.time_scale == 0.5
        secret = tmp_path / "secret"
        secret.write_text("from-a-file\n")
        tgt = from_flags(ConnectionOptions(tenant_id=TENANT, client_secret_file=secret))
        assert tgt.conn.credential.client_secret == "from-a-file"

    def test_the_flags_make_the_same_options(self, tmp_path: Path) -> None:
        """connection_options turns the flags into the values they name (None: not given)."""
        path = write(tmp_path)
        assert args(
            "--profiles",
            str(path),
            "--profile",
            "admin",
            "--tenant-id",
            TENANT,
            "--allow-http",
            "--client-time-scale",
            "0.1",
        ) == ConnectionOptions(
            profile="admin", profiles=path, tenant_id=TENANT, allow_http=True, time_scale=0.1
        )
        assert args() == ConnectionOptions()


class TestManagedIdentity:
    """Managed identity cannot be exercised end to end here (no IMDS endpoint): these check the
    profile parsing above and that the right MSAL client and identity are built."""

    def _app(self, mi: ManagedIdentity) -> object:
        conn = ConnectionSettings(
            tenant_id=TENANT,
            client_id="managed-identity",
            credential=Credential(managed_identity=mi),
        )
        return TokenProvider(conn)._build()

    def test_system_assigned(self) -> None:
        """A system-assigned identity builds a ManagedIdentityClient for it."""
        app = self._app(ManagedIdentity())
        assert isinstance(app, msal.ManagedIdentityClient)
        assert app._managed_identity["ManagedIdentityIdType"] == "SystemAssigned"

    @pytest.mark.parametrize("id_type", ["client_id", "resource_id", "object_id"])
    def test_user_assigned(self, id_type: str) -> None:
        """A user-assigned identity is named by the id type the profile gives."""
        app = self._app(ManagedIdentity(id_type=id_type, id=CLIENT))
        assert isinstance(app, msal.ManagedIdentityClient)
        ident = app._managed_identity
        expected = {"client_id": "ClientId", "resource_id": "ResourceId", "object_id": "ObjectId"}
        assert ident["ManagedIdentityIdType"] == expected[id_type]
        assert ident["Id"] == CLIENT
