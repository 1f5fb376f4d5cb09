"""The steps of an instance, one object each, in the order a run takes them.

    instantiate -> replicate -> [agent_group] -> sync_template -> job -> [schema] -> [validate]
        -> [secrets] -> [start] -> monitor -> logs

Each is a :class:`~bulkprov.steps.base.BaseStep` (the contract is in ``base``); the bracketed
ones apply only to some instances (``applies``). :data:`STEPS` is the one list: the set-up
order (``bulkprov.pipeline``), the progress display's rows and ``status``'s table of steps
done are derived from it.

======================  =====================================================
module                  steps
======================  =====================================================
``instantiate``         instantiate (and ``claims``: shared display names)
``replicate``           replicate
``agent_group``         agent_group
``job``                 sync_template, job, schema
``credentials``         validate, secrets, start
``monitor``             monitor, logs
======================  =====================================================

``gate`` decides, before any step, whether an instance may go ahead (``planner.decide``),
and ``needs`` holds what each gallery template's synchronization templates need.
"""

from __future__ import annotations

from ..records import Step
from .agent_group import AgentGroup
from .base import BaseStep
from .credentials import Secrets, Start, Validate
from .instantiate import Instantiate
from .job import Job, Schema, SyncTemplate
from .monitor import Logs, Monitor
from .replicate import Replicate

STEPS: tuple[BaseStep, ...] = (
    Instantiate(),
    Replicate(),
    AgentGroup(),
    SyncTemplate(),
    Job(),
    Schema(),
    Validate(),
    Secrets(),
    Start(),
    Monitor(),
    Logs(),
)
SETUP: tuple[BaseStep, ...] = tuple(s for s in STEPS if s.stage == "setup")
BY_NAME: dict[Step, BaseStep] = {s.name: s for s in STEPS}

SETUP_STEPS: tuple[Step, ...] = tuple(s.name for s in SETUP)
ALL_STEPS: tuple[Step, ...] = tuple(s.name for s in STEPS)

__all__ = ["ALL_STEPS", "BY_NAME", "SETUP", "SETUP_STEPS", "STEPS", "BaseStep"]
