"""The request queue and workers (serving/batching.py) with the numpy stand-in backend: each backend is
used by its own thread only, every batch size is warmed before ready, batching merges compatible
requests and isolates a bad one, a full queue raises QueueFull, drain finishes what was accepted."""
import threading
import time

import numpy as np
import pytest

from kunlun_train.serving.batching import Batcher, QueueFull, RunError, Stopped
from kunlun_train.serving.protocol import BadRequest
from tests.serving_standin import POISON, StandIn, expected


def x(rows, value=1.0):
    return {"x": np.full((rows, 4), value, np.float32)}


def started(delay=0.0, **kw):
    built = []

    def make(i):
        built.append(StandIn(delay))
        return built[-1]
    batcher = Batcher("m", make, **kw)
    assert batcher.start()
    for backend in built:
        backend.runs.clear()          # forget the warm-up
    return batcher, built


def test_warms_every_batch_size_before_ready():
    batcher = Batcher("m", lambda i: StandIn(), workers=2, max_batch_size=4)
    assert not batcher.ready
    assert batcher.start() and batcher.ready and batcher.warmed == [1, 2, 3, 4]
    assert [sorted(b.runs) for b in batcher.backends] == [[1, 2, 3, 4]] * 2
    batcher.drain(5)


def test_a_backend_that_fails_to_build_is_reported():
    def make(i):
        if i == 1:
            raise OSError("no such model file")
        return StandIn()
    batcher = Batcher("m", make, workers=2)
    assert not batcher.start() and not batcher.ready
    assert batcher.errors == ["worker 1: OSError: no such model file"]
    with pytest.raises(Stopped):
        batcher.submit(x(1))


def test_requests_are_checked_before_they_are_queued():
    batcher, _ = started(max_batch_size=4)
    with pytest.raises(BadRequest, match="at most 4 per request"):
        batcher.submit(x(5))
    with pytest.raises(BadRequest, match="is 0"):
        batcher.submit(x(0))
    with pytest.raises(BadRequest, match="must share dim 0"):
        batcher.submit({"x": np.zeros((2, 4), np.float32), "z": np.zeros((3,), np.float32)})
    batcher.drain(5)


def test_no_batching_runs_each_request_alone():
    batcher, (backend,) = started(max_batch_size=8, max_wait_ms=0, delay=0.01)
    futures = [batcher.submit(x(2, i)) for i in range(5)]
    for i, f in enumerate(futures):
        np.testing.assert_allclose(f.result(5)["y"], expected(x(2, i)["x"])["y"])
    assert backend.runs == [2] * 5
    batcher.drain(5)


def test_batching_merges_compatible_requests_and_splits_the_answers():
    batcher, (backend,) = started(max_batch_size=8, max_wait_ms=200)
    futures = [batcher.submit(x(1 + i % 2, i)) for i in range(5)]     # 1+2+1+2+1 = 7 rows
    results = [f.result(5) for f in futures]
    assert backend.runs == [7]
    for i, r in enumerate(results):
        np.testing.assert_allclose(r["y"], expected(x(1 + i % 2, i)["x"])["y"])
        assert r["label"].shape == (1 + i % 2,)
    batcher.drain(5)


def test_batches_respect_max_rows_and_compatibility():
    batcher, (backend,) = started(max_batch_size=4, max_wait_ms=100)
    odd = {"x": np.zeros((1, 4), np.float64)}     # another dtype: never merged with float32
    futures = [batcher.submit(x(3)), batcher.submit(odd), batcher.submit(x(1)), batcher.submit(x(2))]
    for f in futures:
        f.result(5)
    assert sorted(backend.runs) == [1, 2, 4]
    batcher.drain(5)


def test_a_bad_request_does_not_fail_its_batch():
    batcher, (backend,) = started(max_batch_size=8, max_wait_ms=200)
    futures = [batcher.submit(x(1, 1)), batcher.submit(x(1, POISON)), batcher.submit(x(2, 3))]
    assert futures[0].result(5)["y"].shape == (1, 3) and futures[2].result(5)["y"].shape == (2, 3)
    with pytest.raises(RunError, match="poisoned input"):
        futures[1].result(5)
    assert backend.runs[0] == 4 and sorted(backend.runs[1:]) == [1, 1, 2]   # merged, then each alone
    batcher.drain(5)


def test_full_queue_raises_and_drain_finishes_everything_accepted():
    gate = threading.Event()

    class Slow(StandIn):
        def run(self, inputs):
            gate.wait(5)
            return super().run(inputs)
    batcher = Batcher("m", lambda i: Slow(), queue_size=3, example=lambda rows: x(rows))
    gate.set()
    assert batcher.start()
    gate.clear()
    first = batcher.submit(x(1))                   # taken by the worker, which blocks
    time.sleep(0.1)
    queued = [batcher.submit(x(1)) for _ in range(3)]
    with pytest.raises(QueueFull, match="3 requests already queued"):
        batcher.submit(x(1))
    assert batcher.pending == 4
    done = threading.Thread(target=lambda: results.append(batcher.drain(5)))
    results = []
    done.start()
    time.sleep(0.1)
    with pytest.raises(Stopped):
        batcher.submit(x(1))                       # draining: nothing new
    gate.set()
    done.join(5)
    assert results == [True] and all(f.result(0)["y"].shape == (1, 3) for f in [first, *queued])
    assert batcher.pending == 0


def test_each_backend_serves_only_its_own_thread():
    batcher, built = started(workers=3, max_batch_size=2, delay=0.005)
    futures = [batcher.submit(x(1, i)) for i in range(30)]
    assert all(f.result(5)["y"].shape == (1, 3) for f in futures)   # StandIn.run asserts its thread
    assert sum(len(b.runs) for b in built) == 30
    batcher.drain(5)
