"""What may run at once: a budget of pixels in flight, and work that stops when its client is gone.

A request's memory grows with its pixels (decode, alpha, foreground, cut-out, PNG: about
30 bytes per pixel), not with the number of requests, so the server admits requests
against a pixel budget read from the image headers before anything is decoded: many
small photos run side by side, two huge ones wait for each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from typing import TypeVar

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before its answer was ready; the work was cancelled."""


class PixelBudget:
    """An asyncio semaphore weighted by pixels; a request larger than the budget runs alone."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("the pixel budget must be at least 1")
        self.capacity = capacity
        self.in_flight = 0
        self._changed: asyncio.Condition | None = None
        self._late: set[asyncio.Future] = set()  # releases that wait for a stage still running in a thread

    @asynccontextmanager
    async def hold(self, pixels: int, stages: Stages | None = None) -> AsyncIterator[None]:
        """Wait until ``pixels`` fit in the budget, keep them while the block runs.

        With ``stages``, a block that ends (a 504, a client gone) while one of its stages still
        runs in a thread keeps its pixels until that thread returns: the memory is still in use.
        """
        if self._changed is None:
            self._changed = asyncio.Condition()
        pixels = min(max(pixels, 1), self.capacity)
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_flight + pixels <= self.capacity)
            self.in_flight += pixels
        try:
            yield
        finally:
            running = stages.running.copy() if stages is not None else set()
            if running:  # not awaited here: the answer (504) must not wait for the thread
                self._late.add(asyncio.ensure_future(self._release_after(running, pixels)))
                self._late = {task for task in self._late if not task.done()}
            else:
                await self._release(pixels)

    async def _release(self, pixels: int) -> None:
        async with self._changed:
            self.in_flight -= pixels
            self._changed.notify_all()

    async def _release_after(self, running: set[asyncio.Future], pixels: int) -> None:
        await asyncio.wait(running)
        await self._release(pixels)


class Stopped(Exception):
    """A stage found its request abandoned at a boundary and did not start its next step."""


class Stages:
    """One request's work in the thread pool: the stages still running, and a flag that stops the next one.

    A thread cannot be interrupted, but a cancelled request (timeout, client gone) sets ``stop``:
    no new stage starts, and a long stage that checks ``check`` between its steps (foreground,
    cut-out, encoding) ends at the next of them instead of finishing work no one will read.
    """

    def __init__(self, pool: Executor) -> None:
        self.pool = pool
        self.stop = threading.Event()
        self.running: set[asyncio.Future] = set()

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        if self.stop.is_set():
            raise Stopped("the request was abandoned")
        future = asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
        self.running.add(future)
        future.add_done_callback(self.running.discard)
        try:
            # shielded: cancelling the request must not mark the stage done while its thread still runs
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            self.stop.set()
            raise

    def check(self) -> None:
        """Between a stage's steps: raise ``Stopped`` if the request was abandoned."""
        if self.stop.is_set():
            raise Stopped("the request was abandoned")


async def unless_disconnected(receive: Callable[[], Awaitable[dict]], work: Awaitable[T]) -> T:
    """Run ``work`` until it finishes or the ASGI ``receive`` channel reports a disconnect.

    Call it after the request body has been read: the next message is then
    ``http.disconnect``. Queued stages are cancelled (the batcher skips a cancelled
    request); a stage already running in a thread finishes, but nothing after it runs.
    """
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    watch = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when the caller's timeout cancels us: never leave the work running
        watch.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        raise ClientGone("the client disconnected")
    return task.result()
