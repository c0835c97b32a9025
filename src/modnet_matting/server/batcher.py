"""Micro-batching of concurrent requests in front of one loaded predictor.

Requests put their decoded image on a bounded queue and await a future. One
worker task takes the first waiting image, collects more for at most
``max_wait_s`` (or until ``max_batch`` are waiting), and runs the whole batch
in a single inference thread, so the event loop never blocks on the network
and a GPU sees batches rather than single images. A full queue is refused at
once (the caller answers 503) instead of letting latency grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

#: ``predict_rgb``-shaped callable: RGB uint8 images in, float32 alphas out.
PredictFn = Callable[[Sequence[np.ndarray]], list[np.ndarray]]


class QueueFullError(RuntimeError):
    """The request queue is full; the client should retry later."""


@dataclass
class _Job:
    rgb: np.ndarray
    future: asyncio.Future


class MicroBatcher:
    """Bounded queue + one worker that batches what arrives within a short window."""

    def __init__(
        self, predict: PredictFn, max_batch: int = 8, max_wait_s: float = 0.01, queue_size: int = 64
    ) -> None:
        if max_batch < 1 or queue_size < 1:
            raise ValueError("max_batch and queue_size must be at least 1")
        self.predict = predict
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.queue_size = queue_size
        self.batches_run = 0
        self.images_run = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modnet-infer")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None

    @property
    def pending(self) -> int:
        """Images waiting for the worker (not counting the batch being run)."""
        return self._queue.qsize() if self._queue is not None else 0

    def _ensure_started(self) -> asyncio.Queue[_Job]:
        """Start the worker on the running loop (again, if a test client changed loops)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            self._loop = loop
            self._queue = asyncio.Queue(maxsize=self.queue_size)
            self._task = loop.create_task(self._work(self._queue), name="modnet-batcher")
        assert self._queue is not None
        return self._queue

    async def submit(self, rgb: np.ndarray) -> np.ndarray:
        """Alpha for one RGB uint8 image; raises ``QueueFullError`` when saturated."""
        queue = self._ensure_started()
        future = asyncio.get_running_loop().create_future()
        try:
            queue.put_nowait(_Job(rgb, future))
        except asyncio.QueueFull:
            raise QueueFullError(f"server busy: {self.queue_size} images already queued") from None
        return await future

    async def _collect(self, queue: asyncio.Queue[_Job]) -> list[_Job]:
        """First waiting job, plus whatever else arrives within the batching window.

        Sleeping then draining with ``get_nowait`` cannot lose a job the way a
        cancelled ``wait_for(queue.get())`` can.
        """
        batch = [await queue.get()]
        if queue.qsize() < self.max_batch - 1 and self.max_wait_s > 0:
            await asyncio.sleep(self.max_wait_s)
        while len(batch) < self.max_batch and not queue.empty():
            batch.append(queue.get_nowait())
        # Requests that timed out or disconnected while waiting need no work.
        return [job for job in batch if not job.future.done()]

    async def _work(self, queue: asyncio.Queue[_Job]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect(queue)
            if not batch:
                continue
            try:
                alphas = await loop.run_in_executor(self._executor, self.predict, [job.rgb for job in batch])
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request, the worker lives on
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            self.batches_run += 1
            self.images_run += len(batch)
            for job, alpha in zip(batch, alphas):
                if not job.future.done():
                    job.future.set_result(alpha)

    async def stop(self) -> None:
        """Cancel the worker and fail whatever still waits (server shutdown)."""
        if self._task is not None:
            self._task.cancel()
            if self._loop is asyncio.get_running_loop():
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._queue is not None:
            while not self._queue.empty():
                job = self._queue.get_nowait()
                if not job.future.done():
                    job.future.set_exception(QueueFullError("server is shutting down"))
        self._task = None

    def close(self) -> None:
        """Release the inference thread (after ``stop``)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
