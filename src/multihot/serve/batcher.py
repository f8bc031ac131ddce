"""Micro-batching: the texts of concurrent requests computed together, in one forward pass.

A request's texts are encoded when it arrives (:meth:`multihot.inference.predictor.Predictor.encode`)
and queued, one item per text. One worker thread owns the model: it takes the oldest texts, waits
up to ``max_wait_ms`` (counted from when the oldest arrived) for more to join, and runs one forward
pass over at most ``max_batch`` texts and ``max_batch_tokens`` padded tokens (the batch's texts
times its longest; the backend sorts them by length). Each row goes back to its request; a
request's future resolves when its last text is done, on the event loop that submitted it.

The queue is bounded (``max_queue`` texts): :meth:`MicroBatcher.submit` raises :class:`QueueFull`
rather than letting it grow, and the server answers 503 with Retry-After. A request whose client
went away is cancelled, and its texts that are still queued are dropped before they are computed.

Example:
    >>> batcher = MicroBatcher(predictor, max_batch=64, max_batch_tokens=8192, max_wait_ms=5)  # doctest: +SKIP
    >>> batcher.start()  # doctest: +SKIP
    >>> probs = await batcher.submit(predictor.encode(["so happy for you!"]))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from multihot.core.memory import release_free_memory

logger = logging.getLogger(__name__)


class QueueFull(Exception):
    """The queue holds ``max_queue`` texts already; try again later."""


@dataclass(eq=False)  # compared and hashed by identity
class Job:
    """One request's texts: their rows fill ``probs`` as batches finish."""

    encoded: list
    tokens: list[int]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    probs: np.ndarray  # (len(encoded), num_labels), allocated with the job
    remaining: int = 0
    cancelled: bool = False
    failed: bool = False
    arrived: float = field(default_factory=time.monotonic)

    def done(self) -> bool:
        return self.cancelled or self.failed or self.remaining == 0


@dataclass
class Batch:
    """What one forward pass computes: ``(job, row)`` per text."""

    items: list[tuple[Job, int]]
    padded_tokens: int


class MicroBatcher:
    """Gathers queued texts into batches and computes them on one worker thread.

    Args:
        predictor: a :class:`multihot.inference.predictor.Predictor` (or anything with
            ``predict_proba_encoded``, ``token_count`` and ``label_names``).
        max_batch: texts per forward pass at most.
        max_batch_tokens: padded tokens (texts x the longest) per forward pass at most.
        max_wait_ms: how long the oldest queued text waits for others before its batch runs.
        max_queue: texts queued at most.
        on_batch: called with ``(texts, padded_tokens)`` after each forward pass (metrics).
        on_drop: called with the number of texts dropped because their request was cancelled.
        trim_every: hand freed heap memory back to the system after every this many batches
            (:func:`multihot.core.memory.release_free_memory`), so that the activations of many
            batch shapes do not pile up in the heap; 0: never.
    """

    def __init__(
        self,
        predictor,
        *,
        max_batch: int = 64,
        max_batch_tokens: int = 8192,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
        on_batch=None,
        on_drop=None,
        trim_every: int = 4,
    ):
        self.predictor = predictor
        self.max_batch, self.max_batch_tokens = max_batch, max_batch_tokens
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.on_batch, self.on_drop = on_batch, on_drop
        self.trim_every = trim_every
        self.batches = 0  # forward passes computed, failed ones included
        self._items: collections.deque[tuple[Job, int]] = collections.deque()
        self._queued = 0  # texts of live jobs in _items
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------ the request side
    @property
    def depth(self) -> int:
        """Texts waiting for a forward pass."""
        return self._queued

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def submit_job(self, encoded: list) -> Job:
        """Queue one request's encoded texts; its future gives probabilities
        ``(len(encoded), num_labels)`` in the order given.

        Raises:
            QueueFull: the texts would take the queue past ``max_queue``.
            RuntimeError: the batcher is stopping.
        """
        loop = asyncio.get_running_loop()
        job = Job(
            encoded,
            [self.predictor.token_count(e) for e in encoded],
            loop.create_future(),
            loop,
            np.empty((len(encoded), len(self.predictor.label_names)), dtype=np.float32),
            remaining=len(encoded),
        )
        if not encoded:
            job.future.set_result(job.probs)
            return job
        with self._cond:
            if self._stopping:
                raise RuntimeError("the server is shutting down")
            if self._queued + len(encoded) > self.max_queue:
                raise QueueFull(f"{self._queued} texts are queued (at most {self.max_queue})")
            self._items.extend((job, i) for i in range(len(encoded)))
            self._queued += len(encoded)
            self._cond.notify()
        return job

    async def submit(self, encoded: list) -> np.ndarray:
        """:meth:`submit_job` and wait for its probabilities."""
        return await self.submit_job(encoded).future

    def cancel(self, job: Job) -> None:
        """Drop a request's texts that are still queued (its client went away)."""
        with self._cond:
            if job.done():
                return
            job.cancelled = True
            left = sum(1 for j, _ in self._items if j is job)
            if left:
                self._items = collections.deque((j, i) for j, i in self._items if j is not job)
                self._queued -= left
        if left and self.on_drop:
            self.on_drop(left)
        if not job.future.done():
            job.future.cancel()

    # ------------------------------------------------------------------------- the worker side
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="multihot-batcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Compute what is queued, then end the worker thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _next_batch(self) -> Batch | None:
        """The next batch to compute, waiting for one; None once stopping with nothing queued."""
        with self._cond:
            while not self._items:
                if self._stopping:
                    return None
                self._cond.wait()
            # Let others join the oldest text, up to max_wait after it arrived.
            deadline = self._items[0][0].arrived + self.max_wait
            while len(self._items) < self.max_batch and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            items: list[tuple[Job, int]] = []
            longest = 0
            while self._items and len(items) < self.max_batch:
                job, row = self._items[0]
                size = job.tokens[row]
                wider = max(longest, size)
                if items and (len(items) + 1) * wider > self.max_batch_tokens:
                    break
                self._items.popleft()
                self._queued -= 1
                items.append((job, row))
                longest = wider
            return Batch(items, len(items) * longest)

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._compute(batch)
            self.batches += 1
            if self.trim_every and self.batches % self.trim_every == 0:
                release_free_memory()

    def _compute(self, batch: Batch) -> None:
        try:
            probs = self.predictor.predict_proba_encoded(
                [job.encoded[row] for job, row in batch.items], batch_size=len(batch.items)
            )
        except Exception as err:  # every request in the batch gets the error, the server lives
            logger.exception("a batch of %d texts failed", len(batch.items))
            self._fail({job for job, _ in batch.items}, err)
            return
        if self.on_batch:
            self.on_batch(len(batch.items), batch.padded_tokens)
        finished = []
        with self._cond:
            for (job, row), p in zip(batch.items, probs, strict=True):
                if job.cancelled or job.failed:
                    continue
                job.probs[row] = p
                job.remaining -= 1
                if job.remaining == 0:
                    finished.append(job)
        for job in finished:
            job.loop.call_soon_threadsafe(_resolve, job.future, job.probs)

    def _fail(self, jobs: set[Job], err: Exception) -> None:
        with self._cond:
            for job in jobs:
                job.failed = True
            self._items = collections.deque((j, i) for j, i in self._items if j not in jobs)
            self._queued = len(self._items)
        for job in jobs:
            job.loop.call_soon_threadsafe(_reject, job.future, err)


def _resolve(future: asyncio.Future, value) -> None:
    if not future.done():
        future.set_result(value)


def _reject(future: asyncio.Future, err: Exception) -> None:
    if not future.done():
        future.set_exception(err)
