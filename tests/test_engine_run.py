"""The engine end to end, over real HTTPS against the mock Graph with its realism switched on."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from bulkprov import ledger as ledger_mod
from bulkprov.mockgraph import (
    FaultSettings,
    MockGraph,
    MockSettings,
    ReplicationSettings,
    ThrottleSettings,
)

from .enginekit import AWS, aws_manifest, run_engine, tenant_stats
from .graphclient import PlainGraph

pytestmark = pytest.mark.anyio


def faulty(**changes: object) -> MockSettings:
    """Graph's latency and replication, a tight write quota (its bucket empty at the start, so
    that a client that paces ahead of the first 429 still meets some), and faults on every
    route."""
    base = MockSettings(
        time_scale=0.01,
        throttle=ThrottleSettings(write_limit=150, write_window=150.0, start_full=False),
        replication=ReplicationSettings(min_delay=1.0, max_delay=12.0, flap=6.0),
        faults=FaultSettings(
            seed=7,
            error_rate={"*": 0.02},
            drop_rate={"*": 0.01},
            instantiate_404_rate=0.05,
            instantiate_timeout_rate=0.02,
        ),
    )
    return base.evolve(**changes)


class TestFullRun:
    @pytest.fixture
    def mock_settings(self) -> MockSettings:
        return faulty()

    async def test_300_instances_under_faults(self, mock: MockGraph, tmp_path: Path) -> None:
        """300 instances under latency, throttling, replication and faults all end done, with
        one application each, no orphan, and no early retry."""
        manifest = aws_manifest(tmp_path / "m.csv", 300)
        result = await run_engine(mock, manifest, tmp_path / "ledger.jsonl")
        assert result.statuses["done"] == 300, result.failures[:3]
        stats = mock.stats()
        t = tenant_stats(mock)
        assert t["applications"] == 300
        assert t["servicePrincipals"] == 300 and t["jobs"] == 300
        assert t["duplicates"] == 0
        assert t["orphanApplications"] == 0 and t["orphanServicePrincipals"] == 0
        assert t["jobStatus"] == {"Active": 300}
        # the tight write quota throttled the run (early retries are checked at a time scale
        # where Retry-After is long next to the event loop's latency: TestThrottling)
        assert stats["throttled"] > 0
        # the faults did happen
        assert stats["faults"].get("instantiate_404_but_created", 0) > 0
        assert stats["faults"].get("faults_5xx", 0) > 0
        replay = ledger_mod.read(tmp_path / "ledger.jsonl")
        assert {s.status for s in replay.instances.values()} == {"done"}
        app_ids = [s.ids["applicationId"] for s in replay.instances.values()]
        assert len(set(app_ids)) == 300


class TestThrottling:
    @pytest.fixture
    def mock_settings(self) -> MockSettings:
        # a quota ten times tighter than Graph's, unknown to the client: it must learn from 429s
        return MockSettings.quiet(
            time_scale=0.1,
            throttle=ThrottleSettings(write_limit=20, write_window=10.0),
        )

    async def test_throttled_run_sends_no_early_retry(
        self, mock: MockGraph, tmp_path: Path
    ) -> None:
        """Against a Graph that throttles, every worker waits out Retry-After: the mock sees
        429s but no request inside a closed throttle scope."""
        manifest = aws_manifest(tmp_path / "m.csv", 40, start=True)
        result = await run_engine(mock, manifest, tmp_path / "l.jsonl", monitor=False)
        assert result.statuses["done"] == 40, result.failures[:3]
        stats = mock.stats()
        assert stats["throttled"] > 0
        assert stats["earlyRetries"] == 0
        assert tenant_stats(mock)["duplicates"] == 0


class TestInstantiateFaults:
    @pytest.fixture
    def mock_settings(self) -> MockSettings:
        return MockSettings.quiet(
            time_scale=0.004,
            replication=ReplicationSettings(min_delay=2.0, max_delay=8.0, flap=2.0),
            faults=FaultSettings(
                seed=3,
                instantiate_404_rate=0.5,
                instantiate_timeout_rate=0.2,
                instantiate_timeout=150.0,
            ),
        )

    async def test_404_and_timeout_but_created_make_no_duplicate(
        self, mock: MockGraph, tmp_path: Path
    ) -> None:
        """Instantiate answering 404 or timing out although it created the app is reconciled:
        the app is found and adopted, never created twice."""
        manifest = aws_manifest(tmp_path / "m.csv", 30, start=False)
        result = await run_engine(mock, manifest, tmp_path / "l.jsonl", monitor=False)
        assert result.statuses["done"] == 30, result.failures[:3]
        stats = mock.stats()
        assert stats["faults"]["instantiate_404_but_created"] >= 5
        t = tenant_stats(mock)
        assert t["created"]["applications"] == 30
        assert t["duplicates"] == 0 and t["orphanApplications"] == 0
        recovered = [
            json.loads(line)
            for line in (tmp_path / "l.jsonl").read_text().splitlines()
            if '"recovered":true' in line
        ]
        assert recovered, "some instance must have been recovered by reconciliation"


class TestOutcomes:
    async def test_quarantine_is_a_reported_result(self, mock: MockGraph, tmp_path: Path) -> None:
        """A job that the target rejects ends quarantined with its reason and error code, and
        the other instances are unaffected."""
        (tmp_path / "tok").write_text("scim-token-value-123\n")
        manifest = tmp_path / "m.json"
        manifest.write_text(
            json.dumps(
                {
                    "instances": [
                        {
                            "key": "good",
                            "displayName": "SSO good",
                            "template": "AWS Single Sign-on",
                            "credentials": {
                                "BaseAddress": "https://scim.us-east-1.amazonaws.com/abc/scim/v2",
                                "SecretToken": "file:tok",
                            },
                        },
                        {
                            "key": "bad",
                            "displayName": "SSO bad",
                            "template": "AWS Single Sign-on",
                            "validate": False,
                            "credentials": {
                                "BaseAddress": "https://example.com",
                                "SecretToken": "file:tok",
                            },
                        },
                    ]
                }
            )
        )
        result = await run_engine(mock, manifest, tmp_path / "l.jsonl")
        assert result.statuses == {"done": 1, "quarantined": 1}
        final = ledger_mod.read(tmp_path / "l.jsonl").instances["bad"].final
        assert final is not None
        assert final["quarantine"]["reason"] == "EncounteredQuarantineException"
        assert final["quarantine"]["code"] == (
            "SystemForCrossDomainIdentityManagementInvalidCredentials"
        )

    async def test_rejected_credentials_fail_the_instance_at_validate(
        self, mock: MockGraph, tmp_path: Path
    ) -> None:
        """Credentials the target rejects fail that instance at the validate step with the
        connector's code; no secret is saved and the job is not started."""
        manifest = aws_manifest(tmp_path / "m.csv", 2)
        (tmp_path / "secrets" / "bad").write_text("not-an-aws-key\n")
        text = manifest.read_text().replace("file:secrets/key-id", "file:secrets/bad", 1)
        manifest.write_text(text)
        result = await run_engine(mock, manifest, tmp_path / "l.jsonl")
        assert result.statuses == {"done": 1, "failed": 1}
        failure = result.failures[0]
        assert failure["step"] == "validate"
        assert failure["code"] == "AWSInvalidCredentials"
        assert failure["where"].endswith(":2")
        t = tenant_stats(mock)
        assert t["jobStatus"] == {"Active": 1, "NotConfigured": 1}

    async def test_existing_app_is_adopted_not_duplicated(
        self, mock: MockGraph, graph: PlainGraph, tmp_path: Path
    ) -> None:
        """An application of the same name and template that already exists is adopted."""
        manifest = aws_manifest(tmp_path / "m.csv", 3, start=False)
        r = await graph.post(
            "/applicationTemplates/8b1025e4-1dd2-430b-a150-2ef79cd700f5/instantiate",
            {"displayName": "AWS acct 00001"},
        )
        assert r.status == 201
        result = await run_engine(mock, manifest, tmp_path / "l.jsonl", monitor=False)
        assert result.statuses["done"] == 3
        t = tenant_stats(mock)
        assert t["applications"] == 3 and t["duplicates"] == 0
        done = [orjson.loads(x) for x in (tmp_path / "l.jsonl").read_bytes().splitlines()]
        adopted = [
            r
            for r in done
            if r.get("step") == "instantiate"
            and r.get("event") == "done"
            and r.get("data", {}).get("adopted")
        ]
        assert [r["key"] for r in adopted] == ["acct-00001"]

    async def test_instances_sharing_a_display_name_get_one_application_each(
        self, mock: MockGraph, tmp_path: Path
    ) -> None:
        """Two instances of one name: the second's lookup by name finds the first's application,
        which the run knows is taken, so each instance gets an application of its own."""
        manifest = aws_manifest(tmp_path / "m.csv", 3, start=False)
        manifest.write_text(manifest.read_text().replace("AWS acct 00002", "AWS acct 00001"))
        result = await run_engine(
            mock, manifest, tmp_path / "l.jsonl", monitor=False, concurrency=1
        )
        assert result.statuses["done"] == 3, result.failures[:3]
        assert tenant_stats(mock)["applications"] == 3
        replay = ledger_mod.read(tmp_path / "l.jsonl")
        assert len({s.ids["applicationId"] for s in replay.instances.values()}) == 3

    async def test_rerun_skips_finished_instances(self, mock: MockGraph, tmp_path: Path) -> None:
        """A second run with the same ledger skips what is done and creates nothing."""
        manifest = aws_manifest(tmp_path / "m.csv", 5)
        ledger = tmp_path / "l.jsonl"
        first = await run_engine(mock, manifest, ledger)
        assert first.statuses["done"] == 5
        requests_before = mock.stats()["requests"]
        second = await run_engine(mock, manifest, ledger)
        assert second.skipped == 5 and second.statuses["done"] == 5
        assert tenant_stats(mock)["created"]["applications"] == 5
        # only the template lookup (and a token) went to Graph
        assert mock.stats()["requests"] - requests_before <= 3


