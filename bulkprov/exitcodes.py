"""The exit codes of the ``bulkprov`` commands (the README's "Exit codes" lines say the same).

Each command gives the subset that applies to it: ``run`` all of them, ``plan`` and
``templates`` 0, 1 and 2, ``monitor`` 0 to 3, ``cleanup`` 0, 1, 2 and 130, ``drift`` 0, 1, 2
and 4. argparse's own usage errors are 2 as well."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    #: ``run``: some instance failed; ``plan``: a conflict or a refusal; ``monitor``: a job
    #: could not be read; ``cleanup``: a deletion failed or was not confirmed
    FAILED = 1
    #: ``templates``: no template matches
    NONE_FOUND = 1
    #: an exception that is a bug in bulkprov (named in one line; ``-vv`` shows its traceback)
    INTERNAL = 1
    #: bulkprov's own errors: bad input (manifest, settings, ledger, a ledger in use), a
    #: Graph or authority that cannot be used, a refused command; argparse's usage errors
    USAGE = 2
    #: ``run``, ``monitor``: some job is quarantined
    QUARANTINED = 3
    #: ``drift``: some instance's live state differs from the manifest
    DRIFTED = 4
    #: stopped by SIGINT or SIGTERM (128 + SIGINT)
    INTERRUPTED = 130
