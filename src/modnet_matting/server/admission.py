"""What may run at once: a budget of pixels in flight, and work that stops when its client is gone.

A request's memory grows with its pixels (decode, alpha, foreground, cut-out, PNG: about
30 bytes per pixel), not with the number of requests, so the server admits requests
against a pixel budget read from the image headers before anything is decoded: many
small photos run side by side, two huge ones wait for each other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
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

    @asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        """Wait until ``pixels`` fit in the budget, keep them while the block runs."""
        if self._changed is None:
            self._changed = asyncio.Condition()
        pixels = min(max(pixels, 1), self.capacity)
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_flight + pixels <= self.capacity)
            self.in_flight += pixels
        try:
            yield
        finally:
            async with self._changed:
                self.in_flight -= pixels
                self._changed.notify_all()


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
