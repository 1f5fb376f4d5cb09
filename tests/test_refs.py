"""Credential references reach only what the user meant: file: inside the manifest's directory
(or a secrets directory), a regular file of at most 64 KiB; env: never bulkprov's own settings.
Refusals are manifest problems naming file, line and field, at validation and at run time."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from bulkprov import cli
from bulkprov.client import GraphClient
from bulkprov.errors import Problem
from bulkprov.manifest import CredentialRef, RefRules, iter_instances, validate
from bulkprov.mockgraph import MockGraph
from bulkprov.refs import MAX_SECRET_FILE, RefError, _read_beneath
from bulkprov.run import Runner
from bulkprov.settings import ClientSettings, RunSettings

from .enginekit import AWS, KEY_ID, SECRET_KEY, connection, write_secrets

VALUE = "TOPSECRET-value-never-shown"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A secret file outside the manifest's directory (tmp_path/m)."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret").write_text(VALUE + "\n")
    return d / "secret"


def manifest(tmp_path: Path, ref: str, *, fmt: str = "csv") -> Path:
    """A one-instance manifest in tmp_path/m whose ClientSecret (CSV) or SecretToken (JSON) is
    ``ref``."""
    d = tmp_path / "m"
    d.mkdir(exist_ok=True)
    if fmt == "csv":
        path = d / "m.csv"
        path.write_text(
            "key,displayName,template,start,validate,cred.ClientSecret\n"
            f"app-1,App 1,{AWS},false,false,{ref}\n"
        )
    else:
        path = d / "m.json"
        path.write_text(
            '{"instances": [\n  {"key": "app-1", "displayName": "App 1",\n'
            f'   "template": "{AWS}", "start": false, "validate": false,\n'
            f'   "credentials": {{"SecretToken": "{ref}"}}}}\n]}}\n'
        )
    return path


def only_problem(path: Path, rules: RefRules | None = None) -> Problem:
    summary = validate(path, rules=rules or RefRules())
    assert len(summary.problems) == 1, summary.problems
    (p,) = summary.problems
    assert p.file == str(path) and p.line == 2 and p.field == "cred.ClientSecret"
    assert VALUE not in str(p)
    return p


class TestOutsideTheManifestDirectory:
    def test_symlink_pointing_out_is_refused(self, tmp_path: Path, outside: Path) -> None:
        """A link inside the manifest's directory to a file outside it is refused, naming where
        it resolves to and the flag that allows another directory."""
        path = manifest(tmp_path, "file:secrets/link")
        (path.parent / "secrets").mkdir()
        (path.parent / "secrets" / "link").symlink_to(outside)
        p = only_problem(path)
        assert f"resolves to {outside}" in p.message
        assert f"outside the manifest's directory {path.parent}" in p.message
        assert "pass --secrets-dir DIR" in p.message

    def test_dotdot_path_is_refused(self, tmp_path: Path, outside: Path) -> None:
        """file:../outside/secret leaves the manifest's directory and is refused."""
        p = only_problem(manifest(tmp_path, "file:../outside/secret"))
        assert "outside the manifest's directory" in p.message

    def test_absolute_path_outside_is_refused(self, tmp_path: Path, outside: Path) -> None:
        """An absolute path to a file outside the manifest's directory is refused."""
        p = only_problem(manifest(tmp_path, f"file:{outside}"))
        assert "outside the manifest's directory" in p.message

    @pytest.mark.parametrize("target", ["/etc/shadow", "/etc/passwd", "/proc/self/environ"])
    def test_system_files_are_refused(self, tmp_path: Path, target: str) -> None:
        """/etc/shadow, /etc/passwd and /proc/self/environ are refused (never read)."""
        if not os.path.lexists(target):
            pytest.skip(f"{target} does not exist here")
        p = only_problem(manifest(tmp_path, f"file:{target}"))
        assert "outside the manifest's directory" in p.message

    def test_json_problem_names_the_credentials_member(self, tmp_path: Path, outside: Path) -> None:
        """In JSON the refused reference's field is credentials.<Key>, on the object's line."""
        path = manifest(tmp_path, f"file:{outside}", fmt="json")
        (p,) = validate(path).problems
        assert (p.line, p.field) == (2, "credentials.SecretToken")
        assert "outside the manifest's directory" in p.message

    def test_secrets_dir_allows_a_directory(self, tmp_path: Path, outside: Path) -> None:
        """A secrets directory makes a file in it valid, and the value reads from it."""
        path = manifest(tmp_path, f"file:{outside}")
        rules = RefRules(secrets_dirs=(outside.parent,))
        assert validate(path, rules=rules).problems == []
        (inst,) = iter_instances(path, rules=rules)
        assert inst.credentials[0].resolve().reveal() == VALUE

    def test_a_link_into_a_secrets_dir_is_followed(self, tmp_path: Path, outside: Path) -> None:
        """A link whose target is inside a secrets directory is fine: the target is checked."""
        path = manifest(tmp_path, "file:link")
        (path.parent / "link").symlink_to(outside)
        assert validate(path, rules=RefRules(secrets_dirs=(outside.parent,))).problems == []

    def test_a_link_inside_the_manifest_directory_is_followed(self, tmp_path: Path) -> None:
        """A link to another file of the manifest's directory resolves and reads."""
        path = manifest(tmp_path, "file:link")
        (path.parent / "real").write_text(VALUE)
        (path.parent / "link").symlink_to("real")
        (inst,) = iter_instances(path)
        assert validate(path).problems == []
        assert inst.credentials[0].resolve().reveal() == VALUE