class TestCertificateCredential:
    async def test_run_with_a_certificate_credential(self, mock: MockGraph, tmp_path: Path) -> None:
        """A run authenticated with a certificate (one PEM with key and certificate) works:
        MSAL signs a client assertion that the mock's token endpoint verifies."""
        from bulkprov.client import GraphClient
        from bulkprov.mockgraph.identity import make_client_certificate
        from bulkprov.run import Runner
        from bulkprov.settings import ClientSettings, Credential, RunSettings

        from .enginekit import connection

        key_pem, cert_pem, _thumb = make_client_certificate("bulkprov-test")
        info = mock.info
        assert info is not None
        reg = mock.tokens.registration(info.tenant_id, info.client_id)
        assert reg is not None
        reg.add_certificate(cert_pem)
        conn = connection(mock)
        from dataclasses import replace

        conn = replace(conn, credential=Credential(certificate_pem=key_pem + cert_pem))
        manifest = aws_manifest(tmp_path / "m.csv", 2, start=False)
        async with GraphClient(conn, ClientSettings(time_scale=mock.settings.time_scale)) as c:
            result = await Runner(
                manifest=manifest,
                ledger_path=tmp_path / "l.jsonl",
                client=c,
                settings=RunSettings(monitor=False),
            ).run()
            assert c.tokens.acquired == 1
        assert result.statuses["done"] == 2
        assert mock.stats()["tokensIssued"] == 1


