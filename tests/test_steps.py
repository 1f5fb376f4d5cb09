"""The step contract: one ordered list of steps, typed ids at the ledger's boundary, and the
runner's checks of what a step needs."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bulkprov.errors import StepError
from bulkprov.ledger import InstanceState, Ledger, Redactor
from bulkprov.manifest import Instance
from bulkprov.pipeline import Outcome, Pipeline, ResolvedTemplate
from bulkprov.records import Step
from bulkprov.settings import RunSettings
from bulkprov.steps import ALL_STEPS, SETUP, SETUP_STEPS, STEPS
from bulkprov.steps.base import Ids

TEMPLATE = ResolvedTemplate("8b1025e4-1dd2-430b-a150-2ef79cd700f5", "AWS Single-Account Access")


def _instance(**kw: object) -> Instance:
    fields: dict[str, object] = dict(
        key="k",
        display_name="AWS k",
        template=TEMPLATE.display_name,
        sync_template=None,
        credentials=(),
        start=False,
        validate=False,
        profile=None,
        file="m.csv",
        line=2,
    )
    fields.update(kw)
    return Instance(**fields)  # type: ignore[arg-type]


def test_the_list_of_steps_is_the_ledgers_order() -> None:
    """STEPS names every step of records.Step but monitor --restart's, in its order; set-up
    is the part before monitor."""
    names = list(ALL_STEPS)
    assert names == [s for s in Step if s is not Step.RESTART]
    assert list(SETUP_STEPS) == names[: names.index(Step.MONITOR)]
    assert [s.name for s in SETUP] == list(SETUP_STEPS)
    assert SETUP_STEPS[0] == "instantiate" and ALL_STEPS[-1] == "logs"  # plain strings too


def test_which_steps_apply_to_an_instance() -> None:
    """A bare instance takes the four steps every instance takes; each option adds its own."""
    bare = [s.name for s in STEPS if s.applies(_instance())]
    assert bare == ["instantiate", "replicate", "sync_template", "job"]
    full = _instance(
        start=True, validate=True, credentials=("x",), agent_group="g", schema_file=Path("s.json")
    )
    assert [s.name for s in STEPS if s.applies(full)] == list(ALL_STEPS)


def test_ids_convert_at_the_ledger_boundary() -> None:
    ledger = {"applicationId": "a", "appId": "b", "servicePrincipalId": "c", "other": "x"}
    ids = Ids.from_ledger(ledger)
    assert (ids.application_id, ids.app_id, ids.service_principal_id) == ("a", "b", "c")
    assert ids.job_id is None
    assert ids.to_ledger() == {"applicationId": "a", "appId": "b", "servicePrincipalId": "c"}
    assert ids.missing(("service_principal_id", "job_id")) == ["jobId"]


@pytest.mark.anyio
async def test_a_step_whose_ids_are_unknown_fails_naming_them(tmp_path: Path) -> None:
    """The runner checks a step's needs before running it: monitor without a service
    principal or job id fails at its step, recorded in the ledger, and sends nothing."""
    path = tmp_path / "l.jsonl"
    ledger = Ledger(path)
    replay = ledger.open(manifest="m.csv", graph="g", tenant="t")
    pipeline = Pipeline(
        object(),
        ledger,
        replay,
        RunSettings(),  # type: ignore[arg-type]
        templates={TEMPLATE.display_name: TEMPLATE},
        time_scale=0.001,
        redactor=Redactor(),
    )
    out = Outcome(inst=_instance(start=True), state=InstanceState("k"), started_at=0.0)
    with pytest.raises(StepError) as caught:
        await pipeline.step(out, Step.MONITOR)
    ledger.close()
    assert caught.value.step == "monitor"
    assert "servicePrincipalId, jobId" in caught.value.reason
    steps = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    events = [(r["step"], r["event"]) for r in steps if r.get("type") == "step"]
    assert events == [("monitor", "start"), ("monitor", "error")]
