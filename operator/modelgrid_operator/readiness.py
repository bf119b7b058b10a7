"""kopf's wait for its indexes, made linear in the objects that wait (issue 21).

An operator with kopf indexes runs no handler before every index holds its kind's initial
listing. kopf 1.45.2 does this with one "operator indexed" :class:`~kopf._cogs.aiokits.aiotoggles
.ToggleSet`: the watcher of each kind gives every object of its listing a toggle in the set
(``kopf/_core/reactor/queueing.py``, ``watcher``); the object's worker indexes it, drops its
toggle and waits until the set is empty (``kopf/_core/reactor/processing.py``,
``process_resource_event``). Every toggle made or dropped calls ``notify_all`` on the set's one
condition, which wakes every worker already waiting; there is a worker per object, so a restart
over N objects costs about N squared wake-ups: resuming 1,000 models took 28 s of CPU, 3,000
took 422 s (bench/RESULTS.md, "Operator").

A waiter of the set waits for the set's state (on or off), and making or dropping a toggle
changes no toggle's own state: only a change of the set's state can satisfy a waiter of the set.
:class:`ToggleSet` therefore notifies on make and drop only when the set's state flips. Turning
a toggle on or off notifies as before (kopf's :class:`Toggle` does that itself). Resuming then
costs one wake-up per waiting worker when the last toggle goes, and the state check stays cheap:
the set is ``all`` of toggles that are all off until dropped, so it stops at the first one.

kopf has no hook to choose the set's class (``orchestration.orchestrator`` builds
``aiotoggles.ToggleSet(all)``, ``running.spawn_tasks`` the pause set), so :func:`install`
replaces the class in kopf's module before the operator starts. It does so for the kopf release
it was written against only (:data:`KOPF_VERSION`): on another, kopf is left as it is, with a
warning, and a unit test fails until this module is checked against that release.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib.metadata import version

from kopf._cogs.aiokits import aiotoggles

KOPF_VERSION = "1.45.2"
"""The kopf release whose ``ToggleSet`` this one replaces (its methods and private fields)."""

logger = logging.getLogger(__name__)


class ToggleSet(aiotoggles.ToggleSet):
    """kopf's toggle set, waking its waiters only when its state flips."""

    async def make_toggle(
        self,
        val: bool = False,
        /,
        *,
        name: str | None = None,
    ) -> aiotoggles.Toggle:
        toggle = aiotoggles.Toggle(val, name=name, condition=self._condition)
        async with self._condition:
            was = self.is_on()
            self._toggles.add(toggle)
            self._notify_on_flip(was)
        return toggle

    async def drop_toggle(self, toggle: aiotoggles.Toggle) -> None:
        await self.drop_toggles([toggle])

    async def drop_toggles(self, toggles: Iterable[aiotoggles.Toggle]) -> None:
        async with self._condition:
            was = self.is_on()
            self._toggles.difference_update(toggles)
            self._notify_on_flip(was)

    def _notify_on_flip(self, was: bool) -> None:
        """Wake the waiters if the set's state is no longer ``was`` (the condition is held)."""
        if self.is_on() != was:
            self._condition.notify_all()


def install() -> bool:
    """Make kopf build :class:`ToggleSet` from now on; True if it does (see the module)."""
    found = version("kopf")
    if found != KOPF_VERSION:
        logger.warning(
            "kopf %s is not %s: its index wait is left as it is (quadratic on resume)",
            found,
            KOPF_VERSION,
        )
        return False
    aiotoggles.ToggleSet = ToggleSet  # type: ignore[misc]
    return True