class TestWhatIsRead:
    @pytest.mark.timeout(10)
    def test_fifo_is_refused_without_blocking(self, tmp_path: Path) -> None:
        """A FIFO (nobody writing to it) is refused at once, at validation and at run time."""
        path = manifest(tmp_path, "file:pipe")
        os.mkfifo(path.parent / "pipe")
        p = only_problem(path)
        assert "is a FIFO (named pipe)" in p.message and "regular file" in p.message
        (inst,) = iter_instances(path)
        with pytest.raises(RefError, match="FIFO"):
            inst.credentials[0].resolve()

    @pytest.mark.timeout(10)
    def test_dev_zero_is_refused_even_in_an_allowed_directory(self, tmp_path: Path) -> None:
        """/dev/zero is outside the manifest's directory; with /dev allowed, it is still a
        device, not a regular file, and is never read."""
        if not os.path.exists("/dev/zero"):
            pytest.skip("no /dev/zero")
        path = manifest(tmp_path, "file:/dev/zero")
        assert "outside the manifest's directory" in only_problem(path).message
        p = only_problem(path, RefRules(secrets_dirs=(Path("/dev"),)))
        assert "is a character device" in p.message

    def test_oversize_file_is_refused_with_the_limit(self, tmp_path: Path) -> None:
        """A file over 64 KiB is refused, saying the limit; one of exactly 64 KiB is read."""
        path = manifest(tmp_path, "file:big")
        (path.parent / "big").write_bytes(b"a" * (MAX_SECRET_FILE + 1))
        assert "larger than 64 KiB" in only_problem(path).message
        (path.parent / "big").write_bytes(b"a" * MAX_SECRET_FILE)
        assert validate(path).problems == []

    def test_directory_and_non_utf8_are_refused(self, tmp_path: Path) -> None:
        """A directory, or a file that is not UTF-8 text, is one clear problem."""
        path = manifest(tmp_path, "file:sub")
        (path.parent / "sub").mkdir()
        assert "is a directory" in only_problem(path).message
        shutil.rmtree(path.parent / "sub")
        (path.parent / "sub").write_bytes(b"\xff\xfe secret")
        assert "not UTF-8 text" in only_problem(path).message

    def test_empty_file_reference_is_refused(self, tmp_path: Path) -> None:
        """file: with no path is a problem, not the manifest's directory."""
        assert "needs the path" in only_problem(manifest(tmp_path, "file:")).message

    def test_path_swapped_for_a_link_after_the_check_is_caught(
        self, tmp_path: Path, outside: Path
    ) -> None:
        """A directory replaced by a link between the check and the open is not followed:
        the file is opened beneath the allowed directory one component at a time."""
        root = tmp_path / "m"
        (root / "secrets").mkdir(parents=True)
        (root / "secrets" / "secret").write_text("inside")
        real = str(root / "secrets" / "secret")  # as checked
        (root / "secrets").rename(root / "old")
        (root / "secrets").symlink_to(outside.parent, target_is_directory=True)
        with pytest.raises(RefError, match="changed while it was opened"):
            _read_beneath(str(root), real, "secret file x")
        os.unlink(root / "secrets")
        (root / "old").rename(root / "secrets")
        os.unlink(root / "secrets" / "secret")
        (root / "secrets" / "secret").symlink_to(outside)  # the file itself
        with pytest.raises(RefError, match="changed while it was opened"):
            _read_beneath(str(root), real, "secret file x")


