"""`serve` flags -> a Service of one model on paddle.inference, then app.run until SIGTERM."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from ..errors import TrainError

EPILOG = """\
Open Inference Protocol (KServe V2) over HTTP:
  GET  /v2/health/live, /v2/health/ready      liveness, readiness (ready = predictors built and warmed)
  GET  /v2, /v2/models/NAME                   server and model metadata (tensor names, shapes, datatypes)
  POST /v2/models/NAME/infer                  {"inputs": [{"name", "shape", "datatype", "data"}]}
  POST /v2/models/NAME/predict                an input as `predict` reads it: what `predict` saves for it
                                              classification, detection, segmentation: an image's bytes, or
                                                JSON {"image": base64} (detection also "threshold"); masks
                                                come back as PNG in base64 ("mask_png")
                                              language: one sentence (text/plain), or JSON {"text": "..."}
                                              reinforcement: JSON {"observation": [...]}, a JSON array, or
                                                a CSV line
  GET  /metrics                               Prometheus: latency, queue and compute time, batch size
Batching (--max-wait-ms > 0) merges queued requests up to --max-batch-size rows: it pays off on XPU,
not for ResNet50 on CPU. SIGTERM stops accepting and answers every request received within
--drain-seconds (keep it under Kubernetes' 30 s grace period), then exits 0."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="serve", description="Serve an exported model (inference.json + "
                                "inference.pdiparams) with Paddle Inference, on the Kunlun XPUs when visible, "
                                "else the CPU.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.environ.get("KUNLUN_SERVE_MODEL", "/output/inference"), metavar="DIR",
                   help="the export to serve (default: %(default)s: a serving image's own model, else what "
                   "`export` writes)")
    p.add_argument("--name", help="the model's name in the URLs (default: Global.model of DIR/inference.yml)")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument("--workers", type=positive, help="predictors, each serving one batch at a time "
                   "(default: 1 on CPU; one per visible XPU)")
    p.add_argument("--threads", type=positive, help="CPU math threads per predictor (default: this "
                   "container's CPUs / workers)")
    p.add_argument("--no-onednn", dest="onednn", action="store_false", help="CPU: run without oneDNN")
    p.add_argument("--max-batch-size", type=positive, default=None,
                   help="most rows per predictor run; every size up to it is warmed before ready, and a "
                   "request with more rows is refused (default: 8)")
    p.add_argument("--max-wait-ms", type=float, default=None,
                   help="batching: wait up to this long to merge queued requests; 0 = off (default: 0 on "
                   "CPU, 5 on XPU)")
    p.add_argument("--queue-size", type=positive, default=64,
                   help="requests waiting per model before 503 + Retry-After (default: %(default)s)")
    p.add_argument("--max-body-bytes", type=positive, default=64 << 20,
                   help="larger request bodies get 413 (default: %(default)s, 64 MiB)")
    p.add_argument("--drain-seconds", type=float, default=20.0,
                   help="on SIGTERM, finish requests in progress for at most this long (default: %(default)s)")
    p.add_argument("--self-test", action="store_true",
                   help="serve on 127.0.0.1 only, send one request once ready (an image task's predict route with a "
                   "generated image, else /infer with the model's own tensors), stop, print one JSON summary line and "
                   "exit 0 if it was answered with outputs: `invoke publish`'s smoke test, network off "
                   "(--max-batch-size defaults to 1 here: one batch size to warm)")
    p.add_argument("--self-test-timeout", type=float, default=600.0, metavar="SECONDS",
                   help="--self-test: how long the server may take to become ready, and the request to be answered "
                   "(default: %(default)s; under emulation Paddle's import alone is minutes)")
    return p


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return value


def model_name(directory: Path, given: str | None) -> str:
    if given:
        return given
    config = directory / "inference.yml"
    try:
        name = json.loads(config.read_text())["Global"]["model"]
    except FileNotFoundError:
        raise TrainError(f"--model {directory}: no inference.yml (written by `export` beside the model); "
                         "or give --name") from None
    except (ValueError, KeyError, TypeError):
        raise TrainError(f"{config}: no Global.model in it (is it the file `export` wrote?); or give --name") from None
    if not isinstance(name, str) or not name or "/" in name:
        raise TrainError(f"{config}: Global.model {name!r} cannot name a URL path; give --name")
    return name


def main(argv: list[str] | None = None, handler=None) -> int:
    args = parser().parse_args(argv)
    try:
        return serve(args, handler)
    except TrainError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except OSError as exc:   # the port in use, a file that cannot be read
        print(f"error: {exc.strerror or exc} ({getattr(exc, 'filename', None) or f'{args.host}:{args.port}'})",
              file=sys.stderr, flush=True)
        return 2


def serve(args, handler=None) -> int:
    from . import backend
    from .app import Model, Service, bind, run
    from .batching import Batcher
    directory = Path(args.model)
    backend.model_files(directory)
    name = model_name(directory, args.name)
    where = backend.plan(args.workers, args.threads, args.onednn)
    backend.threads_env(where)
    import paddle.inference  # noqa: F401  now: importing Paddle installs its own SIGTERM handler, which
    # would kill the process mid-drain; app.run installs ours after it (measured with 3.2.2)
    if where.onednn and where.device == "cpu" and not backend.onednn_available():
        where = dataclasses.replace(where, onednn=False)
    if callable(handler) and not hasattr(handler, "predict"):   # a factory: the task's, once Paddle's threads are set
        handler = handler(directory)
    max_batch = args.max_batch_size or (1 if args.self_test else 8)
    wait = args.max_wait_ms if args.max_wait_ms is not None else (5.0 if where.device == "xpu" else 0.0)
    if wait < 0:
        raise TrainError(f"--max-wait-ms {wait:g}: must be 0 (batching off) or more")
    batcher = Batcher(name, lambda i: backend.PaddleBackend(directory, where, i), where.workers, max_batch, wait,
                      args.queue_size, example=getattr(handler, "example", None))
    service = Service({name: Model(name, batcher, handler)}, args.max_body_bytes,
                      say=lambda text: print(f"[{name}] {text}" if not text.startswith("[") else text, flush=True))
    service.say(f"serving {directory} on {where.why}: {where.workers} predictor(s)"
                + (f" x {where.threads} thread(s), oneDNN {'on' if where.onednn else 'off'}"
                   if where.device == "cpu" else ""))
    if args.self_test:   # loopback and a free port: the container may have no network at all
        from . import selftest
        return selftest.run(service, bind("127.0.0.1", 0), args.drain_seconds, args.self_test_timeout)
    return run(service, bind(args.host, args.port), args.drain_seconds)