class TestSecretsPerInstance:
    async def test_each_instance_has_its_own_secrets_and_the_run_keeps_none(
        self, mock: MockGraph, tmp_path: Path
    ) -> None:
        """A mass onboarding: every AWS account its own key pair (the first one wrong). Each
        pair is masked while its instance runs, none reaches the ledger, and the run ends
        holding none of them, the failed instance's included."""
        from bulkprov.client import GraphClient
        from bulkprov.ledger import Redactor
        from bulkprov.run import Runner
        from bulkprov.settings import ClientSettings, RunSettings

        from .enginekit import connection

        n = 30
        pairs = [
            (f"AKIA{i:016d}", f"{i:03d}" + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLE")
            for i in range(n)
        ]
        pairs[0] = (pairs[0][0], pairs[0][1][:-1])  # 39 characters: the target refuses it
        secrets = tmp_path / "secrets"
        secrets.mkdir()
        rows = ["key,displayName,template,cred.ClientSecret,cred.SecretToken,start"]
        for i, (key_id, secret) in enumerate(pairs):
            (secrets / f"{i}.id").write_text(key_id)
            (secrets / f"{i}.secret").write_text(secret)
            rows.append(
                f"acct-{i:03d},AWS acct {i:03d},{AWS},file:secrets/{i}.id,"
                f"file:secrets/{i}.secret,true"
            )
        manifest = tmp_path / "m.csv"
        manifest.write_text("\n".join(rows) + "\n")
        redactor = Redactor()
        settings = ClientSettings(time_scale=mock.settings.time_scale)
        async with GraphClient(connection(mock), settings) as c:
            runner = Runner(
                manifest=manifest,
                ledger_path=tmp_path / "l.jsonl",
                client=c,
                settings=RunSettings(monitor=False),
                redactor=redactor,
            )
            result = await runner.run()
        assert result.statuses == {"done": n - 1, "failed": 1}, result.failures[:3]
        assert result.failures[0]["code"] == "AWSInvalidCredentials"
        assert redactor.held == 0
        ledger_text = (tmp_path / "l.jsonl").read_text()
        for key_id, secret in pairs:
            assert secret not in ledger_text
            assert key_id not in ledger_text
