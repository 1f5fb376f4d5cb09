"""The worker pool (bulkprov/pool.py): how many items are in flight, in which order results
come, what an error or a cancellation does, and how a stop drains.

Every test synchronises on events and on ``wait_all_tasks_blocked()`` (every task waiting
on something only the test can release), never on time."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from bulkprov.pool import each, map_ordered, open_pool

pytestmark = pytest.mark.anyio


class Gate:
    """Work that records which items are running and holds each until the test releases it."""

    def __init__(self) -> None:
        self.running: set[int] = set()
        self.most = 0  # the most items running at once
        self.started: list[int] = []
        self.finished: list[int] = []
        self.cancelled: list[int] = []
        self.release: dict[int, anyio.Event] = {}

    def event(self, item: int) -> anyio.Event:
        return self.release.setdefault(item, anyio.Event())

    def open(self, *items: int) -> None:
        for item in items:
            self.event(item).set()

    async def work(self, item: int) -> int:
        self.started.append(item)
        self.running.add(item)
        self.most = max(self.most, len(self.running))
        try:
            await self.event(item).wait()
        except anyio.get_cancelled_exc_class():
            self.cancelled.append(item)
            raise
        finally:
            self.running.discard(item)
        self.finished.append(item)
        return item * 10


class TestBound:
    async def test_no_more_items_run_at_once_than_there_are_workers(self) -> None:
        """With 3 workers and 10 items, exactly 3 run while the others wait to be fed."""
        gate = Gate()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: each(gate.work, range(10), workers=3))
            await wait_all_tasks_blocked()
            assert gate.running == {0, 1, 2}
            gate.open(0)
            await wait_all_tasks_blocked()
            assert gate.running == {1, 2, 3}
            gate.open(*range(10))
        assert gate.most == 3
        assert sorted(gate.finished) == list(range(10))

    async def test_buffered_items_wait_for_a_worker(self) -> None:
        """A buffer lets the feeder run ahead by that many items, without more running."""
        gate = Gate()
        taken: list[int] = []

        def items() -> Iterator[int]:
            for i in range(10):
                taken.append(i)
                yield i

        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: each(gate.work, items(), workers=2, buffer=3))
            await wait_all_tasks_blocked()
            assert gate.running == {0, 1}
            # 2 in the workers, 3 in the buffer, and the sixth waiting to be put
            assert taken == [0, 1, 2, 3, 4, 5]
            gate.open(*range(10))
        assert gate.most == 2

    async def test_never_more_workers_than_items(self) -> None:
        """Two items with eight workers allowed: two run, and the pool ends when they do."""
        gate = Gate()
        gate.open(0, 1)
        assert await each(gate.work, [0, 1], workers=8) == 2
        assert sorted(gate.finished) == [0, 1]

    async def test_a_pool_needs_a_worker(self) -> None:
        """Zero workers is refused before anything starts."""
        with pytest.raises(ValueError, match="at least one worker"):
            async with open_pool(Gate().work, workers=0):
                pass


class TestOrder:
    async def test_map_ordered_returns_results_in_the_items_order(self) -> None:
        """Items finishing in reverse order still give their results in the items' order."""
        gate = Gate()
        results: list[int] = []

        async def mapped() -> None:
            results.extend(await map_ordered(gate.work, [0, 1, 2, 3], workers=4))

        async with anyio.create_task_group() as tg:
            tg.start_soon(mapped)
            for item in (3, 2, 1, 0):
                await wait_all_tasks_blocked()
                gate.open(item)
        assert gate.finished == [3, 2, 1, 0]
        assert results == [0, 10, 20, 30]

    async def test_each_reports_results_as_they_complete(self) -> None:
        """``each``'s work sees its items finish in the order they are released."""
        gate = Gate()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: each(gate.work, [0, 1, 2], workers=3))
            for item in (1, 2, 0):
                await wait_all_tasks_blocked()
                gate.open(item)
        assert gate.finished == [1, 2, 0]

    async def test_items_are_taken_in_order(self) -> None:
        """One worker works on the items one after the other, in the order they are fed."""
        gate = Gate()
        gate.open(*range(5))
        async with open_pool(gate.work, workers=1) as pool:
            for item in range(5):
                await pool.put(item)
        assert gate.finished == [0, 1, 2, 3, 4]


