"""A NUMPY STAND-IN for the paddle.inference backend (no Paddle on the host), for the serving tests:
a fixed linear layer x[n, 4] @ W -> y[n, 3] plus label[n] = argmax. It records the batch sizes it
ran, can sleep per run (a slow model) and fails on a value of 666 (a request that passes the checks
but breaks the model). Run as a script it serves one such model, for the subprocess tests:
    python tests/serving_standin.py --port 0 [--delay-ms 20] [--max-batch-size 8 --max-wait-ms 20]
    python tests/serving_standin.py --self-test [--image-route] [--broken]   (`serve --self-test`'s run)"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "entrypoints")]

from kunlun_train.serving.protocol import TensorSpec, example_inputs  # noqa: E402

WEIGHTS = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
POISON = 666.0


class StandIn:
    platform = "numpy_standin"
    inputs = [TensorSpec("x", "FP32", (-1, 4))]
    outputs = [TensorSpec("y", "FP32", (-1, 3)), TensorSpec("label", "INT64", (-1,))]

    def __init__(self, delay: float = 0.0, build_delay: float = 0.0):
        time.sleep(build_delay)          # building a Predictor takes seconds
        self.delay, self.runs, self.thread = delay, [], threading.get_ident()

    def example(self, rows: int):
        return example_inputs(tuple(self.inputs), rows)

    def run(self, inputs):
        assert threading.get_ident() == self.thread, "a backend is used by its own worker only"
        x = inputs["x"]
        self.runs.append(len(x))
        time.sleep(self.delay)
        if (x == POISON).any():
            raise RuntimeError("stand-in: poisoned input")
        y = x @ WEIGHTS
        return {"y": y, "label": y.argmax(axis=1).astype(np.int64)}


class ImageRoute:
    """A task route taking an image, as classification's: checks it got a PNG and runs the model once."""
    body = "image"

    def predict(self, body: bytes, content_type: str, infer) -> dict:
        assert body.startswith(b"\x89PNG\r\n\x1a\n") and content_type == "image/png", (body[:8], content_type)
        y = infer({"x": np.full((1, 4), len(body) % 7, np.float32)})
        return {"label": int(y["label"][0]), "png_bytes": len(body)}


class Broken(StandIn):
    def run(self, inputs):
        raise RuntimeError("stand-in: a model that cannot run")


def expected(x) -> dict:
    y = np.asarray(x, np.float32) @ WEIGHTS
    return {"y": y, "label": y.argmax(axis=1)}


def main(argv=None) -> int:
    from kunlun_train.serving.app import Model, Service, bind, run
    from kunlun_train.serving.batching import Batcher
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--delay-ms", type=float, default=0)
    p.add_argument("--build-ms", type=float, default=0)
    p.add_argument("--max-batch-size", type=int, default=8)
    p.add_argument("--max-wait-ms", type=float, default=0)
    p.add_argument("--queue-size", type=int, default=64)
    p.add_argument("--drain-seconds", type=float, default=10)
    p.add_argument("--self-test", action="store_true")
    p.add_argument("--self-test-timeout", type=float, default=30)
    p.add_argument("--image-route", action="store_true")
    p.add_argument("--broken", action="store_true")
    a = p.parse_args(argv)
    kind = Broken if a.broken else StandIn
    batcher = Batcher("standin", lambda i: kind(a.delay_ms / 1000, a.build_ms / 1000), a.workers,
                      a.max_batch_size, a.max_wait_ms, a.queue_size)
    service = Service({"standin": Model("standin", batcher, ImageRoute() if a.image_route else None)})
    if a.self_test:
        from kunlun_train.serving import selftest
        return selftest.run(service, bind("127.0.0.1", 0), a.drain_seconds, a.self_test_timeout)
    return run(service, bind("127.0.0.1", a.port), a.drain_seconds)


if __name__ == "__main__":
    sys.exit(main())
