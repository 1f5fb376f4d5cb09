"""The commands of ``bulkprov``, one module each (``run``, ``plan``, ``status``, ``export``,
``cleanup``, ``monitor``, ``templates``), each turning the parsed options into a call of the
engine and its outcome into the console's report and an exit code; what they share is in
:mod:`~bulkprov.commands.common`.

:mod:`bulkprov.cli` imports a command's module only when that command runs (or its help is
shown): this package imports nothing.
"""
