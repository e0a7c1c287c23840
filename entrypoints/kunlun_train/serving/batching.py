"""Requests to predictors: one bounded queue per model, N worker threads each owning ONE backend
(a Paddle Predictor is not thread-safe: PaddleOCR#6514), adaptive batching. No Paddle here.

A backend is anything with `run(inputs: dict[str, ndarray]) -> dict[str, ndarray]` and (unless an
`example` is given) `example(rows) -> inputs` to warm up with, built by `make(worker_index)` inside
its worker's thread (Paddle's math threads are per thread); every batch size 1..max_batch_size is
run once before the model is ready. Batching
(max_wait_ms > 0) merges queued requests whose inputs agree in everything but dim 0, up to
max_batch_size rows, waiting at most max_wait_ms for more; off (0), each request runs alone. Requests
are checked before they are queued; if a merged run fails, each request of the batch runs alone, so
one bad request never fails another. A full queue raises QueueFull (HTTP 503 with Retry-After)."""
from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .protocol import BadRequest


class QueueFull(Exception):
    """The model's queue holds --queue-size requests: the client should retry later."""


class Stopped(Exception):
    """The model no longer accepts requests (draining, or its predictors failed to start)."""


class NullMetrics:
    """What the batcher reports; the app's Prometheus metrics implement the same three methods."""

    def queued(self, model: str, seconds: float) -> None: ...
    def computed(self, model: str, rows: int, requests: int, seconds: float) -> None: ...
    def ready(self, model: str, ready: bool) -> None: ...


@dataclass(eq=False)   # identity: a job is removed from the queue by `is`, not by its arrays
class Job:
    inputs: dict[str, np.ndarray]
    rows: int
    key: tuple                                  # what a batch must agree on: names, dtypes, dims 1..
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


def rows_of(inputs: dict[str, np.ndarray], max_batch_size: int) -> int:
    """Dim 0 of the inputs: the same for all, at least 1, at most what the predictors were warmed for."""
    sizes = {name: a.shape[0] if a.ndim else None for name, a in inputs.items()}
    if None in sizes.values() or len(set(sizes.values())) != 1:
        detail = ", ".join(f"'{n}' {s}" for n, s in sizes.items())
        raise BadRequest(f"inputs must share dim 0 (the batch): got {detail}")
    rows = next(iter(sizes.values()))
    if rows < 1:
        raise BadRequest("dim 0 (the batch) of the inputs is 0: send at least one row")
    if rows > max_batch_size:
        raise BadRequest(f"a batch of {rows} rows; this server runs at most {max_batch_size} per "
                         "request (--max-batch-size)")
    return rows


