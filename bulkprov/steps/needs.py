"""What each gallery template's synchronization templates need, known or being learned.

Graph lists a template's credential needs (its ``configurationFields``) only under a service
principal of it, so the run reads them from one that exists at start-up, or learns them from
the first of its instances that reaches ``sync_template``. Until then, the set-up gate
(``gate``) lets the instances whose credential keys match the first instance of their template
go ahead, and the others wait here for the needs, or for none of the template's instances to be
on its way to learning them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio

from ..planner import TemplateNeeds


@dataclass(slots=True)
class Learning:
    """One gallery template whose credential needs are not known yet: the key set of its
    first instance, how many of its instances went ahead (each learns the needs at
    sync_template), and an event set whenever the needs are learned or none is left going."""

    first: tuple[str, frozenset[str]] | None = None
    going: int = 0
    changed: anyio.Event = field(default_factory=anyio.Event)

    def wake(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


class NeedsBook:
    def __init__(self, known: dict[str, TemplateNeeds] | None = None) -> None:
        # gallery template id -> what its synchronization templates need
        self.known: dict[str, TemplateNeeds] = dict(known or {})
        self._learning: dict[str, Learning] = {}

    def get(self, template_id: str) -> TemplateNeeds | None:
        return self.known.get(template_id)

    def learning(self, template_id: str) -> Learning:
        """The template's learning, begun if it is not yet."""
        return self._learning.setdefault(template_id, Learning())

    def learn(self, template_id: str, needs: TemplateNeeds) -> None:
        """The needs of ``template_id`` as an instance read them: the instances waiting go on."""
        if template_id in self.known:
            return
        self.known[template_id] = needs
        learning = self._learning.pop(template_id, None)
        if learning is not None:
            learning.wake()

    def went(self, template_id: str) -> None:
        """An instance that went ahead to learn the template's needs ended its setup."""
        learning = self._learning.get(template_id)
        if learning is None:
            return
        learning.going -= 1
        if not learning.going:
            learning.wake()
