"""A worker pool: many items, a bounded number in flight, all under one task group.

The idiom anyio documents (``docs/streams.rst``, "cloning"): the items go through a bounded
memory object stream to a fixed number of workers, each reading its own clone of the receiving
end, all started in one task group. Nothing is spawned per item (memory stays flat however many
items there are) and no task outlives the pool::

    async with open_pool(work, workers=8) as pool:
        for item in items:
            await pool.put(item)  # waits while every worker is busy and the buffer is full
    # out of the block: every item put has been worked on

    await each(work, items, workers=8)  # the same, fed from an iterable
    await each(work, items, workers=8, stop=event)  # ... until ``event`` is set
    rows = await map_ordered(work, items, workers=8)  # the results, in the items' order

Results: ``work`` reports its own as each item completes (the order items finish in), or
:func:`map_ordered` returns them in the order of the items. A pool can feed another: a worker
of the first puts into the second (``run``'s set-up workers hand each instance to a monitor
worker); open the second first, so that it closes after the first has drained.

Errors and cancellation: an exception raised by ``work`` (or by the code feeding the pool)
cancels the other workers and the feeding code, and comes out of the pool in the task group's
``ExceptionGroup``, as anyio raises it; cancelling the caller cancels the workers.

Stopping (a drain): :meth:`Pool.feed` and :func:`each` take no further item from the iterable
once ``stop`` is set; the items already taken (being worked on, waiting in the buffer, or being
handed to a worker) are still worked on, and the pool returns when they are done.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sized
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["Pool", "each", "map_ordered", "open_pool"]

T = TypeVar("T")
R = TypeVar("R")


class Pool(Generic[T]):
    """The feeding end of an open pool (see :func:`open_pool`)."""

    __slots__ = ("_send",)

    def __init__(self, send: MemoryObjectSendStream[T]) -> None:
        self._send = send

    async def put(self, item: T) -> None:
        """Hand ``item`` to a worker; waits while every worker is busy and the buffer is full."""
        await self._send.send(item)

    async def feed(self, items: Iterable[T], *, stop: anyio.Event | None = None) -> int:
        """Put each of ``items`` in order, taking none once ``stop`` is set (checked before
        each item is taken); returns how many were put."""
        iterator = iter(items)
        fed = 0
        while stop is None or not stop.is_set():
            try:
                item = next(iterator)
            except StopIteration:
                break
            await self.put(item)
            fed += 1
        return fed


@asynccontextmanager
async def open_pool(
    work: Callable[[T], Awaitable[object]], *, workers: int, buffer: int = 0
) -> AsyncIterator[Pool[T]]:
    """``workers`` tasks each running ``work`` on the items put into the pool, one at a time.

    ``buffer``: how many items may wait for a worker before :meth:`Pool.put` waits. Leaving
    the block closes the pool: the workers finish the items put and the block's exit returns
    once they are done (see the module docstring for errors, cancellation and stopping)."""
    if workers < 1:
        raise ValueError(f"a pool needs at least one worker, not {workers}")
    send, receive = anyio.create_memory_object_stream[T](buffer)
    async with anyio.create_task_group() as tg:
        async with receive:  # the workers hold clones: the stream ends when the last is done
            for _ in range(workers):
                tg.start_soon(_worker, work, receive.clone())
        async with send:  # closed on the way out: the workers' loops end
            yield Pool(send)


async def _worker(
    work: Callable[[T], Awaitable[object]], receive: MemoryObjectReceiveStream[T]
) -> None:
    async with receive:
        async for item in receive:
            await work(item)


def _bounded(workers: int, items: Iterable[object]) -> int:
    """No more workers than there are items (one at least), when their number is known."""
    if isinstance(items, Sized):
        return min(workers, max(1, len(items)))
    return workers


async def each(
    work: Callable[[T], Awaitable[object]],
    items: Iterable[T],
    *,
    workers: int,
    buffer: int = 0,
    stop: anyio.Event | None = None,
) -> int:
    """Run ``work`` on each of ``items``, ``workers`` at a time (fewer if there are fewer
    items), until ``stop`` is set; returns how many items were taken (all were worked on)."""
    async with open_pool(work, workers=_bounded(workers, items), buffer=buffer) as pool:
        return await pool.feed(items, stop=stop)


async def map_ordered(
    work: Callable[[T], Awaitable[R]], items: Iterable[T], *, workers: int
) -> list[R]:
    """``work``'s result for each of ``items``, in the items' order, ``workers`` at a time."""
    results: dict[int, R] = {}

    async def one(numbered: tuple[int, T]) -> None:
        n, item = numbered
        results[n] = await work(item)

    taken = await each(one, enumerate(items), workers=_bounded(workers, items))
    return [results[n] for n in range(taken)]