class Batcher:
    def __init__(self, name: str, make: Callable[[int], object], workers: int = 1, max_batch_size: int = 1,
                 max_wait_ms: float = 0.0, queue_size: int = 64, metrics=None,
                 example: Callable[[int], dict[str, np.ndarray]] | None = None):
        if workers < 1 or max_batch_size < 1 or queue_size < 1 or max_wait_ms < 0:
            raise ValueError("workers, max_batch_size and queue_size must be >= 1, max_wait_ms >= 0")
        self.name, self.make, self.workers = name, make, workers
        self.max_batch_size, self.max_wait = max_batch_size, max_wait_ms / 1000
        self.queue_size, self.metrics, self.example = queue_size, metrics or NullMetrics(), example
        self._jobs: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._busy = 0                          # jobs taken by workers, not yet answered
        self._threads: list[threading.Thread] = []
        self.backends: list = [None] * workers  # each is used by its worker only (metadata aside)
        self._started = threading.Barrier(workers + 1)
        self.errors: list[str] = []             # why a worker could not start
        self.ready = False
        self.warmed: list[int] = []             # the batch sizes each predictor has run once

    @property
    def batching(self) -> bool:
        return self.max_wait > 0 and self.max_batch_size > 1

    # --- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> bool:
        """Build every backend (in its own thread) and warm it at every batch size it will run; True
        when all are ready. Blocks, so call it from a thread when the server must answer meanwhile."""
        for index in range(self.workers):
            thread = threading.Thread(target=self._work, args=(index,), name=f"{self.name}-worker-{index}",
                                      daemon=True)   # a hung predictor must not keep the process alive
            thread.start()
            self._threads.append(thread)
        self._started.wait()
        if self.errors:
            self.close()
            return False
        self.warmed = list(self._sizes())
        self.ready = True
        self.metrics.ready(self.name, True)
        return True

    def _sizes(self) -> range:
        return range(1, self.max_batch_size + 1)

    def close(self) -> None:
        """Stop accepting; what is queued still runs."""
        with self._cond:
            self._closed = True
            self.ready = False
            self._cond.notify_all()
        self.metrics.ready(self.name, False)

    def drain(self, timeout: float) -> bool:
        """Stop accepting, finish every accepted request, then stop the workers. False on timeout."""
        self.close()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._jobs) + self._busy

    # --- requests -------------------------------------------------------------------------------------

    def submit(self, inputs: dict[str, np.ndarray]) -> Future:
        """Queue a checked request; its Future gets the outputs (dict name -> array)."""
        rows = rows_of(inputs, self.max_batch_size)
        key = tuple(sorted((n, a.dtype.str, a.shape[1:]) for n, a in inputs.items()))
        job = Job(inputs, rows, key)
        with self._cond:
            if self._closed:
                raise Stopped(f"model '{self.name}' is not accepting requests (shutting down)")
            if len(self._jobs) >= self.queue_size:
                raise QueueFull(f"model '{self.name}': {self.queue_size} requests already queued "
                                "(--queue-size); retry shortly")
            self._jobs.append(job)
            self._cond.notify_all()
        return job.future

    def _take(self) -> list[Job] | None:
        """The next batch: the oldest job, plus (batching on) compatible queued ones up to
        max_batch_size rows, waiting up to max_wait for them. None once closed and empty."""
        with self._cond:
            while not self._jobs:
                if self._closed:
                    return None
                self._cond.wait()
            first = self._jobs.popleft()
            batch, rows = [first], first.rows
            deadline = time.monotonic() + self.max_wait
            while self.batching and rows < self.max_batch_size:
                for job in list(self._jobs):
                    if job.key == first.key and rows + job.rows <= self.max_batch_size:
                        self._jobs.remove(job)
                        batch.append(job)
                        rows += job.rows
                left = deadline - time.monotonic()
                if rows >= self.max_batch_size or left <= 0 or self._closed:
                    break
                self._cond.wait(left)
            self._busy += len(batch)
            return batch

    # --- workers --------------------------------------------------------------------------------------

    def _work(self, index: int) -> None:
        try:
            backend = self.make(index)
            self.backends[index] = backend
            example = self.example or getattr(backend, "example", None)
            if example is None:
                raise ValueError("no example inputs to warm the predictor up with")
            for rows in self._sizes():   # the first run at a new shape is slow (oneDNN primitives)
                backend.run(example(rows))
        except Exception as e:   # reported by start(); this worker serves nothing
            self.errors.append(f"worker {index}: {type(e).__name__}: {e}")
            self._started.wait()
            return
        self._started.wait()
        while (batch := self._take()) is not None:
            try:
                self._run(backend, batch)
            except Exception as e:   # a bug of ours: answer the batch rather than leave it waiting
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(RunError(f"model '{self.name}': {type(e).__name__}: {e}"))
            finally:
                with self._cond:
                    self._busy -= len(batch)

    def _run(self, backend, batch: list[Job]) -> None:
        now = time.monotonic()
        for job in batch:
            self.metrics.queued(self.name, now - job.enqueued)
        if len(batch) == 1:
            self._run_one(backend, batch[0])
            return
        names = list(batch[0].inputs)
        merged = {n: np.concatenate([job.inputs[n] for job in batch]) for n in names}
        total = sum(job.rows for job in batch)
        try:
            started = time.monotonic()
            outputs = backend.run(merged)
            self.metrics.computed(self.name, total, len(batch), time.monotonic() - started)
            if any(np.ndim(a) == 0 or np.shape(a)[0] != total for a in outputs.values()):
                raise ValueError("an output is not batched along dim 0")
        except Exception:       # find the culprit: each request alone, so the others still succeed
            for job in batch:
                self._run_one(backend, job)
            return
        at = 0
        for job in batch:
            job.future.set_result({n: a[at:at + job.rows] for n, a in outputs.items()})
            at += job.rows

    def _run_one(self, backend, job: Job) -> None:
        try:
            started = time.monotonic()
            outputs = backend.run(job.inputs)
            self.metrics.computed(self.name, job.rows, 1, time.monotonic() - started)
        except Exception as e:
            job.future.set_exception(RunError(f"model '{self.name}' failed on this request: "
                                              f"{type(e).__name__}: {e}"))
            return
        job.future.set_result(outputs)


class RunError(Exception):
    """The predictor raised on a request that passed the checks (HTTP 500, message included)."""
