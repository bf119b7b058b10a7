"""kopf's wait for its indexes: one wake-up per waiting object, not one per object per object
(issue 21). Counted in wake-ups, not timed."""

from __future__ import annotations

import asyncio
from importlib.metadata import version

import pytest
from kopf._cogs.aiokits import aiotoggles
from modelgrid_operator import readiness
from modelgrid_operator.config import OperatorConfig
from modelgrid_operator.handlers import build_registry

pytestmark = pytest.mark.unit

OBJECTS = 300


async def _checks_while_resuming(cls: type[aiotoggles.ToggleSet], objects: int) -> int:
    """How often the set's state is checked while ``objects`` workers resume as kopf's do: the
    watcher gives each object of its listing a toggle and starts its worker, which drops the
    toggle and waits for the set; between two objects the loop runs (kopf's watcher awaits the
    listing's stream), so the waiters an object wakes check the set before the next comes."""

    class Counted(cls):  # type: ignore[misc, valid-type]
        checks = 0

        def is_on(self) -> bool:
            Counted.checks += 1
            return super().is_on()

    indexed = Counted(all)
    listing = await indexed.make_toggle(name="listing")

    async def worker(toggle: aiotoggles.Toggle) -> None:
        await indexed.drop_toggle(toggle)
        await indexed.wait_for(True)

    workers = []
    for i in range(objects):
        workers.append(asyncio.create_task(worker(await indexed.make_toggle(name=str(i)))))
        for _ in range(3):
            await asyncio.sleep(0)
    await indexed.drop_toggle(listing)
    await asyncio.wait_for(asyncio.gather(*workers), timeout=30)
    return Counted.checks


async def test_resuming_checks_the_set_a_few_times_per_object() -> None:
    assert await _checks_while_resuming(readiness.ToggleSet, OBJECTS) <= 8 * OBJECTS


async def test_kopfs_own_set_checks_it_once_per_waiter_per_object() -> None:
    """The same count on kopf's class: what the test above would see without the fix."""
    (original,) = readiness.ToggleSet.__bases__
    assert original.__module__ == aiotoggles.__name__
    assert await _checks_while_resuming(original, OBJECTS) >= OBJECTS * OBJECTS // 3


async def test_waiters_wake_when_the_state_flips_both_ways() -> None:
    indexed = readiness.ToggleSet(all)
    blocker = await indexed.make_toggle(name="blocker")
    until_on = asyncio.create_task(indexed.wait_for(True))
    await asyncio.sleep(0)
    assert not until_on.done()
    await indexed.drop_toggle(blocker)
    await asyncio.wait_for(until_on, timeout=1)

    until_off = asyncio.create_task(indexed.wait_for(False))
    await asyncio.sleep(0)
    assert not until_off.done()
    await indexed.make_toggle(name="late")
    await asyncio.wait_for(until_off, timeout=1)


async def test_turning_a_toggle_still_wakes_the_waiters_of_an_any_set() -> None:
    paused = readiness.ToggleSet(any)
    toggle = await paused.make_toggle(name="namespace")
    until_on = asyncio.create_task(paused.wait_for(True))
    await asyncio.sleep(0)
    await toggle.turn_to(True)
    await asyncio.wait_for(until_on, timeout=1)


async def test_dropping_several_at_once_wakes_once_they_are_gone() -> None:
    indexed = readiness.ToggleSet(all)
    toggles = [await indexed.make_toggle(name=str(i)) for i in range(3)]
    waiter = asyncio.create_task(indexed.wait_for(True))
    await indexed.drop_toggles(toggles[:2])
    await asyncio.sleep(0)
    assert not waiter.done()
    await indexed.drop_toggles(toggles[2:])
    await asyncio.wait_for(waiter, timeout=1)


def test_building_the_registry_makes_kopf_use_it() -> None:
    build_registry(OperatorConfig())
    assert aiotoggles.ToggleSet is readiness.ToggleSet


def test_the_installed_kopf_is_the_release_it_was_written_for() -> None:
    """Upgrading kopf fails here: check the new release's ToggleSet, queueing.watcher and
    processing against :mod:`modelgrid_operator.readiness`, then move its pin."""
    assert version("kopf") == readiness.KOPF_VERSION
