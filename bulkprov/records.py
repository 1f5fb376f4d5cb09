"""The ledger's vocabulary: the names of steps, step events and instance statuses.

These are ``StrEnum``s, so each member is the very string written in the ledger and compares
equal to it; ledgers written before the names were gathered here read the same.
"""

from __future__ import annotations

from enum import StrEnum


class Step(StrEnum):
    """A step of an instance, in the order a run takes them."""

    INSTANTIATE = "instantiate"
    REPLICATE = "replicate"
    AGENT_GROUP = "agent_group"
    SYNC_TEMPLATE = "sync_template"
    JOB = "job"
    SCHEMA = "schema"
    VALIDATE = "validate"
    SECRETS = "secrets"
    START = "start"
    MONITOR = "monitor"
    LOGS = "logs"
    RESTART = "restart"  # monitor --restart, after the run


class Event(StrEnum):
    """What a step record says happened."""

    START = "start"
    DONE = "done"
    ERROR = "error"
    ATTEMPT = "attempt"  # write-ahead: an instantiate POST is about to be sent
    DEDUPE = "dedupe"  # a duplicate application of the instance was removed


class Status(StrEnum):
    """How an instance ended, in its ``instance`` record."""

    DONE = "done"
    QUARANTINED = "quarantined"
    FAILED = "failed"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"
    REMOVED = "removed"


FINAL_OK = frozenset({Status.DONE, Status.QUARANTINED})  # finished: a re-run leaves them alone
