"""The mock's Graph handlers, one module per resource.

Each module has a class whose ``routes()`` lists the routes it serves, each bound to one of
its handler methods: :mod:`.directory` (application templates, applications, service
principals, deleted items), :mod:`.synchronization` (templates, secrets, jobs, schema),
:mod:`.auditlogs` (provisioning logs), :mod:`.onprem` (agents and agent groups, beta) and
:mod:`.batch` (``$batch``, which runs its items through the whole pipeline again).
"""