class TestOwnSettings:
    @pytest.mark.parametrize(
        "var", ["BULKPROV_CLIENT_SECRET", "bulkprov_client_secret", "Bulkprov_Tenant_Id"]
    )
    def test_bulkprov_variables_are_refused(
        self, tmp_path: Path, var: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """env:BULKPROV_* (any case) is refused even when set, at validation and when streamed,
        and the value never appears."""
        monkeypatch.setenv(var, VALUE)
        path = manifest(tmp_path, f"env:{var}")
        p = only_problem(path)
        assert "bulkprov's own settings" in p.message
        with pytest.raises(Exception, match="bulkprov's own settings"):
            list(iter_instances(path))
        ref = CredentialRef("ClientSecret", "env", var)
        with pytest.raises(RefError):
            ref.resolve()

    def test_the_connection_secret_variable_is_refused(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The variable bulkprov's own client secret comes from is refused, as are the managed
        identity's."""
        monkeypatch.setenv("CONTOSO_SECRET", VALUE)
        rules = RefRules(own_env=frozenset({"CONTOSO_SECRET"}))
        p = only_problem(manifest(tmp_path, "env:contoso_secret"), rules)
        assert "client secret bulkprov itself signs in with" in p.message
        p = only_problem(manifest(tmp_path, "env:IDENTITY_HEADER"))
        assert "managed identity" in p.message

    def test_the_connection_secret_file_is_refused(self, tmp_path: Path) -> None:
        """The file bulkprov's own credential comes from is refused, even in the manifest's
        directory."""
        path = manifest(tmp_path, "file:app-secret")
        (path.parent / "app-secret").write_text(VALUE)
        rules = RefRules(own_files=frozenset({path.parent / "app-secret"}))
        assert "bulkprov's own credential" in only_problem(path, rules).message


class TestCommandLine:
    def test_plan_refuses_then_accepts_with_secrets_dir(
        self, tmp_path: Path, outside: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`plan --offline` exits 2 naming file, line and field; --secrets-dir DIR makes the
        same manifest valid. The secret's value is printed in neither case."""
        path = manifest(tmp_path, f"file:{outside}")
        assert cli.main(["plan", str(path), "--offline"]) == 2
        out, err = capsys.readouterr()
        assert f"{path}:2: instance 'app-1': field 'cred.ClientSecret': file:{outside}" in err
        assert "--secrets-dir" in err and VALUE not in out + err
        code = cli.main(["plan", str(path), "--offline", "--secrets-dir", str(outside.parent)])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "the manifest is valid" in out and VALUE not in out + err

    def test_missing_secrets_dir_is_a_config_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A --secrets-dir that does not exist exits 2 naming the flag."""
        path = manifest(tmp_path, "literal:x")
        assert (
            cli.main(["plan", str(path), "--offline", "--secrets-dir", str(tmp_path / "nope")]) == 2
        )
        assert "--secrets-dir" in capsys.readouterr().err

    def test_client_secret_file_flag_is_never_a_reference(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A manifest may not reference the file given as --client-secret-file."""
        path = manifest(tmp_path, "file:app-secret")
        (path.parent / "app-secret").write_text(VALUE)
        assert (
            cli.main(
                [
                    "plan",
                    str(path),
                    "--offline",
                    "--client-secret-file",
                    str(path.parent / "app-secret"),
                ]
            )
            == 2
        )
        err = capsys.readouterr().err
        assert "bulkprov's own credential" in err and VALUE not in err

    def test_profile_secrets_dirs_allow_a_directory(
        self,
        tmp_path: Path,
        outside: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A profile's secrets_dirs (relative to the profiles file) allow a directory, and its
        client_secret variable is refused as a reference."""
        monkeypatch.delenv("BULKPROV_PROFILE", raising=False)
        profiles = tmp_path / "profiles.toml"
        profiles.write_text(
            '[profiles.p]\ntenant_id = "t"\nclient_id = "c"\n'
            'client_secret = "env:P_SECRET"\nsecrets_dirs = ["outside"]\n'
        )
        profiles.chmod(0o600)
        path = manifest(tmp_path, f"file:{outside}")
        base = ["plan", str(path), "--offline", "--profiles", str(profiles)]
        assert cli.main(base) == 2
        capsys.readouterr()
        assert cli.main([*base, "--profile", "p"]) == 0, capsys.readouterr().err
        capsys.readouterr()
        path = manifest(tmp_path, "env:P_SECRET")
        assert cli.main([*base, "--profile", "p"]) == 2
        assert "client secret bulkprov itself signs in with" in capsys.readouterr().err


@pytest.mark.anyio
async def test_run_reads_references_under_the_same_rules(mock: MockGraph, tmp_path: Path) -> None:
    """A secret file replaced by a link out of the manifest's directory after validation fails
    its instance at the secrets step (the run, given the validation's summary, does not
    validate again); its value never reaches Graph or the ledger."""
    d = tmp_path / "m"
    write_secrets(d / "secrets")
    path = d / "m.csv"
    path.write_text(
        "key,displayName,template,cred.ClientSecret,cred.SecretToken,start,validate\n"
        f"a-1,AWS a 1,{AWS},file:secrets/key-id,file:secrets/secret,false,false\n"
    )
    summary = validate(path)
    assert summary.problems == []
    elsewhere = tmp_path / "elsewhere"
    write_secrets(elsewhere, KEY_ID, VALUE)
    os.unlink(d / "secrets" / "secret")
    (d / "secrets" / "secret").symlink_to(elsewhere / "secret")
    async with GraphClient(
        connection(mock), ClientSettings(time_scale=mock.settings.time_scale)
    ) as c:
        result = await Runner(
            manifest=path,
            ledger_path=tmp_path / "l.jsonl",
            client=c,
            settings=RunSettings(monitor=False),
            summary=summary,
        ).run()
    assert result.statuses == {"failed": 1}
    (failure,) = result.failures
    assert failure["step"] == "secrets" and "outside the manifest's directory" in str(
        failure["message"]
    )
    ledger = (tmp_path / "l.jsonl").read_text()
    assert VALUE not in ledger and SECRET_KEY not in ledger
    assert stat.S_ISLNK(os.lstat(d / "secrets" / "secret").st_mode)


@pytest.mark.timeout(10)
def test_schema_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """A manifest's schema that is a FIFO is a problem on its field, not a hang."""
    os.mkfifo(tmp_path / "schema.json")
    path = tmp_path / "m.csv"
    path.write_text(
        f"key,displayName,template,start,validate,schema\n"
        f"app-1,App 1,{AWS},false,false,schema.json\n"
    )
    (p,) = validate(path).problems
    assert (p.line, p.field) == (2, "schema") and "regular file" in p.message