class TestErrors:
    async def test_an_error_in_one_item_cancels_the_rest_and_surfaces(self) -> None:
        """The failing item's exception comes out of the pool; the items running are
        cancelled and the items not yet fed never start."""
        gate = Gate()

        async def work(item: int) -> int:
            if item == 1:
                await gate.event(1).wait()
                raise RuntimeError("item 1 failed")
            return await gate.work(item)

        with pytest.raises(ExceptionGroup) as caught:
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: each(work, range(10), workers=3))
                await wait_all_tasks_blocked()
                assert gate.running == {0, 2}
                gate.open(1)
        leaves = _leaves(caught.value)
        assert [str(e) for e in leaves] == ["item 1 failed"]
        assert sorted(gate.cancelled) == [0, 2]
        assert gate.finished == []
        assert sorted(gate.started) == [0, 2]

    async def test_an_error_while_feeding_cancels_the_workers(self) -> None:
        """An exception raised by the code feeding the pool cancels the items running."""
        gate = Gate()
        with pytest.raises(ExceptionGroup) as caught:
            async with open_pool(gate.work, workers=2) as pool:
                await pool.put(0)
                await pool.put(1)
                await wait_all_tasks_blocked()
                raise KeyError("feeder")
        assert [type(e) for e in _leaves(caught.value)] == [KeyError]
        assert sorted(gate.cancelled) == [0, 1]

    async def test_cancelling_the_caller_cancels_the_workers(self) -> None:
        """A cancelled caller leaves no worker behind: each running item is cancelled
        before the pool returns."""
        gate = Gate()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: each(gate.work, range(10), workers=3))
                await wait_all_tasks_blocked()
                scope.cancel()
        assert scope.cancelled_caught
        assert sorted(gate.cancelled) == [0, 1, 2]
        assert gate.running == set()


class TestStop:
    async def test_stop_feeding_drains_the_items_in_flight(self) -> None:
        """Once stop is set no further item is taken; the items already taken (running, or
        being handed to a worker) finish, and the pool says how many it took."""
        gate = Gate()
        stop = anyio.Event()
        taken: list[int] = []
        fed: list[int] = []

        def items() -> Iterator[int]:
            for i in range(10):
                taken.append(i)
                yield i

        async def feed() -> None:
            fed.append(await each(gate.work, items(), workers=2, stop=stop))

        async with anyio.create_task_group() as tg:
            tg.start_soon(feed)
            await wait_all_tasks_blocked()
            assert gate.running == {0, 1}
            assert taken == [0, 1, 2]  # the third waits for a free worker
            stop.set()
            gate.open(0)
            await wait_all_tasks_blocked()
            assert gate.running == {1, 2}
            gate.open(1, 2)
        assert fed == [3]
        assert taken == [0, 1, 2]
        assert sorted(gate.finished) == [0, 1, 2]
        assert gate.cancelled == []

    async def test_stop_set_before_feeding_takes_nothing(self) -> None:
        """A stop already set when the pool starts: no item is taken."""
        stop = anyio.Event()
        stop.set()
        gate = Gate()
        assert await each(gate.work, range(5), workers=2, stop=stop) == 0
        assert gate.started == []


class TestChained:
    async def test_a_worker_of_one_pool_feeds_another(self) -> None:
        """A first pool's workers put into a second pool opened around it; the second
        drains after the first, and every item goes through both."""
        second: list[int] = []

        async def last(item: int) -> None:
            second.append(item)

        async with open_pool(last, workers=2) as outer:

            async def first(item: int) -> None:
                await outer.put(item * 2)

            await each(first, range(6), workers=3)
        assert sorted(second) == [0, 2, 4, 6, 8, 10]


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]
